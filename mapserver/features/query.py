"""Layer ``query``: parse the request once into :class:`QueryRequest`, run it, return the body.

The body is Esri JSON (a feature set, ids, count, extent or statistics) or a GeoJSON
FeatureCollection for ``f=geojson``. ``maxRecordCount`` caps every page; a capped or partial
page says so with ``exceededTransferLimit: true``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import numpy as np
import shapely

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter, UnsupportedOperation
from mapserver.features import statistics as stats_mod
from mapserver.features.attributes import parse_out_fields, raw_attributes, resolve_fields
from mapserver.features.common import (
    opt_bool,
    opt_float,
    opt_int,
    opt_precision,
    opt_sr,
    to_layer_sr,
)
from mapserver.features.geometry_in import parse_geometry, parse_geometry_type
from mapserver.features.geometry_out import envelope_json, generalize, project, to_esri, to_geojson
from mapserver.features.ordering import page, parse_order_by, sort_rows
from mapserver.features.quantize import (
    Quantization,
    make_transform,
    parse_quantization,
    to_esri_quantized,
)
from mapserver.features.relations import (
    buffer_metric,
    parse_relation_param,
    parse_spatial_rel,
    parse_units,
)
from mapserver.geo.sr import WGS84, SpatialRef
from mapserver.params.common import Params, parse_f, parse_json
from mapserver.params.filters import DECLARED_PARAMS, MapFilters, parse_time
from mapserver.select.features import SpatialFilter, select_features
from mapserver.select.plan import layer_filter, resolve_map
from mapserver.sources.features import FeatureTable, Field
from mapserver.where import compile_clause

MESSAGE = "Cannot perform query. Invalid query parameters."
FORMATS = ("html", "json", "pjson", "geojson", "pbf")
FILTER_PARAMS = ("where", "objectIds", "text", "geometry", "time", "outStatistics")


@dataclass(frozen=True)
class QueryRequest:
    f: str
    where: str | None = None
    text: str | None = None
    object_ids: tuple[int, ...] | None = None
    time: tuple[int | None, int | None] | None = None
    spatial: SpatialFilter | None = None
    out_fields: tuple[Field, ...] = ()
    return_geometry: bool = True
    out_sr: SpatialRef | None = None
    max_offset: float | None = None
    precision: int | None = None
    ids_only: bool = False
    count_only: bool = False
    extent_only: bool = False
    distinct: bool = False
    order_by: tuple[tuple[str, bool], ...] = ()
    offset: int = 0
    record_count: int | None = None
    statistics: tuple[stats_mod.Statistic, ...] = ()
    group_by: tuple[Field, ...] = ()
    # historicMoment, gdbVersion, rangeValues and parameterValues as the map's parameters
    declared: tuple[tuple[str, str], ...] = ()
    quantization: Quantization | None = None
    return_z: bool = False
    return_m: bool = False
    having: stats_mod.Having | None = None
    # the planner's map filters (dynamicLayers for ``…/MapServer/dynamicLayer/query``)
    dynamic_layers: tuple[dict, ...] = ()


def check_queryable(layer: Layer) -> None:
    if layer.kind == "raster":
        raise UnsupportedOperation("Query is not supported on raster layers.",
                                   [f"Layer {layer.id} ({layer.name}) is a raster layer"])
    if layer.table is None:
        raise UnsupportedOperation("Query is not supported on group layers.",
                                   [f"Layer {layer.id} ({layer.name}) is a group layer"])


def parse_query(params: Params, service: Service, layer: Layer) -> QueryRequest:
    check_queryable(layer)
    table = layer.table
    assert table is not None
    f = parse_f(params, FORMATS, "html")
    spatial = None
    in_sr = opt_sr(params, "inSR", service.sr, MESSAGE)
    geom_raw = params.raw("geometry")
    if geom_raw is not None:
        gtype = parse_geometry_type(params.raw("geometryType"), "esriGeometryEnvelope", MESSAGE)
        parsed = parse_geometry(geom_raw, gtype, MESSAGE)
        src = in_sr if params.raw("inSR") is not None or parsed.sr is None else parsed.sr
        geom = parsed.geometry
        distance = opt_float(params, "distance", MESSAGE, 0.0)
        if distance:
            meters = distance * parse_units(params.raw("units"), MESSAGE)
            geom = buffer_metric(geom, src, meters, MESSAGE)
        rel = parse_spatial_rel(params.raw("spatialRel"), MESSAGE)
        relation = (parse_relation_param(params.raw("relationParam"), MESSAGE)
                    if rel == "esriSpatialRelRelation" else None)
        spatial = SpatialFilter(to_layer_sr(geom, src, table.sr, MESSAGE), rel, relation)
    object_ids = None
    if params.raw("objectIds") is not None:
        try:
            object_ids = tuple(int(v) for v in params.raw("objectIds").split(",") if v.strip())
        except ValueError:
            raise InvalidParameter(MESSAGE, ["'objectIds' parameter is invalid"]) from None
    try:
        time = parse_time(params.raw("time"))
    except InvalidParameter:
        raise InvalidParameter(MESSAGE, ["'time' parameter is invalid"]) from None
    statistics: list[stats_mod.Statistic] = []
    group_by: list[Field] = []
    if params.raw("outStatistics") is not None:
        try:
            raw_stats = parse_json(params.raw("outStatistics"), "outStatistics")
        except InvalidParameter as exc:
            raise InvalidParameter(MESSAGE, ["'outStatistics' parameter is invalid",
                                             *exc.details]) from None
        statistics = stats_mod.parse_statistics(table, raw_stats, MESSAGE)
        names = [n.strip() for n in (params.raw("groupByFieldsForStatistics") or "").split(",")
                 if n.strip()]
        group_by = resolve_fields(table, names, MESSAGE, "groupByFieldsForStatistics")
    out_names = {f.name.lower(): f.name for f in table.fields}
    out_names.update({s.out_name.lower(): s.out_name for s in statistics})
    order_by = parse_order_by(params.raw("orderByFields"), lambda n: out_names.get(n.lower()),
                              MESSAGE)
    out_sr_default = WGS84 if f == "geojson" else service.sr
    return QueryRequest(
        declared=_declared(params, layer),
        f=f, where=params.raw("where"), text=params.raw("text"), object_ids=object_ids,
        time=time, spatial=spatial,
        out_fields=tuple(parse_out_fields(table, params.raw("outFields"), MESSAGE)),
        return_geometry=opt_bool(params, "returnGeometry", True, MESSAGE),
        out_sr=opt_sr(params, "outSR", out_sr_default, MESSAGE),
        max_offset=opt_float(params, "maxAllowableOffset", MESSAGE, 0.0),
        precision=opt_precision(params, MESSAGE),
        ids_only=opt_bool(params, "returnIdsOnly", False, MESSAGE),
        count_only=opt_bool(params, "returnCountOnly", False, MESSAGE),
        extent_only=opt_bool(params, "returnExtentOnly", False, MESSAGE),
        distinct=opt_bool(params, "returnDistinctValues", False, MESSAGE),
        order_by=tuple(order_by), offset=opt_int(params, "resultOffset", MESSAGE) or 0,
        record_count=opt_int(params, "resultRecordCount", MESSAGE, 1),
        statistics=tuple(statistics), group_by=tuple(group_by),
        quantization=parse_quantization(params.raw("quantizationParameters"), MESSAGE),
        return_z=opt_bool(params, "returnZ", False, MESSAGE),
        return_m=opt_bool(params, "returnM", False, MESSAGE),
        having=_having(params, table, statistics, group_by))


def _declared(params: Params, layer: Layer) -> tuple[tuple[str, str], ...]:
    """The layer query's ``historicMoment``, ``gdbVersion``, ``rangeValues`` and
    ``parameterValues``, spelled as the map parameters the planner applies (the layer's own
    entry of ``layerRangeValues`` / ``layerParameterValues``)."""
    out = [(name, params.raw(name)) for name in ("historicMoment", "gdbVersion")
           if params.raw(name) is not None]
    if params.raw("rangeValues") is not None:
        out.append(("layerRangeValues",
                    f'{{"{layer.id}": {_json_text(params.raw("rangeValues"), "rangeValues")}}}'))
    if params.raw("parameterValues") is not None:
        out.append(("layerParameterValues", f'[{{"{layer.id}": '
                    f'{_json_text(params.raw("parameterValues"), "parameterValues")}}}]'))
    assert all(name in DECLARED_PARAMS for name, _ in out)
    return tuple(out)


def _json_text(value: str | None, name: str) -> str:
    """The value re-serialised after parsing within the request limits (size, depth, finite
    numbers), so it is embedded in the map parameter as one JSON value."""
    try:
        return json.dumps(parse_json(value or "", name))
    except InvalidParameter as exc:
        raise InvalidParameter(MESSAGE, [f"'{name}' parameter is invalid",
                                         *exc.details]) from None


def _text_clause(layer: Layer, text: str | None) -> str | None:
    """``text``: LIKE '%text%' on the display field, through the one where engine; case
    insensitive as ArcGIS is (UPPER on both sides for a string field)."""
    if text is None or not layer.display_field:
        return None
    quoted = text.replace(chr(39), chr(39) * 2)
    field = '"' + layer.display_field.replace('"', '""') + '"'
    table = layer.table
    ftype = next((f.type for f in table.fields if f.name == layer.display_field), None) \
        if table is not None else None
    if ftype == "esriFieldTypeString":
        return f"UPPER({field}) LIKE '%{quoted.upper()}%'"
    return f"{field} LIKE '%{quoted}%'"


def _having(params: Params, table: FeatureTable, statistics: list[stats_mod.Statistic],
            group_by: list[Field]) -> stats_mod.Having | None:
    raw = params.raw("having")
    if raw is None or not raw.strip():
        return None
    if not statistics:
        raise InvalidParameter(MESSAGE, ["'having' needs 'outStatistics'"])
    return stats_mod.parse_having(table, raw, group_by, MESSAGE)


def dynamic_query_layer(service: Service, raw: str | None) -> tuple[Layer, tuple[dict, ...]]:
    """``…/MapServer/dynamicLayer/query?layer={...}``: the one dynamic layer, resolved by the
    planner exactly as ``dynamicLayers=[layer]`` on export resolves it."""
    if raw is None or not raw.strip():
        raise InvalidParameter(MESSAGE, ["'layer' parameter is required"])
    try:
        obj = parse_json(raw, "layer")
    except InvalidParameter as exc:
        raise InvalidParameter(MESSAGE, ["'layer' parameter is invalid", *exc.details]
                               ) from None
    if not isinstance(obj, dict):
        raise InvalidParameter(MESSAGE, ["'layer' parameter is invalid"])
    obj.setdefault("id", -1)
    dyn = (obj,)
    m = resolve_map(service, MapFilters(dynamic_layers=dyn))
    if len(m.layers) != 1:
        raise InvalidParameter(MESSAGE, ["'layer' parameter is invalid"])
    layer = m.layers[0]
    check_queryable(layer)
    return layer, dyn


def feature_body(service: Service, layer: Layer, oid: int) -> dict | None:
    """``…/MapServer/{layer}/{objectId}``: ``{"feature": {...}}`` with every field, in the
    service's SR, if the planner's filter for the layer keeps it (else None)."""
    check_queryable(layer)
    table = layer.table
    assert table is not None
    req = QueryRequest(f="json", object_ids=(oid,), out_fields=tuple(table.fields),
                       out_sr=service.sr)
    body = run_query(service, layer, req)
    if not body["features"]:
        return None
    return {"feature": body["features"][0]}


def select(service: Service, layer: Layer, req: QueryRequest) -> tuple[Layer, np.ndarray]:
    """The features the map shows of this layer (the planner's filter, with the query's
    time, historicMoment, gdbVersion, ranges and parameters) that match the query, and the
    layer as that request sees it (its table in the requested gdbVersion)."""
    m = resolve_map(service, MapFilters(time=req.time, declared=dict(req.declared),
                                        dynamic_layers=req.dynamic_layers or None))
    drawn = m.layer(layer.id)
    assert drawn is not None and drawn.table is not None
    where = req.where
    text = _text_clause(layer, req.text)
    if text is not None:
        where = f"({where}) AND ({text})" if where else text
    filt = layer_filter(m, drawn, MESSAGE).and_where(
        compile_clause(drawn.table.field_infos, where, "where", MESSAGE))
    if req.spatial is not None:
        filt = dataclasses.replace(filt, spatial=req.spatial)
    return drawn, select_features(drawn, filt, object_ids=req.object_ids)


def _ordered(layer: Layer, idx: np.ndarray, order_by: tuple[tuple[str, bool], ...]
             ) -> np.ndarray:
    if not order_by or len(idx) < 2:
        return idx
    table = layer.table
    assert table is not None
    keys = [([table.value(name, int(i)) for i in idx], desc) for name, desc in order_by]
    return idx[sort_rows(range(len(idx)), keys)]


def run_query(service: Service, layer: Layer, req: QueryRequest) -> dict:
    assert req.out_sr is not None
    layer, idx = select(service, layer, req)
    table = layer.table
    assert table is not None
    max_rc = service.max_record_count
    count = min(req.record_count or max_rc, max_rc)
    if req.statistics:
        return _statistics_body(layer, idx, req, count)
    if req.count_only or (req.extent_only and not req.ids_only):
        body: dict = {}
        if req.count_only:
            body["count"] = len(idx)
        if req.extent_only:
            body["extent"] = _extent(layer, idx, req.out_sr)
        return body
    idx = _ordered(layer, idx, req.order_by)
    if req.ids_only:
        return {"objectIdFieldName": table.oid_field,
                "objectIds": table.columns[table.oid_field][idx].tolist()}
    if req.distinct:
        return _distinct_body(layer, idx, req, count)
    window, exceeded = page(len(idx), req.offset, count)
    idx = idx[window]
    geoms = None
    if req.return_geometry:
        geoms = project(table.geometry[idx], table.sr, req.out_sr)
    transform = None
    quantized = geoms is not None and req.f != "geojson" and (
        req.quantization is not None or req.f == "pbf")
    if quantized:
        transform = make_transform(req.quantization, geoms, req.out_sr)
        view = (req.quantization or Quantization()).mode == "view"
        if view:  # generalise to the grid: nothing finer than the tolerance survives
            geoms = generalize(geoms, max(req.max_offset or 0.0, transform.scale))
        else:
            geoms = generalize(geoms, req.max_offset)
    elif geoms is not None:
        geoms = generalize(geoms, req.max_offset)
    with_z = req.return_z and layer_has_z(layer)
    if req.f == "geojson":
        feats = []
        for k, i in enumerate(idx.tolist()):
            feats.append({"type": "Feature", "id": int(table.columns[table.oid_field][i]),
                          "geometry": to_geojson(geoms[k], req.precision)
                          if geoms is not None else None,
                          "properties": raw_attributes(table, req.out_fields, i)})
        out: dict = {"type": "FeatureCollection", "features": feats}
        if exceeded:
            out["properties"] = {"exceededTransferLimit": True}
        return out
    features = []
    for k, i in enumerate(idx.tolist()):
        feat: dict = {"attributes": raw_attributes(table, req.out_fields, i)}
        if transform is not None:
            qgeom = to_esri_quantized(geoms[k], transform, view)
            if qgeom is not None:
                feat["geometry"] = qgeom
        elif geoms is not None:
            feat["geometry"] = to_esri(geoms[k], req.precision, with_z)
        features.append(feat)
    body = {"displayFieldName": layer.display_field or "",
            "fieldAliases": {f.name: f.alias for f in req.out_fields}}
    if req.return_geometry:
        body["geometryType"] = table.geometry_type
        body["spatialReference"] = req.out_sr.to_json()
        if with_z:
            body["hasZ"] = True
        if transform is not None:
            body["transform"] = transform.to_json()
    body["fields"] = [f.to_json() for f in req.out_fields]
    body["features"] = features
    if exceeded:
        body["exceededTransferLimit"] = True
    return body


def layer_has_z(layer: Layer) -> bool:
    """Whether the layer's geometries carry z values (``hasZ`` in the layer JSON)."""
    table = layer.table
    return table is not None and bool(len(table.geometry)) and bool(
        shapely.has_z(table.geometry).any())


