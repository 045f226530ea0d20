"""What clients see when a request is wrong: the exact ArcGIS error body, HTTP 200,
``application/json`` even with ``f=image`` (QGIS detects errors by content type), an HTML page
with ``f=html`` -- and never an HTTP 500 or a stack trace, whatever is sent."""

from __future__ import annotations

import json

import pytest

from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer"
EXPORT = WORLD + "/export"
OK = {"bbox": "-10,-10,10,10", "size": "10,10"}
BAD = "Invalid or missing input parameters."


def error_of(resp) -> dict:
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    body = json.loads(resp.data)
    assert list(body) == ["error"]
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


CASES = [
    ("bbox_not_numbers", {"bbox": "a,b,c,d"},
     {"code": 400, "message": BAD, "details": ["'bbox' must be a number, got 'a'"]}),
    ("bbox_three_numbers", {"bbox": "1,2,3"},
     {"code": 400, "message": BAD, "details": ["'bbox' needs 4 comma-separated numbers"]}),
    ("bbox_zero_width", {"bbox": "5,0,5,10"},
     {"code": 400, "message": "Invalid bbox",
      "details": ["'bbox' must have a non-zero width and height"]}),
    ("bbox_missing", {"bbox": ""},
     {"code": 400, "message": BAD, "details": ["'bbox' parameter is required"]}),
    ("size_above_max_width", {"size": "4097,10"},
     {"code": 400, "message": "Image width is not in range. Valid range is from 1 to 4096.",
      "details": ["Requested width 4097 exceeds the service limit"]}),
    ("size_above_max_height", {"size": "10,5000"},
     {"code": 400, "message": "Image height is not in range. Valid range is from 1 to 4096.",
      "details": ["Requested height 5000 exceeds the service limit"]}),
    ("size_zero", {"size": "0,10"},
     {"code": 400, "message": "Image width is not in range. Valid range is from 1 to 4096.",
      "details": ["Requested width 0 is too small"]}),
    ("size_not_numbers", {"size": "abc"},
     {"code": 400, "message": BAD, "details": ["'size' needs 2 comma-separated numbers"]}),
    ("bboxsr_unknown_wkid", {"bboxSR": "99999"},
     {"code": 400, "message": "Invalid spatial reference",
      "details": ["Unknown spatial reference wkid 99999"]}),
    ("imagesr_bad_json", {"imageSR": "{bad"},
     {"code": 400, "message": "Invalid spatial reference",
      "details": ["Spatial reference is not valid JSON: {bad"]}),
    ("layers_unknown_id", {"layers": "show:7"},
     {"code": 400, "message": BAD,
      "details": ["The requested layer (layerId: 7) was not found."]}),
    ("layers_bad_verb", {"layers": "foo:1"},
     {"code": 400, "message": BAD,
      "details": ["'layers' must be show|hide|include|exclude:<id>,<id>"]}),
    ("format_unknown", {"format": "xyz"},
     {"code": 400, "message": "Output format not supported.",
      "details": ["Format 'xyz' is not supported. Supported formats: png, png8, png24, png32, "
                  "jpg, gif, bmp, tiff, pdf, svg, svgz, ps"]}),
]


