"""The whitelisted subset of the Earth Engine expression encoding that maps onto our catalog.

An expression is ``{"result": key, "values": {key: ValueNode}}``. We evaluate it symbolically
into an :class:`ImageSpec` (or a :class:`CollectionSpec`): a plain description of *what* to draw
(service, layer, export-time arguments, clip, projection, bands, visualisation). Pixels are
produced later, per shard, by :mod:`mapserver.jobs.imagery` through the ``/export`` pipeline.

:data:`ALGORITHMS` is the one table of functions: each entry holds the implementation and its
signature (argument names, types, optional, defaults). The evaluator checks every invocation
against it (unknown or missing arguments are refused by name) and ``projects.algorithms.list``
is generated from it, so what the Earth Engine client is told and what we evaluate cannot drift.
Anything outside the table is refused with ``INVALID_ARGUMENT`` naming the function, so an EE
graph never half-runs.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mapserver.catalog.model import Catalog, Service
from mapserver.errors import MapServerError
from mapserver.jobs.crs import parse_crs
from mapserver.jobs.errors import ApiError, invalid
from mapserver.jobs.geometry import GeometryValue, ProjectionValue, construct, from_constant
from mapserver.params.common import Params
from mapserver.params.filters import (
    parse_layer_defs,
    parse_layers,
    parse_map_filters,
    parse_time,
)
from mapserver.select.plan import resolve_map

MAX_NODES = 2000
RGBA_BANDS = ("vis-red", "vis-green", "vis-blue", "vis-alpha")
UNIT_TRANSFORM = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # the EE client's "no transform" placeholder


@dataclass(frozen=True)
class ImageSpec:
    """What one image is. JSON-able (see :meth:`to_json`) so shards can carry it."""

    service: str
    layer_id: int | None = None  # None: the service drawn as /export draws it (RGBA)
    layers: str | None = None  # export-time ``layers`` (show:0,1 ...)
    layer_defs: dict[str, str] = field(default_factory=dict)
    time: tuple[int | None, int | None] | None = None
    clip: dict | None = None  # GeoJSON geometry in clip_crs
    clip_crs: str | None = None  # None: EPSG:4326
    crs: str | None = None
    crs_transform: tuple[float, ...] | None = None
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    max_dimension: int | None = None
    bands: tuple[str, ...] | None = None  # selected source bands
    rename: tuple[str, ...] | None = None  # their new names (Image.select newNames)
    vis: dict | None = None  # Image.visualize parameters, checked (see f_visualize)
    # the other export-time map parameters, as /export takes them (EXPORT_ARGS): parsed
    # by the same params/filters.py parser when the image is drawn
    extras: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, obj: dict) -> ImageSpec:
        obj = dict(obj)
        for k in ("time", "crs_transform", "bands", "rename"):
            if obj.get(k) is not None:
                obj[k] = tuple(obj[k])
        return cls(**obj)

    @property
    def rendered(self) -> bool:
        """RGBA pixels (a service drawn as /export draws it, or a visualised image)."""
        return self.vis is not None or (self.layer_id is None and self.bands is None)


@dataclass(frozen=True)
class CollectionSpec:
    """One image per time step of a time-enabled service, in time order."""

    images: tuple[ImageSpec, ...]


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    optional: bool = False
    default: Any = None
    description: str = ""


@dataclass(frozen=True)
class Algorithm:
    name: str
    fn: Callable[[Evaluator, dict], Any]
    returns: str
    args: tuple[Arg, ...]
    description: str

    def to_json(self) -> dict:
        """An ``Algorithm`` of ``projects.algorithms.list``."""
        args = []
        for a in self.args:
            d: dict = {"argumentName": a.name, "type": a.type, "description": a.description}
            if a.optional:
                d["optional"] = True
                if a.default is not None:
                    d["defaultValue"] = a.default
            args.append(d)
        return {"name": f"algorithms/{self.name}", "description": self.description,
                "returnType": self.returns, "arguments": args}


ALGORITHMS: dict[str, Algorithm] = {}


def algorithm(name: str, returns: str, description: str, *args: Arg):
    def deco(fn: Callable[[Evaluator, dict], Any]) -> Callable[[Evaluator, dict], Any]:
        ALGORITHMS[name] = Algorithm(name, fn, returns, args, description)
        return fn
    return deco


def opt(name: str, type_: str, description: str = "", default: Any = None) -> Arg:
    return Arg(name, type_, True, default, description)


def req(name: str, type_: str, description: str = "") -> Arg:
    return Arg(name, type_, False, None, description)


def _ms(value: Any, what: str) -> int:
    """Epoch ms from a number or an ISO date/time string."""
    if isinstance(value, bool):
        raise invalid(f"{what} must be a date")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            d = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise invalid(f"{what}: cannot parse date '{value[:40]}'") from exc
        if d.tzinfo is None:
            d = d.replace(tzinfo=dt.UTC)
        return int(d.timestamp() * 1000)
    if isinstance(value, dict) and "date" in value:
        return _ms(value["date"], what)
    raise invalid(f"{what} must be a date")


def _add(ms: int, n: float, units: str) -> int:
    d = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    if units in ("esriTimeUnitsYears", "esriTimeUnitsDecades", "esriTimeUnitsCenturies",
                 "esriTimeUnitsMonths"):
        months = int(n * {"esriTimeUnitsYears": 12, "esriTimeUnitsDecades": 120,
                          "esriTimeUnitsCenturies": 1200, "esriTimeUnitsMonths": 1}[units])
        m = d.month - 1 + months
        y, m = d.year + m // 12, m % 12 + 1
        day = min(d.day, calendar.monthrange(y, m)[1])
        return int(d.replace(year=y, month=m, day=day).timestamp() * 1000)
    secs = {"esriTimeUnitsWeeks": 604800, "esriTimeUnitsDays": 86400, "esriTimeUnitsHours": 3600,
            "esriTimeUnitsMinutes": 60, "esriTimeUnitsSeconds": 1,
            "esriTimeUnitsMilliseconds": 0.001}.get(units, 86400)
    return ms + int(n * secs * 1000)


def time_steps(svc: Service) -> list[tuple[int, int]]:
    """[start, end] (inclusive, epoch ms) of each time step of a time-enabled service."""
    ti = svc.time_info or next((lyr.time_info for lyr in svc.layers if lyr.time_info), None)
    if ti is None or ti.extent is None:
        raise invalid(f"ImageCollection.load: service '{svc.name}' is not time-enabled")
    t0, t1 = ti.extent
    out = []
    t = t0
    while t <= t1 and len(out) < 100_000:
        nxt = _add(t, ti.interval or 1, ti.interval_units)
        if nxt <= t:
            break
        out.append((t, nxt - 1))
        t = nxt
    return out


class Evaluator:
    def __init__(self, expr: Any, catalog: Catalog) -> None:
        if not isinstance(expr, dict) or not isinstance(expr.get("values"), dict) \
                or not isinstance(expr.get("result"), str):
            raise invalid("expression must be {\"result\": key, \"values\": {key: ValueNode}}")
        self.values = expr["values"]
        self.result = expr["result"]
        self.catalog = catalog
        self.count = 0
        self.cache: dict[str, Any] = {}

    def run(self) -> Any:
        return self.ref(self.result, {})

    def ref(self, key: str, env: dict) -> Any:
        if key not in self.values:
            raise invalid(f"expression: valueReference '{str(key)[:40]}' is not defined")
        if env:
            return self.node(self.values[key], env)
        if key not in self.cache:
            self.cache[key] = None  # cycle guard
            self.cache[key] = self.node(self.values[key], env)
        elif self.cache[key] is None:
            raise invalid("expression: reference cycle")
        return self.cache[key]

    def node(self, n: Any, env: dict) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise invalid(f"expression: more than {MAX_NODES} nodes")
        if not isinstance(n, dict) or len(n) != 1:
            raise invalid("expression: each ValueNode must have exactly one field")
        kind, v = next(iter(n.items()))
        if kind == "constantValue":
            return v
        if kind == "integerValue":
            try:
                return int(v)
            except (TypeError, ValueError) as exc:
                raise invalid("expression: integerValue must be an integer") from exc
        if kind == "valueReference":
            return self.ref(v, env)
        if kind == "argumentReference":
            if v not in env:
                raise invalid(f"expression: unbound argument '{str(v)[:40]}'")
            return env[v]
        if kind == "arrayValue":
            return [self.node(x, env) for x in (v or {}).get("values", [])]
        if kind == "dictionaryValue":
            return {k: self.node(x, env) for k, x in (v or {}).get("values", {}).items()}
        if kind == "functionDefinitionValue":
            if not isinstance(v, dict) or not isinstance(v.get("argumentNames"), list):
                raise invalid("expression: functionDefinitionValue needs argumentNames and body")
            return ("lambda", tuple(v["argumentNames"]), v.get("body"))
        if kind == "functionInvocationValue":
            if not isinstance(v, dict):
                raise invalid("expression: functionInvocationValue must be an object")
            name = v.get("functionName")
            if name is None and "functionReference" in v:
                raise invalid("Unsupported function in expression: functionReference (calls "
                              "of client-defined functions other than through Collection.map)")
            alg = ALGORITHMS.get(name)
            if alg is None:
                raise invalid(f"Unsupported function in expression: {str(name)[:80]}. Supported: "
                              + ", ".join(sorted(ALGORITHMS)))
            raw = v.get("arguments") or {}
            if not isinstance(raw, dict):
                raise invalid(f"{name}: arguments must be an object")
            known = {a.name for a in alg.args}
            unknown = sorted(set(raw) - known)
            if unknown:
                raise invalid(f"{name}: unknown arguments {', '.join(unknown)}; it takes "
                              + ", ".join(a.name for a in alg.args))
            missing = [a.name for a in alg.args if not a.optional and a.name not in raw]
            if missing:
                raise invalid(f"{name}: missing required arguments {', '.join(missing)}")
            args = {k: self.node(x, env) for k, x in raw.items()}
            return alg.fn(self, args)
        raise invalid(f"expression: unsupported ValueNode '{str(kind)[:40]}'")

    # --- helpers ------------------------------------------------------------------------------
    def service(self, ident: Any, fname: str) -> tuple[Service, int | None]:
        if not isinstance(ident, str) or not ident:
            raise invalid(f"{fname}: 'id' must be a service name")
        svc = self.catalog.service(ident)
        if svc is not None:
            return svc, None
        if "/assets/" in ident:  # an exported asset: a raster layer of its project's service
            from mapserver.jobs.assets import find_asset_layer

            found = find_asset_layer(self.catalog, ident)
            if found is not None:
                return found
        name, _, lid = ident.rpartition("/")
        svc = self.catalog.service(name)
        if svc is not None and lid.isdigit():
            layer = svc.layer(int(lid))
            if layer is None or layer.kind != "raster":
                raise invalid(f"{fname}: '{ident}' is not a raster layer")
            return svc, int(lid)
        raise ApiError("NOT_FOUND", f"{fname}: no map service, raster layer or asset "
                       f"'{ident[:80]}'")


def source_band_names(spec: ImageSpec, catalog: Catalog) -> tuple[str, ...]:
    svc = catalog.service(spec.service)
    if svc is None:
        raise invalid(f"Image.load: no map service '{spec.service}'")
    if spec.layer_id is None:
        return RGBA_BANDS
    return tuple(f"b{i + 1}" for i in range(svc.layer(spec.layer_id).raster.count))


def band_names(spec: ImageSpec, catalog: Catalog) -> tuple[str, ...]:
    """The image's band names after select/rename/visualize."""
    if spec.vis is not None:
        return RGBA_BANDS
    names = source_band_names(spec, catalog)
    if spec.bands:
        for b in spec.bands:
            if b not in names:
                raise invalid(f"Image.select: band '{b[:40]}' not found; the image has bands "
                              + ", ".join(names))
        return spec.rename or spec.bands
    return names


