"""The HTML Services Directory's shared pieces: breadcrumbs, operation forms, the map viewer.

Every resource answers ``f=html`` (the default) with a page in the style of the ArcGIS Services
Directory; people debugging a service live on these pages. Breadcrumbs are derived from the
URL once here (with layer names from the catalog) so every template shows the same trail.
Operation modules (identify, find, query, ...) render :func:`operation_form` for ``f=html``:
one input per parameter, the submitted values kept, and the result JSON below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, request

from mapserver.catalog.model import Layer
from mapserver.errors import MapServerError
from mapserver.rest.context import Ctx, service_op
from mapserver.rest.http import html_response

bp = Blueprint("html", __name__)
SERVICES = "/arcgis/rest/services"

Field = str | Mapping[str, Any]  # a parameter name, or {"name", "label", "type", "options"}


def breadcrumbs(path: str) -> list[tuple[str, str]]:
    """``[(label, href), ...]``: Home > services > Folder > Name (MapServer) > Layer > op."""
    from mapserver.rest.services import state

    crumbs = [("Home", SERVICES)]
    if not path.startswith(SERVICES + "/"):
        return crumbs
    parts = [p for p in path[len(SERVICES) + 1:].split("/") if p]
    crumbs.append(("services", SERVICES))
    href = SERVICES
    lowered = [p.lower() for p in parts]
    if "mapserver" not in lowered:
        for p in parts:
            href += "/" + p
            crumbs.append((p, href))
        return crumbs
    i = lowered.index("mapserver")
    name = "/".join(parts[:i])
    if i == 2:
        crumbs.append((parts[0], f"{SERVICES}/{parts[0]}"))
    href = f"{SERVICES}/{name}/MapServer"
    crumbs.append((f"{parts[i - 1] if i else name} (MapServer)", href))
    service = state().catalog.service(name)
    for p in parts[i + 1:]:
        href += "/" + p
        label = p
        if p.isdigit() and service is not None:
            layer = service.layer(int(p))
            label = layer.name if layer is not None else p
        crumbs.append((label, href))
    return crumbs


@bp.app_context_processor
def _crumbs() -> dict:
    return {"breadcrumbs": breadcrumbs(request.path)}


def operation_form(ctx: Ctx, operation: str, fields: Sequence[Field],
                   result: Any = None, layer: Layer | None = None, **extra: Any) -> Response:
    """The ``f=html`` page of an operation: a form with every parameter (values kept from the
    request) and, after a submission, the result as pretty JSON (``result`` is JSON-able)."""
    norm = [{"name": f} if isinstance(f, str) else dict(f) for f in fields]
    for f in norm:
        f.setdefault("label", f["name"])
        f.setdefault("type", "text")
        f["value"] = ctx.params.raw(f["name"]) or f.get("default", "")
    target = f"{layer.name} ({layer.id})" if layer is not None else \
        f"{ctx.service.short_name} (MapServer)"
    return html_response("operation_form.html", service=ctx.service, layer=layer,
                         operation=operation, title=f"{operation}: {target}", fields=norm,
                         result=result, **extra)


@service_op("viewer")
def viewer(ctx: Ctx, rest: list[str]) -> Response:
    """A self-contained map viewer (plain JS in ``static/``) over export, identify, legend."""
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    return html_response("viewer.html", service=ctx.service, base_url=ctx.base_url,
                         title=f"Map viewer: {ctx.service.name}")
