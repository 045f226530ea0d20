"""``…/MapServer/export``: parse, call the core, respond (image bytes, JSON with href, HTML)."""

from __future__ import annotations

import dataclasses
import io

from flask import Blueprint, Response, abort, send_file

from mapserver.blobs import StoreUnavailable
from mapserver.encode.kmz import KMZ_CONTENT_TYPE, build_kmz
from mapserver.errors import InvalidParameter, MapServerError
from mapserver.geo.sr import WGS84
from mapserver.maps.export import export_map
from mapserver.params.export import EXPORT_PARAMS, ExportRequest, parse_export
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.errors import error_response
from mapserver.rest.http import html_response, json_response
from mapserver.rest.services import state

bp = Blueprint("outputs", __name__)
OUTPUT_ROUTE = "/arcgis/rest/directories/arcgisoutput/"


@service_op("export")
def export(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    svc = ctx.service
    if ctx.params.raw("bbox") is None and (ctx.params.raw("f") or "html").lower() == "html":
        return html_response("export_form.html", service=svc, params=ctx.params,
                             fields=EXPORT_PARAMS, result=None)
    req = parse_export(ctx.params, svc.sr, svc.max_image_width, svc.max_image_height)
    if req.f == "kmz":
        return _kmz(ctx, req)
    result = export_map(svc, req, ctx.state.settings.png_compression)
    if req.f == "image":
        resp = Response(result.content, mimetype=result.format.content_type)
        if result.format.name == "svgz":
            resp.headers["Content-Encoding"] = "gzip"
        return resp
    name = ctx.state.outputs.save(result.content, result.format.extension)
    body = {"href": ctx.root_url + OUTPUT_ROUTE + name, "width": result.grid.width,
            "height": result.grid.height, "extent": result.grid.extent_json(),
            "scale": result.grid.scale}
    if req.f == "html":
        return html_response("export_form.html", service=svc, params=ctx.params,
                             fields=EXPORT_PARAMS, result=body)
    return json_response(body, ctx.params, req.f)


def _kmz(ctx: Ctx, req: ExportRequest) -> Response:
    """f=kmz: render in EPSG:4326 (KML's only SR) and wrap the image in a GroundOverlay."""
    if req.format.vector or req.format.name not in ("png", "png8", "png24", "png32", "jpg",
                                                    "gif"):
        raise InvalidParameter("Output format not supported.",
                               [f"f=kmz needs a png, jpg or gif image, not '{req.format.name}'"])
    req = dataclasses.replace(req, image_sr=WGS84)
    result = export_map(ctx.service, req, ctx.state.settings.png_compression)
    body = build_kmz(result.content, result.format.extension, result.grid,
                     ctx.service.short_name)
    resp = Response(body, mimetype=KMZ_CONTENT_TYPE)
    resp.headers["Content-Disposition"] = f'attachment; filename="{ctx.service.short_name}.kmz"'
    return resp


@bp.route(OUTPUT_ROUTE + "<name>", methods=["GET"])
def output_file(name: str) -> Response:
    """An href's image, from the output store (a local folder, or the object store shared by
    every host, so any host serves any host's href). The name is immutable and unique, so it
    is a strong ETag. A store that does not answer is an HTTP 503, not a 404 or a 500."""
    outputs = state().outputs
    ext = name.rpartition(".")[2]
    from mapserver.encode.image import FORMATS

    fmt = next((f for f in FORMATS.values() if f.extension == ext), None)
    mimetype = fmt.content_type if fmt else "application/octet-stream"
    if outputs.local:
        path = outputs.path(name)
        if path is None:
            abort(404)
        resp = send_file(path, mimetype=mimetype, max_age=600)
    else:
        try:
            content = outputs.read(name)
        except StoreUnavailable as exc:
            return error_response(exc, 503)
        if content is None:
            abort(404)
        resp = send_file(io.BytesIO(content), mimetype=mimetype, max_age=600,
                         download_name=name, etag=name.partition(".")[0])
    if ext == "svgz":
        resp.headers["Content-Encoding"] = "gzip"
    return resp