def _image(v: Any, fname: str) -> ImageSpec | CollectionSpec:
    if isinstance(v, ImageSpec | CollectionSpec):
        return v
    raise invalid(f"{fname}: argument 'input' must be an Image")


def _each(v: Any, fname: str, fn) -> ImageSpec | CollectionSpec:
    img = _image(v, fname)
    if isinstance(img, CollectionSpec):
        return CollectionSpec(tuple(fn(i) for i in img.images))
    return fn(img)


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise invalid(f"{what} must be true or false")
    return v


def _projection(v: Any, what: str) -> ProjectionValue:
    """A Projection value, or a CRS string (our JSON clients send ``"EPSG:3857"``)."""
    if isinstance(v, ProjectionValue):
        return v
    if isinstance(v, str):
        return ProjectionValue(parse_crs(v, None).key)
    if isinstance(v, dict) and isinstance(v.get("crs"), str):
        return ProjectionValue(parse_crs(v["crs"], None).key, _transform(v.get("transform"),
                                                                         what))
    raise invalid(f"{what}: 'crs' must be a Projection or a CRS code such as 'EPSG:3857'")


def _transform(v: Any, what: str) -> tuple[float, ...] | None:
    if v is None:
        return None
    if not (isinstance(v, list | tuple) and len(v) == 6
            and all(isinstance(x, int | float) and not isinstance(x, bool)
                    and math.isfinite(x) for x in v)):
        raise invalid(f"{what}: 'crsTransform' must be 6 numbers [xScale, xShear, xTranslation, "
                      "yShear, yScale, yTranslation]")
    t = tuple(float(x) for x in v)
    if abs(t[0] * t[4] - t[1] * t[3]) < 1e-300:
        raise invalid(f"{what}: 'crsTransform' is not invertible")
    return t


