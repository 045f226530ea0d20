"""Geometry output: reprojection, generalisation and the Esri JSON / GeoJSON encodings.

``maxAllowableOffset`` is a Douglas-Peucker tolerance in output SR units (shapely simplify,
topology preserving for polygons so rings stay valid); ``geometryPrecision`` rounds the output
coordinates to that many decimals, as ArcGIS does to shrink responses.
"""

from __future__ import annotations

import numpy as np
import shapely
import shapely.geometry

from mapserver.geo.sr import SpatialRef, transformer


def project(geoms: np.ndarray | shapely.Geometry, src: SpatialRef, dst: SpatialRef
            ) -> np.ndarray | shapely.Geometry:
    """Geometries from ``src`` to ``dst`` (identity when equal)."""
    if src == dst:
        return geoms
    tr = transformer(src, dst)

    def fn(xy: np.ndarray) -> np.ndarray:
        x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def generalize(geoms: np.ndarray, max_offset: float | None) -> np.ndarray:
    if not max_offset or max_offset <= 0:
        return geoms
    return shapely.simplify(geoms, max_offset, preserve_topology=True)


def _pts(coords: np.ndarray, precision: int | None, dims: int = 2) -> list[list[float]]:
    arr = np.asarray(coords, dtype=float)
    arr = arr[:, :dims] if arr.shape[1] >= dims else arr[:, :2]
    if precision is not None:
        arr = np.round(arr, precision)
    return arr.tolist()


def to_esri(geom: shapely.Geometry | None, precision: int | None = None,
            z: bool = False) -> dict | None:
    """Esri JSON (without spatialReference); polygon shells clockwise, holes counter-clockwise.
    ``z``: keep the third coordinate where the geometry has one (``returnZ``)."""
    if geom is None:
        return None
    gtype = geom.geom_type
    dims = 3 if z and shapely.has_z(geom) else 2
    if gtype == "Point":
        if geom.is_empty:
            return {"x": None, "y": None}
        x, y = geom.x, geom.y
        if precision is not None:
            x, y = round(x, precision), round(y, precision)
        if dims == 3:
            return {"x": x, "y": y, "z": geom.z}
        return {"x": x, "y": y}
    if gtype == "MultiPoint":
        return {"points": _pts(shapely.get_coordinates(geom, include_z=dims == 3), precision,
                               dims)}
    if gtype in ("LineString", "MultiLineString", "LinearRing"):
        parts = shapely.get_parts(geom)
        return {"paths": [_pts(shapely.get_coordinates(p, include_z=dims == 3), precision, dims)
                          for p in parts if not p.is_empty]}
    if gtype in ("Polygon", "MultiPolygon"):
        rings = []
        for poly in shapely.get_parts(geom):
            if poly.is_empty:
                continue
            shell = np.asarray(poly.exterior.coords)
            if shapely.is_ccw(poly.exterior):
                shell = shell[::-1]
            rings.append(_pts(shell, precision, dims))
            for hole in poly.interiors:
                c = np.asarray(hole.coords)
                if not shapely.is_ccw(hole):
                    c = c[::-1]
                rings.append(_pts(c, precision, dims))
        return {"rings": rings}
    if gtype == "GeometryCollection":  # e.g. make_valid output: keep the areal parts
        polys = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
        return to_esri(shapely.union_all(polys), precision, z) if polys else {"rings": []}
    return None


def to_geojson(geom: shapely.Geometry | None, precision: int | None = None) -> dict | None:
    """GeoJSON geometry; polygon shells counter-clockwise as RFC 7946 asks."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        geom = shapely.orient_polygons(geom, exterior_cw=False)
    if precision is not None:
        geom = shapely.transform(geom, lambda xy: np.round(xy, precision))
    return dict(shapely.geometry.mapping(geom))


def envelope_json(bounds: tuple[float, float, float, float], sr: SpatialRef) -> dict:
    xmin, ymin, xmax, ymax = bounds
    return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
            "spatialReference": sr.to_json()}
