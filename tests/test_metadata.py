"""The JSON documents clients read before they draw: catalog, folder, info, service root,
/layers, /{id}; plus the request-handling rules of reference section 0 (pjson, JSONP, CORS,
trailing slash, case-insensitive names, POST, empty values)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import decode

SERVICES = "/arcgis/rest/services"
WORLD = SERVICES + "/World/MapServer"
OLINDA = SERVICES + "/Samples/Olinda/MapServer"
GAPMINDER = SERVICES + "/Gapminder/MapServer"
WGS84 = {"wkid": 4326, "latestWkid": 4326}


def get_json(client, url: str, **params) -> dict:
    resp = client.get(url, query_string={"f": "json", **params})
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    return resp.get_json()


def test_catalog_lists_folders_and_root_services(client):
    body = get_json(client, SERVICES)
    assert body["currentVersion"] == pytest.approx(11.1)
    assert body["folders"] == ["Samples"]
    names = {(s["name"], s["type"]) for s in body["services"]}
    assert {("World", "MapServer"), ("Gapminder", "MapServer")} <= names
    assert not any(s["name"].startswith("Samples/") for s in body["services"])


def test_folder_listing_names_services_with_the_folder_prefix(client):
    body = get_json(client, SERVICES + "/Samples")
    assert body["folders"] == []
    assert {"name": "Samples/Olinda", "type": "MapServer"} in body["services"]


def test_rest_info(client):
    body = get_json(client, "/arcgis/rest/info")
    assert body["currentVersion"] == pytest.approx(11.1)
    assert body["fullVersion"] == "11.1.0"
    assert body["authInfo"] == {"isTokenBasedSecurity": False}


def test_service_root_has_the_fields_clients_read(client):
    body = get_json(client, WORLD)
    for key in ("currentVersion", "serviceDescription", "mapName", "description",
                "copyrightText", "supportsDynamicLayers", "layers", "tables",
                "spatialReference", "singleFusedMapCache", "initialExtent", "fullExtent",
                "units", "supportedImageFormatTypes", "documentInfo", "capabilities",
                "maxRecordCount", "maxImageHeight", "maxImageWidth", "minScale", "maxScale"):
        assert key in body, key
    assert body["spatialReference"] == WGS84
    assert body["units"] == "esriDecimalDegrees"
    assert "Map" in body["capabilities"].split(",")
    assert body["supportedImageFormatTypes"].startswith("PNG32")
    assert (body["maxImageWidth"], body["maxImageHeight"]) == (4096, 4096)
    assert body["copyrightText"] == "Natural Earth (public domain)"
    layers = {lyr["id"]: lyr for lyr in body["layers"]}
    assert layers[0]["name"] == "Cities" and layers[1]["name"] == "Countries"
    assert layers[0]["parentLayerId"] == -1 and layers[0]["subLayerIds"] is None
    assert layers[0]["geometryType"] == "esriGeometryPoint"
    assert layers[1]["geometryType"] == "esriGeometryPolygon"
    fe = body["fullExtent"]
    assert fe["spatialReference"] == WGS84
    assert (fe["xmin"], fe["xmax"]) == pytest.approx((-180, 180), abs=1e-6)
    assert "timeInfo" not in body


def test_projected_service_root_reports_its_sr_and_metres(client):
    body = get_json(client, OLINDA)
    assert body["spatialReference"] == {"wkid": 31985, "latestWkid": 31985}
    assert body["units"] == "esriMeters"
    fe = body["fullExtent"]
    assert fe["xmin"] == pytest.approx(288776.25, abs=1)
    assert fe["ymax"] == pytest.approx(9120760.75, abs=1)
    hidden = {lyr["id"]: lyr["defaultVisibility"] for lyr in body["layers"]}
    assert hidden == {0: True, 1: False}


def test_gapminder_root_and_layer_have_time_info(client):
    root = get_json(client, GAPMINDER)
    ti = root["timeInfo"]
    # 1952-01-01 and 2007-01-01 in epoch milliseconds UTC
    start = int(datetime(1952, 1, 1, tzinfo=UTC).timestamp() * 1000)
    end = int(datetime(2007, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert ti["timeExtent"] == [start, end]
    assert ti["timeReference"]["timeZone"] == "UTC"
    assert ti["defaultTimeIntervalUnits"] == "esriTimeUnitsYears"
    layer = get_json(client, GAPMINDER + "/0")
    assert layer["timeInfo"]["startTimeField"] == "date"
    assert layer["timeInfo"]["timeExtent"] == [start, end]


def test_all_layers_resource(client):
    body = get_json(client, WORLD + "/layers")
    assert [lyr["id"] for lyr in body["layers"]] == [0, 1]
    assert body["tables"] == []
    assert body["layers"][1]["drawingInfo"]["renderer"]["type"] == "classBreaks"


def test_layer_resource(client):
    body = get_json(client, WORLD + "/1")
    assert body["id"] == 1 and body["name"] == "Countries"
    assert body["type"] == "Feature Layer"
    assert body["geometryType"] == "esriGeometryPolygon"
    assert body["parentLayer"] is None and body["subLayers"] == []
    assert body["displayField"] == "name"
    assert body["extent"]["spatialReference"] == WGS84
    fields = {f["name"]: f["type"] for f in body["fields"]}
    assert fields["name"] == "esriFieldTypeString"
    assert fields["pop_est"] in ("esriFieldTypeDouble", "esriFieldTypeInteger")
    assert "esriFieldTypeOID" in fields.values()
    breaks = body["drawingInfo"]["renderer"]["classBreakInfos"]
    assert breaks[3]["label"] == "100 - 500 million"
    assert breaks[3]["symbol"]["color"] == [240, 59, 32, 255]


def test_raster_layer_resource(client):
    body = get_json(client, OLINDA + "/0")
    assert body["type"] == "Raster Layer"
    assert body["extent"]["spatialReference"] == {"wkid": 31985, "latestWkid": 31985}


def test_web_mercator_is_reported_as_102100_with_latest_3857(client):
    body = get_json(client, WORLD + "/export", bbox="-1e6,-1e6,1e6,1e6", bboxSR=3857,
                    imageSR=3857, size="10,10", layers="show:0")
    assert body["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}


def test_pjson_is_pretty_printed(client):
    resp = client.get(WORLD, query_string={"f": "pjson"})
    assert resp.mimetype == "application/json"
    text = resp.get_data(as_text=True)
    assert "\n" in text and '\n  "currentVersion"' in text
    assert json.loads(text) == get_json(client, WORLD)


def test_pretty_true_pretty_prints_json_as_gdal_asks(client):
    text = client.get(WORLD, query_string={"f": "json", "pretty": "true"}).get_data(as_text=True)
    assert text.count("\n") > 20


def test_callback_wraps_json_in_jsonp(client):
    resp = client.get(WORLD, query_string={"f": "json", "callback": "dojo.io.script.jsonp_cb1"})
    assert resp.mimetype == "application/javascript"
    text = resp.get_data(as_text=True)
    assert text.startswith("dojo.io.script.jsonp_cb1(") and text.endswith(");")
    assert json.loads(text[len("dojo.io.script.jsonp_cb1("):-2])["mapName"] == "World"


def test_cors_header_on_json_and_on_images(client):
    resp = client.get(WORLD, query_string={"f": "json"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    img = client.get(WORLD + "/export", query_string={"bbox": "-10,-10,10,10", "size": "8,8",
                                                      "f": "image", "layers": "show:0"})
    assert img.mimetype == "image/png"
    assert img.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("url", [WORLD + "/", SERVICES + "/", "/arcgis/rest/info/",
                                 WORLD + "/layers/", WORLD + "/1/"])
def test_trailing_slash_works(client, url):
    body = get_json(client, url)
    assert "error" not in body


def test_upper_case_parameter_names_as_old_openlayers_sends(client):
    resp = client.get(WORLD + "/export", query_string={
        "BBOX": "-180,-90,180,90", "SIZE": "40,20", "F": "image", "FORMAT": "PNG32",
        "TRANSPARENT": "TRUE", "BBOXSR": "4326", "IMAGESR": "4326", "DPI": "90",
        "LAYERS": "show:1"})
    assert resp.mimetype == "image/png"
    img = decode(resp.data)
    assert img.shape == (20, 40, 4)
    assert img[13, 4, 3] == 0  # the South Pacific: transparent=TRUE was understood
    assert tuple(img[11, 14]) == (240, 59, 32, 255)  # Brazil: LAYERS=show:1 drew countries


def test_camel_case_spelling_wins_over_a_case_variant(client):
    body = get_json(client, WORLD + "/export", BBOX="0,0,1,1", bbox="-10,-10,10,10",
                    size="10,10", layers="show:0")
    assert body["extent"]["xmin"] == pytest.approx(-10)


def test_post_form_works_like_get(client):
    form = {"bbox": "-10,-10,10,10", "size": "30,20", "f": "json", "layers": "show:0"}
    posted = client.post(WORLD + "/export", data=form).get_json()
    got = client.get(WORLD + "/export", query_string=form).get_json()
    assert posted["extent"] == got["extent"]
    assert (posted["width"], posted["height"]) == (30, 20)
    assert client.post(WORLD, data={"f": "json"}).get_json()["mapName"] == "World"


def test_empty_values_mean_default_as_html_forms_send_them(client):
    body = get_json(client, WORLD + "/export", bbox="-10,-10,10,10", bboxSR="", layers="",
                    layerDefs="", size="", imageSR="", format="", transparent="", dpi="",
                    time="", layerTimeOptions="", dynamicLayers="", gdbVersion="",
                    mapScale="", rotation="", datumTransformations="")
    assert (body["width"], body["height"]) == (400, 400)
    assert body["extent"]["spatialReference"] == WGS84
    assert body["href"].endswith(".png")
    assert body["scale"] == pytest.approx(20 / 400 * 111194.87428468118 * 96 * 39.37)


def test_unknown_parameters_are_ignored(client):
    body = get_json(client, WORLD + "/export", bbox="-10,-10,10,10", size="10,10", _ts="123",
                    token="abc", timeOptions="{}", layers="show:0")
    assert body["width"] == 10


def test_html_pages_render(client):
    for url in (SERVICES, WORLD, WORLD + "/1", SERVICES + "/Samples"):
        resp = client.get(url)
        assert resp.mimetype == "text/html"
        assert b"<html" in resp.data.lower()
