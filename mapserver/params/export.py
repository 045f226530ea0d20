"""The ``/export`` request, parsed once into a typed :class:`ExportRequest`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mapserver.encode.image import Format, parse_format
from mapserver.errors import InvalidParameter
from mapserver.features.geometry_in import (
    GEOMETRY_TYPES,
    InputGeometry,
    geometry_from_json,
    lenient_json,
)
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import (
    Params,
    parse_bool,
    parse_f,
    parse_float,
    parse_int_list,
    parse_json,
    parse_numbers,
)
from mapserver.timefilter import TIME_RELATIONS, TIME_UNITS, TimeOptions

EXPORT_PARAMS = ("bbox", "bboxSR", "layers", "layerDefs", "size", "imageSR", "format",
                 "transparent", "dpi", "time", "timeRelation", "layerTimeOptions",
                 "dynamicLayers", "gdbVersion", "mapScale", "rotation", "datumTransformations",
                 "layerParameterValues", "mapRangeValues", "layerRangeValues", "clipping",
                 "spatialFilter", "selectionDefinitions", "historicMoment", "f")

LAYER_VERBS = ("show", "hide", "include", "exclude")
MAX_DPI = 2400.0


@dataclass(frozen=True)
class LayerSelection:
    """``layers=show:1,2`` and friends. ``verb`` None means default visibility."""

    verb: str | None = None
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExportRequest:
    bbox: tuple[float, float, float, float]
    bbox_sr: SpatialRef
    image_sr: SpatialRef
    width: int
    height: int
    dpi: float
    format: Format
    transparent: bool
    f: str
    layers: LayerSelection = field(default_factory=LayerSelection)
    layer_defs: dict[int, str] = field(default_factory=dict)
    time: tuple[int | None, int | None] | None = None
    map_scale: float | None = None
    rotation: float = 0.0
    time_relation: str = "esriTimeRelationOverlaps"
    layer_time_options: dict[int, TimeOptions] = field(default_factory=dict)
    clipping: Clipping | None = None
    spatial_filter: SpatialFilter | None = None
    selections: tuple[Selection, ...] = ()
    dynamic_layers: tuple[dict, ...] | None = None
    # declared-support parameters, checked against the service by the export core
    extras: dict[str, object] = field(default_factory=dict)


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


def parse_size(value: str | None, max_w: int, max_h: int) -> tuple[int, int]:
    if value is None:
        return 400, 400
    w, h = parse_numbers(value, "size", 2)
    wi, hi = round(w), round(h)
    if not 1 <= wi <= max_w:
        raise InvalidParameter(f"Image width is not in range. Valid range is from 1 to {max_w}.",
                               [f"Requested width {w:g} exceeds the service limit"
                                if wi > max_w else f"Requested width {w:g} is too small"])
    if not 1 <= hi <= max_h:
        raise InvalidParameter(f"Image height is not in range. Valid range is from 1 to {max_h}.",
                               [f"Requested height {h:g} exceeds the service limit"
                                if hi > max_h else f"Requested height {h:g} is too small"])
    return wi, hi


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
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'layerDefs' is not valid JSON"]) from exc
        if not isinstance(obj, dict):
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'layerDefs' must be a JSON object"])
        items = obj.items()
    elif text.startswith("["):
        try:
            arr = json.loads(text)
        except ValueError as exc:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'layerDefs' is not valid JSON"]) from exc
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


def _time_options(obj: object, where: str) -> TimeOptions:
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
    units = obj.get("timeOffsetUnits") or "esriTimeUnitsMilliseconds"
    if units not in TIME_UNITS:
        raise _bad(where, f"timeOffsetUnits must be one of {', '.join(TIME_UNITS)}")
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
        out[lid] = _time_options(opts, f"layerTimeOptions[{lid}]")
    return out


def _json_object(value: str, name: str) -> dict:
    obj = lenient_json(value)
    if not isinstance(obj, dict):
        raise _bad(name, "must be a JSON object")
    return obj


def _geometry(obj: object, name: str, gtype: str | None, map_sr: SpatialRef) -> InputGeometry:
    """Esri geometry JSON (shared parser with query/identify); the map's SR when none given."""
    if isinstance(obj, str):
        obj = lenient_json(obj)
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
        import re

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
    return tuple(arr)


