"""The legend: one swatch per layer and renderer class, drawn by the map's own symbol code.

Each swatch is a tiny :class:`Grid` drawn with :func:`mapserver.render.vector.draw_symbol` (the
same matplotlib paths, dashes, hatches and markers as ``/export``) and rasters through
:func:`mapserver.render.raster.colorize` (the same stretch and colour ramp), so a legend can
never disagree with the map. Sizes follow ArcGIS: ``size`` is the patch size in pixels at 96
dpi (default 20x20); ``dpi`` scales the image (and the symbol, which is in points) together.
Markers larger than the patch get a larger image, as ArcGIS does.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from affine import Affine

from mapserver.catalog.model import Layer, RasterStyle, Service
from mapserver.encode.image import FORMATS, encode_raster
from mapserver.geo.grid import Grid
from mapserver.geo.sr import from_wkid
from mapserver.render.compose import agg_rgba, check_layer_symbols
from mapserver.render.raster import colorize
from mapserver.render.style import MarkerSymbol, PictureMarkerSymbol, Symbol
from mapserver.render.vector import draw_symbol, new_axes

RGB_LABELS = ("Red", "Green", "Blue")
RGB_COLORS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


@dataclass(frozen=True)
class LegendOptions:
    """``size`` (patch width, height in pixels at 96 dpi) and ``dpi`` of the legend request."""

    width: int = 20
    height: int = 20
    dpi: float = 96.0

    @property
    def pixel_size(self) -> tuple[int, int]:
        k = self.dpi / 96.0
        return max(1, round(self.width * k)), max(1, round(self.height * k))


def service_legend(service: Service, opts: LegendOptions,
                   layers: Sequence[Layer] | None = None) -> dict:
    """``{"layers": [...]}`` for every non-group layer, in service order.

    ``layers`` replaces the service's own layers: the hook for ``dynamicLayers`` (pass the
    layers with their request-time renderers; each needs ``id``, ``name`` and a renderer or
    raster style).
    """
    out = []
    for layer in (service.layers if layers is None else layers):
        entry = layer_legend(layer, opts)
        if entry is not None:
            out.append(entry)
    return {"layers": out}


def layer_legend(layer: Layer, opts: LegendOptions) -> dict | None:
    if layer.kind == "group":
        return None
    # the export's symbol-size limit, before a swatch is sized or drawn (a dynamicLayers
    # marker of 1e6 pt would ask for a figure a million pixels wide)
    check_layer_symbols([layer], opts.dpi)
    alpha = 1.0 - layer.transparency / 100.0
    if layer.kind == "raster" and layer.raster_style is not None:
        entries = _raster_entries(layer.raster_style, opts, alpha)
    elif layer.renderer is not None:
        entries = [_entry(cls.label, list(cls.values),
                          symbol_png(cls.symbol, *opts.pixel_size, opts.dpi, alpha))
                   for cls in layer.renderer.all_classes]
    else:
        entries = []
    return {"layerId": layer.id, "layerName": layer.name, "layerType": layer.type_name,
            "minScale": layer.min_scale, "maxScale": layer.max_scale, "legend": entries}


def _entry(label: str, values: list[str], png: tuple[bytes, int, int]) -> dict:
    data, w, h = png
    return {"label": label, "url": hashlib.md5(data, usedforsecurity=False).hexdigest(),
            "imageData": base64.b64encode(data).decode("ascii"), "contentType": "image/png",
            "height": h, "width": w, "values": values}


def _swatch_grid(width: int, height: int, dpi: float) -> Grid:
    # map units are pixels: the swatch has no geography, only a size and a dpi
    return Grid(sr=from_wkid(3857), transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, float(height)),
                width=width, height=height, dpi=dpi)


def _encode(rgba: np.ndarray, dpi: float) -> tuple[bytes, int, int]:
    return encode_raster(rgba, FORMATS["png32"], True, dpi), rgba.shape[1], rgba.shape[0]


@lru_cache(maxsize=1024)
def symbol_png(symbol: Symbol, width: int, height: int, dpi: float,
               alpha: float = 1.0) -> tuple[bytes, int, int]:
    """PNG bytes, width, height of one symbol's swatch (cached: symbols are immutable)."""
    if isinstance(symbol, MarkerSymbol):
        k = dpi / 72.0
        outline = symbol.outline.width if symbol.outline is not None else 0.0
        need = math.ceil((symbol.size + outline) * k
                         + 2 * max(abs(symbol.xoffset), abs(symbol.yoffset)) * k + 2)
        width, height = max(width, need), max(height, need)
    if isinstance(symbol, PictureMarkerSymbol):
        k = dpi / 72.0
        width = max(width, math.ceil((symbol.width + 2 * abs(symbol.xoffset)) * k + 2))
        height = max(height, math.ceil((symbol.height + 2 * abs(symbol.yoffset)) * k + 2))
    grid = _swatch_grid(width, height, dpi)
    fig, ax = new_axes(grid)
    draw_symbol(ax, symbol, grid, alpha)
    return _encode(agg_rgba(fig, grid), dpi)


def _raster_entries(style: RasterStyle, opts: LegendOptions, alpha: float) -> list[dict]:
    w, h = opts.pixel_size
    if len(style.bands) >= 3 and style.colormap is None:
        entries = []
        for name, color, band in zip(RGB_LABELS, RGB_COLORS, style.bands, strict=False):
            rgba = np.zeros((h, w, 4), dtype=np.uint8)
            rgba[..., :3] = color
            rgba[..., 3] = round(255 * alpha)
            entries.append(_entry(f"{name}: Band_{band}", [], _encode(rgba, opts.dpi)))
        return entries
    lo = style.stretch_min[0] if style.stretch_min else 0.0
    hi = style.stretch_max[0] if style.stretch_max else 255.0
    # one continuous ramp, high at the top, split over two entries ("High : x", "Low : y")
    values = np.linspace(hi, lo, 2 * h, dtype=np.float64)
    data = np.repeat(values[:, None], w, axis=1)[None].astype(np.float32)
    rgba = colorize(data, np.ones((2 * h, w), dtype=bool), style)
    if alpha < 1.0:
        rgba[..., 3] = (rgba[..., 3] * alpha).round().astype(np.uint8)
    return [_entry(f"High : {hi:g}", [], _encode(np.ascontiguousarray(rgba[:h]), opts.dpi)),
            _entry(f"Low : {lo:g}", [], _encode(np.ascontiguousarray(rgba[h:]), opts.dpi))]
