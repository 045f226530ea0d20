"""``…/MapServer/find``: parse, run the find core, respond."""

from __future__ import annotations

from flask import Response

from mapserver.errors import MapServerError
from mapserver.features.find import parse_find, run_find
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.html import operation_form
from mapserver.rest.http import json_response

FIND_FIELDS = tuple((
    "searchText contains searchFields sr layers layerDefs returnGeometry maxAllowableOffset "
    "geometryPrecision dynamicLayers returnZ returnM gdbVersion returnUnformattedValues "
    "returnFieldName"
).split())


@service_op("find")
def find(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    if parse_f(ctx.params) == "html" and ctx.params.raw("searchText") is None:
        return operation_form(ctx, "Find", FIND_FIELDS)
    req = parse_find(ctx.params, ctx.service)
    body = run_find(ctx.service, req)
    if req.f == "html":
        return operation_form(ctx, "Find", FIND_FIELDS, result=body)
    return json_response(body, ctx.params, req.f)
