"""``…/MapServer/tile/{level}/{row}/{col}``: image bytes with ETag and Cache-Control, or 404.

Tile clients (esri-leaflet, QGIS, GDAL, the ArcGIS SDK) treat HTTP 404 as "no tile here", so
tiles outside the scheme or the service's extent get a real 404 (with the ArcGIS error JSON as
body), unlike every other operation, which answers errors with HTTP 200.
"""

from __future__ import annotations

from flask import Response, request

from mapserver.errors import MapServerError
from mapserver.maps.tiles import TileCache, TileNotFound, get_tile
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.errors import error_response

CACHE_CONTROL = "public, max-age=86400"


def _int(text: str) -> int | None:
    return int(text) if text.isdigit() and len(text) < 10 else None


@service_op("tile")
def tile(ctx: Ctx, rest: list[str]) -> Response:
    if len(rest) != 3:
        raise MapServerError("Invalid URL", ["Tile URLs are tile/{level}/{row}/{col}"], code=400)
    level, row, col = (_int(p) for p in rest)
    try:
        if level is None or row is None or col is None:
            raise TileNotFound("Tile not found",
                               ["level, row and col must be non-negative integers"])
        settings = ctx.state.settings
        found = get_tile(ctx.service, level, row, col, TileCache(settings.tile_cache_dir),
                         settings.png_compression)
    except TileNotFound as err:
        return error_response(err, http_status=404)
    if request.if_none_match.contains(found.etag):
        resp = Response(status=304)
    else:
        resp = Response(found.content, mimetype=found.content_type)
    resp.set_etag(found.etag)
    resp.headers["Cache-Control"] = CACHE_CONTROL
    return resp
