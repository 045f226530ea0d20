"""Parameter parsers shared by identify, find and query (typed values or InvalidParameter)."""

from __future__ import annotations

import shapely

from mapserver.errors import InvalidParameter
from mapserver.geo.project import project_geometry
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import Params, parse_bool, parse_float

MAX_PRECISION = 17


def opt_sr(params: Params, name: str, default: SpatialRef, message: str) -> SpatialRef:
    try:
        return parse_sr(params.raw(name), default)
    except InvalidParameter as exc:
        raise InvalidParameter(message, [f"'{name}' parameter is invalid", *exc.details]
                               ) from None


def opt_bool(params: Params, name: str, default: bool, message: str) -> bool:
    try:
        return parse_bool(params.raw(name), name, default)
    except InvalidParameter:
        raise InvalidParameter(message, [f"'{name}' parameter is invalid"]) from None


def opt_float(params: Params, name: str, message: str, minimum: float | None = None
              ) -> float | None:
    raw = params.raw(name)
    if raw is None:
        return None
    try:
        v = parse_float(raw, name)
    except InvalidParameter:
        raise InvalidParameter(message, [f"'{name}' parameter is invalid"]) from None
    if minimum is not None and v < minimum:
        raise InvalidParameter(message, [f"'{name}' parameter is invalid"])
    return v


def opt_int(params: Params, name: str, message: str, minimum: int = 0,
            maximum: int | None = None) -> int | None:
    raw = params.raw(name)
    if raw is None:
        return None
    try:
        v = int(raw)
    except ValueError:
        raise InvalidParameter(message, [f"'{name}' parameter is invalid"]) from None
    if v < minimum or (maximum is not None and v > maximum):
        raise InvalidParameter(message, [f"'{name}' parameter is invalid"])
    return v


def opt_precision(params: Params, message: str) -> int | None:
    return opt_int(params, "geometryPrecision", message, 0, MAX_PRECISION)


def to_layer_sr(geom: shapely.Geometry, src: SpatialRef, dst: SpatialRef,
                message: str = "Invalid or missing input parameters.") -> shapely.Geometry:
    """Project a query geometry (densified, through :mod:`mapserver.geo.project`); refused
    when nothing of it projects."""
    out = project_geometry(geom, src, dst, segments=32)
    if out.is_empty and not geom.is_empty:
        raise InvalidParameter(message, ["The geometry cannot be projected into the layer's "
                                         "spatial reference"])
    return out