# --- loading ----------------------------------------------------------------------------------
EXPORT_ARGS = ("timeRelation", "layerTimeOptions", "dynamicLayers", "gdbVersion",
               "historicMoment", "layerParameterValues", "mapRangeValues", "layerRangeValues",
               "datumTransformations")
LOAD_ARGS = (
    req("id", "String", "A map service name (drawn as /export draws it), "
        "'<service>/<layerId>' of a raster layer (its data values) or an exported asset id."),
    opt("version", "Long", "Ignored (services are not versioned this way)."),
    opt("layers", "String", "/export 'layers', e.g. 'show:0,1'."),
    opt("layerDefs", "Object", "/export 'layerDefs'."),
    opt("time", "Object", "/export 'time': 't0,t1' in epoch ms."),
    *(opt(n, "Object", f"/export '{n}'.") for n in EXPORT_ARGS),
)


@algorithm("Image.load", "Image", "Loads a map service or a raster layer as an image.",
           *LOAD_ARGS)
def f_image_load(ev: Evaluator, a: dict) -> ImageSpec:
    svc, lid = ev.service(a.get("id"), "Image.load")
    spec = ImageSpec(service=svc.name, layer_id=lid)
    return _export_args(spec, a, "Image.load", svc)


def _export_args(spec: ImageSpec, a: dict, fname: str, svc: Service) -> ImageSpec:
    try:
        if a.get("layers") is not None:
            parse_layers(str(a["layers"]))
            spec = replace(spec, layers=str(a["layers"]))
        if a.get("layerDefs") is not None:
            raw = a["layerDefs"]
            defs = parse_layer_defs(raw if isinstance(raw, str) else _json(raw))
            spec = replace(spec, layer_defs={str(k): v for k, v in defs.items()})
        if a.get("time") is not None:
            t = a["time"]
            spec = replace(spec, time=parse_time(t if isinstance(t, str) else
                                                 ",".join("null" if x is None else str(x)
                                                          for x in (t if isinstance(t, list)
                                                                    else [t]))))
    except MapServerError as exc:
        raise invalid(f"{fname}: {exc.message} {' '.join(exc.details)}".strip()) from exc
    extras = {name: a[name] if isinstance(a[name], str) else _json(a[name])
              for name in EXPORT_ARGS if a.get(name) is not None}
    if extras:
        spec = replace(spec, extras=extras)
    unknown = set(a) - {"id", "layers", "layerDefs", "time", "version", *EXPORT_ARGS}
    if unknown:
        raise invalid(f"{fname}: unknown arguments {sorted(unknown)}")
    if spec.layer_id is None and (spec.extras or spec.layers or spec.layer_defs):
        # checked against the service now, as /export checks them, so a bad value is a 400
        # at submit and not a failure of every shard later
        try:
            resolve_map(svc, parse_map_filters(export_params(spec), svc.sr))
        except MapServerError as exc:
            raise invalid(f"{fname}: {exc.message} {' '.join(exc.details)}".strip()) from exc
    return spec


