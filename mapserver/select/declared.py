"""Map parameters that act on what a service declares: ``gdbVersion``, ``historicMoment``,
``layerParameterValues``, ``mapRangeValues``, ``layerRangeValues`` and the raster time series.

Each becomes either a different data source for a layer (versions, the dated raster) or one
more where clause ANDed into the layer's selection. Clauses are built from validated, typed
literals and compiled by the same where engine as ``layerDefs``, so a request value can only
ever be a literal. A parameter is refused (by the export core) when the service declares
nothing it could apply to; here, values that name unknown layers, ranges, parameters or
versions are refused with the parameter's name in the details.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mapserver.catalog.declared import fill_template, literal_for
from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter
from mapserver.params.filters import Window
from mapserver.select.time import interval_mask
from mapserver.sources.features import FeatureTable
from mapserver.where import WhereExpression, combine_and, compile_clause

MESSAGE = "Invalid or missing input parameters."


def _bad(name: str, problem: str) -> InvalidParameter:
    return InvalidParameter(MESSAGE, [f"'{name}' {problem}"])


def declares(service: Service, layers: Sequence[Layer], name: str) -> bool:
    """Whether ``name`` has anything to act on in this service (else it is refused)."""
    if name == "gdbVersion":
        return bool(service.versions)
    if name == "historicMoment":
        return any(lyr.archiving for lyr in layers)
    if name == "layerParameterValues":
        return any(lyr.parameter_filter for lyr in layers)
    if name in ("mapRangeValues", "layerRangeValues"):
        return any(lyr.range_infos for lyr in layers)
    return False


def _json(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except ValueError as exc:
        raise _bad(name, "is not valid JSON") from exc


def _layer_key(key: Any, name: str, by_id: Mapping[int, Layer]) -> Layer:
    try:
        lid = int(str(key).strip())
    except ValueError as exc:
        raise _bad(name, f"has an invalid layer id '{str(key)[:20]}'") from exc
    layer = by_id.get(lid)
    if layer is None:
        raise _bad(name, f"the requested layer (layerId: {lid}) was not found.")
    return layer


def _version(service: Service, version: str, param: str) -> str:
    """The service's name for ``version`` (case-insensitive, as geodatabases)."""
    if not service.versions:
        raise InvalidParameter(MESSAGE, [f"'{param}' names version '{version[:60]}', but this "
                                         "service declares no geodatabase versions"])
    match = next((v for v in service.versions if v.lower() == version.strip().lower()), None)
    if match is None:
        raise InvalidParameter(MESSAGE, [
            f"'{param}' names unknown version '{version[:60]}'; this service has "
            f"{', '.join(service.versions)}"])
    return match


def version_table(service: Service, layer: Layer, version: str, param: str
                  ) -> FeatureTable | None:
    """The table ``layer`` (a service layer) reads in ``version``: its own table where the
    version does not change that layer."""
    alts = service.versions[_version(service, version, param)]
    return alts.get(layer.id, layer.table)


def apply_version(service: Service, layers: Sequence[Layer], version: str | None,
                  keep: frozenset[int] = frozenset()) -> list[Layer]:
    """Layers reading their tables from ``version``; ``keep`` names layers (by id) whose own
    source already chose a version (a dynamic layer's ``source.gdbVersion``)."""
    if version is None:
        return list(layers)
    alts = service.versions[_version(service, version, "gdbVersion")]
    swap = {}  # a service layer's default table -> its table in this version
    for lid, table in alts.items():
        base = service.layer(lid)
        if base is not None and base.table is not None:
            swap[id(base.table)] = table
    return [dataclasses.replace(lyr, table=swap[id(lyr.table)])
            if lyr.id not in keep and lyr.table is not None and id(lyr.table) in swap else lyr
            for lyr in layers]


