"""Every request limit (mapserver/limits.py, README "Settings"): the error body names the
parameter and the setting, and nothing was computed (no drawing, no selection, no operation
queued). An app with small limits makes each one easy to reach."""

from __future__ import annotations

import json

import pytest

from mapserver import limits
from mapserver.app import create_app
from mapserver.jobs.config import JobConfig
from mapserver.limits import Limits
from mapserver.rest.jobs import install
from mapserver.settings import PROJECT_ROOT, Settings

S = "/arcgis/rest/services"
EXPORT = f"{S}/World/MapServer/export"
SMALL = Limits(max_body_bytes=64_000, max_json_bytes=8_000, max_json_depth=8,
               max_json_items=2_000, max_vertices=50, max_symbol_pixels=64, min_dpi=50,
               max_dpi=600, min_map_scale=1000, max_map_scale=1e9, max_time_offset_years=100,
               max_wkt_length=2_000, max_dynamic_layers=3, request_seconds=0,
               jobs_max_pixels=250_000, jobs_max_tiles=50, jobs_max_frames=3,
               jobs_max_frame_pixels=10_000, jobs_max_file_bytes=100_000)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("limits")
    app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=tmp / "out",
                              tile_cache_dir=tmp / "tiles", limits=SMALL))
    svc = install(app, JobConfig(db_path=tmp / "jobs.sqlite", bucket_root=tmp / "buckets",
                                 dispatch=False))
    yield app, svc
    svc.close()


@pytest.fixture()
def work(monkeypatch):
    """Counts the expensive stages: planning, drawing, feature selection."""
    from mapserver.features import identify, query
    from mapserver.maps import export as maps_export
    from mapserver.render import compose

    calls = {"draw": 0, "select": 0, "plan": 0}

    def counting(name, fn):
        def wrapper(*a, **kw):
            calls[name] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(compose, "layer_rgba", counting("draw", compose.layer_rgba))
    monkeypatch.setattr(maps_export, "plan_map", counting("plan", maps_export.plan_map))
    for mod in (query, identify):
        if hasattr(mod, "select_features"):
            monkeypatch.setattr(mod, "select_features",
                                counting("select", mod.select_features))
    return calls


def export(client, method="GET", **params):
    p = {"bbox": "-180,-90,180,90", "size": "64,64", "f": "json", **params}
    resp = client.get(EXPORT, query_string=p) if method == "GET" else client.post(EXPORT, data=p)
    return resp


def error(resp) -> str:
    assert resp.status_code in (200, 413), resp.status_code
    body = resp.get_json()
    assert "error" in body, resp.get_data()[:300]
    err = body["error"]
    assert 400 <= err["code"] < 500
    return " ".join([err["message"], *err.get("details", [])])


def dyn(n: int = 1, **symbol) -> str:
    sym = {"type": "esriSMS", "style": "esriSMSCircle", "size": 8, "color": [0, 0, 0, 255],
           **symbol}
    return json.dumps([{"id": i, "source": {"type": "mapLayer", "mapLayerId": 0},
                        "drawingInfo": {"renderer": {"type": "simple", "symbol": sym}}}
                       for i in range(n)])