def export_params(spec: ImageSpec) -> Params:
    """The image's export-time arguments as the /export parameters they are."""
    pairs = list(spec.extras.items())
    if spec.layers:
        pairs.append(("layers", spec.layers))
    if spec.layer_defs:
        pairs.append(("layerDefs", _json(spec.layer_defs)))
    if spec.time is not None:
        pairs.append(("time", ",".join("null" if t is None else str(t) for t in spec.time)))
    return Params(pairs)


def _json(v: Any) -> str:
    import json

    return json.dumps(v)


@algorithm("ImageCollection.load", "ImageCollection",
           "One image per time step of a time-enabled map service.", *LOAD_ARGS)
def f_collection_load(ev: Evaluator, a: dict) -> CollectionSpec:
    svc, lid = ev.service(a.get("id"), "ImageCollection.load")
    base = _export_args(ImageSpec(service=svc.name, layer_id=lid), a, "ImageCollection.load", svc)
    return CollectionSpec(tuple(replace(base, time=step) for step in time_steps(svc)))


@algorithm("ImageCollection.filterDate", "ImageCollection", "Keeps the images whose start "
           "time is in [start, end).", req("collection", "ImageCollection"), req("start", "Date"),
           opt("end", "Date"))
def f_filter_date(ev: Evaluator, a: dict) -> CollectionSpec:
    coll = a.get("collection")
    if not isinstance(coll, CollectionSpec):
        raise invalid("ImageCollection.filterDate: 'collection' must be an ImageCollection")
    start = _ms(a.get("start"), "filterDate start")
    end = _ms(a["end"], "filterDate end") if a.get("end") is not None else None
    return CollectionSpec(tuple(i for i in coll.images if i.time and i.time[0] >= start
                                and (end is None or i.time[0] < end)))


@algorithm("Filter.date", "Filter", "A filter on system:time_start in [start, end).",
           req("start", "Date"), opt("end", "Date"))
def f_filter_date_range(ev: Evaluator, a: dict) -> tuple:
    return ("date", _ms(a.get("start"), "Filter.date start"),
            _ms(a["end"], "Filter.date end") if a.get("end") is not None else None)


@algorithm("Filter.dateRangeContains", "Filter", "Only leftValue=DateRange(...), "
           "rightField='system:time_start'.", opt("leftField", "String"),
           opt("rightValue", "Object"),
           opt("rightField", "String"), opt("leftValue", "Object"))
