"""The ``/export`` request, parsed once into a typed :class:`ExportRequest`."""

from __future__ import annotations

from dataclasses import dataclass, field

from mapserver import limits
from mapserver.encode.image import Format, parse_format
from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import Params, parse_bool, parse_f, parse_float, parse_numbers
from mapserver.params.filters import MapFilters, parse_map_filters

EXPORT_PARAMS = ("bbox", "bboxSR", "layers", "layerDefs", "size", "imageSR", "format",
                 "transparent", "dpi", "time", "timeRelation", "layerTimeOptions",
                 "dynamicLayers", "gdbVersion", "mapScale", "rotation", "datumTransformations",
                 "layerParameterValues", "mapRangeValues", "layerRangeValues", "clipping",
                 "spatialFilter", "selectionDefinitions", "historicMoment", "f")

MAX_DPI = 2400.0  # the default of MAPSERVER_MAX_DPI (limits.py)


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
    map_scale: float | None = None
    rotation: float = 0.0
    # which layers and features: the planner's input (params/filters.py)
    filters: MapFilters = field(default_factory=MapFilters)


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


def _format(value: str | None) -> Format:
    """``format``; EMF is refused by name (not in supportedImageFormatTypes: no EMF writer)."""
    if value is not None and value.strip().lower() == "emf":
        raise InvalidParameter("Output format not supported.",
                               ["Format 'emf' (Enhanced Metafile) is not supported by this "
                                "server and is not listed in supportedImageFormatTypes; use "
                                "svg, pdf or ps for vector output."])
    return parse_format(value)


def parse_dpi(params: Params) -> float:
    """``dpi``: default 96, within MAPSERVER_MIN_DPI..MAX_DPI (symbol sizes and scale depend
    on it)."""
    if params.raw("dpi") is None:
        return 96.0
    dpi = parse_float(params.raw("dpi"), "dpi")
    lim = limits.current()
    if not lim.min_dpi <= dpi <= lim.max_dpi:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'dpi' must be between {lim.min_dpi:g} and {lim.max_dpi:g}"])
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
    # bbSR: the spelling in the Export Map document's own parameter table; bboxSR wins
    bbox_sr = parse_sr(params.raw("bboxSR") or params.raw("bbSR"), map_sr)
    image_sr = parse_sr(params.raw("imageSR"), map_sr)
    width, height = parse_size(params.raw("size"), max_w, max_h)
    dpi = parse_dpi(params)
    map_scale = None
    if params.raw("mapScale") is not None:
        map_scale = parse_float(params.raw("mapScale"), "mapScale")
        lim = limits.current()
        if not lim.min_map_scale <= map_scale <= lim.max_map_scale:
            raise InvalidParameter("Invalid or missing input parameters.",
                                   [f"'mapScale' must be between {lim.min_map_scale:g} and "
                                    f"{lim.max_map_scale:g}"])
    rotation = 0.0
    if params.raw("rotation") is not None:
        rotation = parse_float(params.raw("rotation"), "rotation")
    return ExportRequest(
        bbox=(xmin, ymin, xmax, ymax), bbox_sr=bbox_sr, image_sr=image_sr, width=width,
        height=height, dpi=dpi, format=_format(params.raw("format")),
        transparent=parse_bool(params.raw("transparent"), "transparent", False), f=f,
        map_scale=map_scale, rotation=rotation,
        filters=parse_map_filters(params, map_sr, export=True))
