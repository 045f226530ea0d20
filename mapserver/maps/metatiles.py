"""Metatiles: tiles are cut from one render of an N×N block of tiles plus a buffer.

Why: a tile drawn on its own places its labels without knowing its neighbours, so a label that
crosses a tile edge is cut ("Russia|ussia") or placed again by the neighbour. Here a block of
N×N tiles (``MAPSERVER_METATILE``) is drawn once on a single Grid that also covers a buffer of
``MAPSERVER_METATILE_BUFFER`` pixels around it, through the same planner and ``draw_map`` as
``/export``; the buffer is then cut off and the block cut into its tiles. So the stitched tiles
of a metatile ARE that one render, pixel for pixel, and each label is placed once in it. At
the metatile's own edges the labels follow the window rule of ``render/labels.py`` (a label
whose box would cross the edge is dropped, never cut).

A block is a fixed function of the tiling scheme, the level and the metatile index (tiles
``row // N * N …``), clipped to the tiles that overlap the service's coverage, so every caller
(the ``/tile`` cache, ``mapserver seed``, the batch tile pyramid of ``map:export``) cuts the
same tile from the same render. This module knows nothing of caches or encodings: it turns a
``draw(grid) -> RGBA`` into tiles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from affine import Affine

from mapserver.geo import mercator
from mapserver.geo.grid import Grid
from mapserver.render.labels import label_window
from mapserver.tiling import Lod, TilingScheme

DEFAULT_METATILE = 4
DEFAULT_BUFFER = 64


@dataclass(frozen=True)
class Block:
    """A metatile: tiles ``row0 .. row0 + rows - 1`` × ``col0 .. col0 + cols - 1`` of
    ``level`` (already clipped to the scheme's tile range), drawn with ``buffer`` pixels
    around them."""

    level: int
    row0: int
    col0: int
    rows: int
    cols: int
    buffer: int

    def tiles(self) -> Iterator[tuple[int, int]]:
        for r in range(self.row0, self.row0 + self.rows):
            for c in range(self.col0, self.col0 + self.cols):
                yield r, c


def _bounds(scheme: TilingScheme) -> tuple[float, float, float, float] | None:
    """Where tiles may exist: the service's coverage, else (the XYZ scheme of batch exports)
    the Web Mercator square, else unbounded."""
    if scheme.coverage is not None:
        return scheme.coverage
    if scheme.sr.is_web_mercator:
        h = mercator.HALF_WORLD
        return (-h, -h, h, h)
    return None


def tile_range(scheme: TilingScheme, lod: Lod) -> tuple[int, int, int, int] | None:
    """Inclusive (row0, col0, row1, col1) of the tiles overlapping the scheme's bounds at
    ``lod`` (by more than a hundredth of a pixel, as ``TilingScheme.tile_grid`` decides), or
    None when unbounded or empty."""
    bounds = _bounds(scheme)
    if bounds is None:
        return None
    tw, th = scheme.cols * lod.resolution, scheme.rows * lod.resolution
    eps = 0.01 / max(scheme.cols, scheme.rows)  # in tiles
    x0, y0, x1, y1 = bounds
    ox, oy = scheme.origin
    c0 = max(0, math.floor((x0 - ox) / tw + eps))
    c1 = math.ceil((x1 - ox) / tw - eps) - 1
    r0 = max(0, math.floor((oy - y1) / th + eps))
    r1 = math.ceil((oy - y0) / th - eps) - 1
    if c1 < c0 or r1 < r0:
        return None
    return r0, c0, r1, c1


def block_of(scheme: TilingScheme, level: int, row: int, col: int, n: int = DEFAULT_METATILE,
             buffer: int = DEFAULT_BUFFER) -> Block | None:
    """The metatile holding tile level/row/col (None: not a tile of the scheme)."""
    lod = scheme.lod(level)
    if lod is None or row < 0 or col < 0:
        return None
    n = max(1, n)
    r0, c0 = row // n * n, col // n * n
    r1, c1 = r0 + n - 1, c0 + n - 1
    limits = tile_range(scheme, lod)
    if limits is not None:
        r0, c0 = max(r0, limits[0]), max(c0, limits[1])
        r1, c1 = min(r1, limits[2]), min(c1, limits[3])
        if not (r0 <= row <= r1 and c0 <= col <= c1):
            return None
    return Block(level, r0, c0, r1 - r0 + 1, c1 - c0 + 1, max(0, buffer))


def blocks_in(scheme: TilingScheme, level: int, n: int = DEFAULT_METATILE,
              buffer: int = DEFAULT_BUFFER,
              bbox: tuple[float, float, float, float] | None = None) -> list[Block]:
    """Every metatile of ``level`` with a tile inside the scheme's bounds (and ``bbox``, in
    the scheme's SR), in row-major order."""
    lod = scheme.lod(level)
    limits = tile_range(scheme, lod) if lod is not None else None
    if lod is None or limits is None:
        return []
    r0, c0, r1, c1 = limits
    if bbox is not None:
        tw, th = scheme.cols * lod.resolution, scheme.rows * lod.resolution
        ox, oy = scheme.origin
        c0 = max(c0, math.floor((bbox[0] - ox) / tw))
        c1 = min(c1, math.ceil((bbox[2] - ox) / tw) - 1)
        r0 = max(r0, math.floor((oy - bbox[3]) / th))
        r1 = min(r1, math.ceil((oy - bbox[1]) / th) - 1)
    n = max(1, n)
    out = []
    for mr in range(r0 // n, r1 // n + 1):
        for mc in range(c0 // n, c1 // n + 1):
            b = block_of(scheme, level, max(mr * n, r0), max(mc * n, c0), n, buffer)
            if b is not None:
                out.append(b)
    return out


def _world(scheme: TilingScheme) -> tuple[float, float, float, float] | None:
    """The edges of the scheme's world, past which nothing is drawn: the Web Mercator square,
    the geographic -180..180 × -90..90, else None."""
    if scheme.sr.is_web_mercator:
        h = mercator.HALF_WORLD
        return (-h, -h, h, h)
    if scheme.sr.is_geographic:
        return (-180.0, -90.0, 180.0, 90.0)
    return None


def pads(scheme: TilingScheme, block: Block) -> tuple[int, int, int, int]:
    """The buffer on each side (left, top, right, bottom) in pixels: ``block.buffer``, less
    where the block meets the edge of the world (a buffer past the antimeridian or the
    Mercator limit would only draw other world copies, and labels there are dropped anyway)."""
    lod = scheme.lod(block.level)
    assert lod is not None
    res, b = lod.resolution, block.buffer
    world = _world(scheme)
    if world is None or b == 0:
        return (b, b, b, b)
    x0 = scheme.origin[0] + block.col0 * scheme.cols * res
    y1 = scheme.origin[1] - block.row0 * scheme.rows * res
    x1, y0 = x0 + block.cols * scheme.cols * res, y1 - block.rows * scheme.rows * res

    def room(d: float) -> int:
        return max(0, min(b, math.floor(d / res + 1e-6)))

    return (room(x0 - world[0]), room(world[3] - y1), room(world[2] - x1), room(y0 - world[1]))


def block_grid(scheme: TilingScheme, block: Block) -> Grid:
    """The one Grid a metatile is drawn on: its tiles plus the buffer on every side."""
    lod = scheme.lod(block.level)
    assert lod is not None
    res = lod.resolution
    left, top, right, bottom = pads(scheme, block)
    x0 = scheme.origin[0] + block.col0 * scheme.cols * res - left * res
    y1 = scheme.origin[1] - block.row0 * scheme.rows * res + top * res
    return Grid(sr=scheme.sr, transform=Affine(res, 0.0, x0, 0.0, -res, y1),
                width=block.cols * scheme.cols + left + right,
                height=block.rows * scheme.rows + top + bottom, dpi=scheme.dpi)


def _core(scheme: TilingScheme, block: Block) -> tuple[int, int, int, int]:
    left, top, _, _ = pads(scheme, block)
    return (left, top, left + block.cols * scheme.cols, top + block.rows * scheme.rows)


def core_window(scheme: TilingScheme, block: Block) -> tuple[float, float, float, float]:
    """The label window in the block grid's pixels: the block's tiles, except that a side on
    the edge of the world is open (no metatile lies beyond it, so a label there is drawn and
    cut by the world's edge exactly as an export of the same view draws it)."""
    window = list(_core(scheme, block))
    world = _world(scheme)
    if world is not None:
        lod = scheme.lod(block.level)
        assert lod is not None
        res = lod.resolution
        x0 = scheme.origin[0] + block.col0 * scheme.cols * res
        y1 = scheme.origin[1] - block.row0 * scheme.rows * res
        x1, y0 = x0 + block.cols * scheme.cols * res, y1 - block.rows * scheme.rows * res
        tol = res / 2
        if x0 - world[0] < tol:
            window[0] = -math.inf
        if world[3] - y1 < tol:
            window[1] = -math.inf
        if world[2] - x1 < tol:
            window[2] = math.inf
        if y0 - world[1] < tol:
            window[3] = math.inf
    return (window[0], window[1], window[2], window[3])


def draw_block(scheme: TilingScheme, block: Block, draw: Callable[[Grid], np.ndarray]
               ) -> np.ndarray:
    """The metatile's core (buffer cut off) as RGBA, drawn once by ``draw`` on the block
    grid with labels restricted to the core."""
    grid = block_grid(scheme, block)
    with label_window(core_window(scheme, block)):
        rgba = draw(grid)
    x0, y0, x1, y1 = _core(scheme, block)
    return rgba[y0:y1, x0:x1]


def cut_block(scheme: TilingScheme, block: Block, core: np.ndarray
              ) -> dict[tuple[int, int], np.ndarray]:
    """The block's tiles (row, col) -> RGBA, for the tiles the scheme has (inside its
    coverage); views into ``core``."""
    out = {}
    for r, c in block.tiles():
        if scheme.tile_grid(block.level, r, c) is None:
            continue
        y, x = (r - block.row0) * scheme.rows, (c - block.col0) * scheme.cols
        out[(r, c)] = core[y:y + scheme.rows, x:x + scheme.cols]
    return out


def render_block(scheme: TilingScheme, block: Block, draw: Callable[[Grid], np.ndarray]
                 ) -> dict[tuple[int, int], np.ndarray]:
    """Draw a metatile once and cut it: (row, col) -> the tile's RGBA."""
    return cut_block(scheme, block, draw_block(scheme, block, draw))


def pyramid_tiles(tiles: Iterable[tuple[int, int, int]],
                  scheme_for: Callable[[int], TilingScheme],
                  draw: Callable[[Grid], np.ndarray], n: int = DEFAULT_METATILE,
                  buffer: int = DEFAULT_BUFFER
                  ) -> Iterator[tuple[tuple[int, int, int], np.ndarray | None]]:
    """XYZ tiles ``(z, x, y)`` (a batch export's tile pyramid) through their metatiles: each
    metatile is drawn once for all the requested tiles in it, and each tile is cut from it as
    ``/tile`` cuts it. Yields ((z, x, y), RGBA), RGBA None for a tile outside the scheme."""
    groups: dict[tuple, list[tuple[int, int, int]]] = {}
    for z, x, y in tiles:
        scheme = scheme_for(z)
        block = block_of(scheme, z, y, x, n, buffer)
        groups.setdefault((scheme, block), []).append((z, x, y))
    for (scheme, block), members in groups.items():
        cut = render_block(scheme, block, draw) if block is not None else {}
        for z, x, y in members:
            yield (z, x, y), cut.get((y, x))