def f_date_range_contains(ev: Evaluator, a: dict) -> tuple:
    rng = a.get("leftValue")
    if a.get("rightField") != "system:time_start" or not (isinstance(rng, tuple)
                                                           and rng[0] == "range"):
        raise invalid("Filter.dateRangeContains: only leftValue=DateRange.create(...), "
                      "rightField='system:time_start' is supported")
    return ("date", rng[1], rng[2])


@algorithm("DateRange", "DateRange", "A date range [start, end).", req("start", "Object"),
           opt("end", "Object"), opt("timeZone", "String"))
def f_date_range(ev: Evaluator, a: dict) -> tuple:
    if a.get("timeZone") not in (None, "UTC", "Etc/UTC", "GMT"):
        raise invalid("DateRange: only the UTC time zone is supported")
    return ("range", _ms(a.get("start"), "DateRange start"),
            _ms(a["end"], "DateRange end") if a.get("end") is not None else None)


@algorithm("Collection.filter", "ImageCollection", "Date filters only.",
           req("collection", "ImageCollection"), req("filter", "Object"))
def f_collection_filter(ev: Evaluator, a: dict) -> CollectionSpec:
    flt = a.get("filter")
    if not (isinstance(flt, tuple) and flt[0] == "date"):
        raise invalid("Collection.filter: only date filters (Filter.date, "
                      "Filter.dateRangeContains) are supported")
    return f_filter_date(ev, {"collection": a.get("collection"), "start": flt[1], "end": flt[2]})


@algorithm("Collection.map", "ImageCollection", "Maps a one-argument function over a collection.",
           req("collection", "ImageCollection"), req("baseAlgorithm", "Algorithm"),
           opt("dropNulls", "Boolean", "", False))
def f_collection_map(ev: Evaluator, a: dict) -> CollectionSpec:
    coll, fn = a.get("collection"), a.get("baseAlgorithm")
    if not isinstance(coll, CollectionSpec) or not (isinstance(fn, tuple) and fn[0] == "lambda"
                                                    and len(fn[1]) == 1):
        raise invalid("Collection.map: needs 'collection' and a one-argument 'baseAlgorithm'")
    if a.get("dropNulls") is not None:
        _bool(a["dropNulls"], "Collection.map dropNulls")
    out = []
    for img in coll.images:
        body = fn[2]
        res = ev.node(body if isinstance(body, dict) else {"valueReference": body},
                      {fn[1][0]: img})
        if not isinstance(res, ImageSpec):
            raise invalid("Collection.map: the function must return an Image")
        out.append(res)
    return CollectionSpec(tuple(out))


@algorithm("Collection.first", "Image", "The first image of a collection (the EE client's "
           "video export calls it while preparing the request).", req("collection",
                                                                    "ImageCollection"))
def f_collection_first(ev: Evaluator, a: dict) -> ImageSpec:
    coll = a.get("collection")
    if not isinstance(coll, CollectionSpec):
        raise invalid("Collection.first: 'collection' must be an ImageCollection")
    if not coll.images:
        raise invalid("Collection.first: the collection is empty")
    return coll.images[0]


# --- geometry and projection ------------------------------------------------------------------
GEOM_ARGS = (opt("crs", "Projection", "The CRS of the coordinates (default EPSG:4326)."),
             opt("proj", "Projection", "Alias of 'crs'."),
             opt("geodesic", "Boolean", "Edges along great circles (default: true in a "
                 "geographic CRS)."),
             opt("maxError", "ErrorMargin", "Accepted; geodesic edges are densified to ~100 km."))


def _geometry_fn(kind: str, *args: Arg):
    @algorithm(f"GeometryConstructors.{kind}", "Geometry", f"Constructs a {kind}.", *args)
    def fn(ev: Evaluator, a: dict) -> GeometryValue:
        if "crs" in a and "proj" in a:
            raise invalid(f"GeometryConstructors.{kind}: give 'crs' or 'proj', not both")
        for k in ("crs", "proj"):
            if a.get(k) is not None:
                a[k] = _projection(a[k], f"GeometryConstructors.{kind}")
        try:
            return construct(kind, a)
        except (ValueError, TypeError, IndexError, AttributeError) as exc:  # shapely's refusals
            raise invalid(f"GeometryConstructors.{kind}: invalid coordinates") from exc
    return fn


_geometry_fn("Point", req("coordinates", "List<Number>"), *GEOM_ARGS[:2])
_geometry_fn("MultiPoint", req("coordinates", "List<Object>"), *GEOM_ARGS[:2])
_geometry_fn("LineString", req("coordinates", "List<Object>"), *GEOM_ARGS)
_geometry_fn("Polygon", req("coordinates", "List<Object>"), *GEOM_ARGS,
             opt("evenOdd", "Boolean", "", True))
