"""Nearest-neighbour warps without GDAL's general warper: its own approximation, vectorised.

Why: the export bench spent most of a reprojected raster's CPU time in ``rasterio.warp.reproject``
(GDAL's warper: ~35 ms for a 1024² Landsat view in Web Mercator, against ~4 ms here). GDAL's
warper does not transform every output pixel exactly either: its approximate transformer
(``GDALApproxTransform``, error threshold 0.125 source pixels, what rasterio passes) transforms
the first, middle and last pixel of each output row exactly and interpolates linearly in
between, splitting a row in halves while the middle is off by more than the threshold. A more
exact method (a 2-D grid of exact points) differs from GDAL's picks on ~0.8 % of the pixels
(GDAL's own row approximation is up to ~0.01 px off the true position in the bench view), so
this module computes the *same* row approximation as GDAL (on GDAL's own warp chunks), for
all rows at once with numpy, and then gathers the source pixels with OpenCV's ``remap``
(nearest). Its picks equal the warper's on 99.9-99.99 % of the pixels, the rest being float32
maps within ~1e-4 px of a pixel edge (tests/test_raster_fast_paths.py pins >= 99.5 % and no
shift on the sample rasters).

The error bound is checked at run time twice: GDAL's check (the middle of every row segment
against the exact transform, subdividing as GDAL does), and ours (the middles of both halves of
every accepted segment, also exact); a segment off by more than ``TOLERANCE`` there, a point that
does not transform, a row split into tiny pieces or anything else unusual returns ``None`` and
the caller takes GDAL's exact path. Also ``None``: a resampling other than nearest, a datum
transformation (the caller never asks then), a mask or alpha band, a pyproj pipeline that does
not agree with GDAL's for the pair of SRs, a pole inside the view, or a source window too
large (OpenCV's remap, or memory: GDAL's warper works it in bounded chunks).

Colour: nearest neighbour picks one source pixel per output pixel, so the layer's stretch and
colour map (``colorize``) are applied to the source window (usually smaller than the output)
and the gather moves finished RGBA pixels. Output pixels outside the raster get the colour
``colorize`` gives the warper's initial value (nodata or 0) with alpha 0, as the exact path.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable
from functools import lru_cache

import cv2
import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.warp import transform as gdal_transform
from rasterio.windows import Window

from mapserver.catalog.model import RasterStyle
from mapserver.geo.grid import Grid
from mapserver.geo.sr import SpatialRef, from_wkid, transformer
from mapserver.sources.rasters import RasterSource, _open, rasterio_crs

# One thread, as the exact path (``num_threads=1``): gunicorn's sync workers are the
# parallelism, and the bench counts the CPU time of every thread anyway.
cv2.setNumThreads(1)

TOLERANCE = 0.125  # source pixels: GDAL's approximate transformer default (gdalwarp -et)
EPS_MAX = 2.0 ** -9  # largest map offset (see ``_gather``), source pixels
MAX_WINDOW = 16384  # source window side (remap takes < 32767; float32 keeps 1/1000 px)
MAX_PIXELS = 8 * 1024 * 1024  # source window pixels (32 MB as RGBA, + the bands read): GDAL beyond
MAX_SEGMENTS_PER_ROW = 16  # more splits than this: a strongly curved view, GDAL's path

_OPAQUE = np.uint32(0xFF000000) if sys.byteorder == "little" else np.uint32(0xFF)  # alpha 255

Transform = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def warp_rgba(raster: RasterSource, grid: Grid, style: RasterStyle,
              colorize: Callable[[np.ndarray, np.ndarray, RasterStyle], np.ndarray],
              onto: np.ndarray | None = None) -> np.ndarray | None:
    """The layer as straight-alpha RGBA on ``grid``, or None when GDAL's path must draw it.

    ``colorize(data[bands, h, w], valid[h, w], style)`` is the layer's stretch/colour map
    (render/raster.py); it is applied to source pixels before the gather.

    ``onto`` (a contiguous (h, w, 4) canvas of the layers below, with nothing but transparent
    black where it is empty): when every source pixel the view can pick is opaque, "over" is a
    plain copy of the picked pixels, so they are gathered straight into ``onto``
    (``BORDER_TRANSPARENT`` leaves the pixels outside the raster alone) and ``onto`` itself is
    returned; otherwise the layer on its own, for the caller to compose."""
    if style.resampling != "nearest" or grid.width <= 5 or grid.height < 1:
        return None
    if onto is not None and not (onto.shape == (grid.height, grid.width, 4)
                                 and onto.dtype == np.uint8 and onto.flags.c_contiguous
                                 and onto.flags.writeable):
        onto = None  # remap could not write into it in place
    level = raster._overview_level(grid)
    ds = _open(raster.path, level)
    if not _masks_supported(raster, ds, level):
        return None
    if not _same_operation(raster, grid.sr) or _pole_inside(grid):
        return None
    to_src = _to_source_pixels(grid, raster.sr, ds)
    nb = max(style.bands)
    chunks = gdal_chunks(grid.width, grid.height, to_src, ds.width, ds.height,
                         *_pixel_costs(raster, nb))
    if chunks is None:
        return None
    fill = raster.nodata if raster.nodata is not None else 0
    border = colorize(np.full((len(style.bands), 1, 1), fill, dtype=raster.dtype),
                      np.zeros((1, 1), dtype=bool), style)[0, 0]
    if not chunks:  # the view misses the raster: the warper's initial value everywhere
        return onto if onto is not None else _filled(grid, border)
    rows = row_segments(chunks, to_src)
    if rows is None:
        return None
    window = _window(rows, ds.width, ds.height)
    if window is None:
        return onto if onto is not None else _filled(grid, border)
    c0, r0, c1, r1 = window  # inclusive source pixel range
    if max(c1 - c0, r1 - r0) + 1 > MAX_WINDOW or (c1 - c0 + 1) * (r1 - r0 + 1) > MAX_PIXELS:
        return None
    src = _source_rgba(ds, raster, style, nb, Window(c0, r0, c1 - c0 + 1, r1 - r0 + 1),
                       colorize)
    if onto is not None and (src.view(np.uint32) >= _OPAQUE).all():
        _gather(rows, src, c0, r0, onto, cv2.BORDER_TRANSPARENT, (0, 0, 0, 0))
        return onto
    covered = int(rows.length.sum()) == grid.width * grid.height
    out = np.empty((grid.height, grid.width, 4), dtype=np.uint8) if covered \
        else _filled(grid, border)  # chunks without source pixels keep the initial value
    _gather(rows, src, c0, r0, out, cv2.BORDER_CONSTANT, tuple(int(v) for v in border))
    return out


# --- GDAL's warp chunks -----------------------------------------------------------------------

WARP_MEMORY_LIMIT = 64.0 * 1024 * 1024  # GDAL's default (rasterio's warp_mem_limit=0)
MAX_CHUNKS = 256
Chunk = tuple[int, int, int, int]  # output x, y, width, height


def _pixel_costs(raster: RasterSource, nb: int) -> tuple[int, int]:
    """Bits per source and per output pixel, as GDAL's warper counts them for the exact
    path's call (``nb`` bands of the raster's type, nodata masks when there is a nodata value,
    a float density for the output alpha band)."""
    bits = np.dtype(raster.dtype).itemsize * 8 * nb
    masks = nb if raster.nodata is not None else 0
    return bits + masks, bits + masks + 32


def gdal_chunks(width: int, height: int, to_src: Transform, src_width: int, src_height: int,
                src_bits: int, dst_bits: int) -> list[Chunk] | None:
    """The output rectangles GDAL's ``GDALWarpOperation::CollectChunkList`` warps one by one,
    less those whose source window is empty (nothing of the raster there).

    Why: the approximate transformer runs along each chunk's rows, so a chunk boundary across
    the rows changes where the exact points are. GDAL halves a rectangle (across its longer
    side, the rows when square) while its working buffers exceed the warp memory limit, or
    while the source window it needs is less than half inside the raster (a view reaching
    beyond the raster: the mixed Landsat view of the bench is cut into 10 chunks). None when a
    window cannot be computed as GDAL's edge sampling does (points that do not transform)."""
    out: list[Chunk] = []
    pending: list[Chunk] = [(0, 0, width, height)]
    while pending:  # level by level: one batch of exact edge points per level
        windows = _source_windows(pending, to_src, src_width, src_height)
        if windows is None:
            return None
        halves: list[Chunk] = []
        for (x0, y0, w, h), (sw, sh, fill) in zip(pending, windows, strict=True):
            memory = (src_bits * sw * sh + dst_bits * w * h) / 8.0
            if ((memory > WARP_MEMORY_LIMIT and (w > 2 or h > 2))
                    or (0 < fill < 0.5 and (w > 100 or h > 100))):
                if w > h:
                    c = w // 2
                    halves += [(x0, y0, c, h), (x0 + c, y0, w - c, h)]
                else:
                    c = h // 2
                    halves += [(x0, y0, w, c), (x0, y0 + c, w, h - c)]
            elif sw and sh:  # a chunk without source pixels stays at the initial value
                out.append((x0, y0, w, h))
        if len(out) + len(halves) > MAX_CHUNKS:
            return None
        pending = halves
    return out


