"""WMS 1.1.1 and 1.3.0 on a map service: the parameters translated onto the one pipeline.

- Layers are named by their ArcGIS id (``0``, ``1``, …; titles are the layer names), as
  ArcGIS Server's WMS does; a unique layer name is accepted too. A group names its members.
- GetMap: ``LAYERS``/``TIME`` become a :class:`MapFilters` (``show:<ids>``, a time window)
  resolved by the planner (``select.plan.resolve_map``); ``BBOX``/``CRS``/``WIDTH``/``HEIGHT``
  become a pixel :class:`Grid` spanning exactly the bbox (WMS stretches to the requested
  size); ``maps.export.draw_map`` draws it. Layers draw in the service's order (the first
  service layer on top), whatever the order in ``LAYERS``.
- GetFeatureInfo: the same filters and grid as an ``IdentifyRequest`` for
  ``features.identify.run_identify`` at the clicked pixel's centre (3 px tolerance), only on
  ``QUERY_LAYERS``; per layer the ``FEATURE_COUNT`` nearest hits.
- GetLegendGraphic: ``ogc/legend.py`` over ``maps/legend.py``.
- Axis order: 1.3.0 reads ``BBOX`` in the CRS's EPSG axis order (EPSG:4326 is lat,lon), 1.1.1
  and ``CRS:84`` read lon,lat.
- No ``TIME``: the advertised default, the end of the service's time extent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from PIL import Image, ImageDraw

from mapserver.catalog.model import Layer, Service
from mapserver.encode.image import FORMATS, Format, encode_raster
from mapserver.errors import InvalidParameter
from mapserver.features.identify import IdentifyRequest, run_identify
from mapserver.features.popup import OutputOptions
from mapserver.geo.grid import INCHES_PER_METER, Grid
from mapserver.geo.project import project_bounds
from mapserver.geo.sr import SpatialRef, from_wkid
from mapserver.maps.export import draw_map
from mapserver.ogc import featureinfo
from mapserver.ogc.common import (
    XLINK,
    XSI,
    Crs,
    El,
    OgcError,
    crs_code,
    el,
    invalid,
    iso_duration,
    iso_time,
    missing,
    northing_first,
    number,
    parse_bbox,
    parse_crs,
    parse_positive_int,
    parse_time,
    xml_document,
)
from mapserver.ogc.legend import font, legend_graphic
from mapserver.params.common import Params
from mapserver.params.export import parse_dpi
from mapserver.params.filters import LayerSelection, MapFilters
from mapserver.select.plan import resolve_map

VERSIONS = ("1.1.1", "1.3.0")
# FORMAT -> our encoder; image/png is full RGBA (png32) so colours are never quantised
MAP_FORMATS = {"image/png": "png32", "image/png32": "png32", "image/png24": "png24",
               "image/png8": "png8", "image/png; mode=8bit": "png8", "image/jpeg": "jpg",
               "image/gif": "gif", "image/tiff": "tiff", "image/bmp": "bmp"}
FORMAT_ALIASES = {"png": "image/png", "jpeg": "image/jpeg", "jpg": "image/jpeg",
                  "image/jpg": "image/jpeg", "gif": "image/gif", "image/png;mode=8bit":
                  "image/png; mode=8bit", "png8": "image/png8"}
EXTRA_CRS = (4326, 3857)  # besides the service's own SR and CRS:84
TOLERANCE_PX = 3.0
MAX_FEATURE_COUNT = 1000
OGC_PIXEL_M = 0.00028  # the standardised rendering pixel of WMS 1.3.0 / WMTS
WMS_NS = "http://www.opengis.net/wms"
SLD_NS = "http://www.opengis.net/sld"
XML_11 = "application/vnd.ogc.se_xml"


def negotiate(value: str | None) -> str:
    """The version to answer: 1.3.0 unless a version below it is asked for."""
    if value is None:
        return "1.3.0"
    try:
        asked = tuple(int(p) for p in value.strip().split("."))
    except ValueError:
        return "1.3.0"
    return "1.1.1" if asked < (1, 3, 0) else "1.3.0"


def request_version(params: Params) -> str:
    """GetMap & co.: ``VERSION`` (or ``WMTVER``); without one, 1.3.0 when ``CRS`` is sent."""
    v = params.raw("VERSION") or params.raw("WMTVER")
    if v is None:
        return "1.1.1" if params.raw("SRS") and not params.raw("CRS") else "1.3.0"
    return negotiate(v)


# --- layers ----------------------------------------------------------------------------------

def layer_name(layer: Layer) -> str:
    return str(layer.id)


def find_layer(service: Service, name: str, param: str = "LAYERS") -> Layer:
    text = name.strip()
    if text.lstrip("-").isdigit():
        lyr = service.layer(int(text))
        if lyr is not None:
            return lyr
    named = [lyr for lyr in service.layers if lyr.name.lower() == text.lower()]
    if len(named) == 1:
        return named[0]
    raise OgcError(f"Layer '{text[:60]}' is not defined in this service", "LayerNotDefined",
                   param)


def parse_layers(service: Service, params: Params, param: str = "LAYERS") -> list[Layer]:
    raw = params.raw(param)
    if raw is None:
        raise missing(param)
    names = [n for n in raw.split(",") if n.strip()]
    if not names:
        raise missing(param)
    return [find_layer(service, n, param) for n in names]


def check_styles(params: Params, count: int) -> None:
    raw = params.raw("STYLES")
    if raw is None:
        return
    styles = [s.strip() for s in raw.split(",")]
    if len(styles) not in (1, count):
        raise OgcError("STYLES must list one style per layer", "StyleNotDefined", "STYLES")
    for s in styles:
        if s.lower() not in ("", "default"):
            raise OgcError(f"Style '{s[:40]}' is not defined (layers have the style "
                           "'default')", "StyleNotDefined", "STYLES")


def time_default(service: Service) -> int | None:
    ti = service.time_info
    return ti.extent[1] if ti is not None and ti.extent is not None else None


# --- the view --------------------------------------------------------------------------------

@dataclass(frozen=True)
class MapView:
    layers: list[Layer]
    crs: Crs
    grid: Grid
    filters: MapFilters


def parse_format(value: str | None, param: str = "FORMAT") -> tuple[str, Format]:
    if value is None:
        raise missing(param)
    key = value.strip().lower()
    key = FORMAT_ALIASES.get(key.replace(" ", ""), FORMAT_ALIASES.get(key, key))
    if key.replace(" ", "") == "image/png;mode=8bit":
        key = "image/png; mode=8bit"
    name = MAP_FORMATS.get(key)
    if name is None:
        raise OgcError(f"Format '{value[:40]}' is not supported; use one of "
                       + ", ".join(MAP_FORMATS), "InvalidFormat", param)
    return key, FORMATS[name]


def parse_view(service: Service, params: Params, version: str) -> MapView:
    layers = parse_layers(service, params)
    check_styles(params, len(layers))
    crs_param = "CRS" if version == "1.3.0" else "SRS"
    crs_value = params.raw(crs_param) or params.raw("SRS" if crs_param == "CRS" else "CRS")
    if crs_value is None:
        raise missing(crs_param)
    crs = parse_crs(crs_value, crs_param, version == "1.3.0")
    a, b, c, d = parse_bbox(params.raw("BBOX"))
    xmin, ymin, xmax, ymax = (b, a, d, c) if crs.lat_first else (a, b, c, d)
    width = parse_positive_int(params.raw("WIDTH"), "WIDTH", service.max_image_width)
    height = parse_positive_int(params.raw("HEIGHT"), "HEIGHT", service.max_image_height)
    dpi = 96.0
    for name in ("DPI", "MAP_RESOLUTION"):
        if params.raw(name) is not None:
            try:
                dpi = parse_dpi(Params([("dpi", params.raw(name) or "")]))
            except InvalidParameter as exc:
                raise invalid(name, "; ".join(exc.details) or exc.message) from None
    transform = Affine((xmax - xmin) / width, 0.0, xmin, 0.0, -(ymax - ymin) / height, ymax)
    grid = Grid(sr=crs.sr, transform=transform, width=width, height=height, dpi=dpi)
    window = parse_time(params.raw("TIME"))
    if window is None:
        end = time_default(service)
        window = (end, end) if end is not None else None
    filters = MapFilters(layers=LayerSelection("show", tuple(lyr.id for lyr in layers)),
                         time=window)
    return MapView(layers=layers, crs=crs, grid=grid, filters=filters)


def parse_color(value: str | None) -> tuple[int, int, int, int]:
    if value is None:
        return (255, 255, 255, 255)
    text = value.strip()
    hexpart = text[2:] if text.lower().startswith("0x") else text.lstrip("#")
    if len(hexpart) != 6:
        raise invalid("BGCOLOR", "must be 0xRRGGBB")
    try:
        n = int(hexpart, 16)
    except ValueError:
        raise invalid("BGCOLOR", "must be 0xRRGGBB") from None
    return ((n >> 16) & 255, (n >> 8) & 255, n & 255, 255)


def parse_transparent(value: str | None) -> bool:
    if value is None:
        return False
    v = value.strip().upper()
    if v not in ("TRUE", "FALSE"):
        raise invalid("TRANSPARENT", "must be TRUE or FALSE")
    return v == "TRUE"


def get_map(service: Service, params: Params, png_compression: int = 2) -> tuple[bytes, str]:
    version = request_version(params)
    view = parse_view(service, params, version)
    _mime, fmt = parse_format(params.raw("FORMAT"))
    transparent = parse_transparent(params.raw("TRANSPARENT"))
    background = parse_color(params.raw("BGCOLOR"))
    alpha = transparent and fmt.supports_alpha
    m = resolve_map(service, view.filters)
    rgba = draw_map(m, view.grid, None if alpha else background)
    return (encode_raster(rgba, fmt, alpha, view.grid.dpi, png_compression),
            fmt.content_type)


def exception_image(params: Params, message: str, blank: bool, most: tuple[int, int]
                    ) -> tuple[bytes, str] | None:
    """EXCEPTIONS=INIMAGE / BLANK: the message drawn on (or just) the background, in the
    requested size and format; None when those are themselves unusable."""
    try:
        width = parse_positive_int(params.raw("WIDTH"), "WIDTH", most[0])
        height = parse_positive_int(params.raw("HEIGHT"), "HEIGHT", most[1])
        _mime, fmt = parse_format(params.raw("FORMAT"))
        transparent = parse_transparent(params.raw("TRANSPARENT"))
        background = parse_color(params.raw("BGCOLOR"))
    except OgcError:
        return None
    alpha = transparent and fmt.supports_alpha
    img = Image.new("RGBA", (width, height), (0, 0, 0, 0) if alpha else background)
    if not blank:
        draw = ImageDraw.Draw(img)
        f = font()
        words, lines, line = message.split(), [], ""
        for w in words:
            trial = f"{line} {w}".strip()
            if line and draw.textlength(trial, font=f) > width - 8:
                lines.append(line)
                line = w
            else:
                line = trial
        lines.append(line)
        for k, text in enumerate(lines):
            draw.text((4, 4 + 15 * k), text, font=f, fill=(200, 0, 0, 255))
    return encode_raster(np.asarray(img), fmt, alpha, 96.0), fmt.content_type


# --- GetFeatureInfo --------------------------------------------------------------------------

def _pixel(params: Params, names: tuple[str, str], most: int) -> int:
    raw = params.raw(names[0]) or params.raw(names[1])
    if raw is None:
        raise missing(names[0])
    try:
        v = float(raw)
    except ValueError:
        raise OgcError(f"{names[0]} must be a pixel index", "InvalidPoint", names[0]) from None
    if not (0 <= v < most) or v != int(v):
        raise OgcError(f"{names[0]} must be a whole pixel index from 0 to {most - 1}",
                       "InvalidPoint", names[0])
    return int(v)


def get_feature_info(service: Service, params: Params) -> tuple[bytes, str]:
    version = request_version(params)
    view = parse_view(service, params, version)
    queried = parse_layers(service, params, "QUERY_LAYERS")
    i_names, j_names = (("I", "X"), ("J", "Y")) if version == "1.3.0" else (("X", "I"),
                                                                            ("Y", "J"))
    i = _pixel(params, i_names, view.grid.width)
    j = _pixel(params, j_names, view.grid.height)
    info_format = (params.raw("INFO_FORMAT") or "text/html").strip().lower()
    if info_format not in featureinfo.INFO_FORMATS:
        raise OgcError(f"INFO_FORMAT '{info_format[:40]}' is not supported; use one of "
                       + ", ".join(featureinfo.INFO_FORMATS), "InvalidFormat", "INFO_FORMAT")
    count = 1
    if params.raw("FEATURE_COUNT") is not None:
        count = parse_positive_int(params.raw("FEATURE_COUNT"), "FEATURE_COUNT",
                                   MAX_FEATURE_COUNT)
    x, y = view.grid.from_pixels(np.array(i + 0.5), np.array(j + 0.5))
    point = shapely.Point(float(x), float(y))
    structured = info_format not in ("text/html", "text/plain")
    req = IdentifyRequest(
        f="json", geometry=point, grid=view.grid, tolerance=TOLERANCE_PX, option="visible",
        layer_ids=tuple(lyr.id for lyr in queried),
        opts=OutputOptions(sr=view.crs.sr, return_geometry=True, field_names=structured,
                           unformatted=structured),
        filters=view.filters)
    results = nearest_per_layer(run_identify(service, req)["results"], point, count)
    return featureinfo.write(results, info_format, view.crs.code)


def nearest_per_layer(results: list[dict], point: shapely.Point, count: int) -> list[dict]:
    """Per layer (top first, as identify lists them) the ``count`` hits nearest the click:
    a polygon containing it before a neighbour within the tolerance."""
    order: list[int] = []
    by_layer: dict[int, list[tuple[float, int, dict]]] = {}
    for k, r in enumerate(results):
        lid = r["layerId"]
        if lid not in by_layer:
            order.append(lid)
            by_layer[lid] = []
        g = featureinfo.shape_of(r)
        dist = float(shapely.distance(g, point)) if g is not None else 0.0
        by_layer[lid].append((dist, k, r))
    out = []
    for lid in order:
        out.extend(r for _, _, r in sorted(by_layer[lid], key=lambda t: t[:2])[:count])
    return out


# --- GetLegendGraphic ------------------------------------------------------------------------

def get_legend_graphic(service: Service, params: Params) -> tuple[bytes, str]:
    name = params.raw("LAYER") or params.raw("LAYERS")
    if name is None:
        raise missing("LAYER")
    layer = find_layer(service, name, "LAYER")
    style = params.raw("STYLE")
    if style is not None and style.lower() != "default":
        raise OgcError(f"Style '{style[:40]}' is not defined", "StyleNotDefined", "STYLE")
    fmt = (params.raw("FORMAT") or "image/png").strip().lower()
    if fmt not in ("image/png", "png"):
        raise OgcError(f"Format '{fmt[:40]}' is not supported for legends; use image/png",
                       "InvalidFormat", "FORMAT")
    w = parse_positive_int(params.raw("WIDTH") or "20", "WIDTH", 512)
    h = parse_positive_int(params.raw("HEIGHT") or "20", "HEIGHT", 512)
    png, _w, _h = legend_graphic(layer, w, h)
    return png, "image/png"


# --- GetCapabilities -------------------------------------------------------------------------

def advertised_crs(service: Service) -> list[tuple[str, SpatialRef]]:
    """The CRS list: the service's own SR (when it has an EPSG code), EPSG:4326, EPSG:3857."""
    out: list[tuple[str, SpatialRef]] = []
    own = crs_code(service.sr)
    if own is not None:
        out.append((own, service.sr))
    for wkid in EXTRA_CRS:
        code = f"EPSG:{wkid}"
        if all(code != c for c, _ in out):
            out.append((code, from_wkid(wkid)))
    return out


