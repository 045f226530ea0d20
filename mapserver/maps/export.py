"""``/export``: typed request → Grid → planner → pixels → bytes.

This module knows nothing of HTTP. :func:`draw_map` is the drawing every map-making entry
point shares (``/export``, ``/tile``, batch images): the planner's draw items for the grid, one
pass per world copy, composed bottom to top. So a tile, a batch image and an export of the same
grid are the same pixels.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from affine import Affine

from mapserver import limits
from mapserver.catalog.model import Service
from mapserver.encode.image import Format, encode_raster, encode_vector
from mapserver.errors import InvalidParameter
from mapserver.geo.grid import Grid
from mapserver.geo.project import MERCATOR_HALF_WORLD, project_bounds, world_shifts
from mapserver.observe.timing import layer_timing
from mapserver.params.export import ExportRequest
from mapserver.params.filters import MapFilters
from mapserver.render.clip import clip_mask, clip_path, clip_pixels
from mapserver.render.compose import check_layer_symbols, over, render_figure, render_rgba
from mapserver.select.plan import MapLayers, plan_map, resolve_map

__all__ = ["build_grid", "draw_map", "export_map", "render_map"]

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


def shifted(grid: Grid, dx: float) -> Grid:
    """The same pixels looking at map x - dx (world copy ``dx`` to the east)."""
    return dataclasses.replace(grid, transform=Affine.translation(-dx, 0) @ grid.transform)


def clipping_mask(m: MapLayers, grid: Grid) -> np.ndarray | None:
    clip = m.filters.clipping
    if clip is None:
        return None
    return clip_mask(clip.geometry.geometry, clip.geometry.sr, grid, m.datum)


def draw_map(m: MapLayers, grid: Grid, background: tuple | None = None) -> np.ndarray:
    """The map as straight-alpha RGBA on ``grid`` (``background`` None: transparent)."""
    with layer_timing(m.service.name):  # render time by layer (observe/timing.py)
        return _draw_map(m, grid, background)


def _draw_map(m: MapLayers, grid: Grid, background: tuple | None) -> np.ndarray:
    clip = clipping_mask(m, grid)
    copies = world_shifts(grid)
    if copies == [0.0]:
        return render_rgba(plan_map(m, grid, clip), grid, background, clip)
    canvas = None
    for dx in copies:
        limits.check_budget("between world copies")
        g = shifted(grid, dx)
        canvas = over(canvas, render_rgba(plan_map(m, g, clip), g, None, clip))
    if background is not None:
        bg = np.empty_like(canvas)
        bg[...] = background
        canvas = over(bg, canvas)
    return canvas


def render_map(m: MapLayers, grid: Grid, fmt: Format, transparent: bool,
               png_compression: int = 2) -> bytes:
    """Pixels (or a vector drawing) of the map on ``grid``, encoded as ``fmt``."""
    alpha = transparent and fmt.supports_alpha
    background = None if alpha else WHITE
    if fmt.vector:
        clip = m.filters.clipping
        if clip is None:
            return encode_vector(render_figure(plan_map(m, grid), grid, background), fmt,
                                 grid.dpi)
        # clipping: the items know they are clipped (a mask); the figure clips their artists
        # to the polygon itself, so the output stays vector
        path = clip_path(clip_pixels(clip.geometry.geometry, clip.geometry.sr, grid, m.datum))
        figure = render_figure(plan_map(m, grid, clipping_mask(m, grid)), grid, background,
                               path)
        return encode_vector(figure, fmt, grid.dpi)
    rgba = draw_map(m, grid, background)
    return encode_raster(rgba, fmt, alpha, grid.dpi, png_compression)


def export_map(service: Service, req: ExportRequest, png_compression: int = 2) -> ExportResult:
    """Render one export."""
    m = resolve_map(service, req.filters)
    # symbol sizes in pixels, refused before planning (draw_map checks again per draw item)
    check_layer_symbols([lyr for lyr in m.layers if lyr.id in m.visible], req.dpi)
    grid = build_grid(req)
    content = render_map(m, grid, req.format, req.transparent, png_compression)
    return ExportResult(content=content, format=req.format, grid=grid)


def map_of(service: Service, filters: MapFilters | None = None) -> MapLayers:
    """The service's layers for ``filters`` (default: as the service is published)."""
    return resolve_map(service, filters or MapFilters())
