"""``…/MapServer/legend``: parse ``size`` and ``dpi``, call the core, answer JSON or HTML."""

from __future__ import annotations

import base64
from collections.abc import Sequence

from flask import Response

from mapserver.catalog.model import Layer
from mapserver.errors import InvalidParameter, MapServerError, NotFound
from mapserver.maps.legend import LegendOptions, layer_legend, service_legend
from mapserver.params.common import Params, parse_f, parse_numbers
from mapserver.params.export import parse_dpi
from mapserver.params.filters import MapFilters, parse_dynamic_layers
from mapserver.rest.context import Ctx, layer_op, service_op
from mapserver.rest.http import html_response, json_response
from mapserver.select.plan import resolve_map

MAX_PATCH = 512  # pixels per side at 96 dpi


def parse_legend_options(params: Params) -> LegendOptions:
    width, height = 20, 20
    size = params.raw("size")
    if size is not None:
        nums = parse_numbers(size, "size", 2)
        if not all(n == int(n) and 1 <= n <= MAX_PATCH for n in nums):
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'size' must be two integers from 1 to {MAX_PATCH}"])
        width, height = int(nums[0]), int(nums[1])
    dpi = parse_dpi(params)
    if max(width, height) * dpi / 96.0 > 4 * MAX_PATCH:
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'size' x 'dpi' gives a swatch over 2048 pixels"])
    return LegendOptions(width=width, height=height, dpi=dpi)


def _request_layers(ctx: Ctx) -> Sequence[Layer] | None:
    """The layers to list: the request's ``dynamicLayers`` (order, renderers, transparency,
    dataLayer sources), parsed and resolved exactly as export does, else the service's."""
    items = parse_dynamic_layers(ctx.params.raw("dynamicLayers"))
    if items is None:
        return None
    return list(resolve_map(ctx.service, MapFilters(dynamic_layers=items)).layers)


@layer_op("images")
def legend_image(ctx: Ctx, layer: Layer, rest: list[str]) -> Response:
    """``…/MapServer/{id}/images/{url}``: the swatch a legend entry's relative ``url`` names."""
    if len(rest) != 1:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    entry = layer_legend(layer, parse_legend_options(ctx.params))
    for item in (entry or {}).get("legend", []):
        if item["url"] == rest[0]:
            return Response(base64.b64decode(item["imageData"]), mimetype="image/png")
    raise NotFound("Legend image not found", [f"No legend image '{rest[0][:40]}' in layer "
                                              f"{layer.id}"])


@service_op("legend")
def legend(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    f = parse_f(ctx.params)
    opts = parse_legend_options(ctx.params)
    body = service_legend(ctx.service, opts, _request_layers(ctx))
    if f == "html":
        return html_response("legend.html", service=ctx.service, data=body,
                             title=f"Legend: {ctx.service.name} (MapServer)")
    return json_response(body, ctx.params, f)
