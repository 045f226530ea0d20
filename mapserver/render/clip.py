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
from mapserver.geo.project import project_geometry
from mapserver.geo.sr import SpatialRef


def clip_pixels(shape: shapely.Geometry, sr: SpatialRef, grid: Grid, datum: tuple = ()
                ) -> shapely.Geometry:
    """The clip polygon in the grid's pixel space (column, row)."""
    geom = project_geometry(shape, sr, grid.sr, datum)
    inv = ~grid.transform
    return shapely.transform(geom, lambda xy: np.column_stack(
        [inv.a * xy[:, 0] + inv.b * xy[:, 1] + inv.c, inv.d * xy[:, 0] + inv.e * xy[:, 1] + inv.f]))


def clip_path(pixels: shapely.Geometry):
    """The pixel-space clip polygon as one matplotlib compound Path (vector output: the
    layers' artists are clipped to it, so the PDF/SVG keeps real vectors); empty when the
    polygon misses the view."""
    from matplotlib.path import Path

    from mapserver.render.geometry import feature_paths

    parts = shapely.get_parts(pixels)
    parts = parts[shapely.get_type_id(parts) == 3]
    if not len(parts):
        return Path(np.empty((0, 2)))  # clipped to nothing
    return feature_paths(parts, np.zeros(len(parts), dtype=np.int64), 1, closed=True)[0]


def clip_mask(shape: shapely.Geometry, sr: SpatialRef, grid: Grid, datum: tuple = ()
              ) -> np.ndarray:
    """A (height, width) float32 mask: 1 inside the clip polygon, 0 outside."""
    pix = clip_pixels(shape, sr, grid, datum)
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
