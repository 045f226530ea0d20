"""Layer and service declarations that export parameters act on: ``rangeInfos``,
``parameterInfos``, ``archiving``, raster ``timeSeries`` and geodatabase ``versions``.

ArcGIS only honours ``mapRangeValues``, ``layerParameterValues``, ``historicMoment``, a time
on a raster and ``gdbVersion`` where the service was authored for them; these dataclasses hold
what a service definition authored, validated once at load time against the real data, so a
request can be checked and applied without touching the definition file again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from mapserver.sources.features import NUMERIC_FIELD_TYPES, FeatureTable
from mapserver.sources.rasters import RasterSource
from mapserver.where import compile_clause

PARAMETER_TYPES = ("esriFieldTypeString", "esriFieldTypeInteger", "esriFieldTypeSmallInteger",
                   "esriFieldTypeDouble", "esriFieldTypeSingle", "esriFieldTypeDate")
PLACEHOLDER = re.compile(r"::([A-Za-z_][A-Za-z0-9_]*)")


class _Ctx(Protocol):  # catalog.loader._Ctx: names the file and field in every error
    def fail(self, fieldname: str, problem: str) -> Exception: ...

    def get(self, obj: Mapping, key: str, where: str, types: type | tuple,
            default: Any = None, required: bool = False) -> Any: ...


@dataclass(frozen=True)
class RangeInfo:
    """One ``rangeInfos`` entry: a named numeric range over ``field``."""

    name: str
    field: str
    full_extent: tuple[float, float]
    current_extent: tuple[float | None, float | None] | None = None  # the default filter

    def to_json(self) -> dict:
        cur = list(self.current_extent) if self.current_extent else list(self.full_extent)
        return {"name": self.name, "type": "rangeInfo", "currentRangeExtent": cur,
                "fullRangeExtent": list(self.full_extent)}


@dataclass(frozen=True)
class ParameterInfo:
    """One ``parameterInfos`` entry of a parameterized filter."""

    name: str
    data_type: str
    default: Any = None
    multiple: bool = False

    def to_json(self) -> dict:
        return {"name": self.name, "dataType": self.data_type, "defaultValue": self.default,
                "multipleValues": self.multiple, "type": "parameterInfo"}


@dataclass(frozen=True)
class ParameterFilter:
    """A where template with ``::name`` placeholders plus what each placeholder accepts."""

    template: str
    infos: tuple[ParameterInfo, ...]

    def info(self, name: str) -> ParameterInfo | None:
        return next((p for p in self.infos if p.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class Archiving:
    """Archive date fields: a row is valid from ``from_field`` until ``to_field`` (NULL:
    still current). Without ``historicMoment`` only current rows are drawn."""

    from_field: str
    to_field: str
    start_moment: int | None  # the earliest from date (epoch ms), advertised

    def to_json(self) -> dict:
        return {"supportsQueryWithHistoricMoment": True,
                "startArchivingMoment": self.start_moment}


@dataclass(frozen=True)
class SeriesEntry:
    """One dated raster of a raster layer's ``timeSeries``."""

    time: int  # epoch ms
    raster: RasterSource = field(compare=False, hash=False)


