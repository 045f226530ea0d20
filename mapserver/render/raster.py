"""Raster layers to RGBA: warp onto the grid, then stretch / colour-map, nodata transparent."""

from __future__ import annotations

import numpy as np

from mapserver import datum as datum_mod
from mapserver.catalog.model import Layer, RasterStyle
from mapserver.geo.grid import Grid


def render_raster(layer: Layer, grid: Grid, datum: tuple = ()) -> np.ndarray:
    """RGBA (h, w, 4) uint8 with straight alpha; alpha 0 where there is no data. ``datum``:
    the request's datumTransformations, used by the warp when one connects the two SRs."""
    assert layer.raster is not None and layer.raster_style is not None
    style = layer.raster_style
    raster = layer.raster
    operation = datum_mod.raster_operation(raster.sr, grid.sr, datum) if datum else None
    if operation is not None:
        data, valid = raster.read(grid, style.bands, style.resampling, operation=operation)
    else:
        data, valid = raster.read(grid, style.bands, style.resampling)
    return colorize(data, valid, style)


def colorize(data: np.ndarray, valid: np.ndarray, style: RasterStyle) -> np.ndarray:
    """Apply the layer's declared stretch and colour ramp to warped band values."""
    h, w = valid.shape
    out = np.empty((h, w, 4), dtype=np.uint8)
    if style.stretch_min is None:
        scaled = [np.clip(b, 0, 255).astype(np.uint8, copy=False) if b.dtype != np.uint8 else b
                  for b in data]
    elif data.dtype == np.uint8:
        scaled = [_lut(style.stretch_min[i], style.stretch_max[i])[b] for i, b in enumerate(data)]
    else:
        scaled = []
        for i, b in enumerate(data):
            lo, hi = style.stretch_min[i], style.stretch_max[i]
            v = (b.astype(np.float32) - lo) * (255.0 / (hi - lo))
            scaled.append(np.clip(np.nan_to_num(v, nan=0.0), 0, 255).round().astype(np.uint8))
    if style.colormap is not None:
        out[...] = style.colormap[scaled[0]]
    elif len(scaled) == 1:
        out[..., 0] = out[..., 1] = out[..., 2] = scaled[0]
        out[..., 3] = 255
    else:  # interleave in one pass (per-channel strided stores cost twice as much)
        alpha = valid.view(np.uint8) * np.uint8(255)
        return np.stack([scaled[0], scaled[1], scaled[2], alpha], axis=-1)
    out[..., 3] = np.where(valid, out[..., 3], 0)
    return out


_luts: dict[tuple[float, float], np.ndarray] = {}


def _lut(lo: float, hi: float) -> np.ndarray:
    """A 256-entry linear stretch table for byte data (cheaper than per-pixel arithmetic)."""
    key = (lo, hi)
    lut = _luts.get(key)
    if lut is None:
        v = (np.arange(256, dtype=np.float64) - lo) * (255.0 / (hi - lo))
        lut = np.clip(v, 0, 255).round().astype(np.uint8)
        _luts[key] = lut
    return lut
