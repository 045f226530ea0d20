"""The ``/export`` request, parsed once into a typed :class:`ExportRequest`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mapserver.encode.image import Format, parse_format
from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import (
    Params,
    parse_bool,
    parse_f,
    parse_float,
    parse_int_list,
    parse_numbers,
)

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


def parse_export(params: Params, map_sr: SpatialRef, max_w: int, max_h: int,
                 f_default: str = "html") -> ExportRequest:
    f = parse_f(params, ("html", "json", "pjson", "image"), f_default)
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
    dpi = 96.0
    if params.raw("dpi") is not None:
        dpi = parse_float(params.raw("dpi"), "dpi")
        if not 1 <= dpi <= MAX_DPI:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'dpi' must be between 1 and {MAX_DPI:g}"])
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
        height=height, dpi=dpi, format=parse_format(params.raw("format")),
        transparent=parse_bool(params.raw("transparent"), "transparent", False), f=f,
        layers=parse_layers(params.raw("layers")),
        layer_defs=parse_layer_defs(params.raw("layerDefs")),
        time=parse_time(params.raw("time")), map_scale=map_scale, rotation=rotation)
