"""Map tiles: render ``tile/{level}/{row}/{col}`` through the export pipeline, cache on disk.

A tile is just an export onto the tile's Grid (the same planner and ``render_map`` as
``/export``, with the service's defaults: default visibility, no time, the declared filters'
defaults such as current rows only for archiving layers), so tiles and exports can never
disagree. Tiles are cached as files under ``<cache>/<service>/<level>/<row>/<col>.<ext>``,
written atomically (temp file + ``os.replace``) so several gunicorn workers may render the same
tile at once and a reader never sees half a file. The cache is never invalidated here: clear
``<cache>/<service>`` after changing a service definition.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mapserver.catalog.model import Service
from mapserver.errors import NotFound
from mapserver.maps.export import map_of, render_map
from mapserver.maps.tile_cache import TileCache


class TileNotFound(NotFound):
    """A tile outside the scheme's levels or the service's extent (answered with HTTP 404)."""

    default_message = "Tile not found"


@dataclass(frozen=True)
class Tile:
    content: bytes
    content_type: str
    etag: str  # strong validator (unquoted): the content hash
    cached: bool  # True when served from the disk cache


def etag_of(content: bytes) -> str:
    return hashlib.blake2b(content, digest_size=16).hexdigest()


def render_tile(service: Service, level: int, row: int, col: int,
                png_compression: int = 2) -> bytes:
    """The tile's image bytes, rendered (no cache). Raises :class:`TileNotFound`."""
    scheme = service.tiling
    if scheme is None:
        raise TileNotFound("Tile not found", [f"Service {service.name} has no tiling scheme"])
    grid = scheme.tile_grid(level, row, col)
    if grid is None:
        raise TileNotFound("Tile not found",
                           [f"Tile {level}/{row}/{col} is outside the tiling scheme or the "
                            "service's full extent"])
    fmt = scheme.format
    return render_map(map_of(service), grid, fmt, transparent=fmt.supports_alpha,
                      png_compression=png_compression)


def get_tile(service: Service, level: int, row: int, col: int, cache: TileCache | None,
             png_compression: int = 2) -> Tile:
    """A tile from the cache, or rendered and stored there."""
    scheme = service.tiling
    if scheme is None:
        raise TileNotFound("Tile not found", [f"Service {service.name} has no tiling scheme"])
    fmt = scheme.format
    # service names are "Name" or "Folder/Name": safe key parts (validated at load)
    key = f"{service.name}/{level}/{row}/{col}.{fmt.extension}"
    if cache is not None and scheme.tile_grid(level, row, col) is not None:
        content = cache.get(key)
        if content is not None:
            return Tile(content, fmt.content_type, etag_of(content), cached=True)
    content = render_tile(service, level, row, col, png_compression)
    if cache is not None:
        cache.put(key, content)
    return Tile(content, fmt.content_type, etag_of(content), cached=False)
