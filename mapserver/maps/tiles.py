"""Map tiles: ``tile/{level}/{row}/{col}`` cut from metatiles drawn by the export pipeline.

A tile is part of a metatile (``maps/metatiles.py``): its N×N block plus a buffer is drawn once
on one Grid with the same planner and ``draw_map`` as ``/export`` (the service's defaults:
default visibility, no time, the declared filters' defaults), cut into tiles, and each tile is
encoded on its own (so PNG8 gets a palette per tile). One render of a tile stores all the
tiles of its metatile, so the neighbours a map client asks for next are cache hits.

Cache keys are ``<service>/<digest>/<level>/<row>/<col>.<ext>``: the digest
(``maps/service_digest.py``) changes with the definition and the data files, so a changed
service never serves old tiles. Puts are atomic (the blob store writes a temp file and
renames), so gunicorn workers rendering the same metatile at once are safe; within a process a
lock per metatile makes the second thread wait for the first render instead of repeating it.

A tile with nothing drawn on it is "blank": it is still an image by default (with the header
``blank-tile: true``, as ArcGIS servers configured for blank tiles answer), and a 404 with
``blankTile=false``; ``tilemap`` reports the same thing as 0.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from mapserver.catalog.model import Service
from mapserver.encode.image import Format, encode_raster
from mapserver.errors import InvalidParameter, NotFound
from mapserver.maps.export import WHITE, draw_map, map_of
from mapserver.maps.metatiles import DEFAULT_BUFFER, DEFAULT_METATILE, Block, block_of, render_block
from mapserver.maps.service_digest import service_digest
from mapserver.maps.tile_cache import TileCache
from mapserver.observe.counters import tile_cache as tile_cache_count
from mapserver.tiling import TilingScheme

__all__ = ["Tile", "TileCache", "TileNotFound", "get_tile", "render_tile", "tile_key",
           "tilemap"]

# tiles per side of one tilemap answer (the ArcGIS JS SDK asks for 32 x 32): each unknown tile
# is rendered (by metatiles, into the cache), within the request's time budget
TILEMAP_MAX = 32


class TileNotFound(NotFound):
    """A tile outside the scheme's levels or the service's extent (answered with HTTP 404)."""

    default_message = "Tile not found"


@dataclass(frozen=True)
class Tile:
    content: bytes
    content_type: str
    etag: str  # strong validator (unquoted): the content hash
    cached: bool  # True when served from the cache
    blank: bool = False  # nothing drawn on it


def etag_of(content: bytes) -> str:
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def _scheme(service: Service) -> TilingScheme:
    if service.tiling is None:
        raise TileNotFound("Tile not found", [f"Service {service.name} has no tiling scheme"])
    return service.tiling


def _outside(level: int, row: int, col: int) -> TileNotFound:
    return TileNotFound("Tile not found", [f"Tile {level}/{row}/{col} is outside the tiling "
                                           "scheme or the service's full extent"])


def tile_prefix(service: Service, data_dir: Path | None = None) -> str:
    """The cache key prefix of the service's current tiles (``<service>/<digest>/``)."""
    return f"{service.name}/{service_digest(service, data_dir)}/"


def tile_key(service: Service, level: int, row: int, col: int,
             data_dir: Path | None = None) -> str:
    # service names are "Name" or "Folder/Name": safe key parts (validated at load)
    fmt = _scheme(service).format
    return f"{tile_prefix(service, data_dir)}{level}/{row}/{col}.{fmt.extension}"


def _blank_pixel(fmt: Format) -> np.ndarray:
    return np.zeros(4, np.uint8) if fmt.supports_alpha else np.array(WHITE, np.uint8)


def _encode(rgba: np.ndarray, scheme: TilingScheme, png_compression: int) -> bytes:
    fmt = scheme.format
    return encode_raster(np.ascontiguousarray(rgba), fmt, fmt.supports_alpha, scheme.dpi,
                         png_compression)


@lru_cache(maxsize=64)
def _blank_bytes(scheme: TilingScheme, png_compression: int) -> bytes:
    """The encoding of a tile with nothing on it (deterministic, so a cached tile is known to
    be blank by its bytes)."""
    rgba = np.broadcast_to(_blank_pixel(scheme.format), (scheme.rows, scheme.cols, 4))
    return _encode(rgba.copy(), scheme, png_compression)


def is_blank(scheme: TilingScheme, content: bytes, png_compression: int = 2) -> bool:
    return content == _blank_bytes(scheme, png_compression)


def metatile_tiles(service: Service, block: Block, png_compression: int = 2,
                   draw: Callable | None = None) -> dict[tuple[int, int], bytes]:
    """Render one metatile of the service and encode each of its tiles: (row, col) -> bytes.
    ``draw`` (grid -> RGBA) defaults to the service as published, on the format's background
    (transparent for formats with alpha, white otherwise), exactly as ``render_map``."""
    scheme = _scheme(service)
    background = None if scheme.format.supports_alpha else WHITE
    if draw is None:
        m = map_of(service)

        def draw(grid):  # noqa: ANN001, ANN202 - a local closure
            return draw_map(m, grid, background)

    blank = _blank_pixel(scheme.format)
    out = {}
    for rc, rgba in render_block(scheme, block, draw).items():
        if (rgba == blank).all():
            out[rc] = _blank_bytes(scheme, png_compression)
        else:
            out[rc] = _encode(rgba, scheme, png_compression)
    return out