_geometry_fn("MultiPolygon", req("coordinates", "List<Object>"), *GEOM_ARGS,
             opt("evenOdd", "Boolean", "", True))
_geometry_fn("Rectangle", req("coordinates", "List<Object>"), *GEOM_ARGS[:3],
             opt("evenOdd", "Boolean", "", True))
_geometry_fn("BBox", req("west", "Float"), req("south", "Float"), req("east", "Float"),
             req("north", "Float"))


@algorithm("Projection", "Projection", "A projection: a CRS and an optional affine transform.",
           req("crs", "Object"), opt("transform", "List<Object>"), opt("transformWkt", "String"))
def f_projection(ev: Evaluator, a: dict) -> ProjectionValue:
    if a.get("transformWkt") is not None:
        raise invalid("Projection: 'transformWkt' is not supported; use 'transform'")
    crs = a.get("crs")
    if isinstance(crs, ProjectionValue):
        return crs
    if not isinstance(crs, str):
        raise invalid("Projection: 'crs' must be a CRS code or WKT")
    return ProjectionValue(parse_crs(crs, None).key, _transform(a.get("transform"), "Projection"))


def _native(ev: Evaluator, spec: ImageSpec) -> ProjectionValue:
    svc = ev.catalog.service(spec.service)
    assert svc is not None
    if spec.layer_id is not None:
        r = svc.layer(spec.layer_id).raster
        return ProjectionValue(r.sr.key, tuple(r.transform))
    return ProjectionValue(svc.sr.key)


@algorithm("Image.projection", "Projection", "The projection of an image.",
           req("image", "Image"))
def f_image_projection(ev: Evaluator, a: dict) -> ProjectionValue:
    img = a.get("image")
    if not isinstance(img, ImageSpec):
        raise invalid("Image.projection: 'image' must be an Image")
    if img.crs is None:
        return _native(ev, img)
    t = img.crs_transform
    if t is None and img.scale:
        t = (img.scale, 0.0, 0.0, 0.0, -img.scale, 0.0)
    return ProjectionValue(img.crs, t)


# --- image operations -------------------------------------------------------------------------
def _clip_with(spec: ImageSpec, geom: GeometryValue, fname: str) -> ImageSpec:
    if spec.clip is not None:
        if spec.clip_crs != geom.crs:
            raise invalid(f"{fname}: clipping an image twice with geometries in different CRSs "
                          "is not supported")
        import shapely.geometry

        inter = shapely.geometry.shape(spec.clip).intersection(geom.shape())
        return replace(spec, clip=shapely.geometry.mapping(inter))
    return replace(spec, clip=geom.geojson, clip_crs=geom.crs)


@algorithm("Image.clip", "Image", "Masks the pixels outside a geometry; its bounds become the "
           "image's bounds.", req("input", "Image"), req("geometry", "Object"))
