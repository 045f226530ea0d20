"""Catalog, info, service root, all-layers and layer resources, and the URL dispatcher.

``/arcgis/rest/services/<folder>/<name>/MapServer/<op>`` is resolved here; operations come from
the registry in :mod:`mapserver.rest.context`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from flask import Blueprint, Response, current_app, request

from mapserver import limits, metadata
from mapserver.errors import MapServerError, NotFound
from mapserver.params.common import parse_f
from mapserver.rest.context import LAYER_OPS, SERVICE_OPS, AppState, Ctx
from mapserver.rest.http import html_response, json_response, request_params
from mapserver.security.web import auth_info, authorize_service, visible_catalog
from mapserver.serving import render_slot

bp = Blueprint("services", __name__)
METHODS = ["GET", "POST"]


@contextlib.contextmanager
def operation_slot() -> Iterator[None]:
    """This process's render slot (one CPU-bound operation at a time, serving.py), with the
    request's time budget restarted once it is held: time queued behind other requests'
    renders is not this request's work."""
    with render_slot():
        limits.start_budget()
        yield


def state() -> AppState:
    return current_app.extensions["mapserver"]


def _respond(obj: dict, page_title: str, kind: str, **extra: object) -> Response:
    params = request_params(request)
    f = parse_f(params)
    if f == "html":
        return html_response("resource.html", title=page_title, kind=kind, data=obj,
                             path=request.path, **extra)
    return json_response(obj, params, f)


@bp.route("/arcgis/rest/info", methods=METHODS)
@bp.route("/arcgis/rest/info/", methods=METHODS)
def info() -> Response:
    return _respond({**metadata.info_json(), "authInfo": auth_info()}, "Info", "info")


@bp.route("/arcgis/rest/services", methods=METHODS)
@bp.route("/arcgis/rest/services/", methods=METHODS)
def catalog_root() -> Response:
    return _respond(metadata.catalog_json(visible_catalog(state().catalog)), "Home", "catalog",
                    folder="")


@bp.route("/arcgis/rest/services/<path:subpath>", methods=METHODS)
def dispatch(subpath: str) -> Response:
    parts = [p for p in subpath.split("/") if p]
    st = state()
    lowered = [p.lower() for p in parts]
    if "mapserver" not in lowered:
        visible = visible_catalog(st.catalog)  # only what this caller may see
        if len(parts) == 1 and parts[0] in visible.folders:
            return _respond(metadata.catalog_json(visible, parts[0]), parts[0], "catalog",
                            folder=parts[0])
        if len(parts) >= 2 and lowered[-1] in ("featureserver", "imageserver", "gpserver"):
            raise NotFound("Service not found",
                           [f"Service {'/'.join(parts[:-1])}/{parts[-1]} not found"])
        raise NotFound("Folder not found", [f"Folder '{'/'.join(parts)}' does not exist"])
    i = lowered.index("mapserver")
    name = "/".join(parts[:i])
    service = st.catalog.service(name)
    if service is None:
        raise NotFound("Service not found", [f"Service {name}/MapServer not found"])
    authorize_service(service)  # 499 / 498 / 403 for secured services (security/web.py)
    rest = parts[i + 1:]
    base = request.url_root.rstrip("/") + "/arcgis/rest/services/" + name + "/MapServer"
    ctx = Ctx(state=st, service=service, params=request_params(request), base_url=base,
              root_url=request.url_root.rstrip("/"))
    if not rest:
        return _respond(metadata.service_json(service), f"{name} (MapServer)", "service",
                        service=service)
    head = rest[0]
    if head.lstrip("-").isdigit():
        layer = service.layer(int(head))
        if layer is None:
            raise MapServerError("Invalid layer", [f"The requested layer (layerId: {head}) "
                                                   "was not found."], code=400)
        if len(rest) == 1:
            return _respond(metadata.layer_json(service, layer), f"{layer.name} ({layer.id})",
                            "layer", service=service)
        # the feature resource …/{layer}/{objectId} is registered as "{objectid}"
        op = LAYER_OPS.get("{objectid}" if rest[1].isdigit() else rest[1].lower())
        if op is None:
            raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
        with operation_slot():
            return op(ctx, layer, rest[1:] if rest[1].isdigit() else rest[2:])
    if head.lower() == "layers" and len(rest) == 1:
        if ctx.params.raw("dynamicLayers") is not None:  # the layers as the request sees them
            from mapserver.params.filters import MapFilters, parse_dynamic_layers
            from mapserver.select.plan import resolve_map
            m = resolve_map(service, MapFilters(
                dynamic_layers=parse_dynamic_layers(ctx.params.raw("dynamicLayers"))))
            return _respond({"layers": [metadata.layer_json(service, lyr) for lyr in m.layers],
                             "tables": []}, f"{name} layers", "layers", service=service)
        return _respond(metadata.layers_json(service), f"{name} layers", "layers",
                        service=service)
    op = SERVICE_OPS.get(head.lower())
    if op is None:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    with operation_slot():
        return op(ctx, rest[1:])
