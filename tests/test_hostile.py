"""Hostile and careless requests (issue 9): no 5xx, no traceback or server path in any answer,
the must-error cases refused, valid controls accepted, and ordinary requests answered byte for
byte the same before and after each hostile one (no state carried from one request to the
next). Families of hand-written cases (tests/hostile_cases.py) plus Hypothesis over every
endpoint with a bounded example count."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jobs_helpers import make_app

from mapserver.settings import PROJECT_ROOT

sys.path.insert(0, str(Path(__file__).parent))
from hostile_cases import ARCGIS_CASES, EXPORT, GAP_EXPORT, S, ee_cases  # noqa: E402

ORDINARY = [
    ("GET", GAP_EXPORT, {"bbox": "-180,-90,180,90", "size": "64,64", "f": "image",
                         "format": "png"}),
    ("GET", EXPORT, {"bbox": "-20,20,40,60", "size": "256,200", "f": "image",
                     "format": "png32", "transparent": "true", "layers": "show:0,1"}),
    ("GET", f"{S}/World/MapServer/1/query", {"f": "json", "where": "pop_est > 5e7",
                                             "outFields": "name,pop_est",
                                             "returnGeometry": "true", "maxAllowableOffset": 1}),
    ("GET", f"{S}/World/MapServer/identify", {
        "f": "json", "geometry": "2.35,48.85", "geometryType": "esriGeometryPoint",
        "tolerance": "3", "mapExtent": "-10,40,20,60", "imageDisplay": "600,400,96",
        "layers": "all", "returnGeometry": "false"}),
    ("GET", f"{S}/World/MapServer/legend", {"f": "json"}),
    ("GET", f"{S}/Samples/Olinda/MapServer/export", {
        "bbox": "286000,9108000,298000,9121000", "bboxSR": "31985", "size": "128,128",
        "f": "image", "format": "png"}),
]
LEAKS = re.compile(r"Traceback|File \"|site-packages|/usr/lib/|/root/|"
                   + re.escape(str(PROJECT_ROOT)) + "|" + re.escape(str(Path.home())))


def send(client, method: str, path: str, params):
    if method == "GET":
        return client.get(path, query_string=params)
    return client.post(path, data=params)


def assert_safe(resp) -> dict | None:
    """No 5xx anywhere, no traceback or path; the parsed JSON error, if the answer is one."""
    assert resp.status_code < 500, resp.status_code
    text = resp.get_data().decode("utf-8", "replace")
    if resp.mimetype.startswith("image/") or resp.mimetype in ("application/pdf",
                                                              "application/vnd.google-earth.kmz"):
        return None
    assert not LEAKS.search(text), text[:500]
    if resp.mimetype == "application/json":
        try:
            body = json.loads(text)
        except ValueError:
            return None
        err = body.get("error") if isinstance(body, dict) else None
        if err is not None:
            assert isinstance(err.get("code"), int) and err["code"] < 500, err
            return err
    return None


def ordinary_answers(client) -> list[bytes]:
    out = []
    for method, path, params in ORDINARY:
        resp = send(client, method, path, params)
        assert resp.status_code == 200 and assert_safe(resp) is None, resp.get_data()[:300]
        out.append(resp.get_data())
    return out


@pytest.fixture(scope="module")
def before(app) -> list[bytes]:
    return ordinary_answers(app.test_client())


def assert_ordinary_unchanged(client, before: list[bytes]) -> None:
    after = ordinary_answers(client)
    for (_method, path, params), a, b in zip(ORDINARY, before, after, strict=True):
        assert a == b, f"{path} {params} changed after a hostile request"


@pytest.mark.parametrize("case", ARCGIS_CASES, ids=[c[0] for c in ARCGIS_CASES])
def test_hostile_case(client, before, case):
    name, method, path, params, expect = case
    resp = send(client, method, path, params)
    err = assert_safe(resp)
    if expect == "refuse":
        assert err is not None and 400 <= err["code"] < 500, resp.get_data()[:300]
        assert resp.mimetype == "application/json"  # never JSONP with a rejected callback
        detail = " ".join([err.get("message", ""), *err.get("details", [])])
        assert len(detail) > 10
    elif expect == "accept":
        assert err is None and resp.status_code == 200, resp.get_data()[:300]
    # the very next ordinary export on this worker is the same bytes as before
    first = ORDINARY[0]
    assert send(client, *first).get_data() == before[0]


def test_issue_cases_name_the_parameter(client):
    by_name = {c[0]: c for c in ARCGIS_CASES}
    expect = {"poison outline 1e308": "dynamicLayers", "mapScale 1e-308": "mapScale",
              "layerTimeOptions NaN": "layerTimeOptions",
              "datumTransformations 600 KB": "datumTransformations",
              "imageSR lat_0 95": "lat_0", "imageSR made-up datum": "datum",
              "identify x NaN": "geometry", "query x NaN": "geometry",
              "outFields SQL": "outFields", "callback non-ASCII": "callback",
              "deep JSON form dynamicLayers": "dynamicLayers"}
    for name, needle in expect.items():
        _, method, path, params, _ = by_name[name]
        err = assert_safe(send(client, method, path, params))
        assert err is not None and needle in json.dumps(err), (name, err)


def test_poison_request_is_refused_fast_and_leaves_the_worker_as_new(client, before):
    import time

    _, method, path, params, _ = ARCGIS_CASES[0]
    t0 = time.monotonic()
    err = assert_safe(send(client, method, path, params))
    assert err is not None and time.monotonic() - t0 < 2.0
    assert_ordinary_unchanged(client, before)


def test_failed_drawing_pass_does_not_poison_the_kept_figure(client, before, monkeypatch):
    """Whatever breaks inside matplotlib, the next request draws on a fresh figure."""
    from mapserver.render import compose

    real = compose.draw_features
    calls = {"n": 0}

    def explode(ax, *a, **kw):
        calls["n"] += 1
        real(ax, *a, **kw)
        ax.plot([0, 1e308], [0, 1e308], linewidth=1e300)  # junk left on the kept axes
        raise OverflowError("Exceeded cell block limit")

    monkeypatch.setattr(compose, "draw_features", explode)
    resp = send(client, *ORDINARY[0])
    # an injected internal failure: the internal-error body, without a traceback
    assert resp.get_json()["error"]["code"] == 500
    assert not LEAKS.search(resp.get_data(as_text=True))
    monkeypatch.setattr(compose, "draw_features", real)
    assert calls["n"] >= 1
    assert_ordinary_unchanged(client, before)


# --- /v1 batch API --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def jobs_client(tmp_path_factory):
    app, svc = make_app(tmp_path_factory.mktemp("hostile-jobs"), dispatch=False)
    yield app.test_client()
    svc.close()


EE = ee_cases()


@pytest.mark.parametrize("case", EE, ids=[c[0] for c in EE])
def test_hostile_ee_body(jobs_client, case):
    name, verb, body, expect = case
    data = body if isinstance(body, str) else json.dumps(body)
    resp = jobs_client.post(f"/v1/projects/p/{verb}", data=data,
                            content_type="application/json")
    assert resp.status_code < 500, resp.get_data()[:300]
    text = resp.get_data(as_text=True)
    assert not LEAKS.search(text), text[:300]
    if expect == "refuse":
        err = resp.get_json()["error"]
        assert resp.status_code == 400 and err["status"] == "INVALID_ARGUMENT", text[:300]


# --- Hypothesis over every endpoint -----------------------------------------------------------
NUMBERS = st.sampled_from(["nan", "inf", "-inf", "1e308", "-1e308", "1e-308", "0", "-1",
                           "1e400", "NaN", "", " ", "0x10", "1_000", "٣"])
JSONISH = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-2 ** 70, max_value=2 ** 70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["x", "y", "wkid", "wkt", "rings", "paths", "points", "id", "type",
                         "source", "drawingInfo", "renderer", "symbol", "size", "width",
                         "timeOffset", "layerId", "where", "geometry", "spatialReference"])
        | st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
VALUE = st.one_of(st.text(max_size=60), NUMBERS,
                  JSONISH.map(lambda v: json.dumps(v, allow_nan=True)),
                  st.lists(NUMBERS | st.floats().map(repr), min_size=1, max_size=5)
                  .map(",".join))
COMMON_KEYS = ["f", "callback", "dynamicLayers", "layerDefs", "time", "layerTimeOptions",
               "datumTransformations", "gdbVersion", "historicMoment", "mapRangeValues"]
ENDPOINTS = {
    "export": (EXPORT, ["bbox", "bboxSR", "imageSR", "size", "dpi", "format", "transparent",
                        "layers", "mapScale", "rotation", "clipping", "spatialFilter",
                        "selectionDefinitions"]),
    "identify": (f"{S}/World/MapServer/identify",
                 ["geometry", "geometryType", "sr", "tolerance", "mapExtent", "imageDisplay",
                  "layers", "returnGeometry", "maxAllowableOffset"]),
    "find": (f"{S}/World/MapServer/find", ["searchText", "searchFields", "contains", "layers",
                                            "sr", "returnGeometry"]),
    "query": (f"{S}/World/MapServer/1/query",
              ["where", "geometry", "geometryType", "inSR", "outSR", "spatialRel", "outFields",
               "returnGeometry", "orderByFields", "groupByFieldsForStatistics", "outStatistics",
               "resultOffset", "resultRecordCount", "distance", "units", "objectIds",
               "returnCountOnly", "returnIdsOnly", "time"]),
    "legend": (f"{S}/World/MapServer/legend", ["dpi", "size"]),
    "service": (f"{S}/World/MapServer", []),
    "layer": (f"{S}/World/MapServer/1", []),
}


def params_for(endpoint: str):
    keys = ENDPOINTS[endpoint][1] + COMMON_KEYS
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=10), VALUE, max_size=6)


HYPO = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@pytest.mark.parametrize("endpoint", sorted(ENDPOINTS))
def test_hypothesis_endpoint(app, before, endpoint):
    client = app.test_client()
    path = ENDPOINTS[endpoint][0]

    @HYPO
    @given(params=params_for(endpoint), method=st.sampled_from(["GET", "POST"]))
    def run(params, method):
        if endpoint == "export":
            params.setdefault("bbox", "-180,-90,180,90")
            params.setdefault("size", "64,64")
        if "f" not in params:
            params["f"] = "json"
        assert_safe(send(client, method, path, params))

    run()
    assert_ordinary_unchanged(client, before)


@HYPO
@given(level=st.integers(-5, 40), row=st.integers(-5, 2 ** 40), col=st.integers(-5, 2 ** 40))
def test_hypothesis_tiles(app, level, row, col):
    assert_safe(app.test_client().get(f"{S}/World/MapServer/tile/{level}/{row}/{col}"))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=JSONISH, verb=st.sampled_from(["image:export", "map:export", "video:export"]))
def test_hypothesis_ee_bodies(jobs_client, body, verb):
    resp = jobs_client.post(f"/v1/projects/p/{verb}",
                            data=json.dumps(body, allow_nan=True),
                            content_type="application/json")
    assert resp.status_code < 500, resp.get_data()[:300]
    assert not LEAKS.search(resp.get_data(as_text=True))


def test_ordinary_requests_identical_after_everything(client, before):
    assert_ordinary_unchanged(client, before)


def test_worker_memory_stays_bounded():
    """The whole hostile suite ran in this process: it stays under the 1 GB per worker."""
    rss = psutil.Process(os.getpid()).memory_info().rss
    assert rss < 1024 ** 3, f"RSS {rss / 1e6:.0f} MB"


@pytest.mark.parametrize("value", ["null", "1.5", "true", '"text"'])
def test_bare_json_scalars_are_refused_not_crashed(client, value):
    """A JSON parameter that is a bare scalar (Hypothesis found layerTimeOptions=null
    answering 500) is the client's error."""
    resp = client.get("/arcgis/rest/services/World/MapServer/export", query_string={
        "bbox": "-10,-10,10,10", "size": "32,32", "f": "json", "layerTimeOptions": value})
    body = resp.get_json()
    assert body["error"]["code"] == 400, body


