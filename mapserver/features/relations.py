"""Spatial relationships (``spatialRel``) and distance buffers (``distance`` + ``units``).

The relations follow ArcObjects' ISpatialFilter reading, which the REST API inherits: the
*query geometry* is the subject, so ``Contains`` keeps features the query geometry contains and
``Within`` keeps features that contain the query geometry; ``Relation`` tests the DE-9IM
``relationParam`` with the query geometry first. Envelope/Index relations compare envelopes
only, which is exactly what the STRtree answers.
"""

from __future__ import annotations

import re

import numpy as np
import pyproj
import shapely

from mapserver.errors import InvalidParameter
from mapserver.features.geometry_out import project
from mapserver.geo.sr import WGS84, SpatialRef

SPATIAL_RELS = ("esriSpatialRelIntersects", "esriSpatialRelContains", "esriSpatialRelCrosses",
                "esriSpatialRelEnvelopeIntersects", "esriSpatialRelIndexIntersects",
                "esriSpatialRelOverlaps", "esriSpatialRelTouches", "esriSpatialRelWithin",
                "esriSpatialRelRelation")

# metres per unit; numeric codes are the Esri/EPSG unit ids some clients send instead
UNITS = {"esrisrunit_meter": 1.0, "9001": 1.0, "esrisrunit_kilometer": 1000.0, "9036": 1000.0,
         "esrisrunit_foot": 0.3048, "9002": 0.3048, "esrisrunit_surveyfoot": 1200.0 / 3937.0,
         "9003": 1200.0 / 3937.0, "esrisrunit_statutemile": 1609.344, "9093": 1609.344,
         "9035": 1609.344, "esrisrunit_nauticalmile": 1852.0, "9030": 1852.0,
         "esrisrunit_internationalyard": 0.9144, "9096": 0.9144}
HALF_EQUATOR = 20_000_000.0
_DE9IM = re.compile(r"^[TF*012]{9}$")


def parse_spatial_rel(value: str | None, message: str) -> str:
    if value is None:
        return "esriSpatialRelIntersects"
    for rel in SPATIAL_RELS:
        if rel.lower() == value.strip().lower():
            return rel
    raise InvalidParameter(message, ["'spatialRel' parameter is invalid"])


def parse_relation_param(value: str | None, message: str) -> str:
    text = (value or "").strip().upper()
    if text.startswith("RELATE(") or not _DE9IM.match(text):
        raise InvalidParameter(message, ["'relationParam' must be a 9-character DE-9IM pattern "
                                         "of T, F, *, 0, 1, 2"])
    return text


def parse_units(value: str | None, message: str) -> float:
    """Metres per ``units`` value (default metres)."""
    if value is None:
        return 1.0
    mpu = UNITS.get(value.strip().lower())
    if mpu is None:
        raise InvalidParameter(message, ["'units' parameter is invalid"])
    return mpu


def buffer_metric(geom: shapely.Geometry, sr: SpatialRef, meters: float,
                  message: str = "Invalid or missing input parameters.") -> shapely.Geometry:
    """``geom`` (in ``sr``) grown by ``meters``, measured in a metric CRS.

    Projected SRs buffer in their own (linear) units; geographic SRs go through an azimuthal
    equidistant projection centred on the geometry, so distances are true around the centre.
    """
    if meters <= 0 or geom.is_empty:
        return geom
    if not sr.is_geographic:
        return shapely.buffer(geom, meters / sr.meters_per_unit, quad_segs=16)
    if meters >= HALF_EQUATOR:  # reaches round the globe: everything
        return project(shapely.box(-180, -90, 180, 90), WGS84, sr)
    ll = project(geom, sr, WGS84)
    c = ll.centroid
    if not (np.isfinite(shapely.get_coordinates(ll)).all() and abs(c.y) <= 90
            and abs(c.x) <= 540):
        raise InvalidParameter(message, ["'geometry' parameter is invalid"])
    aeqd = pyproj.CRS.from_proj4(f"+proj=aeqd +lat_0={c.y} +lon_0={c.x} +datum=WGS84 +units=m")
    to_local = pyproj.Transformer.from_crs(sr.crs, aeqd, always_xy=True)
    back = pyproj.Transformer.from_crs(aeqd, sr.crs, always_xy=True)

    def fwd(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(to_local.transform(xy[:, 0], xy[:, 1]))

    def inv(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(back.transform(xy[:, 0], xy[:, 1]))

    local = shapely.buffer(shapely.transform(geom, fwd), meters, quad_segs=16)
    return shapely.transform(shapely.segmentize(local, meters / 8.0), inv)


def relate(geoms: np.ndarray, query: shapely.Geometry, rel: str,
           relation_param: str | None = None) -> np.ndarray:
    """Bool mask over ``geoms`` (candidates whose envelopes meet ``query``'s)."""
    if rel in ("esriSpatialRelEnvelopeIntersects", "esriSpatialRelIndexIntersects"):
        return np.ones(len(geoms), dtype=bool)
    shapely.prepare(query)
    if rel == "esriSpatialRelIntersects":
        return shapely.intersects(query, geoms)
    if rel == "esriSpatialRelContains":
        return shapely.contains(query, geoms)
    if rel == "esriSpatialRelWithin":
        return shapely.within(query, geoms)
    if rel == "esriSpatialRelCrosses":
        return shapely.crosses(query, geoms)
    if rel == "esriSpatialRelOverlaps":
        return shapely.overlaps(query, geoms)
    if rel == "esriSpatialRelTouches":
        return shapely.touches(query, geoms)
    if rel == "esriSpatialRelRelation":
        assert relation_param is not None
        return np.array([shapely.relate_pattern(query, g, relation_param) for g in geoms],
                        dtype=bool)
    raise ValueError(rel)
