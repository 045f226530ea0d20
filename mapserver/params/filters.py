"""The map filter group: everything in a request that decides which layers and which features
a map shows, apart from the view (bbox, size, SRs, which is ``params/export.py``).

``/export``, identify, find, legend, tiles and batch images all parse these parameters here,
into one :class:`MapFilters` value, and hand it to the planner (``mapserver/select``); no
entry point interprets a filter parameter itself. ``spatialFilter``, ``selectionDefinitions``
and ``clipping`` are export-only concepts (ArcGIS documents them for ``export`` alone): the
other operations never parse them, so they stay empty there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from mapserver import limits
from mapserver.datum import Requested, parse_datum_transformations
from mapserver.errors import InvalidParameter
from mapserver.features.geometry_in import (
    GEOMETRY_TYPES,
    InputGeometry,
    geometry_from_json,
    lenient_json,
)
from mapserver.geo.sr import SpatialRef
from mapserver.params.common import (
    Params,
    parse_float,
    parse_int_list,
    parse_json,
    safe_loads,
)

TIME_RELATIONS = ("esriTimeRelationOverlaps", "esriTimeRelationOverlapsStartWithinEnd",
                  "esriTimeRelationAfterStartOverlapsEnd", "esriTimeRelationWithin")
OVERLAPS = TIME_RELATIONS[0]

FIXED_UNITS_MS = {"esriTimeUnitsMilliseconds": 1, "esriTimeUnitsSeconds": 1000,
                  "esriTimeUnitsMinutes": 60_000, "esriTimeUnitsHours": 3_600_000,
                  "esriTimeUnitsDays": 86_400_000, "esriTimeUnitsWeeks": 7 * 86_400_000}
CALENDAR_UNITS_MONTHS = {"esriTimeUnitsMonths": 1, "esriTimeUnitsYears": 12,
                         "esriTimeUnitsDecades": 120, "esriTimeUnitsCenturies": 1200}
TIME_UNITS = (*FIXED_UNITS_MS, *CALENDAR_UNITS_MONTHS, "esriTimeUnitsUnknown")

Window = tuple[int | None, int | None]


@dataclass(frozen=True)
class TimeOptions:
    """One layer's ``layerTimeOptions`` entry."""

    use_time: bool = True
    cumulative: bool = False
    offset: float = 0.0
    offset_units: str = "esriTimeUnitsMilliseconds"


LAYER_VERBS = ("show", "hide", "include", "exclude")


@dataclass(frozen=True)
class LayerSelection:
    """``layers=show:1,2`` and friends. ``verb`` None means default visibility."""

    verb: str | None = None
    ids: tuple[int, ...] = ()


def _bad(name: str, problem: str) -> InvalidParameter:
    return InvalidParameter("Invalid or missing input parameters.", [f"'{name}' {problem}"])


@dataclass(frozen=True)
class Clipping:
    """``clipping``: draw only inside ``geometry``, except for ``excluded`` layers."""

    geometry: InputGeometry  # sr filled in (the map's when the JSON names none)
    excluded: frozenset[int] = frozenset()


SPATIAL_RELS = ("esriSpatialRelIntersects", "esriSpatialRelContains", "esriSpatialRelCrosses",
                "esriSpatialRelEnvelopeIntersects", "esriSpatialRelIndexIntersects",
                "esriSpatialRelOverlaps", "esriSpatialRelTouches", "esriSpatialRelWithin",
                "esriSpatialRelRelation")


@dataclass(frozen=True)
class SpatialFilter:
    """``spatialFilter``: draw only features in relation ``rel`` with ``geometry``."""

    geometry: InputGeometry
    rel: str = "esriSpatialRelIntersects"
    relation_param: str | None = None


@dataclass(frozen=True)
class Selection:
    """One ``selectionDefinitions`` entry. Colours are 0..255 RGB(A) lists."""

    layer_id: int
    object_ids: tuple[int, ...] = ()
    unique_ids: tuple[object, ...] = ()
    color: tuple[int, ...] | None = None
    fill_color: tuple[int, ...] | None = None


def parse_layers(value: str | None) -> LayerSelection:
    if value is None:
        return LayerSelection()
    verb, sep, rest = value.partition(":")
    verb = verb.strip().lower()
    if not sep or verb not in LAYER_VERBS:
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'layers' must be show|hide|include|exclude:<id>,<id>"])
    ids = tuple(parse_int_list(rest, "layers"))
    if verb == "show" and not ids:  # QGIS sends "show:" when nothing is chosen
        return LayerSelection()
    return LayerSelection(verb, ids)