def _moment_literal(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"TIMESTAMP '{dt:%Y-%m-%d %H:%M:%S}'"


def parse_moment(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        ms = int(float(value))
    except ValueError as exc:
        raise _bad("historicMoment", "must be a time in epoch milliseconds") from exc
    if not -62135596800000 <= ms <= 253402300799000:
        raise _bad("historicMoment", "must be a time in epoch milliseconds")
    return ms


def _parameter_values(value: str | None, by_id: Mapping[int, Layer]
                      ) -> dict[int, dict[str, Any]]:
    """``[{"<layerId>": {"<name>": value}}]`` (the documented array) or the bare object."""
    name = "layerParameterValues"
    if value is None or not value.strip():
        return {}
    obj = _json(value, name)
    items = obj if isinstance(obj, list) else [obj]
    out: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise _bad(name, "must be [{\"<layerId>\": {\"<parameter>\": <value>}}]")
        for key, params in item.items():
            layer = _layer_key(key, name, by_id)
            pf = layer.parameter_filter
            if pf is None:
                raise _bad(name, f"layer {layer.id} has no parameterInfos")
            if not isinstance(params, dict):
                raise _bad(name, f"values for layer {layer.id} must be an object")
            vals = out.setdefault(layer.id, {})
            for pname, v in params.items():
                info = pf.info(str(pname))
                if info is None:
                    raise _bad(name, f"layer {layer.id} has no parameter '{str(pname)[:40]}'; "
                                     f"it has {', '.join(p.name for p in pf.infos)}")
                try:
                    literal_for(info, v)
                except ValueError as exc:
                    raise _bad(name, f"layer {layer.id}: {exc}") from exc
                vals[info.name.lower()] = v
    return out


RangeValue = tuple[float | None, float | None]


def _range_value(v: Any, name: str) -> RangeValue:
    def num(x: Any) -> float | None:
        if x is None:
            return None
        if isinstance(x, bool) or not isinstance(x, int | float) or not np.isfinite(x):
            raise _bad(name, "values must be a number or [min, max] (null: no limit)")
        return float(x)

    if isinstance(v, list):
        if len(v) != 2:
            raise _bad(name, "values must be a number or [min, max] (null: no limit)")
        lo, hi = num(v[0]), num(v[1])
        if lo is not None and hi is not None and lo > hi:
            raise _bad(name, "range min must not be above its max")
        return (lo, hi)
    x = num(v)
    if x is None:
        raise _bad(name, "values must be a number or [min, max] (null: no limit)")
    return (x, x)


def _range_list(obj: Any, name: str) -> dict[str, RangeValue]:
    if not isinstance(obj, list) or not all(isinstance(r, dict) for r in obj):
        raise _bad(name, "must be [{\"name\": <range>, \"value\": <v> or [<min>, <max>]}]")
    out = {}
    for r in obj:
        rname = r.get("name")
        if not isinstance(rname, str) or "value" not in r:
            raise _bad(name, "entries need a name and a value")
        out[rname.lower()] = _range_value(r["value"], name)
    return out


def _map_ranges(value: str | None, layers: Sequence[Layer]) -> dict[str, RangeValue]:
    if value is None or not value.strip():
        return {}
    out = _range_list(_json(value, "mapRangeValues"), "mapRangeValues")
    known = {r.name.lower() for lyr in layers for r in lyr.range_infos}
    for rname in out:
        if rname not in known:
            raise _bad("mapRangeValues", f"no layer has a range named '{rname[:40]}'")
    return out


def _layer_ranges(value: str | None, by_id: Mapping[int, Layer]
                  ) -> dict[int, dict[str, RangeValue]]:
    """``[{"<layerId>": {"<range>": <v> or [<min>, <max>]}}]`` (the Export Map document's
    form, like layerParameterValues), ``{"<layerId>": [{"name", "value"}]}``, or either
    object bare / inside an array; every element of the array is read."""
    name = "layerRangeValues"
    if value is None or not value.strip():
        return {}
    obj = _json(value, name)
    items = obj if isinstance(obj, list) else [obj]
    if not items or not all(isinstance(i, dict) and "name" not in i for i in items):
        raise _bad(name, "must be [{\"<layerId>\": {\"<range>\": <value> or [<min>, <max>]}}]")
    out: dict[int, dict[str, RangeValue]] = {}
    for item in items:
        for key, ranges in item.items():
            layer = _layer_key(key, name, by_id)
            if isinstance(ranges, dict):  # {"elevation": [1000, 1500]}
                vals = {str(k).lower(): _range_value(v, name) for k, v in ranges.items()}
            else:
                vals = _range_list(ranges, name)
            for rname in vals:
                if not any(r.name.lower() == rname for r in layer.range_infos):
                    raise _bad(name, f"layer {layer.id} has no range named '{rname[:40]}'")
            out.setdefault(layer.id, {}).update(vals)
    return out


def _range_clause(fieldname: str, rng: RangeValue) -> str | None:
    lo, hi = rng
    parts = []
    if lo is not None:
        parts.append(f"{fieldname} >= {lo!r}")
    if hi is not None:
        parts.append(f"{fieldname} <= {hi!r}")
    return " AND ".join(parts) or None


def declared_filters(layers: Sequence[Layer], extras: Mapping[str, str]
                     ) -> dict[int, WhereExpression]:
    """Per layer id, the where clause from archiving, parameterized filters and ranges
    (defaults apply without any request parameter, as in ArcGIS)."""
    by_id = {lyr.id: lyr for lyr in layers}
    moment = parse_moment(extras.get("historicMoment"))
    params = _parameter_values(extras.get("layerParameterValues"), by_id)
    map_ranges = _map_ranges(extras.get("mapRangeValues"), layers)
    layer_ranges = _layer_ranges(extras.get("layerRangeValues"), by_id)
    out: dict[int, WhereExpression] = {}
    for lyr in layers:
        if lyr.table is None:
            continue
        clauses: list[tuple[str, str]] = []
        if lyr.archiving is not None:
            a = lyr.archiving
            if moment is None:  # "If historicMoment is not specified, the current features"
                clauses.append(("historicMoment", f"{a.to_field} IS NULL"))
            else:
                t = _moment_literal(moment)
                clauses.append(("historicMoment", f"{a.from_field} <= {t} AND "
                                                  f"({a.to_field} IS NULL OR {a.to_field} > {t})"))
        if lyr.parameter_filter is not None:
            clauses.append(("layerParameterValues",
                            fill_template(lyr.parameter_filter, params.get(lyr.id, {}))))
        for r in lyr.range_infos:
            key = r.name.lower()
            rng = layer_ranges.get(lyr.id, {}).get(key) or map_ranges.get(key) \
                or r.current_extent
            text = _range_clause(r.field, rng) if rng else None
            if text:
                clauses.append(("layerRangeValues" if key in layer_ranges.get(lyr.id, {})
                                else "mapRangeValues", text))
        exprs = [compile_clause(lyr.table.field_infos, text, pname, MESSAGE)
                 for pname, text in clauses]
        expr = combine_and(*exprs) if exprs else None
        if expr is not None:
            out[lyr.id] = expr
    return out


def series_layer(layer: Layer, window: Window | None, relation: str) -> Layer | None:
    """The layer drawing the dated raster for ``window``: the latest date that stands in
    ``relation`` to it, none when no date does, the latest date without a time."""
    if not layer.time_series:
        return layer
    times = np.array([e.time for e in layer.time_series], dtype=np.int64)
    if window is None:
        chosen = len(times) - 1
    else:
        hits = np.flatnonzero(interval_mask(times, times, window, relation))
        if not len(hits):
            return None
        chosen = int(hits[-1])
    return dataclasses.replace(layer, raster=layer.time_series[chosen].raster)
