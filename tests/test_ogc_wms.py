"""WMS 1.1.1 and 1.3.0 (mapserver/ogc/): capabilities checked field by field and parsed by
OWSLib, GetMap through the export pipeline (axis order, CRS:84, TIME, BGCOLOR/TRANSPARENT,
FORMAT, size limits), GetFeatureInfo in every INFO_FORMAT through identify, GetLegendGraphic,
OGC exceptions (XML, INIMAGE, BLANK) for every failure, and the service's access check."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer"
GAPMINDER = "/arcgis/rest/services/Gapminder/MapServer"
OLINDA = "/arcgis/rest/services/Samples/Olinda/MapServer"
DEMO = "/arcgis/rest/services/Samples/Demo/MapServer"
WMS = "{http://www.opengis.net/wms}"
OGC = "{http://www.opengis.net/ogc}"
XLINK = "{http://www.w3.org/1999/xlink}"
# World's classBreaks colours on pop_est at deep interior points (as tests/test_tiles.py)
CHINA = ((90.0, 33.0), (189, 0, 38))
RUSSIA = ((100.0, 62.0), (240, 59, 32))
GREENLAND = ((-42.0, 74.0), (255, 255, 178))
OCEAN = (-140.0, 0.0)
BRAZIL = (-52.0, -10.0)


def ms(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp() * 1000)


def wms(client, path: str, **params):
    return client.get(f"{path}/WMSServer?{urlencode(params)}")


def getmap(client, path: str = WORLD, **params):
    base = {"SERVICE": "WMS", "REQUEST": "GetMap", "VERSION": "1.3.0", "LAYERS": "1",
            "STYLES": "", "CRS": "EPSG:4326", "BBOX": "-90,-180,90,180", "WIDTH": "720",
            "HEIGHT": "360", "FORMAT": "image/png"}
    return wms(client, path, **{**base, **params})


def world_pixel(rgba: np.ndarray, lon: float, lat: float) -> tuple[int, ...]:
    """The pixel of a whole-world plate carrée image."""
    h, w = rgba.shape[:2]
    return tuple(int(v) for v in rgba[int((90 - lat) / 180 * h), int((lon + 180) / 360 * w)])


def exception_of(resp, version: str = "1.3.0") -> ET.Element:
    assert resp.status_code == 200
    root = ET.fromstring(resp.data)
    if version == "1.3.0":
        assert resp.mimetype == "text/xml"
        assert root.tag == f"{OGC}ServiceExceptionReport" and root.get("version") == "1.3.0"
        exc = root.find(f"{OGC}ServiceException")
    else:
        assert resp.mimetype == "application/vnd.ogc.se_xml"
        assert b"<!DOCTYPE ServiceExceptionReport" in resp.data
        assert root.tag == "ServiceExceptionReport" and root.get("version") == "1.1.1"
        exc = root.find("ServiceException")
    assert exc is not None and exc.text
    assert "Traceback" not in resp.data.decode()
    return exc


# --- GetCapabilities -------------------------------------------------------------------------

# element order of a Layer in the schemas (1.3.0 capabilities_1_3_0.xsd, 1.1.1 DTD)
LAYER_ORDER_13 = ["Name", "Title", "Abstract", "KeywordList", "CRS", "EX_GeographicBoundingBox",
                  "BoundingBox", "Dimension", "Attribution", "AuthorityURL", "Identifier",
                  "MetadataURL", "DataURL", "FeatureListURL", "Style", "MinScaleDenominator",
                  "MaxScaleDenominator", "Layer"]
LAYER_ORDER_11 = ["Name", "Title", "Abstract", "KeywordList", "SRS", "LatLonBoundingBox",
                  "BoundingBox", "Dimension", "Extent", "Attribution", "AuthorityURL",
                  "Identifier", "MetadataURL", "DataURL", "FeatureListURL", "Style", "ScaleHint",
                  "Layer"]
SERVICE_ORDER_13 = ["Name", "Title", "Abstract", "KeywordList", "OnlineResource",
                    "ContactInformation", "Fees", "AccessConstraints", "LayerLimit", "MaxWidth",
                    "MaxHeight"]


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def assert_order(element: ET.Element, order: list[str]) -> None:
    tags = [local(c.tag) for c in element]
    assert all(t in order for t in tags), tags
    idx = [order.index(t) for t in tags]
    assert idx == sorted(idx), tags


def test_capabilities_1_3_0_field_by_field(client):
    resp = wms(client, WORLD, SERVICE="WMS", REQUEST="GetCapabilities", VERSION="1.3.0")
    assert resp.status_code == 200 and resp.mimetype == "text/xml"
    root = ET.fromstring(resp.data)
    assert root.tag == f"{WMS}WMS_Capabilities" and root.get("version") == "1.3.0"
    assert [local(c.tag) for c in root] == ["Service", "Capability"]
    service = root.find(f"{WMS}Service")
    assert_order(service, SERVICE_ORDER_13)
    assert service.findtext(f"{WMS}Name") == "WMS"
    assert service.findtext(f"{WMS}Title") == "World"
    assert service.findtext(f"{WMS}MaxWidth") == "4096"
    assert service.findtext(f"{WMS}MaxHeight") == "4096"
    assert service.find(f"{WMS}OnlineResource").get(f"{XLINK}href") == \
        f"http://localhost{WORLD}/WMSServer"
    cap = root.find(f"{WMS}Capability")
    assert [local(c.tag) for c in cap] == ["Request", "Exception", "Layer"]
    req = cap.find(f"{WMS}Request")
    assert [local(c.tag) for c in req] == ["GetCapabilities", "GetMap", "GetFeatureInfo",
                                           "GetLegendGraphic"]
    assert req.find("{http://www.opengis.net/sld}GetLegendGraphic") is not None
    get_map = req.find(f"{WMS}GetMap")
    formats = [f.text for f in get_map.findall(f"{WMS}Format")]
    assert {"image/png", "image/jpeg", "image/png8", "image/gif"} <= set(formats)
    href = get_map.find(f"{WMS}DCPType/{WMS}HTTP/{WMS}Get/{WMS}OnlineResource").get(
        f"{XLINK}href")
    assert href == f"http://localhost{WORLD}/WMSServer?"
    info = [f.text for f in req.findall(f"{WMS}GetFeatureInfo/{WMS}Format")]
    assert {"text/html", "application/json", "text/xml", "application/vnd.ogc.gml"} <= set(info)
    assert [f.text for f in cap.findall(f"{WMS}Exception/{WMS}Format")] == \
        ["XML", "INIMAGE", "BLANK"]

    top = cap.find(f"{WMS}Layer")
    assert_order(top, LAYER_ORDER_13)
    assert top.findtext(f"{WMS}Name") is None and top.findtext(f"{WMS}Title") == "World"
    assert [c.text for c in top.findall(f"{WMS}CRS")] == ["EPSG:4326", "CRS:84", "EPSG:3857"]
    geo = top.find(f"{WMS}EX_GeographicBoundingBox")
    assert [float(geo.findtext(f"{WMS}{k}")) for k in (
        "westBoundLongitude", "eastBoundLongitude", "southBoundLatitude",
        "northBoundLatitude")] == pytest.approx([-180, 180, -90, 83.64513])
    boxes = {b.get("CRS"): b for b in top.findall(f"{WMS}BoundingBox")}
    assert set(boxes) == {"EPSG:4326", "EPSG:3857"}
    # EPSG:4326 in 1.3.0 is lat, lon: minx is the southern latitude
    b = boxes["EPSG:4326"]
    assert [float(b.get(k)) for k in ("minx", "miny", "maxx", "maxy")] == pytest.approx(
        [-90, -180, 83.64513, 180])
    b = boxes["EPSG:3857"]
    assert float(b.get("minx")) == pytest.approx(-20037508.34, abs=1)
    layers = top.findall(f"{WMS}Layer")
    assert [(lyr.findtext(f"{WMS}Name"), lyr.findtext(f"{WMS}Title"), lyr.get("queryable"))
            for lyr in layers] == [("0", "Cities", "1"), ("1", "Countries", "1")]
    for lyr in layers:
        assert_order(lyr, LAYER_ORDER_13)
        style = lyr.find(f"{WMS}Style")
        assert style.findtext(f"{WMS}Name") == "default"
        legend = style.find(f"{WMS}LegendURL")
        assert legend.findtext(f"{WMS}Format") == "image/png"
        url = legend.find(f"{WMS}OnlineResource").get(f"{XLINK}href")
        assert "REQUEST=GetLegendGraphic" in url and "SLD_VERSION=1.1.0" in url
        png = client.get(url.replace("http://localhost", ""))
        assert png.status_code == 200 and png.mimetype == "image/png"
        img = Image.open(io.BytesIO(png.data))
        assert img.size == (int(legend.get("width")), int(legend.get("height")))


def test_capabilities_1_1_1_field_by_field(client):
    resp = wms(client, WORLD, SERVICE="WMS", REQUEST="GetCapabilities", VERSION="1.1.1")
    assert resp.status_code == 200 and resp.mimetype == "application/vnd.ogc.wms_xml"
    assert b'<!DOCTYPE WMT_MS_Capabilities SYSTEM' in resp.data
    root = ET.fromstring(resp.data)
    assert root.tag == "WMT_MS_Capabilities" and root.get("version") == "1.1.1"
    assert root.findtext("Service/Name") == "OGC:WMS"
    assert root.find("Service/MaxWidth") is None  # not in 1.1.1
    req = root.find("Capability/Request")
    assert [c.tag for c in req] == ["GetCapabilities", "GetMap", "GetFeatureInfo",
                                    "GetLegendGraphic"]
    assert req.findtext("GetCapabilities/Format") == "application/vnd.ogc.wms_xml"
    assert [f.text for f in root.findall("Capability/Exception/Format")] == [
        "application/vnd.ogc.se_xml", "application/vnd.ogc.se_inimage",
        "application/vnd.ogc.se_blank"]
    top = root.find("Capability/Layer")
    assert_order(top, LAYER_ORDER_11)
    assert [s.text for s in top.findall("SRS")] == ["EPSG:4326", "EPSG:3857"]
    ll = top.find("LatLonBoundingBox")
    assert [float(ll.get(k)) for k in ("minx", "miny", "maxx", "maxy")] == pytest.approx(
        [-180, -90, 180, 83.64513])
    box = next(b for b in top.findall("BoundingBox") if b.get("SRS") == "EPSG:4326")
    assert float(box.get("minx")) == pytest.approx(-180)  # lon, lat in 1.1.1
    for lyr in top.findall("Layer"):
        assert_order(lyr, LAYER_ORDER_11)
        assert lyr.find("LatLonBoundingBox") is not None


def test_time_dimension_in_both_versions(client):
    root = ET.fromstring(wms(client, GAPMINDER, REQUEST="GetCapabilities",
                             VERSION="1.3.0").data)
    dim = root.find(f"{WMS}Capability/{WMS}Layer/{WMS}Layer/{WMS}Dimension")
    assert dim.attrib == {"name": "time", "units": "ISO8601", "default": "2007-01-01T00:00:00Z",
                          "nearestValue": "0"}
    assert dim.text == "1952-01-01T00:00:00Z/2007-01-01T00:00:00Z/P5Y"
    root = ET.fromstring(wms(client, GAPMINDER, REQUEST="GetCapabilities",
                             VERSION="1.1.1").data)
    lyr = root.find("Capability/Layer/Layer")
    assert lyr.find("Dimension").attrib == {"name": "time", "units": "ISO8601"}
    ext = lyr.find("Extent")
    assert ext.get("default") == "2007-01-01T00:00:00Z"
    assert ext.text == "1952-01-01T00:00:00Z/2007-01-01T00:00:00Z/P5Y"
    # a raster time series lists its dates
    root = ET.fromstring(wms(client, DEMO, REQUEST="GetCapabilities", VERSION="1.3.0").data)
    series = next(lyr for lyr in root.iter(f"{WMS}Layer")
                  if lyr.findtext(f"{WMS}Title") == "Elevation series")
    values = series.findtext(f"{WMS}Dimension").split(",")
    assert values[0].startswith("2020-") and values[-1].startswith("2022-")


def test_own_crs_is_listed_first_and_layer_boxes_are_in_it(client):
    root = ET.fromstring(wms(client, OLINDA, REQUEST="GetCapabilities", VERSION="1.3.0").data)
    top = root.find(f"{WMS}Capability/{WMS}Layer")
    assert [c.text for c in top.findall(f"{WMS}CRS")] == ["EPSG:31985", "CRS:84", "EPSG:4326",
                                                          "EPSG:3857"]
    landsat = top.find(f"{WMS}Layer")
    box = next(b for b in landsat.findall(f"{WMS}BoundingBox") if b.get("CRS") == "EPSG:31985")
    assert float(box.get("minx")) == pytest.approx(288776.25)
    assert float(box.get("maxy")) == pytest.approx(9120760.75)
    geo = landsat.find(f"{WMS}EX_GeographicBoundingBox")
    assert -35.0 < float(geo.findtext(f"{WMS}westBoundLongitude")) < -34.8


def test_version_negotiation(client):
    for asked, got in (("1.0.0", "1.1.1"), ("1.1.0", "1.1.1"), ("1.3.0", "1.3.0"),
                       ("2.0.0", "1.3.0"), (None, "1.3.0")):
        params = {"SERVICE": "WMS", "REQUEST": "GetCapabilities"}
        if asked:
            params["VERSION"] = asked
        root = ET.fromstring(wms(client, WORLD, **params).data)
        assert root.get("version") == got


def test_owslib_reads_both_versions(client, app_url):
    from owslib.wms import WebMapService

    for version in ("1.1.1", "1.3.0"):
        w = WebMapService(f"{app_url}{GAPMINDER}/WMSServer", version=version)
        assert w.identification.type in ("OGC:WMS", "WMS")
        assert w.identification.title == "Gapminder"
        assert list(w.contents) == ["0"]
        layer = w["0"]
        assert layer.title == "Life expectancy" and layer.queryable == 1
        assert layer.timepositions == ["1952-01-01T00:00:00Z/2007-01-01T00:00:00Z/P5Y"]
        assert layer.defaulttimeposition == "2007-01-01T00:00:00Z"
        assert "EPSG:4326" in layer.crsOptions and "EPSG:3857" in layer.crsOptions
        assert layer.boundingBoxWGS84 == pytest.approx((-171.79, -55.61, 178.52, 83.23),
                                                        abs=0.01)
        assert set(layer.styles) == {"default"}
        assert [op.name for op in w.operations] == ["GetCapabilities", "GetMap",
                                                    "GetFeatureInfo", "GetLegendGraphic"]
        assert "image/png" in w.getOperationByName("GetMap").formatOptions
        img = w.getmap(layers=["0"], styles=[""], srs="EPSG:4326", bbox=(-180, -90, 180, 90),
                       size=(360, 180), format="image/png", time="1952")
        assert img.info()["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(img.read())).size == (360, 180)


# --- GetMap ----------------------------------------------------------------------------------

def test_getmap_axis_order_1_3_0_lat_lon_1_1_1_and_crs84_lon_lat(client):
    v13 = getmap(client)
    v11 = getmap(client, VERSION="1.1.1", SRS="EPSG:4326", CRS="", BBOX="-180,-90,180,90")
    crs84 = getmap(client, CRS="CRS:84", BBOX="-180,-90,180,90")
    for resp in (v13, v11, crs84):
        assert resp.status_code == 200 and resp.mimetype == "image/png"
    a, b, c = decode(v13.data), decode(v11.data), decode(crs84.data)
    assert a.shape == (360, 720, 4)
    assert np.array_equal(a, b) and np.array_equal(a, c)
    for (lon, lat), colour in (CHINA, RUSSIA, GREENLAND):
        assert world_pixel(a, lon, lat) == (*colour, 255)
    assert world_pixel(a, *OCEAN) == (255, 255, 255, 255)  # TRANSPARENT defaults to FALSE
    # a lon,lat bbox under 1.3.0's EPSG:4326 reads as lat,lon: another picture
    wrong = decode(getmap(client, BBOX="-180,-90,180,90").data)
    assert not np.array_equal(a, wrong)


def test_getmap_is_the_export_of_the_same_grid(client):
    bbox = "-2000000,-1000000,6000000,7000000"
    resp = getmap(client, CRS="EPSG:3857", BBOX=bbox, WIDTH="400", HEIGHT="400",
                  LAYERS="0,1", TRANSPARENT="TRUE")
    export = client.get(f"{WORLD}/export?bbox={bbox}&bboxSR=3857&imageSR=3857&size=400,400"
                        "&format=png32&transparent=true&f=image&layers=show:0,1")
    assert np.array_equal(decode(resp.data), decode(export.data))
    # a layer's name works as well as its id
    named = getmap(client, CRS="EPSG:3857", BBOX=bbox, WIDTH="400", HEIGHT="400",
                   LAYERS="Cities,Countries", TRANSPARENT="TRUE")
    assert named.data == resp.data


def test_getmap_stretches_to_a_bbox_of_another_aspect(client):
    """WMS draws the bbox onto exactly WIDTH x HEIGHT (no ArcGIS aspect rule)."""
    a = decode(getmap(client, BBOX="-90,-180,90,180", WIDTH="360", HEIGHT="360").data)
    for (lon, lat), colour in (CHINA, RUSSIA):
        row, col = int((90 - lat) / 180 * 360), int((lon + 180) / 360 * 360)
        assert tuple(a[row, col]) == (*colour, 255)


def test_time_picks_the_year_and_defaults_to_the_last(client):
    def export(year: int) -> np.ndarray:
        resp = client.get(f"{GAPMINDER}/export?bbox=-180,-90,180,90&bboxSR=4326&imageSR=4326"
                          f"&size=360,180&format=png32&f=image&time={ms(year)}")
        return decode(resp.data)

    def gm(**kw) -> np.ndarray:
        resp = getmap(client, GAPMINDER, LAYERS="0", WIDTH="360", HEIGHT="180", **kw)
        assert resp.mimetype == "image/png", resp.data[:300]
        return decode(resp.data)

    y1952, y2007 = export(1952), export(2007)
    assert not np.array_equal(y1952, y2007)
    assert np.array_equal(gm(TIME="1952"), y1952)
    assert np.array_equal(gm(TIME="1952-01-01T00:00:00Z"), y1952)
    assert np.array_equal(gm(TIME="1951-06-01/1952-06-01"), y1952)
    assert np.array_equal(gm(), y2007)  # the advertised default
    assert np.array_equal(gm(TIME="2007"), y2007)
    bad = getmap(client, GAPMINDER, LAYERS="0", TIME="last tuesday")
    assert exception_of(bad).get("code") == "InvalidDimensionValue"


def test_bgcolor_transparent_and_formats(client):
    clear = decode(getmap(client, TRANSPARENT="TRUE").data)
    assert world_pixel(clear, *OCEAN)[3] == 0
    assert world_pixel(clear, *CHINA[0]) == (*CHINA[1], 255)
    blue = decode(getmap(client, BGCOLOR="0x336699").data)
    assert world_pixel(blue, *OCEAN) == (51, 102, 153, 255)
    jpeg = getmap(client, FORMAT="image/jpeg", TRANSPARENT="TRUE", BGCOLOR="0x336699")
    assert jpeg.mimetype == "image/jpeg"
    assert np.abs(np.array(world_pixel(decode(jpeg.data), *OCEAN))
                  - (51, 102, 153, 255)).max() <= 3
    for fmt, mode in (("image/png8", "P"), ("image/png; mode=8bit", "P"), ("image/gif", "P"),
                      ("image/png24", "RGB")):
        resp = getmap(client, FORMAT=fmt)
        img = Image.open(io.BytesIO(resp.data))
        assert img.mode == mode and img.size == (720, 360), fmt
    assert exception_of(getmap(client, FORMAT="image/webp")).get("code") == "InvalidFormat"
    assert exception_of(getmap(client, BGCOLOR="blue")).get("locator") == "BGCOLOR"


def test_width_and_height_are_limited_by_the_service(client):
    ok = getmap(client, WIDTH="4096", HEIGHT="1", LAYERS="0")
    assert ok.mimetype == "image/png"
    for name, value in (("WIDTH", "4097"), ("HEIGHT", "5000"), ("WIDTH", "0"),
                        ("HEIGHT", "-3"), ("WIDTH", "12.5"), ("WIDTH", "")):
        exc = exception_of(getmap(client, **{name: value}))
        assert exc.get("locator") == name, (name, value)
        assert exc.get("code") in ("InvalidParameterValue", "MissingParameterValue")


# --- exceptions ------------------------------------------------------------------------------

@pytest.mark.parametrize("params,code,locator", [
    ({"LAYERS": "7"}, "LayerNotDefined", "LAYERS"),
    ({"LAYERS": ""}, "MissingParameterValue", "LAYERS"),
    ({"CRS": "EPSG:999999"}, "InvalidCRS", "CRS"),
    ({"CRS": "AUTO2:42001,1,0,0"}, "InvalidCRS", "CRS"),
    ({"STYLES": "fancy"}, "StyleNotDefined", "STYLES"),
    ({"BBOX": "1,2,3"}, "InvalidParameterValue", "BBOX"),
    ({"BBOX": "10,10,0,0"}, "InvalidParameterValue", "BBOX"),
    ({"BBOX": "nan,0,1,1"}, "InvalidParameterValue", "BBOX"),
    ({"REQUEST": "GetStyles"}, "OperationNotSupported", "REQUEST"),
    ({"TRANSPARENT": "maybe"}, "InvalidParameterValue", "TRANSPARENT"),
])
def test_errors_are_service_exception_reports(client, params, code, locator):
    exc = exception_of(getmap(client, **params))
    assert (exc.get("code"), exc.get("locator")) == (code, locator)


def test_1_1_1_exceptions_and_srs(client):
    resp = getmap(client, VERSION="1.1.1", CRS="", SRS="EPSG:0", BBOX="-180,-90,180,90")
    assert exception_of(resp, "1.1.1").get("code") == "InvalidSRS"


def test_inimage_and_blank_exceptions(client):
    inimage = getmap(client, LAYERS="99", EXCEPTIONS="INIMAGE", WIDTH="300", HEIGHT="100")
    assert inimage.mimetype == "image/png"
    img = decode(inimage.data)
    assert img.shape == (100, 300, 4)
    assert (img[..., :3] != 255).any()  # the message is drawn
    blank = getmap(client, LAYERS="99", EXCEPTIONS="application/vnd.ogc.se_blank",
                   VERSION="1.1.1", SRS="EPSG:4326", WIDTH="30", HEIGHT="20",
                   TRANSPARENT="TRUE")
    img = decode(blank.data)
    assert img.shape == (20, 30, 4) and (img[..., 3] == 0).all()
    # the image cannot be made (bad size): XML after all
    assert exception_of(getmap(client, LAYERS="99", EXCEPTIONS="INIMAGE", WIDTH="0")) \
        .get("code") == "LayerNotDefined"


HOSTILE = ["\x00", "9" * 400, "-1e309", "NaN", "[[[[", "<x/>", "EPSG:4326,EPSG:3857", "ä"]


def test_no_parameter_value_gives_a_500_or_a_traceback(client):
    names = ["LAYERS", "CRS", "SRS", "BBOX", "WIDTH", "HEIGHT", "FORMAT", "TIME", "STYLES",
             "BGCOLOR", "TRANSPARENT", "VERSION", "EXCEPTIONS", "DPI", "QUERY_LAYERS", "I", "J",
             "INFO_FORMAT", "FEATURE_COUNT", "LAYER"]
    for request in ("GetMap", "GetFeatureInfo", "GetLegendGraphic"):
        for name in names:
            for value in HOSTILE:
                params = {"REQUEST": request, "LAYERS": "1", "QUERY_LAYERS": "1", "LAYER": "1",
                          "CRS": "EPSG:4326", "BBOX": "-90,-180,90,180", "WIDTH": "64",
                          "HEIGHT": "32", "FORMAT": "image/png", "I": "5", "J": "5",
                          name: value}
                resp = wms(client, WORLD, **params)
                assert resp.status_code == 200, (request, name, value)
                assert b"Traceback" not in resp.data
                if not resp.mimetype.startswith(("image/", "text/html", "application/json",
                                                  "text/plain")):
                    ET.fromstring(resp.data)  # well-formed XML


# --- GetFeatureInfo --------------------------------------------------------------------------

def feature_info(client, path: str = WORLD, lonlat=BRAZIL, **params):
    """A click at (lon, lat) on the 720 x 360 whole-world map."""
    lon, lat = lonlat
    base = {"SERVICE": "WMS", "REQUEST": "GetFeatureInfo", "VERSION": "1.3.0", "LAYERS": "1",
            "QUERY_LAYERS": "1", "STYLES": "", "CRS": "EPSG:4326", "BBOX": "-90,-180,90,180",
            "WIDTH": "720", "HEIGHT": "360", "I": str(int((lon + 180) * 2)),
            "J": str(int((90 - lat) * 2)), "INFO_FORMAT": "application/json"}
    return wms(client, path, **{**base, **params})


def test_getfeatureinfo_returns_the_clicked_country_in_every_format(client):
    doc = json.loads(feature_info(client).data)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) == 1
    feat = doc["features"][0]
    assert feat["properties"]["name"] == "Brazil" and feat["layerName"] == "Countries"
    assert feat["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert doc["crs"]["properties"]["name"] == "EPSG:4326"

    html = feature_info(client, INFO_FORMAT="text/html")
    assert html.mimetype == "text/html" and b"<td>Brazil</td>" in html.data
    text = feature_info(client, INFO_FORMAT="text/plain")
    assert text.mimetype == "text/plain" and b"'Brazil'" in text.data

    esri = ET.fromstring(feature_info(client, INFO_FORMAT="text/xml").data)
    assert esri.tag == "{http://www.esri.com/wms}FeatureInfoResponse"
    assert [f.get("name") for f in esri] == ["Brazil"]

    gml = ET.fromstring(feature_info(client, INFO_FORMAT="application/vnd.ogc.gml").data)
    assert gml.tag == "{http://www.opengis.net/wfs}FeatureCollection"
    members = gml.findall("{http://www.opengis.net/gml}featureMember")
    assert len(members) == 1
    country = members[0][0]
    assert country.tag == "Countries" and country.findtext("name") == "Brazil"
    assert country.find("geometry/{http://www.opengis.net/gml}MultiPolygon") is not None or \
        country.find("geometry/{http://www.opengis.net/gml}Polygon") is not None


def test_getfeatureinfo_1_1_1_uses_x_y_and_lon_lat(client):
    lon, lat = CHINA[0]
    resp = feature_info(client, VERSION="1.1.1", CRS="", SRS="EPSG:4326",
                        BBOX="-180,-90,180,90", I="", J="", X=str(int((lon + 180) * 2)),
                        Y=str(int((90 - lat) * 2)))
    assert [f["properties"]["name"] for f in json.loads(resp.data)["features"]] == ["China"]


def test_getfeatureinfo_in_web_mercator_points_count_and_time(client):
    # Web Mercator, both layers: the top one (Cities) answers near a city, Countries always
    bbox = (-20037508.34, -20037508.34, 20037508.34, 20037508.34)
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, 3857, always_xy=True).transform(2.35, 48.86)  # Paris
    res = (bbox[2] - bbox[0]) / 1024
    params = dict(CRS="EPSG:3857", BBOX=",".join(map(str, bbox)), WIDTH="1024", HEIGHT="1024",
                  LAYERS="0,1", QUERY_LAYERS="0,1", I=str(int((x - bbox[0]) / res)),
                  J=str(int((bbox[3] - y) / res)), FEATURE_COUNT="5")
    feats = json.loads(feature_info(client, **params).data)["features"]
    names = [(f["layerName"], f["properties"].get("name")) for f in feats]
    assert ("Countries", "France") in names
    assert any(layer == "Cities" and name == "Paris" for layer, name in names), names
    assert [n for n in names if n[0] == "Countries"][0] == ("Countries", "France")
    one = json.loads(feature_info(client, **{**params, "FEATURE_COUNT": "1"}).data)
    assert len([f for f in one["features"] if f["layerName"] == "Countries"]) == 1
    # nothing in the ocean
    assert json.loads(feature_info(client, lonlat=OCEAN).data)["features"] == []
    # time: the 1952 feature of the clicked country
    for year in (1952, 2007):
        doc = json.loads(feature_info(client, GAPMINDER, LAYERS="0", QUERY_LAYERS="0",
                                      TIME=str(year)).data)
        assert [(f["properties"]["name"], f["properties"]["year"]) for f in doc["features"]] \
            == [("Brazil", year)]


def test_getfeatureinfo_errors(client):
    assert exception_of(feature_info(client, I="720")).get("code") == "InvalidPoint"
    assert exception_of(feature_info(client, J="-1")).get("code") == "InvalidPoint"
    assert exception_of(feature_info(client, QUERY_LAYERS="")).get("code") == \
        "MissingParameterValue"
    assert exception_of(feature_info(client, QUERY_LAYERS="5")).get("code") == \
        "LayerNotDefined"
    assert exception_of(feature_info(client, INFO_FORMAT="image/png")).get("code") == \
        "InvalidFormat"


def test_getfeatureinfo_on_a_raster_layer(client):
    """Olinda's Landsat answers its pixel values (identify's raster result)."""
    box = "288776,9110729,298722,9120760"
    resp = wms(client, OLINDA, REQUEST="GetFeatureInfo", VERSION="1.3.0", LAYERS="0",
               QUERY_LAYERS="0", CRS="EPSG:31985", BBOX=box, WIDTH="200", HEIGHT="200",
               I="100", J="100", INFO_FORMAT="application/json")
    feats = json.loads(resp.data)["features"]
    assert len(feats) == 1
    assert re.fullmatch(r"\d+ \d+ \d+ \d+ \d+ \d+", feats[0]["properties"]["Pixel Value"])


# --- GetLegendGraphic ------------------------------------------------------------------------

def test_getlegendgraphic_stacks_the_legend_classes(client):
    resp = wms(client, WORLD, SERVICE="WMS", REQUEST="GetLegendGraphic", VERSION="1.3.0",
               LAYER="1", FORMAT="image/png", SLD_VERSION="1.1.0")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    img = decode(resp.data)
    legend = client.get(f"{WORLD}/legend?f=json").get_json()["layers"]
    classes = next(lyr for lyr in legend if lyr["layerId"] == 1)["legend"]
    assert img.shape[0] >= 20 * len(classes)
    colours = {tuple(int(v) for v in img[y, 10, :3]) for y in range(img.shape[0])
               if img[y, 10, 3] == 255}
    assert {(189, 0, 38), (240, 59, 32), (255, 255, 178)} <= colours
    raster = wms(client, OLINDA, REQUEST="GetLegendGraphic", LAYER="1", FORMAT="image/png")
    assert raster.mimetype == "image/png"
    bad = wms(client, WORLD, REQUEST="GetLegendGraphic", LAYER="42", FORMAT="image/png")
    assert exception_of(bad).get("code") == "LayerNotDefined"


# --- access control ---------------------------------------------------------------------------

def test_a_secured_service_needs_a_token_for_wms_too(tmp_path):
    from mapserver.security.users import hash_password

    world = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())
    services = tmp_path / "services"
    services.mkdir()
    (services / "Locked.json").write_text(json.dumps({**world, "access": {"users": ["alice"]}}))
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"alice": {"password": hash_password("pw"),
                                                     "roles": []}}}))
    app = create_app(Settings(service_dirs=(services,), data_dir=PROJECT_ROOT / "data",
                              output_dir=tmp_path / "out", tile_cache_dir=tmp_path / "tiles",
                              users_file=users, secret="s"))
    http = app.test_client()
    path = "/arcgis/rest/services/Locked/MapServer"
    for url in (f"{path}/WMSServer?REQUEST=GetCapabilities",
                f"{path}/WMTS/1.0.0/WMTSCapabilities.xml", f"{path}/WMTS/tile/1.0.0/Locked/"
                "default/default028mm/0/0/0"):
        # the dispatcher's check answers before the OGC code runs: ArcGIS's 499 (an HTML
        # error page, ArcGIS's default format for a request without f)
        denied = http.get(url)
        assert b"Token Required" in denied.data and b"499" in denied.data, url
        assert http.get(url + ("&" if "?" in url else "?") + "f=json").get_json()["error"][
            "code"] == 499
    token = http.post("/arcgis/tokens/generateToken", data={
        "username": "alice", "password": "pw", "f": "json"}).get_json()["token"]
    caps = http.get(f"{path}/WMSServer?REQUEST=GetCapabilities&VERSION=1.3.0&token={token}")
    assert caps.status_code == 200 and caps.mimetype == "text/xml"
    root = ET.fromstring(caps.data)
    href = root.find(f"{WMS}Capability/{WMS}Request/{WMS}GetMap/{WMS}DCPType/{WMS}HTTP/"
                     f"{WMS}Get/{WMS}OnlineResource").get(f"{XLINK}href")
    assert href.endswith(f"/WMSServer?token={token}&")
    img = http.get(href.replace("http://localhost", "") + "REQUEST=GetMap&VERSION=1.3.0"
                   "&LAYERS=1&STYLES=&CRS=EPSG:4326&BBOX=-90,-180,90,180&WIDTH=72&HEIGHT=36"
                   "&FORMAT=image/png")
    assert img.mimetype == "image/png"