def f_clip(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    geom = from_constant(a.get("geometry"), "Image.clip")
    return _each(a.get("input"), "Image.clip", lambda i: _clip_with(i, geom, "Image.clip"))


@algorithm("Image.clipToBoundsAndScale", "Image",
           "Clips to the bounds of a geometry (default: the image's own bounds) and sets the "
           "output size by width/height, maxDimension or scale.",
           req("input", "Image"), opt("geometry", "Geometry"), opt("width", "Integer"),
           opt("height", "Integer"), opt("maxDimension", "Integer"), opt("scale", "Float"))
def f_clip_bounds_scale(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    fname = "Image.clipToBoundsAndScale"
    kw: dict[str, Any] = {}
    for key, name in (("width", "width"), ("height", "height"), ("maxDimension", "max_dimension")):
        if a.get(key) is not None:
            kw[name] = _pos_int(a[key], f"{fname} {key}")
    if ("width" in kw) != ("height" in kw):
        raise invalid(f"{fname}: give both width and height, or maxDimension, or scale")
    if sum(x is not None for x in (kw.get("width"), kw.get("max_dimension"),
                                   a.get("scale"))) > 1:
        raise invalid(f"{fname}: width/height, maxDimension and scale are mutually exclusive")
    if a.get("scale") is not None:
        kw["scale"] = _pos_float(a["scale"], f"{fname} scale")
    geom = from_constant(a["geometry"], fname) if a.get("geometry") is not None else None

    def apply(i: ImageSpec) -> ImageSpec:
        if geom is not None:
            i = _clip_with(i, geom, fname)
        if kw:  # the output size overrides the image's own scale or transform
            i = replace(i, crs_transform=None, scale=None, width=None, height=None,
                        max_dimension=None)
        return replace(i, **kw)
    return _each(a.get("input"), fname, apply)


def _reproject(a: dict, fname: str, default_only: bool) -> Callable[[ImageSpec], ImageSpec]:
    proj = _projection(a.get("crs"), fname)
    parse_crs(proj.crs, None)
    t = _transform(a.get("crsTransform"), fname) or proj.transform
    scale = _pos_float(a["scale"], f"{fname} scale") if a.get("scale") is not None else None
    if t is not None and scale is not None:
        raise invalid(f"{fname}: give crsTransform or scale, not both")
    if default_only and t is not None and t[:2] == UNIT_TRANSFORM[:2] and t[3:5] == \
            UNIT_TRANSFORM[3:5]:
        t = None  # the client's placeholder: only the CRS is set, the resolution stays

    def apply(i: ImageSpec) -> ImageSpec:
        if default_only and i.crs is not None:  # a fixed projection is not overridden
            return i
        kw: dict[str, Any] = {"crs": proj.crs, "crs_transform": t, "scale": scale}
        if default_only:
            kw = {k: v for k, v in kw.items() if v is not None}
        return replace(i, **kw)
    return apply


@algorithm("Image.reproject", "Image", "Fixes the image's output projection: a CRS with a "
           "crsTransform (an exact pixel grid) or a scale.",
           req("image", "Image"), req("crs", "Projection"), opt("crsTransform", "List<Float>"),
           opt("scale", "Float"))
def f_reproject(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    return _each(a.get("image"), "Image.reproject", _reproject(a, "Image.reproject", False))


@algorithm("Image.setDefaultProjection", "Image",
           "Sets the output projection unless one is fixed already; the EE client's unit "
           "transform [1,0,0,0,-1,0] sets the CRS only.",
           req("image", "Image"), req("crs", "Projection"), opt("crsTransform", "List<Float>"),
           opt("scale", "Float"))
def f_set_default_projection(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    return _each(a.get("image"), "Image.setDefaultProjection",
                 _reproject(a, "Image.setDefaultProjection", True))


@algorithm("Image.select", "Image", "Selects bands by name or index, optionally renaming them.",
           req("input", "Image"), req("bandSelectors", "List<Object>"),
           opt("newNames", "List<String>"))
def f_select(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    sel = a.get("bandSelectors")
    if isinstance(sel, str | int):
        sel = [sel]
    if not (isinstance(sel, list) and sel and all(isinstance(s, str | int)
                                                  and not isinstance(s, bool) for s in sel)):
        raise invalid("Image.select: 'bandSelectors' must be a non-empty list of band names")
    new = a.get("newNames")
    if new is not None and not (isinstance(new, list) and len(new) == len(sel)
                                and all(isinstance(n, str) and n for n in new)
                                and len(set(new)) == len(new)):
        raise invalid("Image.select: 'newNames' must be distinct names, one per selected band")

    def apply(i: ImageSpec) -> ImageSpec:
        if i.vis is not None:
            raise invalid("Image.select after Image.visualize is not supported")
        current = band_names(i, ev.catalog)
        source = i.bands or current
        picked = []
        for s in sel:
            if isinstance(s, int):
                if not 0 <= s < len(current):
                    raise invalid(f"Image.select: band index {s} out of range (0-"
                                  f"{len(current) - 1})")
                picked.append(s)
            elif s in current:
                picked.append(current.index(s))
            else:
                raise invalid(f"Image.select: band '{s[:40]}' not found; the image has bands "
                              + ", ".join(current))
        names = tuple(new) if new is not None else tuple(current[k] for k in picked)
        return replace(i, bands=tuple(source[k] for k in picked), rename=names)
    return _each(a.get("input"), "Image.select", apply)


def _numbers(v: Any, n: int, what: str) -> list[float] | None:
    if v is None:
        return None
    if isinstance(v, str):
        try:
            v = [float(x) for x in v.split(",")]
        except ValueError as exc:
            raise invalid(f"Image.visualize: '{what}' must be numbers") from exc
    if isinstance(v, int | float) and not isinstance(v, bool):
        v = [v]
    if not (isinstance(v, list) and all(isinstance(x, int | float) and not isinstance(x, bool)
                                        and math.isfinite(x) for x in v)):
        raise invalid(f"Image.visualize: '{what}' must be a number or one number per band")
    if len(v) == 1:
        v = v * n
    if len(v) != n:
        raise invalid(f"Image.visualize: '{what}' needs 1 or {n} values")
    return [float(x) for x in v]


def _palette(v: Any) -> list[list[int]]:
    from matplotlib.colors import to_rgb

    if isinstance(v, str):
        v = [x.strip() for x in v.split(",")]
    if not (isinstance(v, list) and v and all(isinstance(c, str) for c in v)):
        raise invalid("Image.visualize: 'palette' must be a list of colours")
    out = []
    for c in v:
        text = c.strip()
        if len(text) in (3, 6) and all(ch in "0123456789abcdefABCDEF" for ch in text):
            text = "#" + text
        try:
            out.append([round(x * 255) for x in to_rgb(text)])
        except ValueError as exc:
            raise invalid(f"Image.visualize: unknown colour '{c[:20]}'") from exc
    return out


@algorithm("Image.visualize", "Image", "Renders 1 or 3 bands as an 8-bit RGB image "
           "(vis-red, vis-green, vis-blue plus vis-alpha from the mask).",
           req("image", "Image"), opt("bands", "Object"), opt("gain", "Object"),
           opt("bias", "Object"), opt("min", "Object"), opt("max", "Object"),
           opt("gamma", "Object"), opt("opacity", "Number"), opt("palette", "Object"),
           opt("forceRgbOutput", "Boolean", "", False))
def f_visualize(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    if a.get("forceRgbOutput") is not None:
        _bool(a["forceRgbOutput"], "Image.visualize forceRgbOutput")
    if (a.get("gain") is not None or a.get("bias") is not None) and \
            (a.get("min") is not None or a.get("max") is not None):
        raise invalid("Image.visualize: give min/max or gain/bias, not both")
    if a.get("palette") is not None and (a.get("gain") is not None or a.get("gamma") is not None):
        raise invalid("Image.visualize: 'palette' cannot be combined with gain or gamma")
    opacity = None
    if a.get("opacity") is not None:
        opacity = _pos_float(a["opacity"], "Image.visualize opacity") if a["opacity"] else 0.0
        if opacity > 1:
            raise invalid("Image.visualize: 'opacity' must be between 0 and 1")

    def apply(i: ImageSpec) -> ImageSpec:
        if i.vis is not None:
            raise invalid("Image.visualize: the image is visualised already")
        current = band_names(i, ev.catalog)
        bands = a.get("bands")
        if bands is None:
            bands = list(current[:3]) if len(current) >= 3 else [current[0]]
        elif isinstance(bands, str):
            bands = [b.strip() for b in bands.split(",")]
        if not (isinstance(bands, list) and len(bands) in (1, 3)
                and all(isinstance(b, str) for b in bands)):
            raise invalid("Image.visualize: 'bands' must name 1 or 3 bands")
        for b in bands:
            if b not in current:
                raise invalid(f"Image.visualize: band '{b[:40]}' not found; the image has bands "
                              + ", ".join(current))
        n = len(bands)
        palette = _palette(a["palette"]) if a.get("palette") is not None else None
        if palette is not None and n != 1:
            raise invalid("Image.visualize: 'palette' needs exactly one band")
        lo, hi = _numbers(a.get("min"), n, "min"), _numbers(a.get("max"), n, "max")
        gain, bias = _numbers(a.get("gain"), n, "gain"), _numbers(a.get("bias"), n, "bias")
        if gain is not None or bias is not None:
            g, b = gain or [1.0] * n, bias or [0.0] * n
            if any(x == 0 for x in g):
                raise invalid("Image.visualize: 'gain' must not be 0")
            lo = [-bb / gg for gg, bb in zip(g, b, strict=True)]
            hi = [(255 - bb) / gg for gg, bb in zip(g, b, strict=True)]
        gamma = _numbers(a.get("gamma"), n, "gamma")
        if gamma is not None and any(x <= 0 for x in gamma):
            raise invalid("Image.visualize: 'gamma' must be positive")
        # the selected bands become the image's bands, so rendering reads only these
        src = i.bands or current
        picked = [current.index(b) for b in bands]
        spec = replace(i, bands=tuple(src[k] for k in picked),
                       rename=tuple(current[k] for k in picked))
        return replace(spec, vis={"min": lo, "max": hi, "gamma": gamma, "palette": palette,
                                  "opacity": opacity})
    return _each(a.get("image"), "Image.visualize", apply)


def _pos_int(v: Any, what: str) -> int:
    if isinstance(v, bool):
        raise invalid(f"{what} must be a positive integer")
    try:
        n = int(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be a positive integer") from exc
    if n <= 0 or n != v:
        raise invalid(f"{what} must be a positive integer")
    return n


def _pos_float(v: Any, what: str) -> float:
    if isinstance(v, bool):
        raise invalid(f"{what} must be a positive number")
    try:
        x = float(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be a positive number") from exc
    if not (x > 0 and math.isfinite(x)):
        raise invalid(f"{what} must be a positive number")
    return x


# kept for callers that only need the implementations
FUNCTIONS = {name: alg.fn for name, alg in ALGORITHMS.items()}


def evaluate(expr: Any, catalog: Catalog) -> ImageSpec | CollectionSpec:
    value = Evaluator(expr, catalog).run()
    if not isinstance(value, ImageSpec | CollectionSpec):
        raise invalid("expression must evaluate to an Image or an ImageCollection")
    return value
