"""The export pipeline: typed request -> Grid -> which layers and features -> pixels -> bytes.

This module is the core of ``/export`` and knows nothing of HTTP; tiles and batch exports call
:func:`render_service` with grids of their own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from affine import Affine

from mapserver import datum
from mapserver.catalog.loader import project_bounds
from mapserver.catalog.model import Layer, Service
from mapserver.declared_params import apply_version, declared_filters, declares, series_layer
from mapserver.dynamic import resolve_dynamic_layers
from mapserver.encode.image import Format, encode_raster, encode_vector
from mapserver.errors import InvalidParameter, UnsupportedOperation
from mapserver.geo.grid import Grid
from mapserver.params.export import DECLARED_PARAMS, ExportRequest, LayerSelection, Selection
from mapserver.params.export import SpatialFilter as RequestSpatialFilter
from mapserver.render.clip import clip_mask, to_sr
from mapserver.render.compose import DrawItem, over, render_figure, render_rgba
from mapserver.render.style import Renderer, parse_renderer
from mapserver.timefilter import TimeOptions, layer_window, time_mask
from mapserver.where import WhereExpression, combine_and

__all__ = ["export_map", "plan", "render_service", "select_features", "time_mask"]

if TYPE_CHECKING:
    from mapserver.features.filtering import SpatialFilter as FeatureSpatialFilter

WHITE = (255, 255, 255, 255)
MERCATOR_HALF_WORLD = 20037508.342789244


@dataclass(frozen=True)
class ExportResult:
    content: bytes
    format: Format
    grid: Grid


def build_grid(req: ExportRequest) -> Grid:
    """The output pixel grid: bbox (projected into imageSR when bboxSR differs), the aspect
    rule, or mapScale about the bbox centre."""
    bbox = req.bbox
    if (req.bbox_sr.latest_wkid == 4326 and req.image_sr.is_web_mercator
            and (bbox[0] < -180 or bbox[2] > 180)):
        # past the antimeridian: Web Mercator x is linear in longitude, so do not let the
        # projection wrap 190 E to -170 (which would turn the view into the whole world)
        lo = project_bounds((-1.0, bbox[1], 1.0, bbox[3]), req.bbox_sr, req.image_sr)
        if lo is None:
            raise InvalidParameter("Invalid bbox", ["'bbox' cannot be projected into the "
                                                    "image spatial reference"])
        k = MERCATOR_HALF_WORLD / 180.0
        bbox = (bbox[0] * k, lo[1], bbox[2] * k, lo[3])
    elif req.bbox_sr != req.image_sr:
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


def select_features(layer: Layer, grid: Grid, time: tuple[int | None, int | None] | None,
                    *, relation: str = "esriTimeRelationOverlaps",
                    where: WhereExpression | None = None,
                    spatial: FeatureSpatialFilter | None = None) -> np.ndarray:
    """Indexes of the layer's features to draw on ``grid``: in view, in time, matching the
    where clause and the spatial filter (its geometry already in the layer's SR)."""
    table = layer.table
    assert table is not None
    area = grid.footprint(table.sr)
    if area is None:
        return np.empty(0, dtype=np.int64)
    idx = table.candidates(area)
    if time is not None and layer.time_info is not None and len(idx):
        idx = idx[time_mask(layer, idx, time, relation)]
    if spatial is not None and len(idx):
        from mapserver.features.relations import relate

        idx = np.intersect1d(idx, table.candidates(spatial.geometry))
        if len(idx):
            idx = idx[relate(table.geometry[idx], spatial.geometry, spatial.rel,
                             spatial.relation_param)]
    if where is not None and len(idx):
        idx = idx[table.where_mask(where, idx)]
    return idx


@dataclass(frozen=True)
class DrawOptions:
    """Per-request drawing options beyond the view: filters, time, clipping, selection."""

    layer_defs: Mapping[int, str] = field(default_factory=dict)
    time_relation: str = "esriTimeRelationOverlaps"
    time_options: Mapping[int, TimeOptions] = field(default_factory=dict)
    spatial_filter: RequestSpatialFilter | None = None
    clip: np.ndarray | None = None  # pixel mask on the grid
    clip_excluded: frozenset[int] = frozenset()
    selections: tuple[Selection, ...] = ()
    labels_off: frozenset[int] = frozenset()
    # per layer: archiving, parameterized-filter and range clauses (declared_params.py)
    extra_where: Mapping[int, WhereExpression] = field(default_factory=dict)


def plan(service: Service, grid: Grid, visible: set[int],
         time: tuple[int | None, int | None] | None, options: DrawOptions | None = None,
         layers: Sequence[Layer] | None = None) -> list[DrawItem]:
    """Draw items bottom to top. ArcGIS draws the first layer in the service (or the first
    dynamic layer) on top; selection highlights go over everything."""
    opts = options or DrawOptions()
    items = []
    scale = grid.scale
    for layer in reversed(layers if layers is not None else service.layers):
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
        mask = opts.clip if layer.id not in opts.clip_excluded else None
        if layer.kind == "raster":
            drawn = series_layer(layer, layer_window(time, opts.time_options.get(layer.id)),
                                 opts.time_relation)
            if drawn is not None:  # None: a time series with no raster in the time window
                items.append(DrawItem(layer=drawn, opacity=opacity, mask=mask))
            continue
        items.append(DrawItem(layer=layer, idx=feature_selection(layer, grid, time, opts),
                              opacity=opacity, mask=mask,
                              show_labels=layer.id not in opts.labels_off))
    by_id = {lyr.id: lyr for lyr in (layers if layers is not None else service.layers)}
    for sel in opts.selections:
        layer = by_id[sel.layer_id]
        idx = select_features(layer, grid, None)
        idx = idx[np.isin(layer.table.columns[layer.table.oid_field][idx], sel.object_ids)]
        items.append(DrawItem(layer=layer, idx=idx, renderer=selection_renderer(layer, sel),
                              show_labels=False,
                              mask=opts.clip if layer.id not in opts.clip_excluded else None))
    return items


def feature_selection(layer: Layer, grid: Grid, time: tuple[int | None, int | None] | None,
                      opts: DrawOptions) -> np.ndarray:
    """The features of one vector layer that this request draws."""
    # imported here: mapserver.features.filtering imports this module (time_mask)
    from mapserver.features.filtering import SpatialFilter, layer_where

    table = layer.table
    assert table is not None
    where = layer_where(layer, layer_def=opts.layer_defs.get(layer.id),
                        message="Invalid or missing input parameters.")
    where = combine_and(where, opts.extra_where.get(layer.id))
    window = layer_window(time, opts.time_options.get(layer.id))
    spatial = None
    if opts.spatial_filter is not None:
        sf = opts.spatial_filter
        spatial = SpatialFilter(to_sr(sf.geometry.geometry, sf.geometry.sr, table.sr), sf.rel,
                                sf.relation_param)
    return select_features(layer, grid, window, relation=opts.time_relation, where=where,
                           spatial=spatial)


SELECTION_COLOR = (0, 255, 255, 255)  # ArcGIS Pro's default selection colour (cyan)


def selection_renderer(layer: Layer, sel: Selection) -> Renderer:
    """A simple renderer in the selection colours: outline/line/marker in ``selectionColor``,
    polygons filled with ``selectionFillColor`` when given (hollow otherwise)."""
    color = list(sel.color or SELECTION_COLOR)
    color = color + [255] if len(color) == 3 else color
    fill = list(sel.fill_color) if sel.fill_color else None
    if fill is not None and len(fill) == 3:
        fill.append(255)
    line = {"type": "esriSLS", "style": "esriSLSSolid", "color": color, "width": 2}
    gtype = layer.geometry_type
    if gtype == "esriGeometryPolygon":
        sym = {"type": "esriSFS", "style": "esriSFSSolid" if fill else "esriSFSNull",
               "color": fill, "outline": line}
    elif gtype == "esriGeometryPolyline":
        sym = line
    else:
        sym = {"type": "esriSMS", "style": "esriSMSCircle", "color": fill or color, "size": 8,
               "outline": {"type": "esriSLS", "color": color, "width": 1.5}}
    return parse_renderer({"type": "simple", "symbol": sym}, "selection", [])


def render_service(items: Sequence[DrawItem], grid: Grid, fmt: Format, transparent: bool,
                   png_compression: int = 2, label_mask: np.ndarray | None = None) -> bytes:
    """Pixels (or vector drawing) for ``items`` on ``grid``, encoded as ``fmt``."""
    background = None if transparent and fmt.supports_alpha else WHITE
    if fmt.vector:
        return encode_vector(render_figure(items, grid, background), fmt, grid.dpi)
    rgba = render_rgba(items, grid, background, label_mask)
    return encode_raster(rgba, fmt, transparent and fmt.supports_alpha, grid.dpi,
                         png_compression)


def world_copies(grid: Grid) -> list[float]:
    """x shifts (map units) of the world copies a view needs: a view reaching past the
    antimeridian in EPSG:4326 or Web Mercator also shows the data from the other side."""
    if grid.sr.is_geographic and grid.sr.latest_wkid == 4326:
        width = 360.0
    elif grid.sr.is_web_mercator:
        width = 2 * MERCATOR_HALF_WORLD
    else:
        return [0.0]
    xmin, _ymin, xmax, _ymax = grid.bounds
    first = math.floor((xmin + width / 2) / width)
    last = math.ceil((xmax + width / 2) / width) - 1
    if last - first > 4:  # a view many worlds wide: draw one copy, not hundreds
        return [0.0]
    return [k * width for k in range(first, last + 1)]


def shifted(grid: Grid, dx: float) -> Grid:
    """The same pixels looking at map x - dx (world copy ``dx`` to the east)."""
    return dataclasses.replace(grid, transform=Affine.translation(-dx, 0) @ grid.transform)


def _layer_ids(layers: Sequence[Layer]) -> dict[int, Layer]:
    return {lyr.id: lyr for lyr in layers}


def check_request(service: Service, req: ExportRequest, layers: Sequence[Layer]) -> None:
    """Refuse parameters that name layers or service features that do not exist."""
    by_id = _layer_ids(layers)
    for name in DECLARED_PARAMS:
        if name in req.extras and not declares(service, layers, name):
            raise UnsupportedOperation(
                f"'{name}' is not supported by this service.",
                [DECLARED_HELP[name], f"Service '{service.name}' declares nothing '{name}' "
                                      "could apply to."])
    for lid, _expr in req.layer_defs.items():
        layer = by_id.get(lid)
        if layer is None:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'layerDefs': the requested layer (layerId: {lid}) "
                                    "was not found."])
        if layer.kind != "feature":
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'layerDefs': layer {lid} is not a feature layer"])
    for lid in req.layer_time_options:
        if lid not in by_id:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'layerTimeOptions': the requested layer (layerId: {lid}) "
                                    "was not found."])
    if req.clipping is not None:
        for lid in req.clipping.excluded:
            if lid not in by_id:
                raise InvalidParameter("Invalid or missing input parameters.",
                                       [f"'clipping' excludedLayers: the requested layer "
                                        f"(layerId: {lid}) was not found."])
        if req.format.vector:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'clipping' is supported for raster image formats (png, "
                                    "jpg, gif, bmp, tiff), not for vector output"])
    if req.spatial_filter is not None and not any(lyr.kind == "feature" for lyr in layers):
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'spatialFilter' needs a feature layer; this service has none"])
    for sel in req.selections:
        layer = by_id.get(sel.layer_id)
        if layer is None:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'selectionDefinitions': the requested layer "
                                    f"(layerId: {sel.layer_id}) was not found."])
        if layer.kind != "feature":
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'selectionDefinitions': layer {sel.layer_id} is not a "
                                    "feature layer"])
        if sel.unique_ids:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'selectionDefinitions': layer {sel.layer_id} declares no "
                                    "uniqueIdInfo; select with objectIds"])


