"""``identify``: what is under a click, on every layer the client shows.

The click tolerance is in screen pixels, so ``mapExtent`` + ``imageDisplay`` define a pixel
:class:`Grid` (the same aspect rule and scale as export). Its resolution turns pixels into map
units and its scale decides which layers are in their scale range. Raster layers answer with
the source pixel values under the point.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

from mapserver.catalog.model import Layer, Service
from mapserver.errors import InvalidParameter
from mapserver.features.attributes import format_number
from mapserver.features.common import (
    opt_bool,
    opt_float,
    opt_precision,
    opt_sr,
    to_layer_sr,
)
from mapserver.features.geometry_in import InputGeometry, parse_geometry, parse_geometry_type
from mapserver.features.geometry_out import project, to_esri
from mapserver.features.popup import OutputOptions, feature_results
from mapserver.geo.grid import Grid
from mapserver.geo.project import project_geometry
from mapserver.params.common import Params, parse_f, parse_int_list, parse_numbers
from mapserver.params.filters import MapFilters, parse_map_filters
from mapserver.select.features import SpatialFilter, select_features
from mapserver.select.layers import descendants
from mapserver.select.plan import MapLayers, drawn_raster, layer_filter, resolve_map

MESSAGE = "Invalid or missing input parameters."
LAYER_OPTIONS = ("top", "visible", "all")


@dataclass(frozen=True)
class IdentifyRequest:
    f: str
    geometry: shapely.Geometry  # in opts.sr
    grid: Grid
    tolerance: float
    option: str
    layer_ids: tuple[int, ...]
    opts: OutputOptions
    filters: MapFilters = field(default_factory=MapFilters)


def _required(params: Params, name: str) -> str:
    raw = params.raw(name)
    if raw is None:
        raise InvalidParameter(MESSAGE, [f"'{name}' parameter is required"])
    return raw


def parse_layer_option(value: str | None) -> tuple[str, tuple[int, ...]]:
    """``top`` (default), ``visible`` or ``all``, optionally ``:id,id``."""
    if value is None:
        return "top", ()
    opt, _, ids = value.partition(":")
    opt = opt.strip().lower()
    if opt not in LAYER_OPTIONS:
        raise InvalidParameter(MESSAGE, ["'layers' must be top, visible or all, optionally "
                                         "followed by :<layer ids>"])
    return opt, tuple(parse_int_list(ids, "layers"))


def parse_map_extent(text: str) -> tuple[float, float, float, float]:
    if text.lstrip().startswith("{"):
        g = parse_geometry(text, "esriGeometryEnvelope", MESSAGE, "mapExtent").geometry
        if g.is_empty:
            raise InvalidParameter(MESSAGE, ["'mapExtent' parameter is invalid"])
        b = g.bounds
    else:
        try:
            b = tuple(parse_numbers(text, "mapExtent", 4))
        except InvalidParameter:
            raise InvalidParameter(MESSAGE, ["'mapExtent' parameter is invalid"]) from None
    xmin, ymin, xmax, ymax = b
    xmin, xmax, ymin, ymax = min(xmin, xmax), max(xmin, xmax), min(ymin, ymax), max(ymin, ymax)
    if xmin == xmax or ymin == ymax:
        raise InvalidParameter(MESSAGE, ["'mapExtent' must have a non-zero width and height"])
    return xmin, ymin, xmax, ymax


def parse_image_display(text: str) -> tuple[int, int, float]:
    bad = InvalidParameter(MESSAGE, ["'imageDisplay' must be <width>,<height>,<dpi>"])
    try:
        nums = parse_numbers(text, "imageDisplay")
    except InvalidParameter:
        raise bad from None
    if len(nums) not in (2, 3):
        raise bad
    w, h = round(nums[0]), round(nums[1])
    dpi = nums[2] if len(nums) == 3 else 96.0
    if not (1 <= w <= 100_000 and 1 <= h <= 100_000 and 1 <= dpi <= 2400):
        raise bad
    return w, h, dpi


def parse_identify(params: Params, service: Service) -> IdentifyRequest:
    f = parse_f(params, ("html", "json", "pjson"), "html")
    sr = opt_sr(params, "sr", service.sr, MESSAGE)
    gtype = parse_geometry_type(params.raw("geometryType"), "esriGeometryPoint", MESSAGE)
    parsed: InputGeometry = parse_geometry(_required(params, "geometry"), gtype, MESSAGE)
    geom = parsed.geometry
    if parsed.sr is not None and parsed.sr != sr:
        geom = to_layer_sr(geom, parsed.sr, sr)
    extent = parse_map_extent(_required(params, "mapExtent"))
    w, h, dpi = parse_image_display(_required(params, "imageDisplay"))
    tolerance = opt_float(params, "tolerance", MESSAGE, 0.0)
    if tolerance is None:
        raise InvalidParameter(MESSAGE, ["'tolerance' parameter is required"])
    option, ids = parse_layer_option(params.raw("layers"))
    try:
        filters = parse_map_filters(params, service.sr, layers=False)
    except InvalidParameter as exc:
        if exc.details and exc.details[0].startswith("'time'"):
            raise InvalidParameter(MESSAGE, ["'time' parameter is invalid"]) from None
        raise
    opts = OutputOptions(
        sr=sr, return_geometry=opt_bool(params, "returnGeometry", True, MESSAGE),
        max_offset=opt_float(params, "maxAllowableOffset", MESSAGE, 0.0),
        precision=opt_precision(params, MESSAGE),
        field_names=opt_bool(params, "returnFieldName", False, MESSAGE),
        unformatted=opt_bool(params, "returnUnformattedValues", False, MESSAGE))
    return IdentifyRequest(f=f, geometry=geom, grid=Grid.from_bbox(extent, w, h, sr, dpi),
                           tolerance=tolerance, option=option, layer_ids=ids, opts=opts,
                           filters=filters)


def candidate_layers(m: MapLayers, req: IdentifyRequest) -> list[Layer]:
    """Layers to search, top first. Listed ids name the layers the client shows (so a layer
    hidden by default but switched on by the user is identified); ``visible`` and ``top`` also
    honour the scale range at the view's scale; ``all`` searches every listed layer. With
    ``dynamicLayers`` the ids are the dynamic layers' ids and the layers are those."""
    if req.layer_ids:
        if m.dynamic:
            wanted = set(req.layer_ids)
            for lid in wanted:
                if m.layer(lid) is None:
                    raise InvalidParameter(MESSAGE, [f"The requested layer (layerId: {lid}) "
                                                     "was not found."])
        else:
            wanted = {d for lid in req.layer_ids for d in descendants(m.service, lid)}
    elif req.option == "all":
        wanted = {lyr.id for lyr in m.layers}
    else:
        wanted = set(m.visible)
    scale = req.grid.scale
    out = []
    for layer in m.layers:
        if layer.kind == "group" or layer.id not in wanted:
            continue
        if req.option != "all" and not m.in_scale(layer, scale):
            continue
        out.append(layer)
    return out


