"""WMTS 1.0.0 on cached services (mapserver/ogc/wmts.py): the capabilities field by field and
through OWSLib, the tile matrix sets against the ArcGIS tileInfo and morecantile's
WebMercatorQuad, GetTile (KVP and RESTful, both matrix sets) byte-equal to ``/tile``, the
advertised limits equal to the tiles served, and OWS exception reports."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import morecantile
import pytest

from mapserver.ogc import wmts as wmts_module

# the Web Mercator caches (World and Samples/Olinda are in their own SRs, 4326 and UTM)
WORLD = "/arcgis/rest/services/WorldMercator/MapServer"
OLINDA = "/arcgis/rest/services/Samples/OlindaMercator/MapServer"
GAPMINDER = "/arcgis/rest/services/Gapminder/MapServer"
NS = "{http://www.opengis.net/wmts/1.0}"
OWS = "{http://www.opengis.net/ows/1.1}"
XLINK = "{http://www.w3.org/1999/xlink}"
ESRI_RES0 = 156543.03392800014
ESRI_ORIGIN = 20037508.342787


def caps(client, path: str = WORLD) -> ET.Element:
    resp = client.get(f"{path}/WMTS/1.0.0/WMTSCapabilities.xml")
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    return ET.fromstring(resp.data)


def ows_exception(resp, status: int) -> ET.Element:
    assert resp.status_code == status, resp.data[:300]
    root = ET.fromstring(resp.data)
    assert root.tag == f"{OWS}ExceptionReport" and root.get("version") == "1.0.0"
    exc = root.find(f"{OWS}Exception")
    assert exc.findtext(f"{OWS}ExceptionText")
    return exc


def test_capabilities_field_by_field(client):
    root = caps(client)
    assert root.tag == f"{NS}Capabilities" and root.get("version") == "1.0.0"
    assert [c.tag for c in root] == [f"{OWS}ServiceIdentification", f"{OWS}OperationsMetadata",
                                     f"{NS}Contents", f"{NS}ServiceMetadataURL"]
    ident = root.find(f"{OWS}ServiceIdentification")
    assert ident.findtext(f"{OWS}ServiceType") == "OGC WMTS"
    assert ident.findtext(f"{OWS}ServiceTypeVersion") == "1.0.0"
    ops = {op.get("name"): op for op in root.iter(f"{OWS}Operation")}
    assert set(ops) == {"GetCapabilities", "GetTile"}
    for op in ops.values():
        gets = op.findall(f"{OWS}DCP/{OWS}HTTP/{OWS}Get")
        encodings = [g.findtext(f"{OWS}Constraint/{OWS}AllowedValues/{OWS}Value") for g in gets]
        assert encodings == ["RESTful", "KVP"]
        assert gets[1].get(f"{XLINK}href") == f"http://localhost{WORLD}/WMTS?"

    layer = root.find(f"{NS}Contents/{NS}Layer")
    assert layer.findtext(f"{OWS}Identifier") == "WorldMercator"
    assert layer.findtext(f"{OWS}Title") == "World (Web Mercator)"
    box = layer.find(f"{OWS}WGS84BoundingBox")
    lower = [float(v) for v in box.findtext(f"{OWS}LowerCorner").split()]
    upper = [float(v) for v in box.findtext(f"{OWS}UpperCorner").split()]
    assert lower == pytest.approx([-180, -85.0511287798066]) and upper == pytest.approx(
        [180, 83.64513])
    style = layer.find(f"{NS}Style")
    assert style.get("isDefault") == "true" and style.findtext(f"{OWS}Identifier") == "default"
    assert layer.findtext(f"{NS}Format") == "image/png"
    links = [lk.findtext(f"{NS}TileMatrixSet") for lk in layer.findall(f"{NS}TileMatrixSetLink")]
    assert links == ["default028mm", "GoogleMapsCompatible"]
    res = layer.find(f"{NS}ResourceURL")
    assert res.attrib == {
        "format": "image/png", "resourceType": "tile",
        "template": f"http://localhost{WORLD}/WMTS/tile/1.0.0/WorldMercator/{{Style}}/{{TileMatrixSet}}"
                    "/{TileMatrix}/{TileRow}/{TileCol}"}

    sets = {s.findtext(f"{OWS}Identifier"): s for s in root.findall(f"{NS}Contents/"
                                                                   f"{NS}TileMatrixSet")}
    assert list(sets) == ["default028mm", "GoogleMapsCompatible"]
    esri = sets["default028mm"]
    assert esri.findtext(f"{OWS}SupportedCRS") == "urn:ogc:def:crs:EPSG::3857"
    assert esri.find(f"{NS}WellKnownScaleSet") is None
    matrices = esri.findall(f"{NS}TileMatrix")
    assert [m.findtext(f"{OWS}Identifier") for m in matrices] == [str(z) for z in range(20)]
    for z, m in enumerate(matrices):
        assert float(m.findtext(f"{NS}ScaleDenominator")) == pytest.approx(
            ESRI_RES0 / 2 ** z / 0.00028, rel=1e-12)
        assert m.findtext(f"{NS}TopLeftCorner") == "-20037508.342787 20037508.342787"
        assert (m.findtext(f"{NS}TileWidth"), m.findtext(f"{NS}TileHeight")) == ("256", "256")
        assert int(m.findtext(f"{NS}MatrixWidth")) == int(m.findtext(f"{NS}MatrixHeight")) \
            == 2 ** z
    google = sets["GoogleMapsCompatible"]
    assert google.findtext(f"{NS}WellKnownScaleSet") == \
        "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible"
    quad = morecantile.tms.get("WebMercatorQuad")
    for z, m in enumerate(google.findall(f"{NS}TileMatrix")):
        ref = quad.matrix(z)
        assert float(m.findtext(f"{NS}ScaleDenominator")) == ref.scaleDenominator
        assert [float(v) for v in m.findtext(f"{NS}TopLeftCorner").split()] == list(
            ref.pointOfOrigin)
        assert int(m.findtext(f"{NS}MatrixWidth")) == ref.matrixWidth
    assert root.find(f"{NS}ServiceMetadataURL").get(f"{XLINK}href") == \
        f"http://localhost{WORLD}/WMTS/1.0.0/WMTSCapabilities.xml"
    # KVP GetCapabilities answers the same document
    kvp = client.get(f"{WORLD}/WMTS?SERVICE=WMTS&REQUEST=GetCapabilities&VERSION=1.0.0")
    assert kvp.data == client.get(f"{WORLD}/WMTS/1.0.0/WMTSCapabilities.xml").data


def test_esri_scheme_is_within_millimetres_of_web_mercator_quad(app):
    """Why the Esri cache may be advertised as GoogleMapsCompatible: every tile's bounds in
    the default028mm set (the tileInfo's numbers) lie within 2 mm of WebMercatorQuad's."""
    service = app.extensions["mapserver"].catalog.service("WorldMercator")
    scheme = service.tiling
    esri = wmts_module.scheme_tms(scheme)
    quad = morecantile.tms.get("WebMercatorQuad")
    for z, row, col in ((0, 0, 0), (3, 2, 5), (12, 1500, 2100), (19, 2 ** 19 - 1, 2 ** 19 - 1)):
        ours = esri.xy_bounds(morecantile.Tile(col, row, z))
        ref = quad.xy_bounds(morecantile.Tile(col, row, z))
        assert ours == pytest.approx(scheme.tile_bounds(scheme.lod(z), row, col), abs=1e-6)
        assert max(abs(a - b) for a, b in zip(ours, ref, strict=True)) < 0.003
    assert wmts_module.google_compatible(scheme)


def test_limits_are_exactly_the_tiles_served(client):
    root = caps(client)
    link = root.find(f"{NS}Contents/{NS}Layer/{NS}TileMatrixSetLink")
    limits = {int(lim.findtext(f"{NS}TileMatrix")): lim
              for lim in link.iter(f"{NS}TileMatrixLimits")}
    assert sorted(limits) == list(range(20))
    for z in (0, 1, 2, 3):
        lim = limits[z]
        rows = range(int(lim.findtext(f"{NS}MinTileRow")), int(lim.findtext(f"{NS}MaxTileRow"))
                     + 1)
        cols = range(int(lim.findtext(f"{NS}MinTileCol")), int(lim.findtext(f"{NS}MaxTileCol"))
                     + 1)
        for row in range(2 ** z):
            for col in range(2 ** z):
                status = client.get(f"{WORLD}/tile/{z}/{row}/{col}").status_code
                assert status == (200 if row in rows and col in cols else 404), (z, row, col)
    # World's northern edge (83.6 N) leaves the top row of level 5 out
    assert limits[5].findtext(f"{NS}MinTileRow") == "1"
    # Olinda: a few tiles per level
    root = caps(client, OLINDA)
    lim = next(lim for lim in root.iter(f"{NS}TileMatrixLimits")
               if lim.findtext(f"{NS}TileMatrix") == "12")
    assert int(lim.findtext(f"{NS}MaxTileCol")) - int(lim.findtext(f"{NS}MinTileCol")) <= 1


@pytest.mark.parametrize("path,ident,tile", [(WORLD, "WorldMercator", (3, 2, 5)),
                                             (OLINDA, "Samples_OlindaMercator", (12, 2139, 1651))])
def test_a_wmts_tile_is_the_arcgis_tile(client, path, ident, tile):
    z, row, col = tile
    arcgis = client.get(f"{path}/tile/{z}/{row}/{col}")
    assert arcgis.status_code == 200 and arcgis.mimetype == "image/png"
    for tms in ("default028mm", "GoogleMapsCompatible"):
        rest = client.get(f"{path}/WMTS/tile/1.0.0/{ident}/default/{tms}/{z}/{row}/{col}")
        kvp = client.get(f"{path}/WMTS?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER={ident}"
                         f"&STYLE=default&TILEMATRIXSET={tms}&TILEMATRIX={z}&TILEROW={row}"
                         f"&TILECOL={col}&FORMAT=image/png")
        for resp in (rest, kvp):
            assert resp.status_code == 200 and resp.mimetype == "image/png"
            assert resp.data == arcgis.data
            assert resp.headers["ETag"] == arcgis.headers["ETag"]
            assert resp.headers["Cache-Control"] == arcgis.headers["Cache-Control"]
    again = client.get(f"{path}/WMTS/tile/1.0.0/{ident}/default/default028mm/{z}/{row}/{col}",
                       headers={"If-None-Match": arcgis.headers["ETag"]})
    assert again.status_code == 304


def test_owslib_reads_the_capabilities_and_fetches_a_tile(client, app_url):
    from owslib.wmts import WebMapTileService

    w = WebMapTileService(f"{app_url}{OLINDA}/WMTS/1.0.0/WMTSCapabilities.xml")
    assert w.identification.type == "OGC WMTS" and w.identification.version == "1.0.0"
    assert list(w.contents) == ["Samples_OlindaMercator"]
    layer = w.contents["Samples_OlindaMercator"]
    assert layer.formats == ["image/png"] and set(layer.tilematrixsetlinks) == {
        "default028mm", "GoogleMapsCompatible"}
    assert layer.boundingBoxWGS84 == pytest.approx((-34.917, -8.041, -34.826, -7.950), abs=0.005)
    assert set(w.tilematrixsets) == {"default028mm", "GoogleMapsCompatible"}
    m = w.tilematrixsets["default028mm"].tilematrix["12"]
    assert m.topleftcorner == (-ESRI_ORIGIN, ESRI_ORIGIN)
    assert m.matrixwidth == 4096
    tile = w.gettile(layer="Samples_OlindaMercator", tilematrixset="default028mm", tilematrix="12",
                     row=2139, column=1651, format="image/png")
    assert tile.read() == client.get(f"{OLINDA}/tile/12/2139/1651").data


@pytest.mark.parametrize("query,status,code,locator", [
    ("LAYER=Nope", 400, "InvalidParameterValue", "LAYER"),
    ("STYLE=fancy", 400, "InvalidParameterValue", "STYLE"),
    ("TILEMATRIXSET=WorldCRS84Quad", 400, "InvalidParameterValue", "TILEMATRIXSET"),
    ("TILEMATRIX=20", 400, "InvalidParameterValue", "TILEMATRIX"),
    ("TILEROW=8", 400, "TileOutOfRange", "TILEROW"),
    ("TILECOL=99", 400, "TileOutOfRange", "TILECOL"),
    ("TILEROW=-1", 400, "InvalidParameterValue", "TILEROW"),
    ("TILEROW=", 400, "MissingParameterValue", "TILEROW"),
    ("FORMAT=image/jpeg", 400, "InvalidParameterValue", "FORMAT"),
    ("REQUEST=GetFeatureInfo", 400, "OperationNotSupported", "REQUEST"),
])
def test_gettile_errors_are_ows_exception_reports(client, query, status, code, locator):
    params = dict(p.split("=", 1) for p in (
        "SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=WorldMercator&STYLE=default&TILEMATRIXSET="
        "default028mm&TILEMATRIX=3&TILEROW=2&TILECOL=5&FORMAT=image/png").split("&"))
    key, value = query.split("=", 1)
    params[key] = value
    resp = client.get(f"{WORLD}/WMTS?" + "&".join(f"{k}={v}" for k, v in params.items()))
    exc = ows_exception(resp, status)
    assert (exc.get("exceptionCode"), exc.get("locator")) == (code, locator)


def test_missing_tiles_and_uncached_services(client):
    # inside the matrix but outside World's data (north of 83.6 N): 404, as /tile answers
    rest = f"{WORLD}/WMTS/tile/1.0.0/WorldMercator/default/default028mm"
    exc = ows_exception(client.get(f"{rest}/5/0/3"), 404)
    assert exc.get("exceptionCode") == "TileOutOfRange"
    assert client.get(f"{WORLD}/tile/5/0/3").status_code == 404
    # Gapminder has no tiling scheme: no WMTS
    exc = ows_exception(client.get(f"{GAPMINDER}/WMTS/1.0.0/WMTSCapabilities.xml"), 404)
    assert exc.get("exceptionCode") == "OperationNotSupported"
    ows_exception(client.get(f"{WORLD}/WMTS/2.0.0/WMTSCapabilities.xml"), 404)
    ows_exception(client.get(f"{rest}/3/x/5"), 400)
    # a tile URL with an extension (as some clients write templates) is the same tile
    assert client.get(f"{rest}/3/2/5.png").data == client.get(f"{WORLD}/tile/3/2/5").data
