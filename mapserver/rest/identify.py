"""``…/MapServer/identify``: parse, run the identify core, respond."""

from __future__ import annotations

from flask import Response

from mapserver.errors import MapServerError
from mapserver.features.identify import parse_identify, run_identify
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.http import html_response, json_response


@service_op("identify")
def identify(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    title = f"Identify: {ctx.service.name} (MapServer)"
    if parse_f(ctx.params) == "html" and ctx.params.raw("geometry") is None:
        return html_response("resource.html", title=title, kind="identify", data={}, path="")
    req = parse_identify(ctx.params, ctx.service)
    body = run_identify(ctx.service, req)
    if req.f == "html":
        return html_response("resource.html", title=title, kind="identify", data=body, path="")
    return json_response(body, ctx.params, req.f)