DECLARED_HELP = {
    "historicMoment": "historicMoment applies only to archiving-enabled layers "
                      "(supportsQueryWithHistoricMoment); no layer of this service is.",
    "gdbVersion": "gdbVersion applies only to versioned data; this service declares no "
                  "versions.",
    "layerParameterValues": "layerParameterValues applies only to layers with parameterInfos; "
                            "no layer of this service has them.",
    "mapRangeValues": "mapRangeValues applies only to layers with rangeInfos; no layer of this "
                      "service has them.",
    "layerRangeValues": "layerRangeValues applies only to layers with rangeInfos; no layer of "
                        "this service has them.",
    "datumTransformations": "datumTransformations applies to every service.",
}


def export_map(service: Service, req: ExportRequest, png_compression: int = 2) -> ExportResult:
    """Render one export; ``datumTransformations`` hold for vector projection meanwhile."""
    with datum.using(datum.parse_datum_transformations(req.extras.get("datumTransformations"))):
        return _export_map(service, req, png_compression)


def _export_map(service: Service, req: ExportRequest, png_compression: int = 2) -> ExportResult:
    time_options = dict(req.layer_time_options)
    labels_off: frozenset[int] = frozenset()
    if req.dynamic_layers is not None:
        dyn = resolve_dynamic_layers(service, req.dynamic_layers)
        layers: Sequence[Layer] = [d.layer for d in dyn]
        visible = {d.layer.id for d in dyn}
        for d in dyn:
            if d.time_options is not None:
                time_options[d.layer.id] = d.time_options
        labels_off = frozenset(d.layer.id for d in dyn if not d.show_labels)
    else:
        layers = service.layers
        visible = resolve_layers(service, req.layers)
    check_request(service, req, layers)
    layers = apply_version(service, layers, req.extras.get("gdbVersion"))
    extra_where = declared_filters(layers, req.extras)
    grid = build_grid(req)
    clip = None
    if req.clipping is not None:
        clip = clip_mask(req.clipping.geometry.geometry, req.clipping.geometry.sr, grid)
    opts = DrawOptions(layer_defs=req.layer_defs, time_relation=req.time_relation,
                       time_options=time_options, spatial_filter=req.spatial_filter, clip=clip,
                       clip_excluded=req.clipping.excluded if req.clipping else frozenset(),
                       selections=req.selections, labels_off=labels_off,
                       extra_where=extra_where)
    copies = world_copies(grid) if not req.format.vector else [0.0]
    if copies == [0.0]:
        items = plan(service, grid, visible, req.time, opts, layers)
        content = render_service(items, grid, req.format, req.transparent, png_compression,
                                 label_mask=clip)
        return ExportResult(content=content, format=req.format, grid=grid)
    canvas = None
    for dx in copies:
        g = shifted(grid, dx)
        layer_rgba = render_rgba(plan(service, g, visible, req.time, opts, layers), g, None,
                                 clip)
        canvas = over(canvas, layer_rgba)
    transparent = req.transparent and req.format.supports_alpha
    if not transparent:
        bg = np.empty_like(canvas)
        bg[...] = WHITE
        canvas = over(bg, canvas)
    content = encode_raster(canvas, req.format, transparent, grid.dpi, png_compression)
    return ExportResult(content=content, format=req.format, grid=grid)
