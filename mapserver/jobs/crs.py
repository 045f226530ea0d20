"""CRS codes and WKT of the jobs API (``"EPSG:3857"``, ``"3857"`` or WKT) to a SpatialRef.

A module of its own so that the request parser (wire.py), the expression evaluator
(expression.py) and the image drawing (imagery.py) can all use it without importing each other.
"""

from __future__ import annotations

from mapserver.errors import MapServerError
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.jobs.errors import invalid


def parse_crs(code: str | None, wkt: str | None) -> SpatialRef:
    value = code if code else wkt
    if not isinstance(value, str) or not value.strip():
        raise invalid("grid: one of crsCode or crsWkt is required")
    text = value.strip()
    if text.upper().startswith("EPSG:"):
        text = text[5:]
    try:
        return parse_sr(text, None)
    except MapServerError as exc:
        raise invalid(f"Unknown CRS '{value[:60]}'") from exc
