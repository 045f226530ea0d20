"""``…/MapServer/identify``: parse, run the identify core, respond."""

from __future__ import annotations

from flask import Response

from mapserver.errors import MapServerError
from mapserver.features.identify import parse_identify, run_identify
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.html import operation_form
from mapserver.rest.http import json_response

IDENTIFY_FIELDS = tuple((
    "geometry geometryType sr layerDefs time timeRelation layerTimeOptions layers tolerance "
    "mapExtent imageDisplay returnGeometry maxAllowableOffset geometryPrecision dynamicLayers "
    "returnZ returnM gdbVersion returnUnformattedValues returnFieldName datumTransformations"
).split())


@service_op("identify")
def identify(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    if parse_f(ctx.params) == "html" and ctx.params.raw("geometry") is None:
        return operation_form(ctx, "Identify", IDENTIFY_FIELDS)
    req = parse_identify(ctx.params, ctx.service)
    body = run_identify(ctx.service, req)
    if req.f == "html":
        return operation_form(ctx, "Identify", IDENTIFY_FIELDS, result=body)
    return json_response(body, ctx.params, req.f)