# Parameters whose effect depends on what the service declares; the export core refuses them
# with a clear error when the service declares nothing they could act on.
DECLARED_PARAMS = ("historicMoment", "gdbVersion", "layerParameterValues", "mapRangeValues",
                   "layerRangeValues", "datumTransformations")


def _format(value: str | None) -> Format:
    """``format``; EMF is refused by name (not in supportedImageFormatTypes: no EMF writer)."""
    if value is not None and value.strip().lower() == "emf":
        raise InvalidParameter("Output format not supported.",
                               ["Format 'emf' (Enhanced Metafile) is not supported by this "
                                "server and is not listed in supportedImageFormatTypes; use "
                                "svg, pdf or ps for vector output."])
    return parse_format(value)



def parse_dpi(params: Params) -> float:
    """``dpi``: default 96, 1 to MAX_DPI (symbol sizes and scale depend on it)."""
    if params.raw("dpi") is None:
        return 96.0
    dpi = parse_float(params.raw("dpi"), "dpi")
    if not 1 <= dpi <= MAX_DPI:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'dpi' must be between 1 and {MAX_DPI:g}"])
    return dpi

def parse_export(params: Params, map_sr: SpatialRef, max_w: int, max_h: int,
                 f_default: str = "html") -> ExportRequest:
    f = parse_f(params, ("html", "json", "pjson", "image", "kmz"), f_default)
    bbox_raw = params.raw("bbox")
    if bbox_raw is None:
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'bbox' parameter is required"])
    xmin, ymin, xmax, ymax = parse_numbers(bbox_raw, "bbox", 4)
    xmin, xmax = min(xmin, xmax), max(xmin, xmax)
    ymin, ymax = min(ymin, ymax), max(ymin, ymax)
    if xmin == xmax or ymin == ymax:
        raise InvalidParameter("Invalid bbox", ["'bbox' must have a non-zero width and height"])
    bbox_sr = parse_sr(params.raw("bboxSR"), map_sr)
    image_sr = parse_sr(params.raw("imageSR"), map_sr)
    width, height = parse_size(params.raw("size"), max_w, max_h)
    dpi = parse_dpi(params)
    map_scale = None
    if params.raw("mapScale") is not None:
        map_scale = parse_float(params.raw("mapScale"), "mapScale")
        if map_scale <= 0:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   ["'mapScale' must be positive"])
    rotation = 0.0
    if params.raw("rotation") is not None:
        rotation = parse_float(params.raw("rotation"), "rotation")
    return ExportRequest(
        bbox=(xmin, ymin, xmax, ymax), bbox_sr=bbox_sr, image_sr=image_sr, width=width,
        height=height, dpi=dpi, format=_format(params.raw("format")),
        transparent=parse_bool(params.raw("transparent"), "transparent", False), f=f,
        layers=parse_layers(params.raw("layers")),
        layer_defs=parse_layer_defs(params.raw("layerDefs")),
        time=parse_time(params.raw("time")), map_scale=map_scale, rotation=rotation,
        time_relation=parse_time_relation(params.raw("timeRelation")),
        layer_time_options=parse_layer_time_options(
            params.raw("layerTimeOptions") or params.raw("timeOptions")),
        clipping=parse_clipping(params.raw("clipping"), map_sr),
        spatial_filter=parse_spatial_filter(params.raw("spatialFilter"), map_sr),
        selections=parse_selections(params.raw("selectionDefinitions")),
        dynamic_layers=parse_dynamic_layers(params.raw("dynamicLayers")),
        extras={name: params.raw(name) for name in DECLARED_PARAMS
                if params.raw(name) is not None})
