"""The whitelisted subset of the Earth Engine expression encoding that maps onto our catalog.

An expression is ``{"result": key, "values": {key: ValueNode}}``. We evaluate it symbolically
into an :class:`ImageSpec` (or a :class:`CollectionSpec`): a plain description of *what* to draw
(service, layer, export-time arguments, clip, projection, bands). Pixels are produced later, per
shard, by :mod:`mapserver.jobs.imagery` through the ``/export`` pipeline. Anything outside
:data:`FUNCTIONS` is refused with ``INVALID_ARGUMENT`` naming the function, so an EE graph never
half-runs.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field, replace
from typing import Any

from mapserver.catalog.model import Catalog, Service
from mapserver.errors import MapServerError
from mapserver.jobs.crs import parse_crs
from mapserver.jobs.errors import ApiError, invalid
from mapserver.params.filters import parse_layer_defs, parse_layers, parse_time

MAX_NODES = 500


@dataclass(frozen=True)
class ImageSpec:
    """What one image is. JSON-able (see :meth:`to_json`) so shards can carry it."""

    service: str
    layer_id: int | None = None  # None: the service drawn as /export draws it (RGBA)
    layers: str | None = None  # export-time ``layers`` (show:0,1 ...)
    layer_defs: dict[str, str] = field(default_factory=dict)
    time: tuple[int | None, int | None] | None = None
    clip: dict | None = None  # GeoJSON geometry in EPSG:4326
    crs: str | None = None
    crs_transform: tuple[float, ...] | None = None
    scale: float | None = None
    width: int | None = None
    height: int | None = None
    max_dimension: int | None = None
    bands: tuple[str, ...] | None = None
    # the other export-time map parameters, as /export takes them (EXPORT_ARGS): parsed
    # by the same params/filters.py parser when the image is drawn
    extras: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, obj: dict) -> ImageSpec:
        obj = dict(obj)
        for k in ("time", "crs_transform", "bands"):
            if obj.get(k) is not None:
                obj[k] = tuple(obj[k])
        return cls(**obj)


@dataclass(frozen=True)
class CollectionSpec:
    """One image per time step of a time-enabled service, in time order."""

    images: tuple[ImageSpec, ...]


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


def _geometry(value: Any, what: str) -> dict:
    if isinstance(value, dict) and value.get("type") in ("Polygon", "MultiPolygon"):
        import shapely.geometry

        try:
            geom = shapely.geometry.shape(value)
        except Exception as exc:  # noqa: BLE001 - any parse problem is the client's
            raise invalid(f"{what}: invalid GeoJSON geometry") from exc
        if geom.is_empty or not geom.is_valid:
            raise invalid(f"{what}: geometry is empty or not valid")
        return shapely.geometry.mapping(geom)
    raise invalid(f"{what}: geometry must be a GeoJSON Polygon or MultiPolygon in EPSG:4326")


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
            return int(v)
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
            return ("lambda", tuple(v.get("argumentNames", [])), v.get("body"))
        if kind == "functionInvocationValue":
            name = v.get("functionName") if isinstance(v, dict) else None
            fn = FUNCTIONS.get(name)
            if fn is None:
                raise invalid(f"Unsupported function in expression: {str(name)[:80]}. Supported: "
                              + ", ".join(sorted(FUNCTIONS)))
            args = {k: self.node(x, env) for k, x in (v.get("arguments") or {}).items()}
            return fn(self, args)
        raise invalid(f"expression: unsupported ValueNode '{kind[:40]}'")

    # --- helpers ------------------------------------------------------------------------------
    def service(self, ident: Any, fname: str) -> tuple[Service, int | None]:
        if not isinstance(ident, str) or not ident:
            raise invalid(f"{fname}: 'id' must be a service name")
        svc = self.catalog.service(ident)
        if svc is not None:
            return svc, None
        name, _, lid = ident.rpartition("/")
        svc = self.catalog.service(name)
        if svc is not None and lid.isdigit():
            layer = svc.layer(int(lid))
            if layer is None or layer.kind != "raster":
                raise invalid(f"{fname}: '{ident}' is not a raster layer")
            return svc, int(lid)
        raise ApiError("NOT_FOUND", f"{fname}: no map service or raster layer '{ident[:80]}'")


def _image(v: Any, fname: str) -> ImageSpec | CollectionSpec:
    if isinstance(v, ImageSpec | CollectionSpec):
        return v
    raise invalid(f"{fname}: argument 'input' must be an Image")


def _each(v: Any, fname: str, fn) -> ImageSpec | CollectionSpec:
    img = _image(v, fname)
    if isinstance(img, CollectionSpec):
        return CollectionSpec(tuple(fn(i) for i in img.images))
    return fn(img)


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
    return spec


# /export parameters an Image.load may carry beyond layers, layerDefs and time
EXPORT_ARGS = ("timeRelation", "layerTimeOptions", "dynamicLayers", "gdbVersion",
               "historicMoment", "layerParameterValues", "mapRangeValues", "layerRangeValues",
               "datumTransformations")


def _json(v: Any) -> str:
    import json

    return json.dumps(v)


def f_collection_load(ev: Evaluator, a: dict) -> CollectionSpec:
    svc, lid = ev.service(a.get("id"), "ImageCollection.load")
    base = _export_args(ImageSpec(service=svc.name, layer_id=lid), a, "ImageCollection.load", svc)
    return CollectionSpec(tuple(replace(base, time=step) for step in time_steps(svc)))


def f_filter_date(ev: Evaluator, a: dict) -> CollectionSpec:
    coll = a.get("collection")
    if not isinstance(coll, CollectionSpec):
        raise invalid("ImageCollection.filterDate: 'collection' must be an ImageCollection")
    start = _ms(a.get("start"), "filterDate start")
    end = _ms(a["end"], "filterDate end") if a.get("end") is not None else None
    return CollectionSpec(tuple(i for i in coll.images if i.time and i.time[0] >= start
                                and (end is None or i.time[0] < end)))


def f_filter_date_range(ev: Evaluator, a: dict) -> tuple:
    return ("date", _ms(a.get("start"), "Filter.date start"),
            _ms(a["end"], "Filter.date end") if a.get("end") is not None else None)


def f_date_range_contains(ev: Evaluator, a: dict) -> tuple:
    rng = a.get("leftValue")
    if a.get("rightField") != "system:time_start" or not (isinstance(rng, tuple)
                                                           and rng[0] == "range"):
        raise invalid("Filter.dateRangeContains: only leftValue=DateRange.create(...), "
                      "rightField='system:time_start' is supported")
    return ("date", rng[1], rng[2])


def f_date_range(ev: Evaluator, a: dict) -> tuple:
    return ("range", _ms(a.get("start"), "DateRange start"),
            _ms(a["end"], "DateRange end") if a.get("end") is not None else None)


def f_collection_filter(ev: Evaluator, a: dict) -> CollectionSpec:
    flt = a.get("filter")
    if not (isinstance(flt, tuple) and flt[0] == "date"):
        raise invalid("Collection.filter: only date filters (Filter.date, "
                      "Filter.dateRangeContains) are supported")
    return f_filter_date(ev, {"collection": a.get("collection"), "start": flt[1], "end": flt[2]})


def f_collection_map(ev: Evaluator, a: dict) -> CollectionSpec:
    coll, fn = a.get("collection"), a.get("baseAlgorithm")
    if not isinstance(coll, CollectionSpec) or not (isinstance(fn, tuple) and fn[0] == "lambda"
                                                    and len(fn[1]) == 1):
        raise invalid("Collection.map: needs 'collection' and a one-argument 'baseAlgorithm'")
    out = []
    for img in coll.images:
        res = ev.node(fn[2] if isinstance(fn[2], dict) else {"valueReference": fn[2]},
                      {fn[1][0]: img})
        if not isinstance(res, ImageSpec):
            raise invalid("Collection.map: the function must return an Image")
        out.append(res)
    return CollectionSpec(tuple(out))


def f_clip(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    geom = _geometry(a.get("geometry"), "Image.clip")
    return _each(a.get("input"), "Image.clip", lambda i: replace(i, clip=geom))


def f_clip_bounds_scale(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    geom = _geometry(a.get("geometry"), "Image.clipToBoundsAndScale")
    kw: dict[str, Any] = {"clip": geom}
    for key, name in (("width", "width"), ("height", "height"), ("maxDimension", "max_dimension")):
        if a.get(key) is not None:
            kw[name] = _pos_int(a[key], f"Image.clipToBoundsAndScale {key}")
    if a.get("scale") is not None:
        kw["scale"] = _pos_float(a["scale"], "Image.clipToBoundsAndScale scale")
    return _each(a.get("input"), "Image.clipToBoundsAndScale", lambda i: replace(i, **kw))


def f_reproject(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    crs = a.get("crs")
    if isinstance(crs, dict):  # a Projection object: {"crs": "EPSG:..."}
        crs = crs.get("crs")
    if not isinstance(crs, str):
        raise invalid("Image.reproject: 'crs' must be a CRS code such as 'EPSG:3857'")
    parse_crs(crs, None)
    kw: dict[str, Any] = {"crs": crs}
    if a.get("crsTransform") is not None:
        ct = a["crsTransform"]
        if not (isinstance(ct, list) and len(ct) == 6):
            raise invalid("Image.reproject: 'crsTransform' must be 6 numbers")
        kw["crs_transform"] = tuple(float(x) for x in ct)
    if a.get("scale") is not None:
        kw["scale"] = _pos_float(a["scale"], "Image.reproject scale")
    return _each(a.get("image", a.get("input")), "Image.reproject", lambda i: replace(i, **kw))


def f_select(ev: Evaluator, a: dict) -> ImageSpec | CollectionSpec:
    sel = a.get("bandSelectors")
    if not (isinstance(sel, list) and sel and all(isinstance(s, str | int) for s in sel)):
        raise invalid("Image.select: 'bandSelectors' must be a non-empty list of band names")
    return _each(a.get("input"), "Image.select",
                 lambda i: replace(i, bands=tuple(str(s) for s in sel)))


def _pos_int(v: Any, what: str) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be a positive integer") from exc
    if n <= 0:
        raise invalid(f"{what} must be a positive integer")
    return n


def _pos_float(v: Any, what: str) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError) as exc:
        raise invalid(f"{what} must be a positive number") from exc
    if not x > 0:
        raise invalid(f"{what} must be a positive number")
    return x


FUNCTIONS = {
    "Image.load": f_image_load,
    "ImageCollection.load": f_collection_load,
    "ImageCollection.filterDate": f_filter_date,
    "Collection.filter": f_collection_filter,
    "Collection.map": f_collection_map,
    "Filter.date": f_filter_date_range,
    "Filter.dateRangeContains": f_date_range_contains,
    "DateRange": f_date_range,
    "Image.clip": f_clip,
    "Image.clipToBoundsAndScale": f_clip_bounds_scale,
    "Image.reproject": f_reproject,
    "Image.select": f_select,
}


def evaluate(expr: Any, catalog: Catalog) -> ImageSpec | CollectionSpec:
    value = Evaluator(expr, catalog).run()
    if not isinstance(value, ImageSpec | CollectionSpec):
        raise invalid("expression must evaluate to an Image or an ImageCollection")
    return value