def parse_layer_defs(value: str | None) -> dict[int, str]:
    """JSON ``{"0": "POP > 1"}`` or the legacy ``0:POP > 1;1:...`` form."""
    if value is None:
        return {}
    text = value.strip()
    out: dict[int, str] = {}
    if text.startswith("{"):
        obj = safe_loads(text, "layerDefs")
        if not isinstance(obj, dict):
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'layerDefs' must be a JSON object"])
        items = obj.items()
    elif text.startswith("["):
        arr = safe_loads(text, "layerDefs")
        if not isinstance(arr, list) or not all(isinstance(a, dict) for a in arr):
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'layerDefs' array must hold {layerId, where} objects"])
        items = [(a.get("layerId"), a.get("where") or a.get("definitionExpression") or "")
                 for a in arr]
    else:
        items = []
        for part in text.split(";"):
            if not part.strip():
                continue
            lid, sep, expr = part.partition(":")
            if not sep:
                raise InvalidParameter("Invalid or missing input parameters.",
                                       ["'layerDefs' must be JSON or 'id:expression;...'"])
            items.append((lid.strip(), expr))
    for lid, expr in items:
        try:
            key = int(str(lid).strip())
        except ValueError as exc:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'layerDefs' has an invalid layer id '{str(lid)[:20]}'"]
                                   ) from exc
        if not isinstance(expr, str):
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'layerDefs' for layer {key} must be a string"])
        out[key] = expr
    return out


def parse_time(value: str | None) -> tuple[int | None, int | None] | None:
    """``t`` or ``t1,t2`` in epoch ms; ``null`` ends are open."""
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (1, 2):
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'time' must be <instant> or <start>,<end> in epoch ms"])
    vals: list[int | None] = []
    for p in parts:
        if p.lower() in ("null", "none", ""):
            vals.append(None)
        else:
            vals.append(int(parse_float(p, "time")))
    if len(vals) == 1:
        if vals[0] is None:
            return None
        return (vals[0], vals[0])
    if vals[0] is not None and vals[1] is not None and vals[0] > vals[1]:
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'time' start must not be after its end"])
    return (vals[0], vals[1])


def parse_time_relation(value: str | None) -> str:
    if value is None:
        return "esriTimeRelationOverlaps"
    for rel in TIME_RELATIONS:
        if rel.lower() == value.strip().lower():
            return rel
    raise _bad("timeRelation", f"must be one of {', '.join(TIME_RELATIONS)}")


def time_options(obj: object, where: str) -> TimeOptions:
    if not isinstance(obj, dict):
        raise _bad(where, "must be an object of useTime, timeDataCumulative, timeOffset, "
                          "timeOffsetUnits")
    use = obj.get("useTime", True)
    cum = obj.get("timeDataCumulative", False)
    if not isinstance(use, bool) or not isinstance(cum, bool):
        raise _bad(where, "useTime and timeDataCumulative must be true or false")
    # the ArcGIS doc example spells it timeOffsetOffset once; accept both
    offset = obj.get("timeOffset", obj.get("timeOffsetOffset"))
    if offset is None:
        offset = 0.0
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise _bad(where, "timeOffset must be a number")
    if not math.isfinite(offset):
        raise _bad(where, "timeOffset must be a finite number")
    units = obj.get("timeOffsetUnits") or "esriTimeUnitsMilliseconds"
    if units not in TIME_UNITS:
        raise _bad(where, f"timeOffsetUnits must be one of {', '.join(TIME_UNITS)}")
    years = (abs(offset) * CALENDAR_UNITS_MONTHS[units] / 12.0 if units in CALENDAR_UNITS_MONTHS
             else abs(offset) * FIXED_UNITS_MS.get(units, 1) / 31_557_600_000.0)
    max_years = limits.current().max_time_offset_years
    if years > max_years:
        raise _bad(where, f"timeOffset must be at most {max_years:g} years "
                          "(MAPSERVER_MAX_TIME_OFFSET_YEARS)")
    return TimeOptions(use_time=use, cumulative=cum, offset=float(offset), offset_units=units)


def parse_layer_time_options(value: str | None) -> dict[int, TimeOptions]:
    if value is None:
        return {}
    obj = parse_json(value, "layerTimeOptions")
    if not isinstance(obj, dict):
        raise _bad("layerTimeOptions", "must be a JSON object keyed by layer id")
    out = {}
    for key, opts in obj.items():
        try:
            lid = int(key)
        except ValueError as exc:
            raise _bad("layerTimeOptions", f"has an invalid layer id '{str(key)[:20]}'") from exc
        out[lid] = time_options(opts, f"layerTimeOptions[{lid}]")
    return out


