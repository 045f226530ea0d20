"""Pixel-space geometry parts (from :mod:`mapserver.geo.project`) to matplotlib paths.

The projection module has already cut, clamped, projected and clipped the geometry; here each
feature's parts become one compound Path (rings get MOVETO ... CLOSEPOLY codes so holes render
with the fill rule matplotlib applies to compound paths).
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import shapely
from matplotlib.path import Path

from mapserver.geo.grid import Grid
from mapserver.geo.project import COMPUTE, Datum, to_pixel_parts, to_pixel_rings
from mapserver.geo.sr import SpatialRef


def pixel_paths(geometry: np.ndarray, idx: np.ndarray, src: SpatialRef, grid: Grid,
                datum: Datum = (), area: object = COMPUTE, closed: bool = True) -> list[Path]:
    """One Path per feature ``geometry[idx]`` on ``grid``: through the fast route of
    :func:`mapserver.geo.project.to_pixel_rings` (the table's rings projected once per map SR,
    only the affine per request), and the exact route (:func:`to_pixel_parts` +
    :func:`feature_paths`) for the features it would clip or when there is no fast route.
    Both give the same vertices and codes for a feature (tests/test_vector_fast_paths.py)."""
    fast = to_pixel_rings(geometry, idx, src, grid, datum, area=area, closed=closed)
    if fast is None:
        parts, owner = to_pixel_parts(geometry[idx], src, grid, datum, area=area)
        return feature_paths(parts, owner, len(idx), closed)
    xy, codes, offsets, exact = fast
    paths = [_path(xy[offsets[i]:offsets[i + 1]], codes[offsets[i]:offsets[i + 1]], closed)
             for i in range(len(idx))]
    if exact.any():
        which = np.flatnonzero(exact)
        parts, owner = to_pixel_parts(geometry[idx[which]], src, grid, datum, area=area)
        for i, path in zip(which, feature_paths(parts, owner, len(which), closed), strict=True):
            paths[i] = path
    return paths


def feature_paths(parts: np.ndarray, owner: np.ndarray, n: int, closed: bool) -> list[Path]:
    """One compound Path per feature ``0..n-1`` from its pixel-space parts (features without
    a part give an empty path)."""
    if n == 0:
        return []
    order = np.argsort(owner, kind="stable")
    parts, owner = parts[order], owner[order]
    if closed:
        lines, line_part = shapely.get_rings(parts, return_index=True)
    else:
        lines, line_part = parts, np.arange(len(parts))
    line_feature = owner[line_part] if len(line_part) else owner[:0]
    coords, coord_line = shapely.get_coordinates(lines, return_index=True)
    codes = np.full(len(coords), Path.LINETO, dtype=np.uint8)
    if len(coords):
        starts = np.r_[0, np.flatnonzero(np.diff(coord_line)) + 1]
        codes[starts] = Path.MOVETO
        if closed:
            ends = np.r_[starts[1:] - 1, len(coords) - 1]
            codes[ends] = Path.CLOSEPOLY
    coord_feature = line_feature[coord_line] if len(coord_line) else coord_line
    bounds = np.searchsorted(coord_feature, np.arange(n + 1))
    return [_path(coords[bounds[i]:bounds[i + 1]], codes[bounds[i]:bounds[i + 1]], closed)
            for i in range(n)]


def _path(vertices: np.ndarray, codes: np.ndarray, closed: bool) -> Path:
    """``Path(vertices, codes)`` without the constructor's validation, which cost ~10 us a
    path (2 ms for the 177 countries of a world view): the arrays are already float (n, 2) and
    uint8 codes starting with MOVETO. ``should_simplify`` is set exactly as the constructor
    sets it (lines of 128 vertices or more; never for paths with CLOSEPOLY codes), so Agg
    draws the same pixels."""
    path = Path._fast_from_codes_and_verts(vertices, codes)
    path.should_simplify = bool(not closed and len(vertices) >= 128
                                and path.simplify_threshold > 0
                                and mpl.rcParams["path.simplify"])
    return path