def geographic_bounds(box: tuple[float, float, float, float] | None, sr: SpatialRef | None
                      ) -> tuple[float, float, float, float] | None:
    if box is None or sr is None:
        return None
    b = project_bounds(box, sr, from_wkid(4326))
    if b is None:
        return None
    return (max(b[0], -180.0), max(b[1], -90.0), min(b[2], 180.0), min(b[3], 90.0))


def _bbox_elements(box: tuple[float, float, float, float] | None, sr: SpatialRef | None,
                   version: str, crs_list: list[tuple[str, SpatialRef]]) -> list[El]:
    if box is None or sr is None:
        return []
    out = []
    attr = "CRS" if version == "1.3.0" else "SRS"
    for code, target in crs_list:
        b = project_bounds(box, sr, target)
        if b is None:
            continue
        if target.is_geographic:
            b = (max(b[0], -180.0), max(b[1], -90.0), min(b[2], 180.0), min(b[3], 90.0))
        if version == "1.3.0" and northing_first(target):
            b = (b[1], b[0], b[3], b[2])
        out.append(el("BoundingBox", **{attr: code}, minx=number(b[0]), miny=number(b[1]),
                      maxx=number(b[2]), maxy=number(b[3])))
    return out


def _geo_bbox(g: tuple[float, float, float, float] | None, version: str) -> El | None:
    if g is None:
        return None
    if version == "1.3.0":
        return el("EX_GeographicBoundingBox",
                  el("westBoundLongitude", text=number(g[0])),
                  el("eastBoundLongitude", text=number(g[2])),
                  el("southBoundLatitude", text=number(g[1])),
                  el("northBoundLatitude", text=number(g[3])))
    return el("LatLonBoundingBox", minx=number(g[0]), miny=number(g[1]), maxx=number(g[2]),
              maxy=number(g[3]))