def _json_object(value: str, name: str) -> dict:
    obj = lenient_json(value, name)
    if not isinstance(obj, dict):
        raise _bad(name, "must be a JSON object")
    return obj


def _geometry(obj: object, name: str, gtype: str | None, map_sr: SpatialRef) -> InputGeometry:
    """Esri geometry JSON (shared parser with query/identify); the map's SR when none given."""
    if isinstance(obj, str):
        obj = lenient_json(obj, name)
    if not isinstance(obj, dict):
        raise _bad(name, "needs a geometry object")
    bad = InvalidParameter("Invalid or missing input parameters.",
                           [f"'{name}' geometry is invalid"])
    geom = geometry_from_json(obj, gtype or "esriGeometryEnvelope", bad)
    if geom.geometry.is_empty:
        raise bad
    if gtype is not None and gtype != geom.geometry_type:
        raise _bad(name, f"geometry is not an {gtype}")
    return InputGeometry(geom.geometry, geom.geometry_type, geom.sr or map_sr)


def parse_clipping(value: str | None, map_sr: SpatialRef) -> Clipping | None:
    if value is None:
        return None
    obj = _json_object(value, "clipping")
    gtype = obj.get("geometryType") or None
    if gtype is not None and gtype not in ("esriGeometryPolygon", "esriGeometryEnvelope"):
        raise _bad("clipping", "geometryType must be esriGeometryPolygon or "
                               "esriGeometryEnvelope")
    if obj.get("geometry") is None:
        raise _bad("clipping", "needs a geometry")
    geom = _geometry(obj["geometry"], "clipping", gtype, map_sr)
    if geom.geometry_type not in ("esriGeometryPolygon", "esriGeometryEnvelope"):
        raise _bad("clipping", "geometry must be a polygon or an envelope")
    excluded = obj.get("excludedLayers") or []
    if not isinstance(excluded, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in excluded):
        raise _bad("clipping", "excludedLayers must be a list of layer ids")
    return Clipping(geom, frozenset(excluded))


def parse_spatial_filter(value: str | None, map_sr: SpatialRef) -> SpatialFilter | None:
    if value is None:
        return None
    obj = _json_object(value, "spatialFilter")
    rel = obj.get("spatialRel") or "esriSpatialRelIntersects"
    if rel not in SPATIAL_RELS:
        raise _bad("spatialFilter", f"spatialRel must be one of {', '.join(SPATIAL_RELS)}")
    if obj.get("geometry") is None:
        raise _bad("spatialFilter", "needs a geometry")
    gtype = obj.get("geometryType") or None
    if gtype is not None and gtype not in GEOMETRY_TYPES:
        raise _bad("spatialFilter", f"geometryType must be one of {', '.join(GEOMETRY_TYPES)}")
    geom = _geometry(obj["geometry"], "spatialFilter", gtype, map_sr)
    param = obj.get("relationParam")
    if rel == "esriSpatialRelRelation":
        if not isinstance(param, str) or not re.fullmatch(r"[012TF*]{9}", param.upper()):
            raise _bad("spatialFilter", "esriSpatialRelRelation needs a relationParam of nine "
                                        "DE-9IM characters (0, 1, 2, T, F, *)")
        param = param.upper()
    return SpatialFilter(geom, rel, param)


def _color(v: object, name: str) -> tuple[int, ...] | None:
    if v is None:
        return None
    if (not isinstance(v, list) or len(v) not in (3, 4)
            or not all(isinstance(c, int | float) and not isinstance(c, bool) and 0 <= c <= 255
                       for c in v)):
        raise _bad(name, "colours must be [r, g, b] or [r, g, b, a] with values 0-255")
    return tuple(int(c) for c in v)


def parse_selections(value: str | None) -> tuple[Selection, ...]:
    if value is None:
        return ()
    arr = parse_json(value, "selectionDefinitions")
    if not isinstance(arr, list) or not all(isinstance(a, dict) for a in arr):
        raise _bad("selectionDefinitions", "must be a JSON array of objects")
    out = []
    for a in arr:
        try:
            lid = int(a.get("layerId"))
        except (TypeError, ValueError) as exc:
            raise _bad("selectionDefinitions", "entries need a layerId") from exc
        oids = a.get("objectIds") or []
        uids = a.get("uniqueIds") or []
        if oids and uids:
            raise _bad("selectionDefinitions", "objectIds and uniqueIds must not be combined")
        if not oids and not uids:
            raise _bad("selectionDefinitions", f"entry for layer {lid} needs objectIds or "
                                               "uniqueIds")
        if not isinstance(oids, list) or not all(
                isinstance(o, int) and not isinstance(o, bool) for o in oids):
            raise _bad("selectionDefinitions", "objectIds must be a list of integers")
        if not isinstance(uids, list):
            raise _bad("selectionDefinitions", "uniqueIds must be a list")
        out.append(Selection(lid, tuple(oids), tuple(
            tuple(u) if isinstance(u, list) else u for u in uids),
            _color(a.get("selectionColor"), "selectionDefinitions"),
            _color(a.get("selectionFillColor"), "selectionDefinitions")))
    return tuple(out)


