"""``…/MapServer/find``: parse, run the find core, respond."""

from __future__ import annotations

from flask import Response

from mapserver.errors import MapServerError
from mapserver.features.find import parse_find, run_find
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.http import html_response, json_response


@service_op("find")
def find(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    title = f"Find: {ctx.service.name} (MapServer)"
    if parse_f(ctx.params) == "html" and ctx.params.raw("searchText") is None:
        return html_response("resource.html", title=title, kind="find", data={}, path="")
    req = parse_find(ctx.params, ctx.service)
    body = run_find(ctx.service, req)
    if req.f == "html":
        return html_response("resource.html", title=title, kind="find", data=body, path="")
    return json_response(body, ctx.params, req.f)
