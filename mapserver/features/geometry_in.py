"""Esri geometry input as clients really send it, into shapely.

Besides strict Esri JSON, QGIS sends ``{x: 1.0, y: 2.0}`` with unquoted keys and GDAL sends the
``x,y`` / ``xmin,ymin,xmax,ymax`` shorthands, so parsing is deliberately tolerant: strict JSON
first, then a key-quoting fix-up, then the comma shorthands. Everything else is an
:class:`InvalidParameter` that names the parameter.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from mapserver import limits
from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import JsonSyntaxError, safe_loads

GEOMETRY_TYPES = ("esriGeometryPoint", "esriGeometryMultipoint", "esriGeometryPolyline",
                  "esriGeometryPolygon", "esriGeometryEnvelope")
_UNQUOTED_KEY = re.compile(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)\s*:")
_SINGLE_QUOTED = re.compile(r"'([^'\"]*)'")


@dataclass(frozen=True)
class InputGeometry:
    """A parsed geometry, its Esri type and the SR embedded in its JSON (None when absent)."""

    geometry: shapely.Geometry
    geometry_type: str
    sr: SpatialRef | None


def parse_geometry_type(value: str | None, default: str, message: str) -> str:
    if value is None:
        return default
    for t in GEOMETRY_TYPES:
        if t.lower() == value.strip().lower():
            return t
    raise InvalidParameter(message, [f"'geometryType' must be one of {', '.join(GEOMETRY_TYPES)}"])


def lenient_json(text: str, name: str = "geometry") -> Any:
    """Strict JSON, else JSON with unquoted keys / single quotes (QGIS, Esri doc examples).

    Within the request limits (size, depth, finite numbers): breaking one of those is an
    :class:`InvalidParameter` naming ``name``; text that is not JSON either way gives None."""
    try:
        return safe_loads(text, name)
    except JsonSyntaxError:
        pass
    fixed = _UNQUOTED_KEY.sub(r'\1"\2":', _SINGLE_QUOTED.sub(r'"\1"', text))
    try:
        return safe_loads(fixed, name)
    except JsonSyntaxError:
        return None


def parse_geometry(text: str, geometry_type: str, message: str,
                   name: str = "geometry") -> InputGeometry:
    """``text`` as Esri JSON (lenient) or comma shorthand, checked against ``geometry_type``."""
    bad = InvalidParameter(message, [f"'{name}' parameter is invalid"])
    text = text.strip()
    if not text.startswith("{"):
        try:
            nums = [float(p) for p in re.split(r"[,\s]+", text) if p]
        except ValueError:
            raise bad from None
        if not all(math.isfinite(v) for v in nums):
            raise bad
        if len(nums) == 2:
            return InputGeometry(shapely.Point(nums), "esriGeometryPoint", None)
        if len(nums) == 4:
            xmin, ymin, xmax, ymax = nums
            return InputGeometry(_box(xmin, ymin, xmax, ymax), "esriGeometryEnvelope", None)
        raise bad
    obj = lenient_json(text, name)
    if not isinstance(obj, dict):
        raise bad
    return geometry_from_json(obj, geometry_type, bad)


def geometry_from_json(obj: dict, geometry_type: str, bad: InvalidParameter) -> InputGeometry:
    sr = None
    if obj.get("spatialReference") not in (None, {}):
        try:
            sr = parse_sr(obj["spatialReference"])
        except InvalidParameter as exc:
            raise InvalidParameter(bad.message, bad.details + exc.details) from None
    _check_vertices(obj, bad)
    try:
        if "x" in obj and "y" in obj:
            x, y = _num(obj["x"]), _num(obj["y"])
            geom = shapely.Point() if x is None or y is None else shapely.Point(x, y)
            return InputGeometry(geom, "esriGeometryPoint", sr)
        if "points" in obj:
            pts = _coords(obj["points"])
            return InputGeometry(shapely.MultiPoint(pts) if len(pts) else shapely.MultiPoint(),
                                 "esriGeometryMultipoint", sr)
        if "paths" in obj:
            paths = [_coords(p) for p in obj["paths"]]
            if any(len(p) < 2 for p in paths):
                raise bad
            return InputGeometry(shapely.MultiLineString(paths), "esriGeometryPolyline", sr)
        if "rings" in obj:
            rings = [_coords(r) for r in obj["rings"]]
            return InputGeometry(polygon_from_rings(rings), "esriGeometryPolygon", sr)
        if all(k in obj for k in ("xmin", "ymin", "xmax", "ymax")):
            vals = [_num(obj[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            if any(v is None for v in vals):
                return InputGeometry(shapely.Polygon(), "esriGeometryEnvelope", sr)
            return InputGeometry(_box(*vals), "esriGeometryEnvelope", sr)  # type: ignore[arg-type]
    except (TypeError, ValueError, IndexError, KeyError, AttributeError,
            shapely.errors.GEOSException):
        raise bad from None
    raise bad


def _check_vertices(obj: dict, bad: InvalidParameter) -> None:
    """At most ``max_vertices`` coordinates in one input geometry (checked before building)."""
    limit = limits.current().max_vertices
    n = 0
    for key in ("points", "paths", "rings"):
        parts = obj.get(key)
        if not isinstance(parts, list):
            continue
        if key == "points":
            n += len(parts)
        else:
            n += sum(len(p) for p in parts if isinstance(p, list)) + len(parts)
        if n > limit:
            raise InvalidParameter(bad.message, [
                *bad.details, f"the geometry has more than {limit} vertices "
                              "(MAPSERVER_MAX_VERTICES)"])


def _num(v: Any) -> float | None:
    if v is None or (isinstance(v, str) and v.strip().lower() == "nan"):
        return None
    if isinstance(v, bool):
        raise TypeError("boolean coordinate")
    f = float(v)
    if math.isnan(f):
        return None
    if not math.isfinite(f):
        raise ValueError("infinite coordinate")
    return f


def _coords(seq: Any) -> np.ndarray:
    if not isinstance(seq, list):
        raise TypeError("coordinates must be a list")
    arr = np.array([[float(c[0]), float(c[1])] for c in seq], dtype=float).reshape(-1, 2)
    if not np.isfinite(arr).all():
        raise ValueError("non-finite coordinate")
    return arr


def _box(xmin: float, ymin: float, xmax: float, ymax: float) -> shapely.Geometry:
    return shapely.box(min(xmin, xmax), min(ymin, ymax), max(xmin, xmax), max(ymin, ymax))


def polygon_from_rings(rings: list[np.ndarray]) -> shapely.Geometry:
    """Esri rings: clockwise rings are shells, counter-clockwise ones holes of the shell that
    holds them. Clients that send only counter-clockwise rings (GeoJSON habit) get shells."""
    rings = [r for r in rings if len(r) >= 3]
    if not rings:
        return shapely.Polygon()
    closed = [r if np.array_equal(r[0], r[-1]) else np.vstack([r, r[:1]]) for r in rings]
    lr = [shapely.LinearRing(r) if len(r) >= 4 else None for r in closed]
    lr = [r for r in lr if r is not None]
    if not lr:
        return shapely.Polygon()
    ccw = [shapely.is_ccw(r) for r in lr]
    if all(ccw):
        shells, holes = lr, []
    else:
        shells = [r for r, c in zip(lr, ccw, strict=True) if not c]
        holes = [r for r, c in zip(lr, ccw, strict=True) if c]
    shell_polys = [shapely.Polygon(s) for s in shells]
    owned: list[list[shapely.LinearRing]] = [[] for _ in shells]
    for h in holes:
        rep = shapely.Point(h.coords[0])
        for i, sp in enumerate(shell_polys):
            if sp.covers(rep):
                owned[i].append(h)
                break
    polys = [shapely.Polygon(s, owned[i]) for i, s in enumerate(shells)]
    geom = polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return geom