def _edge_ratios() -> np.ndarray:
    step = 1.0 / 20
    ratios = []
    r = 0.0
    while r <= 1.0 + step * 0.5:  # accumulated as GDAL does
        ratios.append(r)
        r += step
    return np.array(ratios)


_RATIOS = _edge_ratios()


def _source_windows(rects: list[Chunk], to_src: Transform, src_width: int, src_height: int
                    ) -> list[tuple[int, int, float]] | None:
    """GDAL's ``ComputeSourceWindow`` for nearest resampling (no kernel radius), for each
    output rectangle: 21 exact points along each edge; the window's width, height and "fill
    ratio" (the part of the unclamped window inside the raster). None when a point does not
    transform (GDAL samples a grid then: not emulated)."""
    r = np.asarray(rects, dtype=np.float64)  # (n, 4)
    x0, y0, w, h = (r[:, i:i + 1] for i in range(4))
    t = _RATIOS[None, :]
    ones = np.ones_like(t)
    px = np.concatenate([t * w + x0, t * w + x0, x0 * ones, (x0 + w) * ones], axis=1)
    py = np.concatenate([y0 * ones, (y0 + h) * ones, t * h + y0, t * h + y0], axis=1)
    sx, sy = to_src(px.ravel(), py.ravel())
    if not (np.isfinite(sx).all() and np.isfinite(sy).all()):
        return None
    sx, sy = sx.reshape(px.shape), sy.reshape(py.shape)
    out = []
    for lo_x, hi_x, lo_y, hi_y in zip(sx.min(axis=1).tolist(), sx.max(axis=1).tolist(),
                                      sy.min(axis=1).tolist(), sy.max(axis=1).tolist(),
                                      strict=True):
        min_x, max_x, min_y, max_y = _snap(lo_x), _snap(hi_x), _snap(lo_y), _snap(hi_y)
        if min_x > src_width or max_x < 0 or min_y > src_height or max_y < 0:
            out.append((0, 0, 0.0))
            continue
        sw = _clamped_size(min_x, max_x, src_width)
        sh = _clamped_size(min_y, max_y, src_height)
        out.append((sw, sh, sw * sh / max(1.0, (max_x - min_x) * (max_y - min_y))))
    return out


