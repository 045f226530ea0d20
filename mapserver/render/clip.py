"""``clipping``: a polygon (in any SR) turned into a per-pixel mask on the output grid.

The polygon is densified, projected into the grid's SR and mapped through the grid's (possibly
rotated) affine, then rasterised once per request; every clipped layer's alpha is multiplied by
it, so clipping works the same for rasters, vectors and labels.
"""

from __future__ import annotations

import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize

from mapserver.geo.grid import Grid
from mapserver.geo.sr import SpatialRef, transformer


def to_sr(shape: shapely.Geometry, src: SpatialRef, dst: SpatialRef,
          segments: int = 64) -> shapely.Geometry:
    """``shape`` projected from ``src`` to ``dst`` with its edges densified first, so straight
    edges in one SR follow the curve they make in the other. Unprojectable vertices are
    dropped by snapping them onto a projected one."""
    if src == dst or shape.is_empty:
        return shape
    xmin, ymin, xmax, ymax = shape.bounds
    step = max(xmax - xmin, ymax - ymin) / segments
    if step > 0 and shape.geom_type not in ("Point", "MultiPoint"):
        shape = shapely.segmentize(shape, step)
    tr = transformer(src, dst)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
        out = np.column_stack([x, y])
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            good = out[~bad]
            out[bad] = good[0] if len(good) else 0.0
        return out

    out = shapely.transform(shape, fn)
    return out if out.is_valid else shapely.make_valid(out)


def clip_mask(shape: shapely.Geometry, sr: SpatialRef, grid: Grid) -> np.ndarray:
    """A (height, width) float32 mask: 1 inside the clip polygon, 0 outside."""
    geom = to_sr(shape, sr, grid.sr)
    inv = ~grid.transform
    pix = shapely.transform(geom, lambda xy: np.column_stack(
        [inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c, inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f]))
    if pix.is_empty:
        return np.zeros((grid.height, grid.width), dtype=np.float32)
    return rasterize([(pix, 1)], out_shape=(grid.height, grid.width), transform=Affine.identity(),
                     fill=0, dtype="uint8").astype(np.float32)


def apply_mask(rgba: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``rgba`` with its alpha multiplied by ``mask`` (a copy; the input is not changed)."""
    if mask is None:
        return rgba
    out = rgba.copy()
    out[..., 3] = (out[..., 3].astype(np.float32) * mask).round().astype(np.uint8)
    return out
