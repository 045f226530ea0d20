"""WMTS 1.0.0 on a cached service: tile matrix sets as data, capabilities, GetTile.

The tile matrix sets are morecantile :class:`~morecantile.models.TileMatrixSet` models built
from the service's ``tiling.TilingScheme`` (the ArcGIS ``tileInfo``):

- ``default028mm``: the scheme's own numbers (Esri's origin -20037508.342787 and resolution
  156543.03392800014 / 2^z for the standard Web Mercator cache), scale denominators for the
  0.28 mm OGC pixel, as ArcGIS Server names it;
- ``GoogleMapsCompatible``: when the scheme is Esri's standard Web Mercator one, which lies
  within 2 mm of OGC's WebMercatorQuad at every level (checked against morecantile's
  registry), so the same tiles are also advertised under the well-known scale set with the
  exact WebMercatorQuad numbers, as ArcGIS Server does.

Both sets address the same tiles: ``TileMatrix`` = level, ``TileRow``/``TileCol`` = the
ArcGIS ``tile/{level}/{row}/{col}``, served by ``maps.tiles.get_tile``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import morecantile
from morecantile.models import CRS as TmsCrs
from morecantile.models import TileMatrix, TileMatrixSet

from mapserver.catalog.model import Service
from mapserver.geo import mercator
from mapserver.geo.sr import SpatialRef
from mapserver.ogc.common import XLINK, XSI, El, OgcError, el, northing_first, number, xml_document
from mapserver.ogc.wms import OGC_PIXEL_M, geographic_bounds
from mapserver.tiling import TilingScheme

WMTS_NS = "http://www.opengis.net/wmts/1.0"
OWS_NS = "http://www.opengis.net/ows/1.1"
DEFAULT_SET = "default028mm"
GOOGLE_SET = "GoogleMapsCompatible"
GOOGLE_WKSS = "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible"
STYLE = "default"
MAX_GOOGLE_OFFSET_M = 0.01  # a scheme this close to WebMercatorQuad is GoogleMapsCompatible


def layer_identifier(service: Service) -> str:
    """The WMTS layer id: the service name with the folder joined by ``_``
    (``Samples/Olinda`` -> ``Samples_Olinda``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", service.name)


def crs_urn(sr: SpatialRef) -> str:
    authority = "ESRI" if sr.key.startswith("ESRI:") else "EPSG"
    return f"urn:ogc:def:crs:{authority}::{sr.latest_wkid or sr.wkid}"


def _crs_uri(sr: SpatialRef) -> str:
    authority = "ESRI" if sr.key.startswith("ESRI:") else "EPSG"
    return f"http://www.opengis.net/def/crs/{authority}/0/{sr.latest_wkid or sr.wkid}"


def _matrix_size(scheme: TilingScheme, span_x: float, span_y: float) -> tuple[int, int]:
    """Tiles across and down from the origin: the world for Web Mercator, else the coverage."""
    if scheme.sr.is_web_mercator:
        right, bottom = mercator.HALF_WORLD, -mercator.HALF_WORLD
    elif scheme.coverage is not None:
        right, bottom = scheme.coverage[2], scheme.coverage[1]
    else:
        return 1, 1
    cols = math.ceil((right - scheme.origin[0]) / span_x - 1e-6)
    rows = math.ceil((scheme.origin[1] - bottom) / span_y - 1e-6)
    return max(1, cols), max(1, rows)


def scheme_tms(scheme: TilingScheme, identifier: str = DEFAULT_SET) -> TileMatrixSet:
    """The scheme as an OGC TileMatrixSet (morecantile), with its own origin and resolutions."""
    mpu = scheme.sr.meters_per_unit
    lat_first = northing_first(scheme.sr)
    origin = (scheme.origin[1], scheme.origin[0]) if lat_first else scheme.origin
    matrices = []
    for lod in scheme.lods:
        w, h = _matrix_size(scheme, scheme.cols * lod.resolution, scheme.rows * lod.resolution)
        matrices.append(TileMatrix(
            id=str(lod.level), scaleDenominator=lod.resolution * mpu / OGC_PIXEL_M,
            cellSize=lod.resolution, pointOfOrigin=origin, tileWidth=scheme.cols,
            tileHeight=scheme.rows, matrixWidth=w, matrixHeight=h))
    return TileMatrixSet(id=identifier, title=identifier, crs=TmsCrs(_crs_uri(scheme.sr)),
                         tileMatrices=matrices)


def google_compatible(scheme: TilingScheme) -> bool:
    """Esri's standard Web Mercator scheme: 256 px tiles, levels 0.. consecutive, each within
    a centimetre of WebMercatorQuad's origin and extent."""
    if not scheme.sr.is_web_mercator or scheme.rows != 256 or scheme.cols != 256:
        return False
    quad = morecantile.tms.get("WebMercatorQuad")
    for k, lod in enumerate(scheme.lods):
        if lod.level != k or k >= len(quad.tileMatrices):
            return False
        ref = quad.matrix(k)
        ox, oy = ref.pointOfOrigin
        world = 256 * ref.matrixWidth * ref.cellSize
        if (abs(scheme.origin[0] - ox) > MAX_GOOGLE_OFFSET_M
                or abs(scheme.origin[1] - oy) > MAX_GOOGLE_OFFSET_M
                or abs(256 * lod.resolution * 2 ** k - world) > MAX_GOOGLE_OFFSET_M):
            return False
    return True


def google_tms(scheme: TilingScheme) -> TileMatrixSet:
    """WebMercatorQuad (exact OGC numbers) limited to the scheme's levels."""
    quad = morecantile.tms.get("WebMercatorQuad")
    return TileMatrixSet(id=GOOGLE_SET, title=GOOGLE_SET, crs=quad.crs,
                         wellKnownScaleSet=quad.wellKnownScaleSet,
                         tileMatrices=[quad.matrix(lod.level) for lod in scheme.lods])


@dataclass(frozen=True)
class Limits:
    level: int
    min_row: int
    max_row: int
    min_col: int
    max_col: int


def matrix_limits(scheme: TilingScheme, tms: TileMatrixSet) -> list[Limits]:
    """Per level, the tiles overlapping the service's coverage (what ``tile_grid`` serves)."""
    out = []
    for lod, matrix in zip(scheme.lods, tms.tileMatrices, strict=True):
        rows, cols = matrix.matrixHeight, matrix.matrixWidth
        if scheme.coverage is None:
            out.append(Limits(lod.level, 0, rows - 1, 0, cols - 1))
            continue
        span_x, span_y = scheme.cols * lod.resolution, scheme.rows * lod.resolution
        eps = lod.resolution / 100.0
        x0, y0, x1, y1 = scheme.coverage
        min_col = max(0, math.floor((x0 + eps - scheme.origin[0]) / span_x))
        max_col = min(cols - 1, math.ceil((x1 - eps - scheme.origin[0]) / span_x) - 1)
        min_row = max(0, math.floor((scheme.origin[1] - y1 + eps) / span_y))
        max_row = min(rows - 1, math.ceil((scheme.origin[1] - y0 - eps) / span_y) - 1)
        if min_col <= max_col and min_row <= max_row:
            out.append(Limits(lod.level, min_row, max_row, min_col, max_col))
    return out


@dataclass(frozen=True)
class ServiceSets:
    """The tile matrix sets a cached service offers, by identifier (first = default)."""

    sets: dict[str, TileMatrixSet]
    limits: dict[str, list[Limits]]


@lru_cache(maxsize=64)
def _sets_for(scheme: TilingScheme) -> ServiceSets:
    sets = {DEFAULT_SET: scheme_tms(scheme)}
    if google_compatible(scheme):
        sets[GOOGLE_SET] = google_tms(scheme)
    return ServiceSets(sets, {k: matrix_limits(scheme, v) for k, v in sets.items()})


def service_sets(service: Service) -> ServiceSets:
    if service.tiling is None:
        raise OgcError(f"Service {service.name} is not cached: WMTS is offered for services "
                       "with a tiling scheme only", "OperationNotSupported", None, 404)
    return _sets_for(service.tiling)


# --- GetTile ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class TileAddress:
    level: int
    row: int
    col: int


def _int(value: str | None, name: str) -> int:
    if value is None:
        raise OgcError(f"Missing parameter: {name}", "MissingParameterValue", name)
    text = value.strip()
    if not text.isdigit() or len(text) > 9:
        raise OgcError(f"{name} must be a non-negative integer", "InvalidParameterValue", name)
    return int(text)


def resolve_tile(service: Service, layer: str | None, style: str | None, matrix_set: str | None,
                 matrix: str | None, row: str | None, col: str | None,
                 fmt: str | None = None) -> TileAddress:
    """Check a GetTile request against the capabilities; the ArcGIS tile it names."""
    offered = service_sets(service)
    for name, value in (("LAYER", layer), ("STYLE", style), ("TILEMATRIXSET", matrix_set),
                        ("TILEMATRIX", matrix)):
        if value is None:
            raise OgcError(f"Missing parameter: {name}", "MissingParameterValue", name)
    if layer != layer_identifier(service):
        raise OgcError(f"Layer '{layer[:60]}' is not offered (use "
                       f"'{layer_identifier(service)}')", "InvalidParameterValue", "LAYER")
    if style.lower() not in (STYLE, ""):
        raise OgcError(f"Style '{style[:40]}' is not offered (use 'default')",
                       "InvalidParameterValue", "STYLE")
    tms = offered.sets.get(matrix_set)
    if tms is None:
        raise OgcError(f"TileMatrixSet '{matrix_set[:40]}' is not offered (use one of "
                       f"{', '.join(offered.sets)})", "InvalidParameterValue", "TILEMATRIXSET")
    found = next((m for m in tms.tileMatrices if m.id == matrix.strip()), None)
    if found is None:
        raise OgcError(f"TileMatrix '{matrix[:20]}' is not in {matrix_set}",
                       "InvalidParameterValue", "TILEMATRIX")
    assert service.tiling is not None
    if fmt is not None and fmt.strip().lower() != service.tiling.format.content_type:
        raise OgcError(f"Format '{fmt[:40]}' is not offered (use "
                       f"{service.tiling.format.content_type})", "InvalidParameterValue",
                       "FORMAT")
    r, c = _int(row, "TILEROW"), _int(col, "TILECOL")
    if r >= found.matrixHeight:
        raise OgcError(f"TileRow {r} is outside the matrix (0..{found.matrixHeight - 1})",
                       "TileOutOfRange", "TILEROW")
    if c >= found.matrixWidth:
        raise OgcError(f"TileCol {c} is outside the matrix (0..{found.matrixWidth - 1})",
                       "TileOutOfRange", "TILECOL")
    return TileAddress(int(found.id), r, c)


# --- capabilities ----------------------------------------------------------------------------

def _ows(tag: str, *children: object, text: object = None, **attrs: object) -> El:
    return el(f"ows:{tag}", *children, text=text, **attrs)


def _get(href: str, encoding: str) -> El:
    return _ows("Get", _ows("Constraint", _ows("AllowedValues", _ows("Value", text=encoding)),
                            name="GetEncoding"), xlink__href=href)


def _operation(name: str, rest_href: str | None, kvp_href: str) -> El:
    gets = [_get(rest_href, "RESTful") if rest_href else None, _get(kvp_href, "KVP")]
    return _ows("Operation", _ows("DCP", _ows("HTTP", gets)), name=name)


def _corner(tms: TileMatrixSet, matrix: TileMatrix) -> str:
    # pointOfOrigin is already in the CRS's axis order (TMS 2.0), as TopLeftCorner wants it
    return " ".join(number(v) for v in matrix.pointOfOrigin)


def capabilities(service: Service, base: str, query: str = "") -> bytes:
    """The WMTS capabilities; ``base`` is ``…/MapServer/WMTS``, ``query`` extra URL parameters
    (a token) carried into every advertised URL (``key=value&…`` or empty)."""
    offered = service_sets(service)
    scheme = service.tiling
    assert scheme is not None
    ident = layer_identifier(service)
    mime = scheme.format.content_type
    suffix = f"?{query.rstrip('&')}" if query else ""
    caps_url = f"{base}/1.0.0/WMTSCapabilities.xml{suffix}"
    kvp = f"{base}?{query}"
    template = (f"{base}/tile/1.0.0/{ident}/{{Style}}/{{TileMatrixSet}}/{{TileMatrix}}/"
                f"{{TileRow}}/{{TileCol}}{suffix}")
    geo = geographic_bounds(service.full_extent, service.sr) or (-180.0, -90.0, 180.0, 90.0)
    if scheme.sr.is_web_mercator:
        geo = (geo[0], max(geo[1], -mercator.MAX_LAT), geo[2], min(geo[3], mercator.MAX_LAT))
    links = []
    for set_id in offered.sets:
        limits = [el("TileMatrixLimits", el("TileMatrix", text=str(lim.level)),
                     el("MinTileRow", text=lim.min_row), el("MaxTileRow", text=lim.max_row),
                     el("MinTileCol", text=lim.min_col), el("MaxTileCol", text=lim.max_col))
                  for lim in offered.limits[set_id]]
        links.append(el("TileMatrixSetLink", el("TileMatrixSet", text=set_id),
                        el("TileMatrixSetLimits", limits)))
    layer = el("Layer",
               _ows("Title", text=service.map_name or service.short_name),
               _ows("Abstract", text=service.service_description or None),
               _ows("WGS84BoundingBox", _ows("LowerCorner", text=f"{number(geo[0])} "
                                                                 f"{number(geo[1])}"),
                    _ows("UpperCorner", text=f"{number(geo[2])} {number(geo[3])}"),
                    crs="urn:ogc:def:crs:OGC:2:84"),
               _ows("Identifier", text=ident),
               el("Style", _ows("Title", text="Default Style"),
                  _ows("Identifier", text=STYLE), isDefault="true"),
               el("Format", text=mime), links,
               el("ResourceURL", format=mime, resourceType="tile", template=template))
    sets = []
    for set_id, tms in offered.sets.items():
        urn = crs_urn(scheme.sr)
        matrices = [el("TileMatrix", _ows("Identifier", text=m.id),
                       el("ScaleDenominator", text=number(m.scaleDenominator)),
                       el("TopLeftCorner", text=_corner(tms, m)),
                       el("TileWidth", text=m.tileWidth), el("TileHeight", text=m.tileHeight),
                       el("MatrixWidth", text=m.matrixWidth),
                       el("MatrixHeight", text=m.matrixHeight))
                    for m in tms.tileMatrices]
        sets.append(el("TileMatrixSet", _ows("Title", text=set_id),
                       _ows("Identifier", text=set_id), _ows("SupportedCRS", text=urn),
                       el("WellKnownScaleSet", text=GOOGLE_WKSS) if set_id == GOOGLE_SET
                       else None, matrices))
    root = el(
        "Capabilities",
        _ows("ServiceIdentification",
             _ows("Title", text=service.map_name or service.short_name),
             _ows("Abstract", text=service.service_description or None),
             _ows("ServiceType", text="OGC WMTS"), _ows("ServiceTypeVersion", text="1.0.0"),
             _ows("Fees", text="none"),
             _ows("AccessConstraints", text=service.copyright or "none")),
        _ows("OperationsMetadata",
             _operation("GetCapabilities", caps_url, kvp),
             _operation("GetTile", f"{base}/tile/1.0.0/{suffix}", kvp)),
        el("Contents", layer, sets),
        el("ServiceMetadataURL", xlink__href=caps_url),
        version="1.0.0", xmlns=WMTS_NS, xmlns__ows=OWS_NS, xmlns__xlink=XLINK, xmlns__xsi=XSI,
        xmlns__gml="http://www.opengis.net/gml",
        xsi__schemaLocation=f"{WMTS_NS} "
        "http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd")
    return xml_document(root)


def exception_report(err: OgcError) -> bytes:
    exc = _ows("Exception", _ows("ExceptionText", text=err.message),
               exceptionCode=err.code or "NoApplicableCode", locator=err.locator)
    root = _ows("ExceptionReport", exc, xmlns__ows=OWS_NS, xmlns__xsi=XSI, version="1.0.0",
                xml__lang="en", xsi__schemaLocation=f"{OWS_NS} "
                "http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd")
    return xml_document(root)
