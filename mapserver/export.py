"""The export pipeline: typed request -> Grid -> which layers and features -> pixels -> bytes.

This module is the core of ``/export`` and knows nothing of HTTP; tiles and batch exports call
:func:`render_service` with grids of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapserver.catalog.loader import project_bounds
from mapserver.catalog.model import Layer, Service
from mapserver.encode.image import Format, encode_raster, encode_vector
from mapserver.errors import InvalidParameter
from mapserver.geo.grid import Grid
from mapserver.params.export import ExportRequest, LayerSelection
from mapserver.render.compose import DrawItem, render_figure, render_rgba

WHITE = (255, 255, 255, 255)


@dataclass(frozen=True)
class ExportResult:
    content: bytes
    format: Format
    grid: Grid


def build_grid(req: ExportRequest) -> Grid:
    """The output pixel grid: bbox (projected into imageSR when bboxSR differs), the aspect
    rule, or mapScale about the bbox centre."""
    bbox = req.bbox
    if req.bbox_sr != req.image_sr:
        projected = project_bounds(bbox, req.bbox_sr, req.image_sr)
        if projected is None or not all(np.isfinite(projected)):
            raise InvalidParameter("Invalid bbox",
                                   ["'bbox' cannot be projected into the image spatial reference"])
        bbox = projected
    if req.map_scale is not None:
        cx, cy = (bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0
        return Grid.from_scale((cx, cy), req.map_scale, req.width, req.height, req.image_sr,
                               req.dpi, req.rotation)
    return Grid.from_bbox(bbox, req.width, req.height, req.image_sr, req.dpi, req.rotation)


def _descendants(service: Service, lid: int) -> list[int]:
    layer = service.layer(lid)
    if layer is None or layer.kind != "group":
        return [lid]
    out = [lid]
    for sub in layer.sublayer_ids:
        out.extend(_descendants(service, sub))
    return out


def default_visible(service: Service) -> set[int]:
    """Layers visible by default: their own flag and every ancestor's flag are on."""
    out = set()
    for layer in service.layers:
        cur: Layer | None = layer
        ok = True
        while cur is not None:
            if not cur.default_visibility:
                ok = False
                break
            cur = service.layer(cur.parent_id) if cur.parent_id >= 0 else None
        if ok:
            out.add(layer.id)
    return out


def resolve_layers(service: Service, sel: LayerSelection) -> set[int]:
    """The ids drawn for a ``layers`` parameter (groups expand to their members)."""
    for lid in sel.ids:
        if service.layer(lid) is None:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"The requested layer (layerId: {lid}) was not found."])
    listed = {d for lid in sel.ids for d in _descendants(service, lid)}
    default = default_visible(service)
    if sel.verb is None:
        return default
    if sel.verb == "show":
        return listed
    if sel.verb == "hide":
        return {lyr.id for lyr in service.layers} - listed
    if sel.verb == "include":
        return default | listed
    return default - listed  # exclude


def select_features(layer: Layer, grid: Grid, time: tuple[int | None, int | None] | None
                    ) -> np.ndarray:
    """Indexes of the layer's features to draw on ``grid``: in view, in time."""
    table = layer.table
    assert table is not None
    area = grid.footprint(table.sr)
    if area is None:
        return np.empty(0, dtype=np.int64)
    idx = table.candidates(area)
    if time is not None and layer.time_info is not None and len(idx):
        idx = idx[time_mask(layer, idx, time)]
    return idx


def time_mask(layer: Layer, idx: np.ndarray, time: tuple[int | None, int | None]) -> np.ndarray:
    """Features whose [start, end] overlaps the requested [t0, t1] (ends inclusive)."""
    ti = layer.time_info
    assert ti is not None and layer.table is not None
    cols = layer.table.columns
    start = np.asarray(cols[ti.start_field])[idx]
    end = np.asarray(cols[ti.end_field])[idx] if ti.end_field else start
    t0, t1 = time
    ok = np.ones(len(idx), dtype=bool)
    if t1 is not None:
        ok &= start <= t1
    if t0 is not None:
        ok &= end >= t0
    for fname in (ti.start_field, ti.end_field):
        null = cols.get(f"{fname}__null") if fname else None
        if null is not None:
            ok &= ~null[idx]
    return ok


def plan(service: Service, grid: Grid, visible: set[int],
         time: tuple[int | None, int | None] | None) -> list[DrawItem]:
    """Draw items bottom to top. ArcGIS draws the first layer in the service on top."""
    items = []
    scale = grid.scale
    for layer in reversed(service.layers):
        if layer.kind == "group" or layer.id not in visible or not layer.visible_at(scale):
            continue
        # a layer inside an out-of-scale group is hidden too
        parent = service.layer(layer.parent_id) if layer.parent_id >= 0 else None
        hidden = False
        while parent is not None:
            if not parent.visible_at(scale):
                hidden = True
                break
            parent = service.layer(parent.parent_id) if parent.parent_id >= 0 else None
        if hidden:
            continue
        opacity = 1.0 - layer.transparency / 100.0
        if layer.kind == "raster":
            items.append(DrawItem(layer=layer, opacity=opacity))
        else:
            items.append(DrawItem(layer=layer, idx=select_features(layer, grid, time),
                                  opacity=opacity))
    return items


def render_service(items: Sequence[DrawItem], grid: Grid, fmt: Format, transparent: bool,
                   png_compression: int = 2) -> bytes:
    """Pixels (or vector drawing) for ``items`` on ``grid``, encoded as ``fmt``."""
    background = None if transparent and fmt.supports_alpha else WHITE
    if fmt.vector:
        return encode_vector(render_figure(items, grid, background), fmt, grid.dpi)
    rgba = render_rgba(items, grid, background)
    return encode_raster(rgba, fmt, transparent and fmt.supports_alpha, grid.dpi,
                         png_compression)


def export_map(service: Service, req: ExportRequest, png_compression: int = 2) -> ExportResult:
    grid = build_grid(req)
    items = plan(service, grid, resolve_layers(service, req.layers), req.time)
    content = render_service(items, grid, req.format, req.transparent, png_compression)
    return ExportResult(content=content, format=req.format, grid=grid)
