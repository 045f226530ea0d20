"""JSON answers through orjson (issue 11): the same documents as the stdlib encoder wrote,
NaN/Infinity as null (Python's and numpy's), numpy scalars and arrays, pretty ``f=pjson``,
key order, non-string keys, JSONP, the ``/v1`` API's ``jsonify`` and GetFeatureInfo JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from flask import Flask

from mapserver.ogc.featureinfo import write as featureinfo_write
from mapserver.params.common import Params
from mapserver.rest.http import json_body, json_response

S = "/arcgis/rest/services/World/MapServer"
QUERY = S + "/1/query?where=1%3D1&outFields=*&returnGeometry=true&f="


def same_document(body: bytes, pretty: bool = False) -> bool:
    """``body`` is the document the stdlib encoder wrote: same keys in the same order, same
    values, same layout (indentation of every line). Numbers may be spelled differently
    (orjson writes 8.58306884765625e-05 as 0.0000858306884765625): the same float."""
    ordered = json.loads(body, object_pairs_hook=list)
    ref = stdlib(json.loads(body), pretty)
    if json.loads(ref, object_pairs_hook=list) != ordered:
        return False

    def layout(text: bytes) -> list[int]:
        return [len(line) - len(line.lstrip()) for line in text.splitlines()]

    return layout(body) == layout(ref)


def stdlib(obj: object, pretty: bool = False) -> bytes:
    """What the stdlib encoder writes for a document without NaN (the old encoder)."""
    if pretty:
        return json.dumps(obj, indent=2, ensure_ascii=False).encode()
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def test_query_answer_is_byte_for_byte_the_stdlib_document(client):
    """All World countries with geometry: same keys in the same order, same numbers (the only
    difference from the old encoder: non-ASCII names as UTF-8, not \\u escapes)."""
    body = client.get(QUERY + "json").data
    doc = json.loads(body)
    assert len(doc["features"]) > 150 and doc["features"][0]["geometry"]["rings"]
    assert same_document(body)
    assert "Côte d'Ivoire".encode() in body or any(
        ord(c) > 127 for f in doc["features"] for c in str(f["attributes"]))


def test_pjson_is_the_stdlib_indented_document(client):
    pretty = client.get(QUERY + "pjson").data
    compact = client.get(QUERY + "json").data
    assert json.loads(pretty) == json.loads(compact)
    assert same_document(pretty, pretty=True)
    assert pretty.startswith(b'{\n  "')


@pytest.mark.parametrize("url", [S + "?f=pjson", S + "/1?f=json", S + "/layers?f=json",
                                 S + "/legend?f=json", "/arcgis/rest/services?f=json",
                                 "/arcgis/rest/info?f=json"])
def test_metadata_documents_keep_key_order(client, url):
    body = client.get(url).data
    assert same_document(body, pretty="pjson" in url)


def test_nan_infinity_and_numpy_values_in_answers():
    """The encoder the views use: NaN and ±Infinity (Python floats, numpy scalars of every
    width, inside numpy arrays) are null; numpy integers/bools/arrays are plain JSON; key
    order is kept and non-string keys are stringified as the stdlib did."""
    doc = {"z": float("nan"), "a": float("inf"), "m": -math.inf,
           "f64": np.float64("nan"), "f32": np.float32("inf"), "f16": np.float16(1.5),
           "i64": np.int64(7), "u8": np.uint8(255), "b": np.bool_(True),
           "arr": np.array([1.5, np.nan, np.inf]), "iarr": np.arange(3, dtype=np.int32),
           "col": np.arange(6.0).reshape(2, 3)[:, 1],  # not contiguous
           "obj": np.array(["a", None], dtype=object), 3: "int key", 2.5: "float key",
           "nested": [{"x": (1, np.float64(2.25))}]}
    assert json_body(doc) == (
        b'{"z":null,"a":null,"m":null,"f64":null,"f32":null,"f16":1.5,"i64":7,"u8":255,'
        b'"b":true,"arr":[1.5,null,null],"iarr":[0,1,2],"col":[1.0,4.0],"obj":["a",null],'
        b'"3":"int key","2.5":"float key","nested":[{"x":[1,2.25]}]}')


def test_integers_past_64_bits_fall_back_to_the_stdlib_encoder():
    assert json_body({"big": 2**70, "n": float("nan"), "a": np.array([np.nan])}) == \
        b'{"big":1180591620717411303424,"n":null,"a":[null]}'
    assert json.loads(json_body({"big": -(2**80)}, pretty=True)) == {"big": -(2**80)}


def test_unserialisable_values_still_fail_loudly():
    with pytest.raises(TypeError):
        json_body({"x": object()})


def test_json_response_pjson_and_jsonp():
    app = Flask(__name__)
    with app.test_request_context("/"):
        doc = {"b": [1, float("nan")], "a": {"é": np.int16(3)}}
        plain = json_response(doc, Params([]))
        assert plain.mimetype == "application/json"
        assert plain.data == '{"b":[1,null],"a":{"é":3}}'.encode()
        pretty = json_response(doc, Params([]), "pjson")
        assert pretty.data == stdlib({"b": [1, None], "a": {"é": 3}}, pretty=True)
        jsonp = json_response(doc, Params([("callback", "dojo.io.script.jsonp_dojoIoScript1")]))
        assert jsonp.mimetype == "application/javascript"
        assert jsonp.headers["Content-Type"] == "application/javascript; charset=utf-8"
        assert jsonp.data == 'dojo.io.script.jsonp_dojoIoScript1({"b":[1,null],"a":{"é":3}});' \
            .encode()


def test_jsonp_through_the_app_matches_plain_json(client):
    plain = client.get(S + "/1?f=json").data
    wrapped = client.get(S + "/1?f=json&callback=cb_1")
    assert wrapped.mimetype == "application/javascript"
    assert wrapped.data == b"cb_1(" + plain + b");"
    bad = client.get(S + "/1?f=json&callback=alert(1)")
    assert bad.mimetype == "application/json"
    assert json.loads(bad.data)["error"]["code"] == 400


def test_error_bodies_through_orjson(client):
    resp = client.get(S + "/1/query?where=nosuchfield%3D1&f=pjson")
    doc = json.loads(resp.data)
    assert doc["error"]["code"] == 400 and resp.data == stdlib(doc, pretty=True)
    assert same_document(resp.data, pretty=True)


def test_v1_jsonify_keeps_flask_output_sorted_keys_and_newline(client):
    resp = client.get("/v1/projects/p/algorithms")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    doc = json.loads(resp.data)
    assert resp.data == json.dumps(doc, separators=(",", ":"), sort_keys=True,
                                   ensure_ascii=False).encode() + b"\n"
    assert len(doc["algorithms"]) > 3


def test_getfeatureinfo_json_writes_nan_as_null():
    results = [{"layerId": 1, "layerName": "Countries", "geometry": None,
                "attributes": {"name": "X", "pop": float("nan"), "gdp": np.float64(1.5),
                               "rank": np.int64(4)}}]
    body, ctype = featureinfo_write(results, "application/json", "EPSG:4326")
    assert ctype == "application/json"
    doc = json.loads(body)
    assert doc["features"][0]["properties"] == {"name": "X", "pop": None, "gdp": 1.5,
                                                "rank": "4"}