def run_identify(service: Service, req: IdentifyRequest) -> dict:
    search = req.geometry
    radius = req.tolerance * req.grid.resolution
    if radius > 0 and not search.is_empty:
        search = shapely.buffer(search, radius, quad_segs=8)
    results: list[dict] = []
    m = resolve_map(service, req.filters)
    for layer in candidate_layers(m, req):
        if layer.kind == "raster":
            drawn = drawn_raster(m, layer)
            found = raster_results(drawn, req) if drawn is not None else []
        else:
            assert layer.table is not None
            area = project_geometry(search, req.opts.sr, layer.table.sr, m.datum)
            filt = dataclasses.replace(layer_filter(m, layer), spatial=SpatialFilter(area))
            idx = select_features(layer, filt)
            found = feature_results(layer, idx, req.opts)
        results.extend(found)
        if req.option == "top" and found:
            break
    return {"results": results, "exceededTransferLimit": False}


def pixel_values(layer: Layer, x: float, y: float) -> np.ndarray | None:
    """All bands of the source pixel containing (x, y) in the raster's SR; None outside."""
    src = layer.raster
    assert src is not None
    with rasterio.open(src.path) as ds:
        row, col = ds.index(x, y, op=math.floor)
        if not (0 <= row < ds.height and 0 <= col < ds.width):
            return None
        return ds.read(window=Window(col, row, 1, 1))[:, 0, 0]


def raster_results(layer: Layer, req: IdentifyRequest) -> list[dict]:
    src = layer.raster
    assert src is not None
    if req.geometry.is_empty:
        return []
    point = req.geometry if req.geometry.geom_type == "Point" else \
        req.geometry.representative_point()
    local = project(point, req.opts.sr, src.sr)
    if not (math.isfinite(local.x) and math.isfinite(local.y)):
        return []
    values = pixel_values(layer, local.x, local.y)
    if values is None:
        return []
    attrs: dict[str, object]
    nodata = src.nodata
    if nodata is not None and (np.any(np.isnan(values.astype(float))) if math.isnan(nodata)
                               else np.any(values == nodata)):
        pixel = "NoData"
        attrs = {"Pixel Value": pixel}
    else:
        pixel = " ".join(format_number(v) for v in values.tolist())
        attrs = {"Pixel Value": pixel}
        style = layer.raster_style
        if style is not None and style.stretch_min is not None and style.stretch_max is not None:
            stretched = []
            for b, lo, hi in zip(style.bands, style.stretch_min, style.stretch_max, strict=True):
                v = float(values[b - 1])
                s = 0.0 if hi == lo else (v - lo) / (hi - lo) * 255.0
                stretched.append(str(int(round(min(max(s, 0.0), 255.0)))))
            attrs["Stretched value"] = " ".join(stretched)
    res: dict = {"layerId": layer.id, "layerName": layer.name, "value": pixel,
                 "displayFieldName": "", "attributes": attrs,
                 "geometryType": "esriGeometryPoint"}
    if req.opts.return_geometry:
        g = to_esri(point, req.opts.precision)
        assert g is not None
        g["spatialReference"] = req.opts.sr.to_json()
        res["geometry"] = g
    return [res]
