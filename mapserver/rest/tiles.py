"""``…/MapServer/tile/{level}/{row}/{col}`` and ``…/MapServer/tilemap/{level}/{row}/{col}/{w}/{h}``.

Tile clients (esri-leaflet, QGIS, GDAL, the ArcGIS SDK) treat HTTP 404 as "no tile here", so
tiles outside the scheme or the service's extent get a real 404 (with the ArcGIS error JSON as
body), unlike every other operation, which answers errors with HTTP 200. A tile inside the
extent with nothing drawn is an image with ``blank-tile: true`` (an ArcGIS server configured
for blank tiles), or a 404 with ``blankTile=false``; ``tilemap`` says 1 exactly where
``blankTile=false`` answers an image.

``Cache-Control: max-age=3600`` (not a day): the cache key changes with the definition at
once, but a browser only asks again when its copy is stale; an hour bounds how long a client
shows old tiles, and the strong ETag makes the revalidation a 304 when nothing changed.
"""

from __future__ import annotations

from flask import Response, request

from mapserver.errors import MapServerError
from mapserver.maps.tiles import TileCache, TileNotFound, get_tile, tilemap
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.errors import error_response
from mapserver.rest.http import json_response

CACHE_CONTROL = "public, max-age=3600"


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 10 else None


def _cache(ctx: Ctx) -> TileCache:
    settings = ctx.state.settings
    return TileCache(settings.tile_cache_dir, settings.s3_endpoint)  # folder or s3://


def _blank_tile_allowed() -> bool:
    """``blankTile`` (any case): ``false`` asks for a 404 instead of a blank image."""
    for key, value in request.args.items():
        if key.lower() == "blanktile":
            return value.strip().lower() != "false"
    return True


@service_op("tile")
def tile(ctx: Ctx, rest: list[str]) -> Response:
    if len(rest) != 3:
        raise MapServerError("Invalid URL", ["Tile URLs are tile/{level}/{row}/{col}"], code=400)
    level, row, col = (_int(p) for p in rest)
    settings = ctx.state.settings
    try:
        if level is None or row is None or col is None:
            raise TileNotFound("Tile not found",
                               ["level, row and col must be non-negative integers"])
        found = get_tile(ctx.service, level, row, col, _cache(ctx), settings.png_compression,
                         settings.metatile, settings.metatile_buffer, settings.data_dir)
        if found.blank and not _blank_tile_allowed():
            raise TileNotFound("Tile not found",
                               [f"Tile {level}/{row}/{col} has no data (blankTile=false)"])
    except TileNotFound as err:
        return error_response(err, http_status=404)
    if request.if_none_match.contains(found.etag):
        resp = Response(status=304)
    else:
        resp = Response(found.content, mimetype=found.content_type)
    resp.set_etag(found.etag)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    if found.blank:
        resp.headers["blank-tile"] = "true"
    return resp


@service_op("tilemap")
def tile_map(ctx: Ctx, rest: list[str]) -> Response:
    if len(rest) != 5:
        raise MapServerError("Invalid URL", ["Tilemap URLs are "
                                             "tilemap/{level}/{row}/{col}/{width}/{height}"],
                             code=400)
    level, row, col, width, height = (_int(p) for p in rest)
    if None in (level, row, col, width, height):
        raise MapServerError("Invalid URL", ["level, row, col, width and height must be "
                                             "non-negative integers"], code=400)
    settings = ctx.state.settings
    try:
        answer = tilemap(ctx.service, level, row, col, width, height, _cache(ctx),
                         settings.png_compression, settings.metatile,
                         settings.metatile_buffer, settings.data_dir)
    except TileNotFound as err:  # no tiling scheme
        return error_response(err, http_status=404)
    f = "pjson" if (ctx.params.raw("f") or "").lower() == "pjson" else "json"
    resp = json_response(answer.to_json(), ctx.params, f)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp
