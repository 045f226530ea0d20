"""``…/MapServer/<layerId>/query``: parse, run the feature query core, respond."""

from __future__ import annotations

import dataclasses

from flask import Response

from mapserver.catalog.model import Layer
from mapserver.errors import MapServerError, NotFound
from mapserver.features import pbf
from mapserver.features.query import (
    FILTER_PARAMS,
    FORMATS,
    check_queryable,
    dynamic_query_layer,
    feature_body,
    parse_query,
    run_query,
)
from mapserver.params.common import parse_f
from mapserver.rest.context import Ctx, layer_op, service_op
from mapserver.rest.html import operation_form
from mapserver.rest.http import json_response

QUERY_FIELDS = tuple((
    "where text objectIds time geometry geometryType inSR spatialRel relationParam distance "
    "units outFields returnGeometry maxAllowableOffset geometryPrecision outSR returnIdsOnly "
    "returnCountOnly returnExtentOnly orderByFields groupByFieldsForStatistics outStatistics "
    "returnDistinctValues resultOffset resultRecordCount having quantizationParameters "
    "returnZ returnM"
).split())


@layer_op("query")
def query(ctx: Ctx, layer: Layer, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    check_queryable(layer)
    if parse_f(ctx.params, FORMATS, "html") == "html" and not any(
            p in ctx.params for p in FILTER_PARAMS):
        return operation_form(ctx, "Query", QUERY_FIELDS, layer=layer)
    req = parse_query(ctx.params, ctx.service, layer)
    body = run_query(ctx.service, layer, req)
    if req.f == "pbf":
        return pbf_response(body, layer)
    if req.f == "html":
        return operation_form(ctx, "Query", QUERY_FIELDS, result=body, layer=layer)
    return json_response(body, ctx.params, "json" if req.f == "geojson" else req.f)


def pbf_response(body: dict, layer: Layer) -> Response:
    """``f=pbf``: Esri's FeatureCollectionPBuffer (features/pbf.py); the SDK reads it as
    ``application/x-protobuf``."""
    oid = layer.table.oid_field if layer.table is not None else None
    return Response(pbf.encode(body, oid), mimetype="application/x-protobuf")


@service_op("dynamicLayer")
def dynamic_layer_query(ctx: Ctx, rest: list[str]) -> Response:
    """``…/MapServer/dynamicLayer/query?layer={...}``: query one dynamic layer (a map layer
    with its own definitionExpression, or a dataLayer from a registered workspace)."""
    if [p.lower() for p in rest] != ["query"]:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    layer, dyn = dynamic_query_layer(ctx.service, ctx.params.raw("layer"))
    if parse_f(ctx.params, FORMATS, "html") == "html" and not any(
            p in ctx.params for p in FILTER_PARAMS):
        return operation_form(ctx, "Query", ("layer", *QUERY_FIELDS), layer=layer)
    req = dataclasses.replace(parse_query(ctx.params, ctx.service, layer), dynamic_layers=dyn)
    body = run_query(ctx.service, layer, req)
    if req.f == "pbf":
        return pbf_response(body, layer)
    if req.f == "html":
        return operation_form(ctx, "Query", ("layer", *QUERY_FIELDS), result=body, layer=layer)
    return json_response(body, ctx.params, "json" if req.f == "geojson" else req.f)


@layer_op("{objectId}")
def feature_resource(ctx: Ctx, layer: Layer, rest: list[str]) -> Response:
    """``…/MapServer/{layer}/{objectId}`` (the dispatcher hands the id as ``rest[0]``): the
    feature as ArcGIS JSON ``{"feature": ...}``, only if the layer's filter
    (definitionExpression, archiving, …) keeps it."""
    if len(rest) != 1:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    object_id = rest[0]
    body = feature_body(ctx.service, layer, int(object_id))
    if body is None:
        raise NotFound("Requested object does not exist",
                       [f"Feature {object_id} not found in layer {layer.id}"])
    f = parse_f(ctx.params, ("html", "json", "pjson"), "html")
    if f == "html":
        return operation_form(ctx, "Feature", (), result=body, layer=layer)
    return json_response(body, ctx.params, f)