def time_extent(service: Service, layer: Layer) -> str | None:
    """The time dimension's values: a raster series' dates, else start/end/period."""
    if layer.time_series:
        return ",".join(iso_time(e.time) for e in sorted(layer.time_series,
                                                         key=lambda e: e.time))
    ti = layer.time_info
    if ti is None or ti.extent is None:
        return None
    start, end = iso_time(ti.extent[0]), iso_time(ti.extent[1])
    period = iso_duration(ti.interval, ti.interval_units)
    return f"{start}/{end}/{period}" if period else f"{start}/{end}"


def _time_elements(service: Service, layer: Layer, version: str) -> list[El]:
    values = time_extent(service, layer)
    if values is None:
        return []
    end = time_default(service)
    default = iso_time(end) if end is not None else None
    if version == "1.3.0":
        return [el("Dimension", name="time", units="ISO8601", default=default,
                   nearestValue="0", text=values)]
    return [el("Dimension", name="time", units="ISO8601"),
            el("Extent", name="time", default=default, nearestValue="0", text=values)]


def ogc_scale(arcgis_scale: float) -> float:
    """ArcGIS scales assume 96 dpi and 39.37 in/m; OGC scale denominators a 0.28 mm pixel."""
    return arcgis_scale * OGC_PIXEL_M * 96.0 * INCHES_PER_METER


