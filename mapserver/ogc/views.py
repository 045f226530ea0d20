"""``…/MapServer/WMSServer`` and ``…/MapServer/WMTS/…``: the OGC requests as service operations.

Registered with the dispatcher's ``service_op`` (``rest/context.py``), so the service lookup,
its access check (``authorize_service``: tokens, 499/498/403) and the per-process render slot
apply exactly as for ``/export``. Every failure inside is answered as an OGC exception
document (WMS: ``ServiceExceptionReport`` with HTTP 200, or INIMAGE / BLANK for GetMap; WMTS:
an OWS ``ExceptionReport`` with a 4xx status); an unexpected error is logged and reported as
``NoApplicableCode``, never as a stack trace or an HTTP 500.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Response, request

from mapserver.errors import MapServerError
from mapserver.maps.tiles import TileCache, TileNotFound, get_tile
from mapserver.ogc import wms, wmts
from mapserver.ogc.common import OgcError, invalid
from mapserver.params.common import Params
from mapserver.rest.context import Ctx, service_op

log = logging.getLogger(__name__)
TILE_CACHE_CONTROL = "public, max-age=3600"  # as ``/tile`` (rest/tiles.py)


def _token_query() -> str:
    """``token=…&`` when the request carried a token parameter, so that the URLs a secured
    service's capabilities advertise work for the same caller; else empty."""
    for key, value in request.args.items(multi=True):
        if key.lower() == "token" and value.strip():
            return f"token={quote(value.strip(), safe='')}&"
    return ""


def _as_ogc(err: Exception) -> OgcError:
    if isinstance(err, OgcError):
        return err
    if isinstance(err, MapServerError):
        text = err.message + (": " + "; ".join(err.details) if err.details else "")
        code = "InvalidParameterValue" if err.code == 400 else "NoApplicableCode"
        return OgcError(text, code, None, 404 if err.code == 404 else 400)
    log.exception("unexpected error on %s", request.path)
    return OgcError("Unable to complete the request; the error has been logged.",
                    "NoApplicableCode", None, 400)


# --- WMS -------------------------------------------------------------------------------------

def _wms_exception(err: OgcError, params: Params, version: str, op: str,
                   most: tuple[int, int]) -> Response:
    mode = (params.raw("EXCEPTIONS") or "").strip().lower()
    if op == "getmap" and mode.endswith(("inimage", "blank")):
        image = wms.exception_image(params, err.message, mode.endswith("blank"), most)
        if image is not None:
            return Response(image[0], mimetype=image[1])
    body, mime = wms.exception_report(err, version)
    return Response(body, status=200, content_type=mime)


@service_op("wmsserver")
def wms_server(ctx: Ctx, rest: list[str]) -> Response:
    params = ctx.params
    service = ctx.service
    op = (params.raw("REQUEST") or "GetCapabilities").strip().lower()
    version = wms.negotiate(params.raw("VERSION") or params.raw("WMTVER")) \
        if op.endswith("capabilities") else wms.request_version(params)
    try:
        if rest:
            raise OgcError("Invalid URL: the WMS endpoint is …/MapServer/WMSServer",
                           "OperationNotSupported")
        svc = params.raw("SERVICE")
        if svc is not None and svc.strip().upper() != "WMS" and op != "getmap":
            raise invalid("SERVICE", f"'{svc[:20]}' (this endpoint is WMS)")
        if op in ("getcapabilities", "capabilities"):
            online = f"{ctx.base_url}/WMSServer?{_token_query()}"
            body = wms.capabilities(service, version, online)
            mime = "text/xml" if version == "1.3.0" else "application/vnd.ogc.wms_xml"
            return Response(body, content_type=f"{mime}; charset=utf-8")
        if op in ("getmap", "map"):
            png = ctx.state.settings.png_compression
            content, mime = wms.get_map(service, params, png)
        elif op in ("getfeatureinfo", "feature_info"):
            content, mime = wms.get_feature_info(service, params)
        elif op == "getlegendgraphic":
            content, mime = wms.get_legend_graphic(service, params)
        else:
            raise OgcError(f"Request '{op[:40]}' is not supported (GetCapabilities, GetMap, "
                           "GetFeatureInfo, GetLegendGraphic)", "OperationNotSupported",
                           "REQUEST")
        return Response(content, content_type=mime)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an OGC exception
        return _wms_exception(_as_ogc(exc), params, version, op,
                              (service.max_image_width, service.max_image_height))


# --- WMTS ------------------------------------------------------------------------------------

def _wmts_exception(err: OgcError) -> Response:
    return Response(wmts.exception_report(err), status=err.status,
                    content_type="application/xml; charset=utf-8")


def _tile(ctx: Ctx, address: wmts.TileAddress) -> Response:
    settings = ctx.state.settings
    try:
        found = get_tile(ctx.service, address.level, address.row, address.col,
                         TileCache(settings.tile_cache_dir, settings.s3_endpoint),
                         settings.png_compression, settings.metatile,
                         settings.metatile_buffer, settings.data_dir)
    except TileNotFound as err:
        raise OgcError("; ".join(err.details) or err.message, "TileOutOfRange", "TILEROW",
                       404) from None
    if request.if_none_match.contains(found.etag):
        resp = Response(status=304)
    else:
        resp = Response(found.content, mimetype=found.content_type)
    resp.set_etag(found.etag)
    resp.headers["Cache-Control"] = TILE_CACHE_CONTROL
    return resp


def _capabilities(ctx: Ctx) -> Response:
    body = wmts.capabilities(ctx.service, f"{ctx.base_url}/WMTS", _token_query())
    return Response(body, content_type="text/xml; charset=utf-8")


@service_op("wmts")
def wmts_server(ctx: Ctx, rest: list[str]) -> Response:
    """KVP at ``…/WMTS?``; RESTful ``…/WMTS/1.0.0/WMTSCapabilities.xml`` and
    ``…/WMTS/tile/1.0.0/{layer}/{style}/{set}/{matrix}/{row}/{col}``."""
    params = ctx.params
    try:
        lowered = [p.lower() for p in rest]
        if not rest:
            svc = params.raw("SERVICE")
            if svc is not None and svc.strip().upper() != "WMTS":
                raise invalid("SERVICE", f"'{svc[:20]}' (this endpoint is WMTS)")
            op = (params.raw("REQUEST") or "GetCapabilities").strip().lower()
            if op == "getcapabilities":
                return _capabilities(ctx)
            if op == "gettile":
                return _tile(ctx, wmts.resolve_tile(
                    ctx.service, params.raw("LAYER"), params.raw("STYLE") or "default",
                    params.raw("TILEMATRIXSET"), params.raw("TILEMATRIX"),
                    params.raw("TILEROW"), params.raw("TILECOL"), params.raw("FORMAT")))
            raise OgcError(f"Request '{op[:40]}' is not supported (GetCapabilities, GetTile)",
                           "OperationNotSupported", "REQUEST")
        if lowered == ["1.0.0", "wmtscapabilities.xml"]:
            return _capabilities(ctx)
        if len(rest) == 8 and lowered[:2] == ["tile", "1.0.0"]:
            col = rest[7].rsplit(".", 1)[0] if "." in rest[7] else rest[7]
            return _tile(ctx, wmts.resolve_tile(ctx.service, *rest[2:7], col))
        raise OgcError("Unknown WMTS resource: use 1.0.0/WMTSCapabilities.xml or "
                       "tile/1.0.0/{layer}/{style}/{set}/{matrix}/{row}/{col}",
                       "InvalidParameterValue", None, 404)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an OGC exception
        return _wmts_exception(_as_ogc(exc))