def _snap(v: float) -> float:
    """GDAL's ``roundIfCloseEnough``."""
    r = float(round(v))
    return r if abs(r - v) < 1e-6 else v


def _clamped_size(lo: float, hi: float, size: int) -> int:
    lo_c = int(max(0.0, lo))
    hi_c = int(min(math.ceil(hi), float(size)))
    if hi_c - lo_c > 0.9 * size:
        return size
    off = max(0, min(lo_c, size))
    return max(0, min(size - off, hi_c - off))


# --- GDAL's approximate transformer, for every output row at once ----------------------------

class RowSegments:
    """Output row segments and their linear source positions.

    Segment k covers output pixels ``start[k] .. start[k] + length[k] - 1`` of row ``row[k]``;
    the source (col, row) of output pixel i is ``(x0[k] + dx[k] * (i - start[k]), y0[k] +
    dy[k] * (i - start[k]))`` in source pixel units, as GDAL's approximate transformer gives."""

    def __init__(self, row: np.ndarray, start: np.ndarray, length: np.ndarray,
                 x0: np.ndarray, y0: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> None:
        self.row, self.start, self.length = row, start, length
        self.x0, self.y0, self.dx, self.dy = x0, y0, dx, dy

    def ends(self) -> tuple[np.ndarray, np.ndarray]:
        """Source x and y at both ends of every segment (the extremes of a linear piece)."""
        last = self.length - 1
        return (np.concatenate([self.x0, self.x0 + self.dx * last]),
                np.concatenate([self.y0, self.y0 + self.dy * last]))


def row_segments(chunks: list[tuple[int, int, int, int]], to_src: Transform,
                 tolerance: float = TOLERANCE) -> RowSegments | None:
    """GDAL's ``GDALApproxTransform`` over every row of every warp chunk (``gdal_chunks``),
    plus our own check of the result; None when the approximation cannot be certified.

    Every chunk row is one scanline of pixel centres ``(i + 0.5, j + 0.5)``. A segment of n
    points transforms its first, middle (``(n - 1) // 2``) and last point exactly; when the
    middle is within ``tolerance`` (|dx| + |dy|, source pixels) of the line between the ends,
    the whole segment is linear; otherwise it splits into ``[0, mid)`` and ``[mid, n)`` with
    their own exact middles and ends, as GDAL does. Then each accepted segment is checked at the
    middles of its halves (exact points GDAL never looks at): above ``tolerance`` there, None.

    The first, middle and last points of whole chunk rows (and the check points) come from
    ``_exact_rows``: exact on every 16th row, interpolated in between within 1e-7 px."""
    parts = []
    for x0, y0, w, h in chunks:
        n = w - 1
        if n < 5:
            return None  # GDAL transforms such short rows exactly: not worth emulating
        cols = x0 + np.array([0, n // 2, n, n // 4, n - n // 4], dtype=np.int64)
        cx, cy = _exact_rows(to_src, y0, h, cols)
        if cx is None:
            return None
        parts.append((np.arange(y0, y0 + h, dtype=np.int64), np.full(h, x0, dtype=np.int64),
                      np.full(h, w, dtype=np.int64), cx, cy))
    row, start, length, cx, cy = (np.concatenate(p) for p in zip(*parts, strict=True))
    xs, ys = cx[:, :3], cy[:, :3]
    checks: tuple[np.ndarray, np.ndarray] | None = (cx[:, 3:], cy[:, 3:])
    max_segments = MAX_SEGMENTS_PER_ROW * len(row)
    done: list[tuple[np.ndarray, ...]] = []
    split: list[RowSegments] = []
    while len(row):
        n = length - 1
        dx = (xs[:, 2] - xs[:, 0]) / n
        dy = (ys[:, 2] - ys[:, 0]) / n
        m = (n // 2).astype(np.float64)
        err = np.abs(xs[:, 0] + dx * m - xs[:, 1]) + np.abs(ys[:, 0] + dy * m - ys[:, 1])
        ok = err <= tolerance
        if ok.any():
            seg = RowSegments(row[ok], start[ok], length[ok], xs[ok, 0], ys[ok, 0], dx[ok],
                              dy[ok])
            if checks is None:
                split.append(seg)
            elif not _within(seg, checks[0][ok], checks[1][ok], tolerance):
                return None
            done.append((seg.row, seg.start, seg.length, seg.x0, seg.y0, seg.dx, seg.dy))
        bad = ~ok
        if not bad.any():
            break
        checks = None  # the pieces of split rows are checked with exact points of their own
        row, start, length, xs, ys = row[bad], start[bad], length[bad], xs[bad], ys[bad]
        half = (length - 1) // 2  # GDAL's nMiddle: the left half has nMiddle points
        if (half <= 5).any() or (length - half <= 5).any():
            return None  # GDAL transforms such short pieces exactly: not worth emulating
        if sum(len(d[0]) for d in done) + 2 * len(row) > max_segments:
            return None
        # exact: middle of the left half, last point of the left half, middle of the right
        lm, le = start + (half - 1) // 2, start + half - 1
        rm = start + half + (length - half - 1) // 2
        nx, ny = _exact(to_src, row, np.stack([lm, le, rm], axis=1))
        if nx is None:
            return None
        left_x = np.stack([xs[:, 0], nx[:, 0], nx[:, 1]], axis=1)
        left_y = np.stack([ys[:, 0], ny[:, 0], ny[:, 1]], axis=1)
        right_x = np.stack([xs[:, 1], nx[:, 2], xs[:, 2]], axis=1)
        right_y = np.stack([ys[:, 1], ny[:, 2], ys[:, 2]], axis=1)
        row = np.concatenate([row, row])
        start = np.concatenate([start, start + half])
        length = np.concatenate([half, length - half])
        xs = np.concatenate([left_x, right_x])
        ys = np.concatenate([left_y, right_y])
    if not all(_certified(seg, to_src, tolerance) for seg in split):
        return None
    return RowSegments(*(np.concatenate(p) for p in zip(*done, strict=True)))


def _check_offsets(seg: RowSegments) -> np.ndarray:
    """The check points of each segment: the middles of its halves (offsets from its start)."""
    n = seg.length - 1
    return np.stack([n // 4, n - n // 4], axis=1)


def _within(seg: RowSegments, xs: np.ndarray, ys: np.ndarray, tolerance: float) -> bool:
    """Whether the segments' lines pass within ``tolerance`` of the exact check points."""
    off = _check_offsets(seg).astype(np.float64)
    err = (np.abs(seg.x0[:, None] + seg.dx[:, None] * off - xs)
           + np.abs(seg.y0[:, None] + seg.dy[:, None] * off - ys))
    return bool((err <= tolerance).all())


def _certified(seg: RowSegments, to_src: Transform, tolerance: float) -> bool:
    """Our own bound check: the middles of both halves of every segment, exactly."""
    xs, ys = _exact(to_src, seg.row, seg.start[:, None] + _check_offsets(seg))
    return xs is not None and _within(seg, xs, ys, tolerance)


ROW_STEP = 16  # exact points on every 16th row of a chunk, interpolated in between
ROW_INTERPOLATION_ERROR = 1e-7  # source pixels; larger (checked): every row exactly


def _exact_rows(to_src: Transform, y0: int, h: int, cols: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Source positions of the pixel centres ``cols`` of rows ``y0 .. y0 + h - 1``, (h, k).

    Why: the exact transformation of 3 to 5 points per row was a third of the warp's CPU
    time. Along a column the positions are smooth functions of the row, so they are
    transformed exactly on evenly spaced rows (about every ``ROW_STEP``-th, fractional rows
    included) and interpolated (cubic, the 4 nearest exact rows) in between; the interpolation
    is checked against exact points halfway between exact rows (every 4th gap) and, when it is
    off by more than ``ROW_INTERPOLATION_ERROR`` (1e-7 px: GDAL's picks cannot tell), every
    row is transformed exactly."""
    rows = np.arange(y0, y0 + h, dtype=np.float64)
    k = len(cols)
    if h < 8 * ROW_STEP:
        return _exact(to_src, rows, np.broadcast_to(cols, (h, k)))
    m = -(-(h - 1) // ROW_STEP) + 1
    step = (h - 1) / (m - 1)
    probe = (np.arange(m - 1) + 0.5)[::4]
    sample = np.concatenate([np.arange(m), probe]) * step + y0
    sx, sy = _exact(to_src, sample, np.broadcast_to(cols, (len(sample), k)))
    if sx is None:
        return None, None
    both = np.concatenate([sx, sy], axis=1)  # (samples, 2k): x and y interpolated together
    nodes = both[:m]
    if float(np.abs(_cubic(nodes, probe) - both[m:]).max()) > ROW_INTERPOLATION_ERROR:
        return _exact(to_src, rows, np.broadcast_to(cols, (h, k)))
    out = _cubic(nodes, np.arange(h) / step)
    return out[:, :k], out[:, k:]


def _cubic(values: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Cubic (4-point Lagrange) interpolation of ``values`` (nodes at 0, 1, 2, ..., (m, k))
    at the fractional node positions ``u``."""
    first = np.clip(np.floor(u).astype(np.int64) - 1, 0, len(values) - 4)
    v = (u - first)[:, None]  # in [0, 3]
    w0 = -(v - 1) * (v - 2) * (v - 3) / 6
    w1 = v * (v - 2) * (v - 3) / 2
    w2 = -v * (v - 1) * (v - 3) / 2
    w3 = v * (v - 1) * (v - 2) / 6
    return (w0 * values[first] + w1 * values[first + 1] + w2 * values[first + 2]
            + w3 * values[first + 3])


def _exact(to_src: Transform, row: np.ndarray, col: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray] | tuple[None, None]:
    """Exact source pixel positions of output pixel centres (col[k, :], row[k])."""
    r = np.broadcast_to(row[:, None], col.shape) + 0.5
    x, y = to_src(col + 0.5, r)
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        return None, None
    return x, y


def _to_source_pixels(grid: Grid, src_sr: SpatialRef, ds: rasterio.DatasetReader) -> Transform:
    """Output pixel (col, row) -> source pixel (col, row) of ``ds``: GDAL's GenImgProj path
    (output affine, the CRS transformation, the inverse of the source affine)."""
    inv = ~ds.transform
    same = src_sr == grid.sr
    tr = None if same else transformer(grid.sr, src_sr)

    def to_src(col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = grid.from_pixels(col, row)
        if tr is not None:
            x, y = tr.transform(x, y, errcheck=False)
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        return inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f

    return to_src


# --- source window and maps ------------------------------------------------------------------

def _window(rows: RowSegments, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The source pixels any output pixel can pick (inclusive col/row range), or None.

    The warper takes source pixel ``floor(x + 1e-10)`` for ``0 <= x <= width`` (and the same
    for rows); the range is widened by the maps' offset and rounding (``_gather``)."""
    xs, ys = rows.ends()
    lo_x, hi_x = math.floor(xs.min() - 2 * EPS_MAX), math.floor(xs.max() + 2 * EPS_MAX)
    lo_y, hi_y = math.floor(ys.min() - 2 * EPS_MAX), math.floor(ys.max() + 2 * EPS_MAX)
    c0, c1 = max(lo_x, 0), min(hi_x, width - 1)
    r0, r1 = max(lo_y, 0), min(hi_y, height - 1)
    if c0 > c1 or r0 > r1:
        return None
    return c0, r0, c1, r1


STRIP = 128  # output rows per remap: the maps stay in the CPU cache, no fresh 4 MB arrays


def _gather(rows: RowSegments, src: np.ndarray, c0: int, r0: int, out: np.ndarray,
            border_mode: int, border_value: tuple[int, ...]) -> None:
    """Nearest-neighbour gather of ``src`` (the coloured source window, corner (c0, r0)) into
    ``out`` along the row segments, with ``cv2.remap`` and float32 maps.

    OpenCV's nearest rounds a map coordinate, half to even; the warper floors ``x + 1e-10``.
    With the map ``x - 0.5 + eps`` the two agree except for positions within ``eps`` below a
    pixel edge, and exact edge hits go to the next pixel as in GDAL. Those are common: an axis
    that maps linearly (longitude to Web Mercator x) on a grid aligned with the raster's puts
    whole columns of pixel centres on source pixel edges. eps must exceed the rounding of the
    map arithmetic: in float32 (twice as fast as float64) a few units in the last place of the
    largest term, ~1/4000 px for a 350 px window, 1/1000 px for a 2000 px one. When the terms
    are so large that eps would exceed ``EPS_MAX`` (a view reaching far beyond a large window),
    float64 arithmetic, where only the final rounding to float32 remains.

    Rows with the same columns (a chunk's) form rectangles, gathered ``STRIP`` rows at a time
    into views of ``out``: maps for a whole 1024² output are two fresh 4 MB arrays, whose page
    faults and cache misses cost more than the arithmetic (2.5x slower, measured)."""
    ox, oy = rows.x0 - c0, rows.y0 - r0
    last = (rows.length - 1).astype(np.float64)
    ends = np.abs(np.concatenate([ox, ox + rows.dx * last, oy, oy + rows.dy * last]))
    eps = max(float(ends.max()), 64.0) * 2.0 ** -21
    dtype: type = np.float32
    if eps > EPS_MAX:
        eps = max(float(ends.clip(max=MAX_WINDOW).max()), 64.0) * 2.0 ** -22
        dtype = np.float64
    # value at output column i of a segment: a + b * i, with a = shift - b * start
    ax = (ox - (0.5 - eps) - rows.dx * rows.start).astype(dtype)
    ay = (oy - (0.5 - eps) - rows.dy * rows.start).astype(dtype)
    bx, by = rows.dx.astype(dtype), rows.dy.astype(dtype)
    width = out.shape[1]
    cols = np.arange(width, dtype=dtype)
    mx = np.empty((STRIP, width), dtype=dtype)
    my = np.empty((STRIP, width), dtype=dtype)
    for x0, n, seg in _rectangles(rows):
        for k in range(0, len(seg), STRIP):
            part = seg[k:k + STRIP]
            m = len(part)
            y0 = int(rows.row[part[0]])
            bx_, ax_ = bx[part], ax[part]
            np.multiply.outer(bx_, cols[x0:x0 + n], out=mx[:m, :n])
            mx[:m, :n] += ax_[:, None]
            np.multiply.outer(by[part], cols[x0:x0 + n], out=my[:m, :n])
            my[:m, :n] += ay[part][:, None]
            fx, fy = mx[:m, :n], my[:m, :n]
            if dtype is not np.float32:
                fx, fy = fx.astype(np.float32), fy.astype(np.float32)
            cv2.remap(src, fx, fy, cv2.INTER_NEAREST, dst=out[y0:y0 + m, x0:x0 + n],
                      borderMode=border_mode, borderValue=border_value)


def _rectangles(rows: RowSegments) -> list[tuple[int, int, np.ndarray]]:
    """Runs of consecutive output rows whose segments span the same columns: (first column,
    number of columns, segment indices in row order)."""
    key = rows.start * (int(rows.length.max()) + 1) + rows.length
    order = np.lexsort((rows.row, key))
    k, r = key[order], rows.row[order]
    breaks = np.flatnonzero((np.diff(k) != 0) | (np.diff(r) != 1)) + 1
    out = []
    for seg in np.split(order, breaks):
        out.append((int(rows.start[seg[0]]), int(rows.length[seg[0]]), seg))
    return out


def _source_rgba(ds: rasterio.DatasetReader, raster: RasterSource, style: RasterStyle, nb: int,
                 window: Window, colorize: Callable) -> np.ndarray:
    """The window's pixels, coloured, as contiguous (h, w, 4) uint8.

    Validity is the warper's: with a nodata value, a pixel is nodata only when every warped
    band (1..max(bands), what the exact path warps) holds it (GDAL's unified source nodata);
    its bands keep the nodata value, which is what the warper's output holds there too."""
    if raster.nodata is None:
        data = ds.read(list(style.bands), window=window)
        valid = np.ones(data.shape[1:], dtype=bool)
    else:
        block = ds.read(list(range(1, nb + 1)), window=window)
        nd = raster.nodata
        is_nd = np.isnan(block) if isinstance(nd, float) and math.isnan(nd) else block == nd
        valid = ~is_nd.all(axis=0)
        data = block[[b - 1 for b in style.bands]]
    return np.ascontiguousarray(colorize(data, valid, style))


def _filled(grid: Grid, pixel: np.ndarray) -> np.ndarray:
    out = np.empty((grid.height, grid.width, 4), dtype=np.uint8)
    out.view(np.uint32)[...] = np.ascontiguousarray(pixel, dtype=np.uint8).view(np.uint32)[0]
    return out


# --- when the fast path may answer ------------------------------------------------------------

_flags_lock = threading.Lock()
_flags: dict[tuple[str, int | None], bool] = {}


def _masks_supported(raster: RasterSource, ds: rasterio.DatasetReader,
                     level: int | None) -> bool:
    """Every pixel valid, or validity from a nodata value alone (no mask or alpha band)."""
    if raster.all_valid:
        return True
    if raster.nodata is None:
        return False
    key = (raster.path, level)
    with _flags_lock:
        ok = _flags.get(key)
    if ok is None:
        ok = all(flags == [MaskFlags.nodata] for flags in ds.mask_flag_enums)
        with _flags_lock:
            _flags[key] = ok
    return ok


_WGS84 = from_wkid(4326)


def _pole_inside(grid: Grid) -> bool:
    """Whether a pole lies in the view: GDAL then samples a grid of points for its source
    windows (``aDstXYSpecialPoints``), which changes its warp chunks; not emulated."""
    if grid.sr == _WGS84:
        return grid.bounds[1] <= -90 or grid.bounds[3] >= 90
    x, y = transformer(_WGS84, grid.sr).transform([0.0, 0.0], [90.0, -90.0], errcheck=False)
    col, row = grid.to_pixels(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    inside = (col >= 0) & (col <= grid.width) & (row >= 0) & (row <= grid.height)
    return bool((np.isfinite(col) & np.isfinite(row) & inside).any())


@lru_cache(maxsize=256)
def _same_operation(raster: RasterSource, grid_sr: SpatialRef) -> bool:
    """Whether pyproj's transformation from the grid's SR to the raster's is the one GDAL's
    warper uses (the same PROJ database, but GDAL may narrow the choice to the raster's area):
    points of the raster's extent taken to the grid's SR by GDAL and back by pyproj land within
    1/1000 source pixel. Checked once per (raster, SR)."""
    if raster.sr == grid_sr:
        return True
    xmin, ymin, xmax, ymax = raster.bounds
    fx = np.array([0.1, 0.5, 0.9, 0.1, 0.9, 0.5])
    fy = np.array([0.1, 0.5, 0.9, 0.9, 0.1, 0.2])
    x, y = xmin + fx * (xmax - xmin), ymin + fy * (ymax - ymin)
    try:
        gx, gy = gdal_transform(rasterio_crs(raster.sr), rasterio_crs(grid_sr), x, y)
    except Exception:  # noqa: BLE001 - GDAL cannot: let its own warper decide
        return False
    bx, by = transformer(grid_sr, raster.sr).transform(np.asarray(gx), np.asarray(gy),
                                                       errcheck=False)
    err = np.hypot(np.asarray(bx) - x, np.asarray(by) - y)
    return bool(np.isfinite(err).all() and err.max() <= raster.resolution * 1e-3)
