"""``…/MapServer/<layerId>/query``: parse, run the feature query core, respond."""

from __future__ import annotations

from flask import Response

from mapserver.catalog.model import Layer
from mapserver.features.query import FILTER_PARAMS, FORMATS, check_queryable, parse_query, run_query
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, layer_op
from mapserver.rest.http import html_response, json_response


@layer_op("query")
def query(ctx: Ctx, layer: Layer) -> Response:
    check_queryable(layer)
    title = f"Query: {layer.name} (ID: {layer.id})"
    if parse_f(ctx.params, FORMATS, "html") == "html" and not any(
            p in ctx.params for p in FILTER_PARAMS):
        return html_response("resource.html", title=title, kind="query", data={}, path="")
    req = parse_query(ctx.params, ctx.service, layer)
    body = run_query(ctx.service, layer, req)
    if req.f == "html":
        return html_response("resource.html", title=title, kind="query", data=body, path="")
    return json_response(body, ctx.params, "json" if req.f == "geojson" else req.f)