def _block(service: Service, level: int, row: int, col: int, metatile: int,
           buffer: int) -> Block:
    scheme = _scheme(service)
    if scheme.tile_grid(level, row, col) is None:
        raise _outside(level, row, col)
    block = block_of(scheme, level, row, col, metatile, buffer)
    if block is None:
        raise _outside(level, row, col)
    return block


def render_tile(service: Service, level: int, row: int, col: int,
                png_compression: int = 2, metatile: int = DEFAULT_METATILE,
                buffer: int = DEFAULT_BUFFER) -> bytes:
    """The tile's image bytes, cut from its rendered metatile (no cache). Raises
    :class:`TileNotFound`."""
    block = _block(service, level, row, col, metatile, buffer)
    return metatile_tiles(service, block, png_compression)[(row, col)]


_locks: dict[tuple, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: tuple) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 4096:
            _locks.clear()  # only a guard against repeated renders: losing one is harmless
        return _locks.setdefault(key, threading.Lock())


def store_block(service: Service, block: Block, cache: TileCache, png_compression: int = 2,
                data_dir: Path | None = None) -> dict[tuple[int, int], bytes]:
    """Render a metatile and put all its tiles in the cache (each put atomic)."""
    tiles = metatile_tiles(service, block, png_compression)
    for (r, c), content in tiles.items():
        cache.put(tile_key(service, block.level, r, c, data_dir), content)
    return tiles


def get_tile(service: Service, level: int, row: int, col: int, cache: TileCache | None,
             png_compression: int = 2, metatile: int = DEFAULT_METATILE,
             buffer: int = DEFAULT_BUFFER, data_dir: Path | None = None) -> Tile:
    """A tile from the cache, or its metatile rendered and stored there."""
    scheme = _scheme(service)
    fmt = scheme.format
    block = _block(service, level, row, col, metatile, buffer)

    def found(content: bytes, cached: bool) -> Tile:
        tile_cache_count(service.name, cached)  # hit/miss metric (observe/counters.py)
        return Tile(content, fmt.content_type, etag_of(content), cached=cached,
                    blank=is_blank(scheme, content, png_compression))

    if cache is None:
        return found(metatile_tiles(service, block, png_compression)[(row, col)], False)
    key = tile_key(service, level, row, col, data_dir)
    content = cache.get(key)
    if content is not None:
        return found(content, True)
    prefix = tile_prefix(service, data_dir)
    with _lock_for((prefix, block.level, block.row0, block.col0)):
        content = cache.get(key)  # another thread may have rendered it meanwhile
        if content is not None:
            return found(content, True)
        tiles = store_block(service, block, cache, png_compression, data_dir)
    return found(tiles[(row, col)], False)


@dataclass(frozen=True)
class TileMap:
    """ArcGIS ``tilemap``: which tiles of a window have data (1) or not (0), row-major."""

    left: int
    top: int
    width: int
    height: int
    data: tuple[int, ...]
    adjusted: bool = False

    def to_json(self) -> dict:
        return {"adjusted": self.adjusted,
                "location": {"left": self.left, "top": self.top, "width": self.width,
                             "height": self.height},
                "data": list(self.data)}


def tilemap(service: Service, level: int, row: int, col: int, width: int, height: int,
            cache: TileCache | None, png_compression: int = 2,
            metatile: int = DEFAULT_METATILE, buffer: int = DEFAULT_BUFFER,
            data_dir: Path | None = None) -> TileMap:
    """The tilemap of the window (``row``, ``col`` its top-left tile): 1 where ``/tile``
    answers an image with something drawn (what ``blankTile=false`` answers with 200), 0 where
    it answers 404 (outside the scheme or the extent) or a blank tile. The tiles are fetched
    through the cache (rendering the metatiles not yet there), so the two always agree."""
    _scheme(service)
    if width < 1 or height < 1:
        raise InvalidParameter("Invalid tilemap", ["width and height must be at least 1"])
    adjusted = width > TILEMAP_MAX or height > TILEMAP_MAX
    width, height = min(width, TILEMAP_MAX), min(height, TILEMAP_MAX)
    data = []
    for r in range(row, row + height):
        for c in range(col, col + width):
            data.append(int(_has_data(service, level, r, c, cache, png_compression, metatile,
                                      buffer, data_dir)))
    return TileMap(col, row, width, height, tuple(data), adjusted)


def _has_data(service: Service, level: int, row: int, col: int, cache: TileCache | None,
              png_compression: int, metatile: int, buffer: int,
              data_dir: Path | None) -> bool:
    try:
        return not get_tile(service, level, row, col, cache, png_compression, metatile, buffer,
                            data_dir).blank
    except TileNotFound:
        return False


def tiles_cached(service: Service, cache: TileCache, block: Block, tiles: Iterable,
                 data_dir: Path | None = None) -> bool:
    """True when every tile of ``tiles`` is in the cache under the current digest."""
    return all(cache.get(tile_key(service, block.level, r, c, data_dir)) is not None
               for r, c in tiles)