@pytest.mark.parametrize("f", ["json", "image"])
@pytest.mark.parametrize("params, expected", [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_export_parameter_gives_the_arcgis_error_body(client, params, expected, f):
    resp = client.get(EXPORT, query_string={**OK, **params, "f": f})
    assert error_of(resp) == expected


def test_unknown_service_is_an_arcgis_error_even_for_images(client):
    resp = client.get("/arcgis/rest/services/Nope/MapServer/export",
                      query_string={**OK, "f": "image"})
    assert error_of(resp) == {"code": 404, "message": "Service not found",
                              "details": ["Service Nope/MapServer not found"]}


def test_unknown_layer_resource_is_an_arcgis_error(client):
    resp = client.get(WORLD + "/7", query_string={"f": "json"})
    assert error_of(resp) == {"code": 400, "message": "Invalid layer",
                              "details": ["The requested layer (layerId: 7) was not found."]}


def test_unknown_operation_is_invalid_url(client):
    resp = client.get(WORLD + "/bogus", query_string={"f": "json"})
    assert error_of(resp) == {"code": 400, "message": "Invalid URL", "details": ["Invalid URL"]}


def test_unknown_folder_is_an_arcgis_error(client):
    resp = client.get("/arcgis/rest/services/NoFolder", query_string={"f": "json"})
    assert error_of(resp)["code"] == 404


def test_error_with_pjson_is_pretty_and_with_callback_is_jsonp(client):
    resp = client.get(EXPORT, query_string={"bbox": "x", "f": "pjson"})
    assert "\n" in resp.get_data(as_text=True)
    assert error_of(resp)["code"] == 400
    resp = client.get(EXPORT, query_string={"bbox": "x", "f": "json", "callback": "cb"})
    assert resp.mimetype == "application/javascript"
    text = resp.get_data(as_text=True)
    assert text.startswith("cb(") and json.loads(text[3:-2])["error"]["code"] == 400


def test_error_has_cors_header(client):
    resp = client.get(EXPORT, query_string={"bbox": "x", "f": "image"})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


def test_html_error_is_a_page_with_message_and_code(client):
    resp = client.get(EXPORT, query_string={**OK, "size": "5000,5000", "f": "html"})
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    text = resp.get_data(as_text=True)
    assert "Error: Image width is not in range. Valid range is from 1 to 4096." in text
    assert "Code: 400" in text


def test_unknown_service_page_without_f_is_html(client):
    resp = client.get("/arcgis/rest/services/Nope/MapServer")
    assert resp.mimetype == "text/html"
    assert "Service not found" in resp.get_data(as_text=True)


LONG = "9" * 100_000
HOSTILE = [
    {"bbox": "nan,nan,nan,nan"}, {"bbox": "NaN,0,1,1"}, {"bbox": "inf,-inf,1,1"},
    {"bbox": "-Infinity,0,Infinity,1"}, {"bbox": "1e308,1e308,-1e308,-1e308"},
    {"bbox": "-1e308,-1e308,1e308,1e308"}, {"bbox": "1e400,0,1,1"},
    {"bbox": "-1e300,-1e300,1e300,1e300", "bboxSR": "3857"},
    {"bbox": "-1e30,-1e30,1e30,1e30", "imageSR": "3857"},
    {"bbox": "0,0,1e-300,1e-300"}, {"bbox": "179.9,89.9,180,90", "imageSR": "3857"},
    {"bbox": "-180,-90,180,90", "imageSR": "3857"}, {"bbox": "١,٢,٣,٤"},
    {"bbox": "😀,0,1,1"}, {"bbox": "[1,2,3,4]"}, {"bbox": "[[1],[2]]"}, {"bbox": LONG},
    {"size": "-10,-10"}, {"size": "1e12,1"}, {"size": "nan,10"}, {"size": "10.4,10.6"},
    {"size": "300,300", "bbox": "0,0,1e-12,1e-12"}, {"bboxSR": '{"wkid": "abc"}'},
    {"bboxSR": '{"wkid": [1,2]}'}, {"bboxSR": "[]"}, {"bboxSR": "{}"}, {"bboxSR": "null"},
    {"bboxSR": '{"wkt": "PROJCS[garbage"}'}, {"imageSR": '{"wkid": 1e400}'},
    {"imageSR": "-1"}, {"imageSR": "EPSG:abc"}, {"imageSR": "ESRI:999999999"},
    {"layers": "show:abc"}, {"layers": "show:1e9"}, {"layers": "hide:" + ",".join(["1"] * 500)},
    {"layers": "show:99999999999999999999"}, {"dpi": "0"}, {"dpi": "1e9"}, {"dpi": "-96"},
    {"dpi": "nan"}, {"transparent": "maybe"}, {"format": "../../etc/passwd"},
    {"format": "png\x00"}, {"time": "abc"}, {"time": "1e30"}, {"time": "5,1"},
    {"layerDefs": "{"}, {"layerDefs": '{"0": 5}'}, {"layerDefs": "0:name = 'x"},
    {"mapScale": "-1"}, {"mapScale": "1e-300"}, {"mapScale": "1e300"},
    {"rotation": "inf"}, {"rotation": "1e300"}, {"callback": "alert(1)//"},
    {"f": "<script>"}, {"bbox": "-10,-10,10,10" + "," * 1000},
]


@pytest.mark.parametrize("f", ["json", "image"])
@pytest.mark.parametrize("params", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_never_gives_a_500_or_a_non_arcgis_body(client, params, f):
    resp = client.get(EXPORT, query_string={**OK, "f": f, **params})
    assert resp.status_code == 200
    if resp.mimetype == "application/json":
        body = json.loads(resp.data)
        if "error" in body:
            err = body["error"]
            assert set(err) == {"code", "message", "details"}
            assert err["code"] != 500, err
            assert isinstance(err["message"], str) and all(isinstance(d, str)
                                                             for d in err["details"])
            assert "Traceback" not in resp.get_data(as_text=True)
        else:
            assert set(body) >= {"href", "width", "height", "extent", "scale"}
    elif resp.mimetype == "text/html":
        assert "Traceback" not in resp.get_data(as_text=True)
    else:
        assert resp.mimetype == "image/png", resp.mimetype
        assert decode(resp.data).ndim == 3


def test_hostile_post_body_is_handled(client):
    resp = client.post(EXPORT + "?f=json", data=b"\xff\xfe%%%bbox=\x00&size=%ff,%00",
                       content_type="application/x-www-form-urlencoded")
    assert error_of(resp)["code"] == 400


def test_errors_without_f_use_the_html_default_like_arcgis(client):
    """ArcGIS answers every resource in HTML unless told otherwise, errors included."""
    resp = client.get("/arcgis/rest/services/World/MapServer/7")
    assert resp.status_code == 200
    assert resp.mimetype == "text/html"
    assert "The requested layer (layerId: 7) was not found." in resp.text
    resp = client.get("/arcgis/rest/services/World/MapServer/7?f=json")
    assert resp.mimetype == "application/json"
    details = resp.get_json()["error"]["details"]
    assert details == ["The requested layer (layerId: 7) was not found."]
