"""``dynamicLayers``: per-request layer lists with their own order, symbology and sources.

Each element becomes an ordinary :class:`Layer` (a ``dataclasses.replace`` of a service layer
for ``mapLayer`` sources, or a layer over a file in one of the service's registered workspaces
for ``dataLayer`` sources), so the export pipeline draws it like any other. Validation reuses
the service-definition validators, turning their load-time errors into ArcGIS errors. A
``dataLayer`` can only name a file directly inside a folder the service registers; names with
path separators or ``..`` are refused, so nothing outside those folders can be read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter, ServiceDefinitionError
from mapserver.params.filters import TimeOptions, time_options
from mapserver.render.style import StyleError, parse_renderer
from mapserver.select.declared import version_table
from mapserver.sources.features import FeatureTable
from mapserver.sources.rasters import RasterSource
from mapserver.where import compile_clause

MAX_DYNAMIC_LAYERS = 64


@dataclass(frozen=True)
class DynamicLayer:
    layer: Layer
    time_options: TimeOptions | None = None
    show_labels: bool = True
    own_version: bool = False  # the source names its gdbVersion (the request's does not apply)


def _bad(problem: str) -> InvalidParameter:
    return InvalidParameter("Invalid or missing input parameters.", [f"'dynamicLayers' {problem}"])


def resolve_dynamic_layers(service: Service, items: tuple[dict, ...]) -> list[DynamicLayer]:
    """The layers of a ``dynamicLayers`` request, first (topmost) first."""
    if len(items) > MAX_DYNAMIC_LAYERS:
        raise _bad(f"may list at most {MAX_DYNAMIC_LAYERS} layers")
    out: list[DynamicLayer] = []
    seen: set[int] = set()
    for i, item in enumerate(items):
        lid = item.get("id")
        if isinstance(lid, bool) or not isinstance(lid, int):
            raise _bad(f"[{i}] needs an integer id")
        if lid in seen:
            raise _bad(f"[{i}] repeats layer id {lid}")
        seen.add(lid)
        out.append(_one(service, item, i, lid))
    return out


def _one(service: Service, item: dict, i: int, lid: int) -> DynamicLayer:
    source = item.get("source")
    if not isinstance(source, dict):
        raise _bad(f"[{i}] needs a source object (mapLayer or dataLayer)")
    stype = source.get("type")
    version = None
    if stype == "mapLayer":
        base = service.layer(source.get("mapLayerId")) if isinstance(
            source.get("mapLayerId"), int) else None
        if base is None:
            raise _bad(f"[{i}] mapLayerId {source.get('mapLayerId')!r} is not a layer of this "
                       "service")
        if base.kind == "group":
            raise _bad(f"[{i}] mapLayerId {base.id} is a group layer; list its members")
        version = source.get("gdbVersion")
        if version is not None and version != "":
            if not isinstance(version, str):
                raise _bad(f"[{i}] source gdbVersion must be a string")
            # the source's own version wins over the request's gdbVersion for this layer
            base = dataclasses.replace(base, table=version_table(service, base, version,
                                                                 f"dynamicLayers[{i}].source."
                                                                 "gdbVersion"))
    elif stype == "dataLayer":
        base = _data_layer(service, source.get("dataSource"), i)
    else:
        raise _bad(f"[{i}] source type must be mapLayer or dataLayer")
    layer = dataclasses.replace(base, id=lid, parent_id=-1, sublayer_ids=(),
                                default_visibility=True)
    drawing = item.get("drawingInfo") or {}
    if not isinstance(drawing, dict):
        raise _bad(f"[{i}] drawingInfo must be an object")
    show_labels = drawing.get("showLabels", True)
    scale_symbols = drawing.get("scaleSymbols", True)
    if not isinstance(show_labels, bool) or not isinstance(scale_symbols, bool):
        raise _bad(f"[{i}] showLabels and scaleSymbols must be true or false")
    changes: dict[str, Any] = {"scale_symbols": scale_symbols}
    if "transparency" in drawing and drawing["transparency"] is not None:
        t = drawing["transparency"]
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 <= t <= 100:
            raise _bad(f"[{i}] drawingInfo.transparency must be between 0 and 100")
        changes["transparency"] = int(t)
    table = layer.table
    if drawing.get("renderer") is not None:
        if table is None:
            raise _bad(f"[{i}] a renderer applies to feature layers only")
        try:
            changes["renderer"] = parse_renderer(drawing["renderer"],
                                                 f"dynamicLayers[{i}].drawingInfo.renderer",
                                                 [f.name for f in table.fields])
        except StyleError as exc:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'{exc.path}' {exc.problem}"]) from None
    if drawing.get("labelingInfo") is not None:
        if table is None:
            raise _bad(f"[{i}] labelingInfo applies to feature layers only")
        from mapserver.catalog.loader import _Ctx, _labels

        try:
            changes["labels"] = _labels(_Ctx(Path("dynamicLayers")), drawing["labelingInfo"],
                                        f"[{i}].drawingInfo.labelingInfo", table)
        except ServiceDefinitionError as exc:
            raise _bad(f"{exc.field}: {exc.problem}") from None
    definition = item.get("definitionExpression")
    if definition is not None:
        if not isinstance(definition, str):
            raise _bad(f"[{i}] definitionExpression must be a string")
        if table is None and definition.strip():
            raise _bad(f"[{i}] definitionExpression applies to feature layers only")
        if definition.strip():
            compile_clause(table.field_infos, definition, "definitionExpression")  # validate
            # the service's own definition stays in force (it may be a security filter)
            own = base.definition_expression.strip()
            changes["definition_expression"] = (f"({own}) AND ({definition})" if own
                                                else definition)
    layer = dataclasses.replace(layer, **changes)
    options = None
    if item.get("layerTimeOptions") is not None:
        options = time_options(item["layerTimeOptions"],
                               f"dynamicLayers[{i}].layerTimeOptions")
    return DynamicLayer(layer, options, show_labels, version is not None and version != "")


def _data_layer(service: Service, ds: Any, i: int) -> Layer:
    if not isinstance(ds, dict):
        raise _bad(f"[{i}] dataLayer needs a dataSource object")
    ws_id = ds.get("workspaceId")
    name = ds.get("dataSourceName")
    kind = ds.get("type", "table")
    workspaces = getattr(service, "workspaces", {}) or {}
    if ws_id not in workspaces:
        known = ", ".join(sorted(workspaces)) or "none"
        raise _bad(f"[{i}] workspaceId {str(ws_id)[:40]!r} is not registered with this service "
                   f"(registered: {known})")
    if (not isinstance(name, str) or not name or "/" in name or "\\" in name
            or name.startswith(".") or ".." in name):
        raise _bad(f"[{i}] dataSourceName must be a file name inside workspace {ws_id!r}")
    root = Path(workspaces[ws_id]).resolve()
    path = (root / name).resolve()
    if path.parent != root or not path.is_file():
        raise _bad(f"[{i}] workspace {ws_id!r} has no data source {name[:60]!r}")
    if kind == "raster":
        try:
            raster = _raster(str(path))
        except Exception:  # rasterio raises several types; all mean "not a raster"
            raise _bad(f"[{i}] {name[:60]!r} cannot be read as a raster") from None
        from mapserver.catalog.loader import _Ctx, _raster_style

        style = _raster_style(_Ctx(path), {}, "raster.", raster)
        return Layer(id=-1, name=name, kind="raster", raster=raster, raster_style=style)
    if kind not in ("table", "featureClass"):
        raise _bad(f"[{i}] dataSource type must be table or raster")
    try:
        table = _table(str(path))
    except Exception:  # pyogrio raises several types; all mean "not vector data"
        raise _bad(f"[{i}] {name[:60]!r} cannot be read as vector data") from None
    from mapserver.catalog.loader import _default_renderer

    renderer = parse_renderer(_default_renderer(table.geometry_type), "renderer",
                              [f.name for f in table.fields])
    display = next((f.name for f in table.fields if f.type == "esriFieldTypeString"),
                   table.oid_field)
    return Layer(id=-1, name=name, kind="feature", table=table, renderer=renderer,
                 display_field=display)


@lru_cache(maxsize=32)
def _table(path: str) -> FeatureTable:
    return FeatureTable.read(path)


@lru_cache(maxsize=32)
def _raster(path: str) -> RasterSource:
    return RasterSource.open(path)