def parse_date_ms(value: Any) -> int | None:
    """Epoch ms from a number or an ISO ``YYYY-MM-DD[THH:MM:SS]`` string (UTC)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return None


def _number_pair(ctx: _Ctx, value: Any, where: str, allow_null: bool
                 ) -> tuple[float | None, float | None]:
    ok = isinstance(value, list) and len(value) == 2 and all(
        (v is None and allow_null) or (isinstance(v, int | float) and not isinstance(v, bool))
        for v in value)
    if not ok:
        raise ctx.fail(where, "must be [min, max] numbers")
    return (None if value[0] is None else float(value[0]),
            None if value[1] is None else float(value[1]))


def load_range_infos(ctx: _Ctx, value: Any, where: str,
                     table: FeatureTable) -> tuple[RangeInfo, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ctx.fail(where, "must be a list")
    out: list[RangeInfo] = []
    for i, d in enumerate(value):
        w = f"{where}[{i}]."
        if not isinstance(d, dict):
            raise ctx.fail(f"{where}[{i}]", "must be an object")
        name = ctx.get(d, "name", w, str, required=True)
        fname = ctx.get(d, "field", w, str, required=True)
        f = table.field(fname)
        if f is None or f.type not in NUMERIC_FIELD_TYPES:
            raise ctx.fail(f"{w}field", f"must name a numeric field ({fname!r} is not one)")
        if any(r.name.lower() == name.lower() for r in out):
            raise ctx.fail(f"{w}name", f"duplicate range name {name!r}")
        vals = np.asarray(table.columns[f.name], dtype=float)
        vals = vals[np.isfinite(vals)]
        full = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
        if d.get("fullRangeExtent") is not None:
            lo, hi = _number_pair(ctx, d["fullRangeExtent"], f"{w}fullRangeExtent", False)
            full = (float(lo), float(hi))  # type: ignore[arg-type]
        cur = None
        if d.get("currentRangeExtent") is not None:
            cur = _number_pair(ctx, d["currentRangeExtent"], f"{w}currentRangeExtent", True)
        out.append(RangeInfo(name, f.name, full, cur))
    return tuple(out)


def load_parameter_filter(ctx: _Ctx, d: dict, where: str,
                          table: FeatureTable) -> ParameterFilter | None:
    """``parameterInfos`` plus the ``parameterFilter`` where template they fill in."""
    infos_doc = d.get("parameterInfos")
    template = d.get("parameterFilter")
    if infos_doc is None and template is None:
        return None
    if not isinstance(template, str) or not template.strip():
        raise ctx.fail(f"{where}parameterFilter", "is required with parameterInfos (a where "
                                                  "clause with ::name placeholders)")
    if not isinstance(infos_doc, list) or not infos_doc:
        raise ctx.fail(f"{where}parameterInfos", "must list the template's parameters")
    infos: list[ParameterInfo] = []
    for i, p in enumerate(infos_doc):
        w = f"{where}parameterInfos[{i}]."
        if not isinstance(p, dict):
            raise ctx.fail(f"{where}parameterInfos[{i}]", "must be an object")
        name = ctx.get(p, "name", w, str, required=True)
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ctx.fail(f"{w}name", "must be letters, digits and _")
        dtype = ctx.get(p, "dataType", w, str, required=True)
        if dtype not in PARAMETER_TYPES:
            raise ctx.fail(f"{w}dataType", f"must be one of {', '.join(PARAMETER_TYPES)}")
        multiple = ctx.get(p, "multipleValues", w, bool, False)
        info = ParameterInfo(name, dtype, None, multiple)
        default = p.get("defaultValue")
        if default is None:
            raise ctx.fail(f"{w}defaultValue", "is required (used when a request gives none)")
        try:
            literal_for(info, default)
        except ValueError as exc:
            raise ctx.fail(f"{w}defaultValue", str(exc)) from exc
        infos.append(ParameterInfo(name, dtype, default, multiple))
    used = {m.lower() for m in PLACEHOLDER.findall(template)}
    declared = {p.name.lower() for p in infos}
    if used != declared:
        raise ctx.fail(f"{where}parameterFilter", "its ::placeholders must be exactly the "
                                                  "declared parameterInfos names")
    pf = ParameterFilter(template, tuple(infos))
    # compile once with the defaults so a bad template fails at load, not per request
    try:
        compile_clause(table.field_infos, fill_template(pf, {}), "parameterFilter")
    except Exception as exc:  # WhereClauseError: report it against the definition
        raise ctx.fail(f"{where}parameterFilter", getattr(exc, "details", [str(exc)])[-1]
                       ) from exc
    return pf


def literal_for(info: ParameterInfo, value: Any) -> str:
    """The where-clause literal for ``value``, checked strictly against the declared type, so
    nothing a client sends can become anything but one literal (or a list of literals)."""
    if info.multiple:
        if not isinstance(value, list) or not value or len(value) > 100:
            raise ValueError(f"'{info.name}' takes a list of 1 to 100 values")
        return ", ".join(_one_literal(info, v) for v in value)
    return _one_literal(info, value)


def _one_literal(info: ParameterInfo, v: Any) -> str:
    t = info.data_type
    if t == "esriFieldTypeString":
        if not isinstance(v, str) or len(v) > 1000:
            raise ValueError(f"'{info.name}' must be a string")
        return "'" + v.replace("'", "''") + "'"
    if t == "esriFieldTypeDate":
        ms = parse_date_ms(v)
        if ms is None or not -62135596800000 <= ms <= 253402300799000:
            raise ValueError(f"'{info.name}' must be a date in epoch milliseconds")
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return f"TIMESTAMP '{dt:%Y-%m-%d %H:%M:%S}'"
    if isinstance(v, bool) or not isinstance(v, int | float) or not np.isfinite(v):
        raise ValueError(f"'{info.name}' must be a number")
    if t in ("esriFieldTypeInteger", "esriFieldTypeSmallInteger"):
        if v != int(v):
            raise ValueError(f"'{info.name}' must be an integer")
        return str(int(v))
    return repr(float(v))


def fill_template(pf: ParameterFilter, values: Mapping[str, Any]) -> str:
    """The template with every placeholder replaced by a typed literal (defaults where
    ``values``, keyed by lower-case name, has none)."""
    def sub(m: re.Match) -> str:
        info = pf.info(m.group(1))
        assert info is not None
        return literal_for(info, values.get(info.name.lower(), info.default))

    return PLACEHOLDER.sub(sub, pf.template)


def load_archiving(ctx: _Ctx, value: Any, where: str, table: FeatureTable) -> Archiving | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ctx.fail(where, "must be an object")
    names = []
    for key in ("fromField", "toField"):
        fname = ctx.get(value, key, f"{where}.", str, required=True)
        f = table.field(fname)
        if f is None or f.type != "esriFieldTypeDate":
            raise ctx.fail(f"{where}.{key}", f"must name a date field ({fname!r} is not one)")
        names.append(f.name)
    start = None
    col = table.columns[names[0]]
    null = table.columns.get(names[0] + "__null")
    valid = col[~null] if null is not None else col
    if len(valid):
        start = int(np.min(valid))
    return Archiving(names[0], names[1], start)


def load_time_series(ctx: _Ctx, value: Any, where: str, resolve) -> tuple[SeriesEntry, ...]:
    """``[{"time": epoch ms or "YYYY-MM-DD", "source": path}]``; ``resolve(path, where)`` finds
    and checks the file as for ``source``. Sorted by time."""
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise ctx.fail(where, "must list at least one {time, source}")
    out = []
    for i, d in enumerate(value):
        w = f"{where}[{i}]."
        if not isinstance(d, dict):
            raise ctx.fail(f"{where}[{i}]", "must be an object")
        ms = parse_date_ms(d.get("time"))
        if ms is None:
            raise ctx.fail(f"{w}time", "must be epoch milliseconds or an ISO date")
        path = resolve(ctx.get(d, "source", w, str, required=True), w)
        try:
            raster = RasterSource.open(path)
        except Exception as exc:  # rasterio raises several types; all mean "cannot use it"
            raise ctx.fail(f"{w}source", f"cannot be opened as a raster: {exc}") from exc
        out.append(SeriesEntry(ms, raster))
    times = [e.time for e in out]
    if len(set(times)) != len(times):
        raise ctx.fail(where, "has two rasters with the same time")
    return tuple(sorted(out, key=lambda e: e.time))


def load_versions(ctx: _Ctx, value: Any, layers: Mapping[int, Any], resolve
                  ) -> dict[str, dict[int, FeatureTable]]:
    """``{"sde.DEFAULT": {}, "sde.USER1": {"layers": {"1": "alt.geojson"}}}``: per version,
    feature layers read from another source (same fields checked at load)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not value:
        raise ctx.fail("versions", "must be an object of version name -> {layers}")
    out: dict[str, dict[int, FeatureTable]] = {}
    for vname, vdoc in value.items():
        w = f"versions.{vname}"
        if not isinstance(vdoc, dict):
            raise ctx.fail(w, "must be an object")
        alts = ctx.get(vdoc, "layers", f"{w}.", dict, {})
        tables: dict[int, FeatureTable] = {}
        for key, src in alts.items():
            try:
                lid = int(key)
            except ValueError as exc:
                raise ctx.fail(f"{w}.layers", f"invalid layer id {key!r}") from exc
            base = layers.get(lid)
            if base is None or base.table is None:
                raise ctx.fail(f"{w}.layers.{key}", "must name a feature layer")
            if not isinstance(src, str):
                raise ctx.fail(f"{w}.layers.{key}", "must be a source path")
            try:
                table = FeatureTable.read(resolve(src, f"{w}.layers.{key}."))
            except Exception as exc:  # pyogrio errors, or the resolver's own
                if hasattr(exc, "path") and hasattr(exc, "problem"):
                    raise
                raise ctx.fail(f"{w}.layers.{key}", f"cannot be read: {exc}") from exc
            if [f.name for f in table.fields] != [f.name for f in base.table.fields]:
                raise ctx.fail(f"{w}.layers.{key}", "must have the same fields as the layer")
            tables[lid] = table
        out[vname] = tables
    return out