def _scale_elements(layer: Layer, version: str) -> list[El]:
    if not (layer.min_scale or layer.max_scale):
        return []
    if version == "1.3.0":
        return [el("MinScaleDenominator", text=number(ogc_scale(layer.max_scale)))
                if layer.max_scale else None,
                el("MaxScaleDenominator", text=number(ogc_scale(layer.min_scale)))
                if layer.min_scale else None]
    # 1.1.1 ScaleHint: the diagonal size of a pixel in metres at the scale limits
    k = OGC_PIXEL_M * 2 ** 0.5
    return [el("ScaleHint", min=number(ogc_scale(layer.max_scale) * k),
               max=number(ogc_scale(layer.min_scale) * k) if layer.min_scale else "Infinity")]


def _online(href: str) -> El:
    return el("OnlineResource", xmlns__xlink=XLINK, xlink__type="simple", xlink__href=href)


def _layer_element(service: Service, layer: Layer, version: str, online: str,
                   crs_list: list[tuple[str, SpatialRef]]) -> El:
    children = [service.layer(s) for s in layer.sublayer_ids]
    sub = [_layer_element(service, c, version, online, crs_list) for c in children if c]
    bounds = layer.native_bounds
    sr = layer.sr
    if bounds is None:  # a group: its service's extent
        bounds, sr = service.full_extent, service.sr
    geo = geographic_bounds(bounds, sr)
    png, lw, lh = legend_graphic(layer)
    legend_href = (f"{online}SERVICE=WMS&REQUEST=GetLegendGraphic&VERSION={version}"
                   f"&FORMAT=image/png&LAYER={layer_name(layer)}")
    if version == "1.3.0":
        legend_href += "&SLD_VERSION=1.1.0"
    style = el("Style", el("Name", text="default"), el("Title", text="default"),
               el("LegendURL", el("Format", text="image/png"), _online(legend_href),
                  width=lw, height=lh))
    return el("Layer", el("Name", text=layer_name(layer)), el("Title", text=layer.name),
              el("Abstract", text=layer.description) if layer.description else None,
              _geo_bbox(geo, version), _bbox_elements(bounds, sr, version, crs_list),
              _time_elements(service, layer, version), style,
              _scale_elements(layer, version), sub,
              queryable="1" if layer.kind != "group" or sub else "0")