def parse_dynamic_layers(value: str | None) -> tuple[dict, ...] | None:
    if value is None:
        return None
    arr = parse_json(value, "dynamicLayers")
    if not isinstance(arr, list) or not all(isinstance(a, dict) for a in arr):
        raise _bad("dynamicLayers", "must be a JSON array of layer objects")
    most = limits.current().max_dynamic_layers
    if len(arr) > most:
        raise _bad("dynamicLayers", f"may list at most {most} layers "
                                    "(MAPSERVER_MAX_DYNAMIC_LAYERS)")
    return tuple(arr)


def _within_json_limits(value: str | None, name: str) -> str | None:
    """A JSON-looking parameter parsed by another module is checked here first (size, depth,
    finite numbers, WKT lengths), so every one of them meets the same limits."""
    if value is None or not value.lstrip().startswith(("{", "[")):
        return value
    obj = safe_loads(value, name)
    max_wkt = limits.current().max_wkt_length
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if isinstance(v, str) and k.lower() in ("wkt", "wkt2") and len(v) > max_wkt:
                    raise _bad(name, f"has a WKT longer than {max_wkt} characters "
                                     "(MAPSERVER_MAX_WKT_LENGTH)")
                stack.append(v)
        elif isinstance(o, list):
            stack.extend(o)
    return value


# Parameters whose effect depends on what the service declares; the export core refuses them
# with a clear error when the service declares nothing they could act on.
DECLARED_PARAMS = ("historicMoment", "gdbVersion", "layerParameterValues", "mapRangeValues",
                   "layerRangeValues")



@dataclass(frozen=True)
class MapFilters:
    """Which layers and features a map shows (not where it looks): the planner's input.

    ``declared`` holds the raw values of the parameters that act on what a service declares
    (``historicMoment``, ``gdbVersion``, ``layerParameterValues``, ``mapRangeValues``,
    ``layerRangeValues``); the planner checks them against the service. ``datum`` is the
    parsed ``datumTransformations``.
    """

    layers: LayerSelection = field(default_factory=LayerSelection)
    layer_defs: Mapping[int, str] = field(default_factory=dict)
    time: Window | None = None
    time_relation: str = OVERLAPS
    layer_time_options: Mapping[int, TimeOptions] = field(default_factory=dict)
    dynamic_layers: tuple[dict, ...] | None = None
    declared: Mapping[str, str] = field(default_factory=dict)
    datum: tuple[Requested, ...] = ()
    # export-only
    spatial_filter: SpatialFilter | None = None
    selections: tuple[Selection, ...] = ()
    clipping: Clipping | None = None


def parse_map_filters(params: Params, map_sr: SpatialRef, *, export: bool = False,
                      layers: bool = True, time: bool = True) -> MapFilters:
    """The filter group of any map operation. ``export`` adds the export-only parameters;
    ``layers=False`` leaves ``layers`` to the operation (identify's top/visible/all syntax);
    ``time=False`` for operations without a time (find)."""
    return MapFilters(
        layers=parse_layers(params.raw("layers")) if layers else LayerSelection(),
        layer_defs=parse_layer_defs(params.raw("layerDefs")),
        time=parse_time(params.raw("time")) if time else None,
        time_relation=parse_time_relation(params.raw("timeRelation")),
        layer_time_options=parse_layer_time_options(
            params.raw("layerTimeOptions") or params.raw("timeOptions")),
        dynamic_layers=parse_dynamic_layers(params.raw("dynamicLayers")),
        declared={name: _within_json_limits(params.raw(name), name) for name in DECLARED_PARAMS
                  if params.raw(name) is not None},
        datum=parse_datum_transformations(
            _within_json_limits(params.raw("datumTransformations"), "datumTransformations")),
        spatial_filter=parse_spatial_filter(params.raw("spatialFilter"), map_sr)
        if export else None,
        selections=parse_selections(params.raw("selectionDefinitions")) if export else (),
        clipping=parse_clipping(params.raw("clipping"), map_sr) if export else None)
