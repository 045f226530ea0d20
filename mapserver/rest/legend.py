"""``…/MapServer/legend``: parse ``size`` and ``dpi``, call the core, answer JSON or HTML."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flask import Response

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter, MapServerError
from mapserver.legend import LegendOptions, service_legend
from mapserver.params.common import Params, parse_f, parse_numbers
from mapserver.params.export import parse_dpi
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.http import html_response, json_response

MAX_PATCH = 512  # pixels per side at 96 dpi

# dynamicLayers hook: set by the dynamicLayers module to a function turning the request's
# ``dynamicLayers`` JSON into the layers to draw (with their request-time renderers). While it
# is None the parameter is ignored and the service's own layers are listed.
DYNAMIC_LAYERS: Callable[[Service, str], Sequence[Layer]] | None = None


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


@service_op("legend")
def legend(ctx: Ctx, rest: list[str]) -> Response:
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    f = parse_f(ctx.params)
    opts = parse_legend_options(ctx.params)
    dyn = ctx.params.raw("dynamicLayers")
    layers = DYNAMIC_LAYERS(ctx.service, dyn) if dyn and DYNAMIC_LAYERS is not None else None
    body = service_legend(ctx.service, opts, layers)
    if f == "html":
        return html_response("legend.html", service=ctx.service, data=body,
                             title=f"Legend: {ctx.service.name} (MapServer)")
    return json_response(body, ctx.params, f)
