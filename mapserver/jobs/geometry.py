"""Geometries of the expression language: ``GeometryConstructors.*`` and GeoJSON constants.

A :class:`GeometryValue` is a GeoJSON geometry in a CRS (``None``: EPSG:4326, Earth Engine's
default) plus, for a projection with a transform (``Image.projection(...)`` of a reprojected
image), the affine that maps the geometry's coordinates into that CRS. Geodesic geometries in a
geographic CRS have their edges densified along great circles, so a geodesic polygon covers
what Earth Engine's would. Nothing here draws; the clip mask is made in imagery.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import shapely.affinity
import shapely.geometry
from shapely.geometry.base import BaseGeometry

from mapserver.jobs.errors import invalid

AREA_TYPES = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class ProjectionValue:
    """``Projection(crs, transform)``: a CRS (a key parse_crs understands) and an optional affine
    ``[a, b, c, d, e, f]`` from projection units to CRS units."""

    crs: str
    transform: tuple[float, ...] | None = None


@dataclass(frozen=True)
class GeometryValue:
    geojson: dict
    crs: str | None = None  # None: EPSG:4326

    def shape(self) -> BaseGeometry:
        return shapely.geometry.shape(self.geojson)


def _num(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise invalid(f"{what}: coordinates must be finite numbers")
    return float(v)


def _point(p: Any, what: str) -> tuple[float, float]:
    if not (isinstance(p, list | tuple) and len(p) >= 2):
        raise invalid(f"{what}: a position must be [x, y]")
    return _num(p[0], what), _num(p[1], what)


def _points(v: Any, what: str) -> list[tuple[float, float]]:
    if not isinstance(v, list | tuple):
        raise invalid(f"{what}: coordinates must be a list of [x, y] positions")
    if v and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v):
        if len(v) % 2:
            raise invalid(f"{what}: a flat coordinate list needs an even count")
        v = [v[i:i + 2] for i in range(0, len(v), 2)]
    return [_point(p, what) for p in v]


def _depth(v: Any) -> int:
    d = 0
    while isinstance(v, list | tuple) and v:
        v = v[0]
        d += 1
    return d


def _ring(pts: list[tuple[float, float]], what: str) -> list[tuple[float, float]]:
    if len(pts) < 3:
        raise invalid(f"{what}: a polygon ring needs at least 3 positions")
    return pts if pts[0] == pts[-1] else [*pts, pts[0]]


def _polygon(v: Any, what: str) -> list[list[tuple[float, float]]]:
    if _depth(v) == 2 or (_depth(v) == 1 and len(v) >= 6):  # one ring given without nesting
        v = [v]
    if not isinstance(v, list | tuple) or not v:
        raise invalid(f"{what}: coordinates must be a list of rings")
    return [_ring(_points(r, what), what) for r in v]


def _densify_geodesic(geom: BaseGeometry) -> BaseGeometry:
    """Edges along great circles (pyproj.Geod), about one vertex per 100 km."""
    from pyproj import Geod

    geod = Geod(ellps="WGS84")

    def line(coords: list) -> list:
        out = [coords[0]]
        for (x0, y0), (x1, y1) in zip(coords[:-1], coords[1:], strict=True):
            dist = geod.inv(x0, y0, x1, y1)[2]
            n = min(int(dist / 100_000), 256)
            if n > 0:
                out.extend(geod.npts(x0, y0, x1, y1, n))
            out.append((x1, y1))
        return out

    def walk(g: Any) -> Any:
        t = g["type"]
        c = g["coordinates"]
        if t == "LineString":
            return {"type": t, "coordinates": line(c)}
        if t == "MultiLineString":
            return {"type": t, "coordinates": [line(x) for x in c]}
        if t == "Polygon":
            return {"type": t, "coordinates": [line(r) for r in c]}
        if t == "MultiPolygon":
            return {"type": t, "coordinates": [[line(r) for r in p] for p in c]}
        return g

    return shapely.geometry.shape(walk(shapely.geometry.mapping(geom)))


def construct(kind: str, a: dict) -> GeometryValue:
    """``GeometryConstructors.<kind>`` with EE's arguments (``coordinates``, ``crs``/``proj``,
    ``geodesic``, ``maxError``, ``evenOdd``; BBox: ``west, south, east, north``)."""
    what = f"GeometryConstructors.{kind}"
    proj = a.get("crs", a.get("proj"))
    if proj is not None and not isinstance(proj, ProjectionValue):
        raise invalid(f"{what}: 'crs' must be a Projection")
    for flag in ("geodesic", "evenOdd"):
        if a.get(flag) is not None and not isinstance(a[flag], bool):
            raise invalid(f"{what}: '{flag}' must be a boolean")
    if kind == "BBox":
        w, s, e, n = (_num(a.get(k), what) for k in ("west", "south", "east", "north"))
        if e < w:
            e += 360.0
        if not (-90 <= s <= n <= 90):
            raise invalid(f"{what}: need -90 <= south <= north <= 90")
        geom: BaseGeometry = shapely.geometry.box(w, s, e, n)
        return GeometryValue(shapely.geometry.mapping(geom))
    c = a.get("coordinates")
    if kind == "Point":
        geom = shapely.geometry.Point(_point(c, what))
    elif kind == "MultiPoint":
        geom = shapely.geometry.MultiPoint(_points(c, what))
    elif kind == "LineString":
        pts = _points(c, what)
        if len(pts) < 2:
            raise invalid(f"{what}: needs at least 2 positions")
        geom = shapely.geometry.LineString(pts)
    elif kind == "Polygon":
        rings = _polygon(c, what)
        geom = shapely.geometry.Polygon(rings[0], rings[1:])
    elif kind == "MultiPolygon":
        if not isinstance(c, list | tuple):
            raise invalid(f"{what}: coordinates must be a list of polygons")
        polys = [_polygon(p, what) for p in c]
        geom = shapely.geometry.MultiPolygon([(p[0], p[1:]) for p in polys])
    elif kind == "Rectangle":
        if isinstance(c, list | tuple) and len(c) == 4 and _depth(c) == 1:
            x0, y0, x1, y1 = (_num(v, what) for v in c)
        elif isinstance(c, list | tuple) and len(c) == 2:
            (x0, y0), (x1, y1) = _points(c, what)
        else:
            raise invalid(f"{what}: coordinates must be [xmin, ymin, xmax, ymax]")
        geom = shapely.geometry.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
    else:
        raise invalid(f"Unsupported function in expression: {what}")
    if kind in ("Polygon", "MultiPolygon", "Rectangle"):
        if geom.is_empty:
            raise invalid(f"{what}: the geometry is empty")
        if not geom.is_valid:
            geom = geom.buffer(0)  # self-intersections resolved as even-odd would
    crs = None
    if proj is not None:
        if proj.transform is not None:  # coordinates are in the projection's units
            a_, b_, c_, d_, e_, f_ = proj.transform
            geom = shapely.affinity.affine_transform(geom, [a_, b_, d_, e_, c_, f_])
        crs = proj.crs
    geographic = crs is None or _is_geographic(crs)
    geodesic = a.get("geodesic")
    if geodesic is None:  # EE: true when the inputs are numbers in a geographic CRS
        geodesic = geographic and kind not in ("Point", "MultiPoint")
    if geodesic and geographic and kind not in ("Point", "MultiPoint"):
        geom = _densify_geodesic(geom)
    if crs in ("EPSG:4326",):
        crs = None
    return GeometryValue(shapely.geometry.mapping(geom), crs)


def _is_geographic(key: str) -> bool:
    from mapserver.jobs.crs import parse_crs

    return parse_crs(key, None).is_geographic


def from_constant(value: Any, what: str) -> GeometryValue:
    """A GeoJSON geometry constant (EPSG:4326), as our own JSON clients send it."""
    if isinstance(value, GeometryValue):
        return value
    if isinstance(value, dict) and value.get("type") in (
            "Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"):
        try:
            geom = shapely.geometry.shape(value)
        except Exception as exc:  # noqa: BLE001 - any parse problem is the client's
            raise invalid(f"{what}: invalid GeoJSON geometry") from exc
        if geom.is_empty or not geom.is_valid:
            raise invalid(f"{what}: geometry is empty or not valid")
        return GeometryValue(shapely.geometry.mapping(geom))
    raise invalid(f"{what}: 'geometry' must be a Geometry (GeometryConstructors.* or GeoJSON "
                  "in EPSG:4326)")