def _dcp(online: str, post: bool = False) -> El:
    return el("DCPType", el("HTTP", el("Get", _online(online)),
                            el("Post", _online(online)) if post else None))


def capabilities(service: Service, version: str, online: str) -> bytes:
    """The capabilities document; ``online`` is the WMSServer URL ending in ``?`` or ``&``."""
    crs_list = advertised_crs(service)
    codes = [c for c, _ in crs_list]
    if version == "1.3.0":
        codes.insert(1, "CRS:84")
    v13 = version == "1.3.0"
    caps_format = "text/xml" if v13 else "application/vnd.ogc.wms_xml"
    exceptions = ["XML", "INIMAGE", "BLANK"] if v13 else [
        XML_11, "application/vnd.ogc.se_inimage", "application/vnd.ogc.se_blank"]
    map_formats = [f for f in MAP_FORMATS if f != "image/png; mode=8bit"]
    legend_tag = "sld:GetLegendGraphic" if v13 else "GetLegendGraphic"
    request = el("Request",
                 el("GetCapabilities", el("Format", text=caps_format), _dcp(online, True)),
                 el("GetMap", [el("Format", text=f) for f in map_formats], _dcp(online, True)),
                 el("GetFeatureInfo", [el("Format", text=f) for f in featureinfo.INFO_FORMATS],
                    _dcp(online, True)),
                 el(legend_tag, el("Format", text="image/png"), _dcp(online)))
    top = [service.layer(lyr.id) for lyr in service.layers if lyr.parent_id < 0]
    geo = geographic_bounds(service.full_extent, service.sr)
    root_layer = el(
        "Layer", el("Title", text=service.map_name or service.short_name),
        el("Abstract", text=service.service_description) if service.service_description
        else None,
        [el("CRS" if v13 else "SRS", text=c) for c in codes], _geo_bbox(geo, version),
        _bbox_elements(service.full_extent, service.sr, version, crs_list),
        [_layer_element(service, lyr, version, online, crs_list) for lyr in top if lyr])
    service_el = el(
        "Service", el("Name", text="WMS" if v13 else "OGC:WMS"),
        el("Title", text=service.map_name or service.short_name),
        el("Abstract", text=service.service_description or service.description or None),
        el("KeywordList", el("Keyword", text="ArcGIS MapServer"), el("Keyword", text="WMS")),
        _online(online.rstrip("?&")), el("Fees", text="none"),
        el("AccessConstraints", text=service.copyright or "none"),
        el("MaxWidth", text=service.max_image_width) if v13 else None,
        el("MaxHeight", text=service.max_image_height) if v13 else None)
    capability = el("Capability", request,
                    el("Exception", [el("Format", text=f) for f in exceptions]), root_layer)
    if v13:
        root = el("WMS_Capabilities", service_el, capability, version="1.3.0",
                  xmlns=WMS_NS, xmlns__sld=SLD_NS, xmlns__xlink=XLINK, xmlns__xsi=XSI,
                  xsi__schemaLocation=(
                      "http://www.opengis.net/wms "
                      "http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd "
                      "http://www.opengis.net/sld "
                      "http://schemas.opengis.net/sld/1.1.0/sld_capabilities.xsd"))
        return xml_document(root)
    root = el("WMT_MS_Capabilities", service_el, capability, version="1.1.1")
    return xml_document(root, '<!DOCTYPE WMT_MS_Capabilities SYSTEM '
                              '"http://schemas.opengis.net/wms/1.1.1/WMS_MS_Capabilities.dtd">')


# --- exceptions ------------------------------------------------------------------------------

def exception_report(err: OgcError, version: str) -> tuple[bytes, str]:
    attrs = {"code": err.code}
    if version == "1.3.0":
        attrs["locator"] = err.locator
        root = el("ServiceExceptionReport", el("ServiceException", text=err.message, **attrs),
                  version="1.3.0", xmlns="http://www.opengis.net/ogc", xmlns__xsi=XSI,
                  xsi__schemaLocation="http://www.opengis.net/ogc "
                  "http://schemas.opengis.net/wms/1.3.0/exceptions_1_3_0.xsd")
        return xml_document(root), "text/xml; charset=utf-8"
    root = el("ServiceExceptionReport", el("ServiceException", text=err.message, **attrs),
              version="1.1.1")
    return (xml_document(root, '<!DOCTYPE ServiceExceptionReport SYSTEM '
                               '"http://schemas.opengis.net/wms/1.1.1/exception_1_1_1.dtd">'),
            XML_11)
