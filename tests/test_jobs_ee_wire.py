"""The Earth Engine wire details behind the client: native grids of every raster, EE's CRS names,
strict booleans, freeform descriptions, requestId after DELETE, unconfigured destinations, the
per-instance default store, and the functions of the algorithm table (raw request bodies)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from jobs_helpers import call, gcs, load, make_app, pixel_grid, wait_done

from mapserver.jobs.config import JobConfig


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eewire")
    app, svc = make_app(tmp)
    yield app.test_client(), tmp / "buckets", app
    svc.close()


def expr(*nodes: tuple[str, dict], result: str = "0") -> dict:
    return {"result": result, "values": dict(nodes)}


def image_body(description: str, expression: dict, prefix: str, **extra) -> dict:
    body = {"expression": expression, "description": description,
            "fileExportOptions": gcs("wire", prefix, "GEO_TIFF")}
    body.update(extra)
    return body


def post(client, body: dict, kind: str = "image"):
    return client.post(f"/v1/projects/w/{kind}:export", json=body)


def test_native_grid_of_every_raster_the_catalog_serves(env):
    client, buckets, app = env
    catalog = app.extensions["mapserver"].catalog
    started = []
    for name, svc in catalog.services.items():
        for layer in svc.layers:
            if layer.raster is None:
                continue
            prefix = f"native/{name.replace('/', '_')}_{layer.id}"
            r = post(client, image_body("native", load(f"{name}/{layer.id}"), prefix))
            assert r.status_code == 200, r.get_json()
            started.append((r.get_json()["name"], prefix, layer.raster))
    assert len(started) >= 3  # Olinda's Landsat and DEM, Demo's rasters (BOUNDCRS among them)
    for op_name, prefix, raster in started:
        op = wait_done(client, op_name)
        assert op["metadata"]["state"] == "SUCCEEDED", op
        with rasterio.open(buckets / "wire" / f"{prefix}.tif") as ds:
            assert (ds.width, ds.height, ds.count) == (raster.width, raster.height, raster.count)
            assert np.allclose(tuple(ds.transform)[:6], raster.transform)
            assert ds.crs is not None


def test_sr_org_6627_is_web_mercator(env):
    client, buckets, _ = env
    grid = pixel_grid("SR-ORG:6627", -2000000, 2000000, 20000, 40, 30)
    op = post(client, image_body("srorg", load("World"), "srorg", grid=grid)).get_json()
    assert wait_done(client, op["name"])["metadata"]["state"] == "SUCCEEDED"
    with rasterio.open(buckets / "wire/srorg.tif") as ds:
        assert ds.crs.to_epsg() == 3857 and (ds.width, ds.height) == (40, 30)
    r = post(client, image_body("srorg", load("World"), "x", grid=pixel_grid(
        "SR-ORG:1", 0, 0, 1, 4, 4)))
    assert r.status_code == 400 and "SR-ORG:6627" in r.get_json()["error"]["message"]


def test_booleans_are_strict(env):
    client, _, _ = env
    body = image_body("b", load("Samples/Olinda/1"), "b")
    body["fileExportOptions"]["geoTiffOptions"] = {"cloudOptimized": "no"}
    r = post(client, body)
    assert r.status_code == 400 and r.get_json()["error"] == {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": 'geoTiffOptions.cloudOptimized must be true or false, got "no"'}
    geom = call("GeometryConstructors.Rectangle", coordinates={"constantValue": [0, 0, 1, 1]},
                geodesic={"constantValue": 1})
    r = post(client, image_body("b", expr(("0", call("Image.clip", input=load("World")[
        "values"]["0"], geometry=geom))), "b"))
    assert r.status_code == 400 and "'geodesic' must be a boolean" in r.get_json()["error"][
        "message"]


def test_freeform_description_and_trailing_slash(env):
    client, buckets, _ = env
    grid = pixel_grid("EPSG:31985", 288000, 9121000, 200, 20, 10)
    body = image_body("Olinda DEM: 2024 / v2 (é)", load("Samples/Olinda/1"), "free/",
                      grid=grid)
    op = post(client, body).get_json()
    assert op["metadata"]["description"] == "Olinda DEM: 2024 / v2 (é)"
    assert wait_done(client, op["name"])["metadata"]["state"] == "SUCCEEDED"
    assert [p.name for p in (buckets / "wire/free").iterdir()] == ["Olinda_DEM_2024_v2.tif"]


def test_request_id_after_delete_starts_a_new_operation(env):
    client, _, _ = env
    grid = pixel_grid("EPSG:31985", 288000, 9121000, 200, 20, 10)
    body = image_body("rid", load("Samples/Olinda/1"), "rid", grid=grid, requestId="rid-1")
    first = post(client, body).get_json()
    wait_done(client, first["name"])
    assert client.delete(f"/v1/{first['name']}").status_code == 200
    again = post(client, body).get_json()
    assert again["name"] != first["name"]
    assert client.get(f"/v1/{again['name']}").status_code == 200
    assert post(client, body).get_json()["name"] == again["name"]  # replays still idempotent


def test_unconfigured_destinations_are_refused(env):
    client, _, _ = env
    body = image_body("d", load("Samples/Olinda/1"), "d")
    body["fileExportOptions"] = {"fileFormat": "GEO_TIFF",
                                 "driveDestination": {"folder": "f", "filenamePrefix": "d"}}
    r = post(client, body)
    assert r.status_code == 400 and r.get_json()["error"]["status"] == "FAILED_PRECONDITION"
    assert "MAPSERVER_JOBS_DRIVE" in r.get_json()["error"]["message"]
    body = {"expression": load("Samples/Olinda/1"), "description": "a", "assetExportOptions": {
        "earthEngineDestination": {"name": "projects/w/assets/a"}}}
    r = post(client, body)
    assert r.status_code == 400 and "MAPSERVER_JOBS_ASSETS" in r.get_json()["error"]["message"]


def test_default_store_belongs_to_one_instance():
    a = JobConfig.from_env({"MAPSERVER_BIND": "127.0.0.1:8001"}).db_path
    b = JobConfig.from_env({"MAPSERVER_BIND": "127.0.0.1:8002"}).db_path
    assert a != b and a == JobConfig.from_env({"MAPSERVER_BIND": "127.0.0.1:8001"}).db_path
    assert JobConfig.from_env({"MAPSERVER_JOBS_INSTANCE": "0.0.0.0:9000",
                               "MAPSERVER_BIND": "127.0.0.1:8001"}).db_path != a
    assert JobConfig.from_env({"MAPSERVER_JOBS_DB": "/x/y.sqlite"}).db_path.as_posix() == \
        "/x/y.sqlite"


def test_geometry_constructors_select_and_visualize(env):
    client, buckets, _ = env
    dem = load("Samples/Olinda/1")["values"]["0"]
    proj = call("Projection", crs={"constantValue": "EPSG:31985"},
                transform={"constantValue": [20, 0, 288000, 0, -20, 9121000]})
    # a rectangle in pixel units of a projection with a transform: an exact 100 x 50 grid
    rect = call("GeometryConstructors.Rectangle", coordinates={"constantValue": [0, 0, 100, 50]},
                crs=proj, geodesic={"constantValue": False})
    sel = call("Image.select", input=dem, bandSelectors={"constantValue": ["b1"]},
               newNames={"constantValue": ["elevation"]})
    vis = call("Image.visualize", image=sel, bands={"constantValue": ["elevation"]},
               min={"constantValue": 0}, max={"constantValue": 90},
               gamma={"constantValue": 1.5})
    reproj = call("Image.reproject", image=vis, crs=proj)
    body = image_body("vis", expr(("0", call("Image.clipToBoundsAndScale", input=reproj,
                                             geometry=rect))), "vis")
    op = post(client, body).get_json()
    assert wait_done(client, op["name"])["metadata"]["state"] == "SUCCEEDED", op
    with rasterio.open(buckets / "wire/vis.tif") as ds:
        assert (ds.width, ds.height, ds.count) == (100, 50, 4)
        assert tuple(ds.transform)[:6] == (20.0, 0.0, 288000.0, 0.0, -20.0, 9121000.0)
        rgba = ds.read()
    assert (rgba[0] == rgba[1]).all() and rgba[3].any()  # one band: grey
    # the other constructors evaluate; a point clip keeps the one pixel it touches
    for geom in (
            call("GeometryConstructors.Point", coordinates={"constantValue": [-34.9, -8.0]}),
            call("GeometryConstructors.MultiPoint",
                 coordinates={"constantValue": [[-34.9, -8.0], [-34.88, -8.01]]}),
            call("GeometryConstructors.LineString",
                 coordinates={"constantValue": [[-34.95, -8.0], [-34.85, -8.0]]}),
            call("GeometryConstructors.MultiPolygon", coordinates={"constantValue": [
                [[[-34.95, -8.05], [-34.9, -8.05], [-34.9, -8.0], [-34.95, -8.0]]]]}),
            call("GeometryConstructors.BBox", west={"constantValue": -34.95},
                 south={"constantValue": -8.05}, east={"constantValue": -34.85},
                 north={"constantValue": -7.95})):
        clipped = call("Image.clip", input=dem, geometry=geom)
        b = image_body("g", expr(("0", call("Image.clipToBoundsAndScale", input=clipped,
                                            scale={"constantValue": 200}))), "g")
        r = post(client, b)
        assert r.status_code == 200, r.get_json()
    # arguments are checked against the table: unknown names are refused by name
    bad = call("Image.select", input=dem, bandSelectors={"constantValue": ["b1"]},
               renamed={"constantValue": ["x"]})
    r = post(client, image_body("bad", expr(("0", bad)), "bad"))
    assert r.status_code == 400 and "unknown arguments renamed" in r.get_json()["error"][
        "message"]


def test_discovery_lists_only_routed_methods(env):
    client, _, app = env
    for version in ("v1", "v1alpha", "v1beta"):
        doc = client.get(f"/$discovery/rest?version={version}").get_json()
        for res in doc["resources"]["projects"]["resources"].values():
            for m in res["methods"].values():
                path = m["flatPath"].replace("{projectsId}", "p").replace("{operationsId}", "X")
                endpoint, _ = app.url_map.bind("localhost").match("/" + path, method=m[
                    "httpMethod"])
                assert endpoint.startswith("jobs."), path
        assert doc["schemas"]["ListOperationsResponse"]["properties"]["nextPageToken"]
    for garbage in (b"[1]", b"{", b'{"expression": 5}'):
        r = client.post("/v1/projects/w/image:export", data=garbage,
                        content_type="application/json")
        assert r.status_code == 400 and r.get_json()["error"]["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("args", "named"), [
    ({"gdbVersion": "sde.NOPE"}, "unknown version 'sde.NOPE'"),
    ({"historicMoment": "yesterday"}, "'historicMoment' must be a time in epoch milliseconds"),
    ({"dynamicLayers": [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 99}}]},
     "mapLayerId 99 is not a layer of this service")])
def test_image_load_map_arguments_are_checked_at_submit(env, args, named):
    """An Image.load's export arguments are checked against the service as /export checks
    them: a bad value is INVALID_ARGUMENT at submit, not a failure of every shard later."""
    client, _, _ = env
    r = post(client, image_body("bad", load("Samples/Demo", **args), "bad",
                                grid=pixel_grid("EPSG:4326", -10, 10, 1, 8, 8)))
    err = r.get_json()["error"]
    assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT", err
    assert named in err["message"]
