"""CRS codes and WKT of the jobs API to a SpatialRef: ``"EPSG:3857"``, ``"3857"``, ``"ESRI:54009"``,
Earth Engine's own ``"SR-ORG:6627"`` (its Web Mercator variant) and ``"SR-ORG:6974"`` (MODIS
sinusoidal), any WKT (WKT1, WKT2 including ``BOUNDCRS``) and PROJ strings.

A module of its own so that the request parser (wire.py), the expression evaluator
(expression.py) and the image drawing (imagery.py) can all use it without importing each other.
A SpatialRef's ``key`` always parses back to the same SpatialRef here, so grids stored as JSON
(``grid_json``) round-trip for every raster the catalog serves.
"""

from __future__ import annotations

from mapserver.errors import MapServerError
from mapserver.geo.sr import SpatialRef, from_wkt, parse_sr
from mapserver.jobs.errors import invalid

# Earth Engine's SR-ORG codes (spatialreference.org): 6627 is Google Maps' spherical Mercator
# on the WGS 84 ellipsoid's semi-major axis, the same maths as EPSG:3857.
SR_ORG = {
    "6627": "EPSG:3857",
    "6974": "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs +type=crs",
    "6842": "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs +type=crs",
}


def parse_crs(code: str | None, wkt: str | None) -> SpatialRef:
    value = code if code else wkt
    if not isinstance(value, str) or not value.strip():
        raise invalid("grid: one of crsCode or crsWkt is required")
    text = value.strip()
    upper = text.upper()
    if upper.startswith("SR-ORG:"):
        mapped = SR_ORG.get(text[7:].strip())
        if mapped is None:
            raise invalid(f"Unknown CRS '{value[:60]}': of the SR-ORG codes only "
                          + ", ".join(f"SR-ORG:{k}" for k in SR_ORG) + " are known")
        text, upper = mapped, mapped.upper()
    if upper.startswith("EPSG:"):
        text = text[5:]
    try:
        head = text.lstrip()[:1]
        if head.isdigit() or head == "{" or upper.startswith("ESRI:"):
            return parse_sr(text, None)
        return from_wkt(text)  # any WKT (BOUNDCRS, COMPOUNDCRS, ...) or a PROJ string
    except MapServerError as exc:
        raise invalid(f"Unknown CRS '{value[:60]}'") from exc