@pytest.mark.parametrize("params, needle", [
    ({"dpi": "49"}, "'dpi' must be between 50 and 600"),
    ({"dpi": "601"}, "'dpi' must be between 50 and 600"),
    ({"mapScale": "999"}, "'mapScale' must be between 1000 and 1e+09"),
    ({"mapScale": "2e9"}, "'mapScale' must be between 1000 and 1e+09"),
    ({"dynamicLayers": dyn(4)}, "MAPSERVER_MAX_DYNAMIC_LAYERS"),
    ({"dynamicLayers": dyn(1, size=49)}, "MAPSERVER_MAX_SYMBOL_PIXELS"),  # 65.3 px at 96 dpi
    ({"dynamicLayers": dyn(1, size=20), "dpi": "300"}, "'dpi': symbol size 20 pt"),
    ({"dynamicLayers": dyn(1, xoffset=100)}, "symbol xoffset"),
    ({"layerDefs": json.dumps({"1": "x" * 9000})}, "MAPSERVER_MAX_JSON_BYTES"),
    ({"dynamicLayers": "[" * 9 + "]" * 9}, "MAPSERVER_MAX_JSON_DEPTH"),
    ({"dynamicLayers": "[" * 8 + "]" * 8}, "must be a JSON array of layer objects"),  # depth 8
    ({"selectionDefinitions": json.dumps([{"layerId": 1, "objectIds": [1] * 2001}])},
     "MAPSERVER_MAX_JSON_ITEMS"),
    ({"layerTimeOptions": '{"0":{"timeOffset":101,"timeOffsetUnits":"esriTimeUnitsYears"}}'},
     "MAPSERVER_MAX_TIME_OFFSET_YEARS"),
    ({"layerTimeOptions": '{"0":{"timeOffset":2,"timeOffsetUnits":"esriTimeUnitsCenturies"}}'},
     "MAPSERVER_MAX_TIME_OFFSET_YEARS"),
    ({"layerTimeOptions":
      '{"0":{"timeOffset":4e12,"timeOffsetUnits":"esriTimeUnitsMilliseconds"}}'},
     "MAPSERVER_MAX_TIME_OFFSET_YEARS"),
    ({"imageSR": json.dumps({"wkt": 'PROJCS["' + "x" * 2100 + '"]'})},
     "MAPSERVER_MAX_WKT_LENGTH"),
    ({"datumTransformations": json.dumps([{"wkt": "GEOGTRAN[" + "x" * 2100 + "]"}])},
     "MAPSERVER_MAX_WKT_LENGTH"),
    ({"clipping": json.dumps({"geometry": {"rings": [[[i % 9, i // 9] for i in range(60)]]}})},
     "MAPSERVER_MAX_VERTICES"),
])
def test_export_limit_refused_before_any_work(small, work, params, needle):
    client = small[0].test_client()
    assert needle in error(export(client, **params))
    assert work == {"draw": 0, "select": 0, "plan": 0}


def test_limits_let_ordinary_requests_through(small, work):
    client = small[0].test_client()
    body = export(client, dpi="96", mapScale="5e7", dynamicLayers=dyn(3, size=12),
                  layerTimeOptions='{"0":{"timeOffset":5,"timeOffsetUnits":"esriTimeUnitsYears"}}'
                  ).get_json()
    assert "href" in body, body
    assert work["draw"] >= 1


@pytest.mark.parametrize("path, params, needle", [
    (f"{S}/World/MapServer/1/query",
     {"geometry": json.dumps({"points": [[i, 0] for i in range(51)]}),
      "geometryType": "esriGeometryMultipoint"}, "MAPSERVER_MAX_VERTICES"),
    (f"{S}/World/MapServer/1/query",
     {"geometry": json.dumps({"rings": [[[0, 0], [1, 0], [1, 1]]] * 13})},
     "MAPSERVER_MAX_VERTICES"),
    (f"{S}/World/MapServer/identify",
     {"geometry": json.dumps({"paths": [[[i, 0] for i in range(60)]]}),
      "geometryType": "esriGeometryPolyline", "tolerance": "1", "mapExtent": "-180,-90,180,90",
      "imageDisplay": "400,400,96"}, "MAPSERVER_MAX_VERTICES"),
    (f"{S}/World/MapServer/1/query", {"outStatistics": "[" * 9 + "]" * 9},
     "MAPSERVER_MAX_JSON_DEPTH"),
    (f"{S}/World/MapServer/legend", {"dpi": "700"}, "'dpi' must be between 50 and 600"),
])
def test_feature_limits_refused_before_selection(small, work, path, params, needle):
    client = small[0].test_client()
    assert needle in error(client.get(path, query_string={"f": "json", **params}))
    assert work == {"draw": 0, "select": 0, "plan": 0}


def test_body_size_limit(small):
    client = small[0].test_client()
    resp = client.post(EXPORT, data={"bbox": "-180,-90,180,90", "f": "json",
                                     "layerDefs": "x" * 70_000})
    assert resp.status_code == 413 or "error" in resp.get_json()
    assert resp.get_json()["error"]["code"] == 413


def test_json_body_depth_and_size_on_v1(small):
    client = small[0].test_client()
    for body, needle in [("[" * 9 + "]" * 9, "MAPSERVER_MAX_JSON_DEPTH"),
                         ('{"a":' * 3000 + "1" + "}" * 3000, "MAPSERVER_MAX_JSON_DEPTH"),
                         ('{"expression": NaN}', "not finite")]:
        resp = client.post("/v1/projects/p/image:export", data=body,
                           content_type="application/json")
        err = resp.get_json()["error"]
        assert resp.status_code == 400 and err["status"] == "INVALID_ARGUMENT"
        assert needle in err["message"] and "request body" in err["message"]


def _image_body(w: int, h: int, **extra) -> dict:
    return {"expression": {"result": "0", "values": {"0": {"functionInvocationValue": {
        "functionName": "Image.load", "arguments": {"id": {"constantValue": "Samples/Olinda"}}}}}},
        "grid": {"crsCode": "EPSG:31985", "affineTransform": {
            "scaleX": 10, "shearX": 0, "translateX": 288000, "shearY": 0, "scaleY": -10,
            "translateY": 9121000}, "dimensions": {"width": w, "height": h}},
        "maxPixels": "1e12",
        "fileExportOptions": {"fileFormat": "GEO_TIFF", "cloudStorageDestination": {
            "bucket": "ceil", "filenamePrefix": "x"}, **extra}}


@pytest.mark.parametrize("verb, body, needle", [
    ("image:export", _image_body(600, 500), "MAPSERVER_JOBS_MAX_PIXELS"),
    ("image:export", _image_body(300, 200), "MAPSERVER_JOBS_MAX_FILE_BYTES"),  # 240 kB RGBA
    ("map:export", {"expression": {"result": "0", "values": {"0": {"functionInvocationValue": {
        "functionName": "Image.load", "arguments": {"id": {"constantValue": "World"}}}}}},
        "tileOptions": {"startZoom": 0, "endZoom": 4},
        "tileExportOptions": {"cloudStorageDestination": {"bucket": "ceil",
                                                          "filenamePrefix": "t"}}},
     "MAPSERVER_JOBS_MAX_TILES"),
])
def test_batch_ceilings_whatever_max_pixels_says(small, verb, body, needle):
    app, svc = small
    client = app.test_client()
    resp = client.post(f"/v1/projects/p/{verb}", json=body)
    err = resp.get_json()["error"]
    assert resp.status_code == 400 and err["status"] == "INVALID_ARGUMENT", err
    assert needle in err["message"]
    listed = client.get("/v1/projects/p/operations").get_json()
    assert not listed.get("operations"), listed  # nothing was queued


def test_batch_file_ceiling_is_lifted_by_splitting(small):
    app, _ = small
    client = app.test_client()
    body = _image_body(300, 200, geoTiffOptions={"tileSize": 64,
                                                 "tileDimensions": {"width": 128,
                                                                    "height": 128}})
    resp = client.post("/v1/projects/p/image:export", json=body)
    assert resp.status_code == 200, resp.get_data()[:300]
    client.post(f"/v1/{resp.get_json()['name']}:cancel")


def test_budget_stops_between_layers_with_an_error(tmp_path, monkeypatch):
    app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=tmp_path / "o",
                              tile_cache_dir=tmp_path / "t",
                              limits=Limits(request_seconds=0.5)))
    from mapserver.render import compose

    real = compose.layer_rgba
    drawn = []

    def slow(item, grid):
        import time
        time.sleep(0.6)
        drawn.append(item.layer.id)
        return real(item, grid)

    monkeypatch.setattr(compose, "layer_rgba", slow)
    client = app.test_client()
    resp = client.get(EXPORT, query_string={"bbox": "-180,-90,180,90", "size": "64,64",
                                            "f": "image", "layers": "show:0,1"})
    text = error(resp)
    assert "took longer than 0.5 s" in text
    assert len(drawn) < 2  # stopped before the last layer
    monkeypatch.setattr(compose, "layer_rgba", real)
    resp = client.get(EXPORT, query_string={"bbox": "-180,-90,180,90", "size": "64,64",
                                            "f": "image"})
    assert resp.mimetype == "image/png"  # the budget is per request


def test_limits_from_environment():
    lim = Limits.from_env({"MAPSERVER_MAX_DPI": "1200", "MAPSERVER_MAX_VERTICES": "1e5",
                           "MAPSERVER_REQUEST_SECONDS": "10"})
    assert lim.max_dpi == 1200.0 and lim.max_vertices == 100_000
    assert lim.request_seconds == 10.0 and lim.max_json_depth == Limits().max_json_depth
    assert Settings.from_env({"MAPSERVER_MAX_WKT_LENGTH": "100"}).limits.max_wkt_length == 100
    with pytest.raises(ValueError, match="MAPSERVER_MAX_DPI"):
        Limits.from_env({"MAPSERVER_MAX_DPI": "lots"})


def test_outside_a_request_the_environment_limits_apply():
    assert limits.Limits.from_env({"MAPSERVER_MAX_DPI": "123"}).max_dpi == 123