def test_huge_legend_symbol_is_refused_and_the_next_legend_is_unchanged(client):
    """The export's symbol-size limit holds for legend swatches too: a dynamicLayers marker
    of 1e6 pt must not ask for a figure a million pixels wide."""
    legend = "/arcgis/rest/services/World/MapServer/legend"
    before = client.get(legend, query_string={"f": "json"}).data
    huge = json.dumps([{"id": 0, "source": {"type": "mapLayer", "mapLayerId": 0},
                        "drawingInfo": {"renderer": {"type": "simple", "symbol": {
                            "type": "esriSMS", "style": "esriSMSCircle",
                            "color": [0, 0, 0, 255], "size": 1e6}}}}])
    body = client.get(legend, query_string={"f": "json", "dynamicLayers": huge}).get_json()
    assert body["error"]["code"] == 400
    assert "MAPSERVER_MAX_SYMBOL_PIXELS" in body["error"]["details"][0]
    assert client.get(legend, query_string={"f": "json"}).data == before


@pytest.mark.parametrize(("path", "name"), [
    ("/arcgis/rest/services/Samples/Demo/MapServer/1/query", "rangeValues"),
    ("/arcgis/rest/services/Samples/Demo/MapServer/1/query", "parameterValues"),
    ("/arcgis/rest/services/World/MapServer/1/query", "quantizationParameters")])
@pytest.mark.parametrize("value", ["[" * 5000 + "]" * 5000, '{"tolerance": NaN}'])
def test_query_json_parameters_keep_the_request_limits(client, path, name, value):
    body = client.get(path, query_string={"where": "1=1", "f": "json", name: value}).get_json()
    assert body["error"]["code"] == 400, body
    assert f"'{name}' parameter is invalid" in body["error"]["details"]
