"""The HTML Services Directory's shared pieces: breadcrumbs, operation forms, the map viewer.

Every resource answers ``f=html`` (the default) with a page in the style of the ArcGIS Services
Directory; people debugging a service live on these pages. Breadcrumbs are derived from the
URL once here (with layer names from the catalog) so every template shows the same trail.
Operation modules (identify, find, query, ...) render :func:`operation_form` for ``f=html``:
one input per parameter, the submitted values kept, and the result JSON below.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
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
    return {"breadcrumbs": breadcrumbs(request.path), "layer_swatches": layer_swatches,
            "catalog_problems": catalog_problems}


def catalog_problems() -> list[str]:
    """The definition files that are not served as written (rejected, or an older version
    kept), for the box on the root page; folders are named relative to themselves
    (``services/World.json: …``), never as absolute paths."""
    from mapserver.catalog.definitions import display_path
    from mapserver.rest.services import state

    st = state()
    dirs = st.settings.service_dirs
    return [display_path(p, dirs, st.settings.data_dir) for p in st.catalog.problems]


@bp.app_template_filter("num")
def num(value: Any) -> Any:
    """A number as people read it: ``180.00000000000006`` -> ``180``, at most 15 significant
    digits; anything else unchanged."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return value
        value = float(f"{value:.15g}")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.15g}"
    return str(value)


@bp.app_template_filter("isodate")
def isodate(ms: Any) -> str:
    """Epoch milliseconds as an ISO 8601 UTC date (``2008-01-01T00:00:00Z``); None: open."""
    if ms is None:
        return "(open)"
    if isinstance(ms, bool) or not isinstance(ms, int | float):
        return str(ms)
    try:
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return str(ms)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if dt.microsecond:
        text += f".{dt.microsecond // 1000:03d}"
    return text + "Z"


def layer_swatches(service: Any, layer_id: int) -> list[dict]:
    """The renderer's classes of a layer as legend entries (label, values, PNG imageData),
    drawn by the legend code (maps/legend.py)."""
    from mapserver.maps.legend import LegendOptions, layer_legend

    layer = service.layer(layer_id) if service is not None else None
    if layer is None:
        return []
    entry = layer_legend(layer, LegendOptions())
    return entry["legend"] if entry else []


# Parameters whose values are a fixed set: shown as selects (value, label), first = default
CHOICES: dict[str, list[list[str]]] = {
    "geometryType": [[v, v] for v in (
        "esriGeometryEnvelope", "esriGeometryPoint", "esriGeometryPolyline",
        "esriGeometryPolygon", "esriGeometryMultipoint")],
    "spatialRel": [[v, v] for v in (
        "esriSpatialRelIntersects", "esriSpatialRelContains", "esriSpatialRelCrosses",
        "esriSpatialRelEnvelopeIntersects", "esriSpatialRelIndexIntersects",
        "esriSpatialRelOverlaps", "esriSpatialRelTouches", "esriSpatialRelWithin",
        "esriSpatialRelRelation")],
    "units": [[v, v] for v in (
        "esriSRUnit_Meter", "esriSRUnit_StatuteMile", "esriSRUnit_Foot",
        "esriSRUnit_Kilometer", "esriSRUnit_NauticalMile", "esriSRUnit_USNauticalMile")],
    "timeRelation": [[v, v] for v in (
        "esriTimeRelationOverlaps", "esriTimeRelationOverlapsStartWithinEnd",
        "esriTimeRelationAfterStartOverlapsEnd", "esriTimeRelationWithin")],
    "layerOptions": [["composite", "composite"], ["separateImage", "separateImage"],
                     ["nonComposite", "nonComposite"]],
}
TRUE_FALSE = [["", "(default)"], ["true", "True"], ["false", "False"]]
BOOLEANS = frozenset(n.lower() for n in (
    "returnGeometry", "returnIdsOnly", "returnCountOnly", "returnExtentOnly",
    "returnDistinctValues", "returnZ", "returnM", "returnUnformattedValues",
    "returnFieldName", "returnTrueCurves", "returnCentroid", "returnExceededLimitFeatures",
    "returnQueryGeometry", "contains", "transparent", "sqlFormat"))


def _choices(name: str) -> list[list[str]] | None:
    low = name.lower()
    if low in BOOLEANS:
        return TRUE_FALSE
    opts = next((opts for key, opts in CHOICES.items() if key.lower() == low), None)
    return None if opts is None else [["", "(default)"], *opts]


def result_tables(result: Any) -> list[dict]:
    """Query/identify/find results as attribute tables: ``[{"title", "columns", "rows"}]``
    (one per layer for identify and find; one for a query's features)."""
    if not isinstance(result, Mapping):
        return []
    tables: list[dict] = []

    def add(title: str, attrs: list[Mapping]) -> None:
        cols: list[str] = []
        for a in attrs:
            cols.extend(k for k in a if k not in cols)
        tables.append({"title": title, "columns": cols,
                       "rows": [[a.get(c) for c in cols] for a in attrs]})

    if isinstance(result.get("features"), list):
        feats = [f for f in result["features"] if isinstance(f, Mapping)]
        add(f"{len(feats)} feature(s)", [f.get("attributes") or {} for f in feats])
    elif isinstance(result.get("results"), list):
        by_layer: dict[str, list[Mapping]] = {}
        for r in result["results"]:
            if not isinstance(r, Mapping):
                continue
            key = f"{r.get('layerName', '')} ({r.get('layerId', '')})"
            by_layer.setdefault(key, []).append(r.get("attributes") or {})
        for title, attrs in by_layer.items():
            add(f"{title}: {len(attrs)} result(s)", attrs)
        if not by_layer:
            tables.append({"title": "No results", "columns": [], "rows": []})
    return tables


def operation_form(ctx: Ctx, operation: str, fields: Sequence[Field],
                   result: Any = None, layer: Layer | None = None, **extra: Any) -> Response:
    """The ``f=html`` page of an operation: a form with every parameter (values kept from the
    request) and, after a submission, the result as pretty JSON (``result`` is JSON-able)."""
    norm = [{"name": f} if isinstance(f, str) else dict(f) for f in fields]
    for f in norm:
        f.setdefault("label", f["name"])
        opts = _choices(f["name"]) if f.get("type", "text") == "text" else None
        if opts is not None and "options" not in f:
            f["type"], f["options"] = "select", opts
        f.setdefault("type", "text")
        f["value"] = ctx.params.raw(f["name"]) or f.get("default", "")
    target = f"{layer.name} ({layer.id})" if layer is not None else \
        f"{ctx.service.short_name} (MapServer)"
    return html_response("operation_form.html", service=ctx.service, layer=layer,
                         operation=operation, title=f"{operation}: {target}", fields=norm,
                         result=result, tables=result_tables(result), **extra)


@service_op("viewer")
def viewer(ctx: Ctx, rest: list[str]) -> Response:
    """A self-contained map viewer (plain JS in ``static/``) over export, identify, legend."""
    if rest:
        raise MapServerError("Invalid URL", ["Invalid URL"], code=400)
    return html_response("viewer.html", service=ctx.service, base_url=ctx.base_url,
                         title=f"Map viewer: {ctx.service.name}")
