"""``f=kmz``: the exported image wrapped in a KMZ whose KML GroundOverlay places it on the globe.

KML ground overlays are in WGS84 longitude/latitude, so the export is rendered in EPSG:4326 and
the LatLonBox is the grid's un-rotated envelope; a rotated export keeps its rotation through the
LatLonBox ``rotation`` element (counter-clockwise degrees, the same sense as ArcGIS's).
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

from mapserver.geo.grid import Grid

KMZ_CONTENT_TYPE = "application/vnd.google-earth.kmz"


def build_kmz(image: bytes, extension: str, grid: Grid, name: str) -> bytes:
    """A KMZ archive: ``doc.kml`` with one GroundOverlay over ``files/map.<extension>``."""
    xmin, ymin, xmax, ymax = grid.extent
    href = f"files/map.{extension}"
    kml = f"""<?xml version="1.0" encoding="UTF-8"?>
<kml xmlns="http://www.opengis.net/kml/2.2">
  <Document>
    <name>{escape(name)}</name>
    <GroundOverlay>
      <name>{escape(name)}</name>
      <Icon><href>{href}</href></Icon>
      <LatLonBox>
        <north>{ymax!r}</north>
        <south>{ymin!r}</south>
        <east>{xmax!r}</east>
        <west>{xmin!r}</west>
        <rotation>{round(grid.rotation, 9)!r}</rotation>
      </LatLonBox>
    </GroundOverlay>
  </Document>
</kml>
"""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("doc.kml", kml)  # the first entry is the one Google Earth opens
        zf.writestr(href, image)
    return buf.getvalue()