def _extent(layer: Layer, idx: np.ndarray, sr: SpatialRef) -> dict:
    table = layer.table
    assert table is not None
    geoms = table.geometry[idx]
    geoms = geoms[~shapely.is_empty(geoms)]
    if not len(geoms):
        return {"xmin": None, "ymin": None, "xmax": None, "ymax": None,
                "spatialReference": sr.to_json()}
    bounds = shapely.total_bounds(project(geoms, table.sr, sr))
    return envelope_json(tuple(float(v) for v in bounds), sr)  # type: ignore[arg-type]


def _distinct_body(layer: Layer, idx: np.ndarray, req: QueryRequest, count: int) -> dict:
    table = layer.table
    assert table is not None
    seen: dict[tuple, dict] = {}
    for i in idx.tolist():
        attrs = raw_attributes(table, req.out_fields, i)
        seen.setdefault(tuple(attrs.values()), attrs)
    rows = list(seen.values())
    window, exceeded = page(len(rows), req.offset, count)
    body = {"displayFieldName": layer.display_field or "",
            "fieldAliases": {f.name: f.alias for f in req.out_fields},
            "fields": [f.to_json() for f in req.out_fields],
            "features": [{"attributes": a} for a in rows[window]]}
    if exceeded:
        body["exceededTransferLimit"] = True
    return body


def _statistics_body(layer: Layer, idx: np.ndarray, req: QueryRequest, count: int) -> dict:
    table = layer.table
    assert table is not None
    rows = stats_mod.compute(table, idx, req.statistics, req.group_by, req.having)
    if req.order_by:
        keys = [([r.get(name) for r in rows], desc) for name, desc in req.order_by]
        rows = [rows[k] for k in sort_rows(range(len(rows)), keys)]
    window, exceeded = page(len(rows), req.offset, count)
    fields = [f.to_json() for f in req.group_by] + [stats_mod.stat_field_json(s)
                                                     for s in req.statistics]
    body = {"displayFieldName": "",
            "fieldAliases": {f["name"]: f["alias"] for f in fields},
            "fields": fields,
            "features": [{"attributes": r} for r in rows[window]]}
    if exceeded:
        body["exceededTransferLimit"] = True
    return body
