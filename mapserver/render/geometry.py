"""Feature geometries to matplotlib paths in a grid's pixel space, vectorised.

Geometries are clipped to the view (in their own SR) before projection, so nothing far outside
the view, or outside the target CRS's domain (e.g. the poles in Web Mercator), is projected.
All coordinates of a layer are projected in one pyproj call and mapped to pixels through the
grid's (possibly rotated) affine.
"""

from __future__ import annotations

import numpy as np
import shapely
from matplotlib.path import Path

from mapserver.datum import override as datum_override
from mapserver.geo.grid import Grid
from mapserver.geo.sr import SpatialRef, transformer

MERCATOR_MAX_LAT = 89.5


def view_rect(grid: Grid, sr: SpatialRef, margin: float = 0.02) -> tuple | None:
    """The grid's footprint bounds in ``sr`` with a small margin, so clipped edges fall outside
    the picture. ``None`` when the view does not project into ``sr`` at all."""
    fp = grid.footprint(sr)
    if fp is None or fp.is_empty:
        return None
    xmin, ymin, xmax, ymax = fp.bounds
    dx, dy = (xmax - xmin) * margin, (ymax - ymin) * margin
    rect = [xmin - dx, ymin - dy, xmax + dx, ymax + dy]
    if sr.is_geographic:
        if grid.sr.is_web_mercator:
            rect[1], rect[3] = max(rect[1], -MERCATOR_MAX_LAT), min(rect[3], MERCATOR_MAX_LAT)
        rect[1], rect[3] = max(rect[1], -90.0), min(rect[3], 90.0)
    return tuple(rect)


def clip_to_view(geoms: np.ndarray, rect: tuple) -> np.ndarray:
    """Clip geometries to a rectangle. Points are kept as they are (they are tested later)."""
    return shapely.clip_by_rect(geoms, *rect)


def project_coords(coords: np.ndarray, src: SpatialRef, grid: Grid) -> np.ndarray:
    """(n, 2) coordinates in ``src`` to (n, 2) pixel coordinates of ``grid``."""
    if len(coords) == 0:
        return coords.reshape(0, 2)
    x, y = coords[:, 0], coords[:, 1]
    if src != grid.sr:
        # a datumTransformations choice for this export (mapserver/datum.py), else pyproj's best
        tr = datum_override(src, grid.sr) or transformer(src, grid.sr)
        x, y = tr.transform(x, y, errcheck=False)
    col, row = grid.to_pixels(np.asarray(x), np.asarray(y))
    return np.column_stack([col, row])


def feature_paths(geoms: np.ndarray, src: SpatialRef, grid: Grid, closed: bool) -> list[Path]:
    """One compound Path per feature (empty features give an empty path).

    ``closed`` rings get MOVETO ... CLOSEPOLY codes so holes render with the even-odd/nonzero
    rule matplotlib applies to compound paths.
    """
    n = len(geoms)
    if n == 0:
        return []
    parts, part_feature = shapely.get_parts(geoms, return_index=True)
    if closed:
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        ring_feature = part_feature[ring_part]
        lines = rings
    else:
        lines, ring_feature = parts, part_feature
    coords, coord_line = shapely.get_coordinates(lines, return_index=True)
    pix = project_coords(coords, src, grid)
    codes = np.full(len(coords), Path.LINETO, dtype=np.uint8)
    if len(coords):
        starts = np.r_[0, np.flatnonzero(np.diff(coord_line)) + 1]
        codes[starts] = Path.MOVETO
        if closed:
            ends = np.r_[starts[1:] - 1, len(coords) - 1]
            codes[ends] = Path.CLOSEPOLY
    # drop any vertex that did not project (then restart the ring after it)
    bad = ~np.isfinite(pix).all(axis=1)
    if bad.any():
        keep = ~bad
        nxt = np.flatnonzero(bad) + 1
        nxt = nxt[nxt < len(codes)]
        codes[nxt] = Path.MOVETO
        pix, codes, coord_line = pix[keep], codes[keep], coord_line[keep]
    coord_feature = ring_feature[coord_line] if len(coord_line) else coord_line
    bounds = np.searchsorted(coord_feature, np.arange(n + 1))
    return [Path(pix[bounds[i]:bounds[i + 1]], codes[bounds[i]:bounds[i + 1]])
            for i in range(n)]


def point_pixels(geoms: np.ndarray, src: SpatialRef, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Pixel positions of every point (multipoints give several); returns (pixels, feature)."""
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    return project_coords(coords, src, grid), idx
