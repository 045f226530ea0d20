"""Operations lifecycle: validation at submit, requestId replay, priority order, cancel,
takeover after a crashed dispatcher, list/filter/paging, Dask and S3 backends."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rasterio
from jobs_helpers import call, gcs, load, make_app, pixel_grid, wait_done
from PIL import Image

from mapserver.settings import PROJECT_ROOT

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
               "AWS_DEFAULT_REGION": "us-east-1"}
GRID = pixel_grid("EPSG:31985", 289000, 9120000, 50, 40, 30)
TALL = pixel_grid("EPSG:31985", 290000, 9120000, 10, 60, 1024)  # 16 strips of 64 rows


def image_body(prefix: str, **extra) -> dict:
    body = {"expression": load("Samples/Olinda"), "description": prefix, "grid": GRID,
            "fileExportOptions": gcs("ops", prefix)}
    body.update(extra)
    return body


def tall_body(prefix: str) -> dict:
    return {"expression": load("Samples/Olinda"), "description": prefix, "grid": TALL,
            "fileExportOptions": gcs("ops", prefix, geoTiffOptions={"tileSize": 64})}


@pytest.fixture(scope="module")
def moto_s3():
    """A local S3 emulator (moto's server mode) on a free port, with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="real-bucket")
    yield endpoint
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def env(tmp_path_factory, moto_s3):
    tmp = tmp_path_factory.mktemp("ops")
    app, svc = make_app(tmp, buckets={"cloud": "s3://real-bucket"}, s3_endpoint=moto_s3)
    yield app.test_client(), tmp
    svc.close()


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """One worker, 0.3 s per shard, dispatcher started by the tests (to queue first)."""
    tmp = tmp_path_factory.mktemp("slow")
    app, svc = make_app(tmp, dispatch=False, workers=1, shard_delay=0.3)
    yield app.test_client(), tmp, svc
    svc.close()


def test_submit_time_validation_uses_google_error_bodies(env):
    client, _ = env
    expr = {"result": "1", "values": {"0": load("World")["values"]["0"],
                                      "1": call("Image.add", image1={"valueReference": "0"})}}
    r = client.post("/v1/projects/p/image:export", json=image_body("x", expression=expr))
    err = r.get_json()["error"]
    assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT" and err["code"] == 400
    assert err["message"].startswith("Unsupported function in expression: Image.add. "
                                     "Supported: Collection.filter, Collection.first")
    r = client.post("/v1/projects/p/image:export", json=image_body("x", maxPixels="1000"))
    assert r.status_code == 400 and r.get_json()["error"]["message"] == (
        "Export too large: specified 1200 pixels (max: 1000). Specify higher maxPixels value "
        "if you intend to export a large area.")
    r = client.post("/v1/projects/p/image:export", json=image_body("x", region=[1, 2]))
    assert r.get_json()["error"]["message"] == "Unknown fields in request: region"
    r = client.post("/v1/projects/p/image:export",
                    json=image_body("x", expression=load("Nope")))
    assert r.status_code == 404 and r.get_json()["error"] == {
        "code": 404, "status": "NOT_FOUND",
        "message": "Image.load: no map service, raster layer or asset 'Nope'"}
    r = client.get("/v1/projects/p/operations/NOSUCHOP")
    assert r.status_code == 404 and r.get_json()["error"]["status"] == "NOT_FOUND"
    # nothing was queued by the refused requests
    assert client.get("/v1/projects/p/operations").get_json() == {"operations": []}


def test_wrapper_and_scalar_numbers_and_request_id_replay(env):
    client, _ = env
    body = image_body("replay", priority={"value": 7}, maxPixels={"value": "5000"},
                      requestId="abc-123")
    first = client.post("/v1/projects/p/image:export", json=body).get_json()
    assert first["metadata"]["priority"] == 7
    again = client.post("/v1beta/projects/p/image:export", json=body).get_json()
    assert again["name"] == first["name"]
    changed = dict(body, priority=8)
    r = client.post("/v1/projects/p/image:export", json=changed)
    assert r.status_code == 409 and r.get_json()["error"]["status"] == "ALREADY_EXISTS"
    scalar = client.post("/v1/projects/p/image:export",
                         json=image_body("scalar", priority=9, maxPixels=5000)).get_json()
    assert scalar["metadata"]["priority"] == 9
    for op in (first, scalar):
        assert wait_done(client, op["name"])["metadata"]["state"] == "SUCCEEDED"


def test_list_filter_paging_wait_and_delete(env):
    client, _ = env
    names = [client.post("/v1/projects/q/image:export", json=image_body(f"l{i}")).get_json()
             ["name"] for i in range(3)]
    op = client.post(f"/v1/{names[-1]}:wait", json={"timeout": "30s"}).get_json()
    for n in names:
        wait_done(client, n)
    page1 = client.get("/v1/projects/q/operations?pageSize=2").get_json()
    assert [o["name"] for o in page1["operations"]] == names[::-1][:2]
    page2 = client.get("/v1/projects/q/operations", query_string={
        "pageSize": 2, "pageToken": page1["nextPageToken"]}).get_json()
    assert [o["name"] for o in page2["operations"]] == names[:1] and "nextPageToken" not in page2
    flt = 'metadata.state="SUCCEEDED" AND metadata.type="EXPORT_IMAGE"'
    assert len(client.get("/v1/projects/q/operations", query_string={"filter": flt})
               .get_json()["operations"]) == 3
    assert client.get("/v1/projects/q/operations", query_string={
        "filter": 'metadata.type="EXPORT_TILES"'}).get_json() == {"operations": []}
    assert op["name"] == names[-1]
    assert client.delete(f"/v1/{names[0]}").get_json() == {}
    assert client.get(f"/v1/{names[0]}").status_code == 404


def test_priority_runs_higher_first(slow):
    client, _, svc = slow
    names = {p: client.post("/v1/projects/p/image:export", json=image_body(
        f"pri{p}", priority=p)).get_json()["name"] for p in (1, 500, 100)}
    svc.dispatcher.start()
    ops = {p: wait_done(client, n) for p, n in names.items()}
    order = sorted(ops, key=lambda p: ops[p]["metadata"]["startTime"])
    assert order == [500, 100, 1]


def test_cancel_running_export_leaves_nothing(slow):
    client, tmp_path, svc = slow
    if svc.dispatcher._thread is None:
        svc.dispatcher.start()
    name = client.post("/v1/projects/p/image:export", json=tall_body("cancelme")
                       ).get_json()["name"]
    end = time.monotonic() + 30
    while client.get(f"/v1/{name}").get_json()["metadata"]["state"] != "RUNNING":
        assert time.monotonic() < end
        time.sleep(0.05)
    assert client.post(f"/v1/{name}:cancel", json={}).get_json() == {}
    assert client.get(f"/v1/{name}").get_json()["metadata"]["state"] in ("CANCELLING",
                                                                         "CANCELLED")
    op = wait_done(client, name)
    assert op["metadata"]["state"] == "CANCELLED" and op["done"] is True
    assert op["error"] == {"code": 1, "message": "Cancelled."}
    assert op["metadata"]["destinationUris"] == []
    assert not list((tmp_path / "buckets" / "ops").glob("cancelme*"))
    assert not any((tmp_path / "buckets" / ".staging").glob("*"))
    # cancelling a PENDING op ends it at once
    svc.dispatcher.stop()
    pending = client.post("/v1/projects/p/image:export", json=image_body("never")).get_json()
    client.post(f"/v1/{pending['name']}:cancel")
    op = client.get(f"/v1/{pending['name']}").get_json()
    assert op["metadata"]["state"] == "CANCELLED" and op["error"]["code"] == 1


def test_killed_worker_process_is_taken_over_and_resumes_unfinished_shards(tmp_path):
    """A real ``mapserver-jobs worker`` process is SIGKILLed mid-export; the app's dispatcher
    takes the operation over after the lease lapses and finishes only the missing shards."""
    app, svc = make_app(tmp_path, dispatch=False, lease_seconds=1.0)
    client = app.test_client()
    name = client.post("/v1/projects/p/image:export", json=tall_body("resume")).get_json()["name"]
    op_id = name.rsplit("/", 1)[1]
    env = dict(os.environ, MAPSERVER_JOBS_DB=str(tmp_path / "jobs.sqlite"),
               MAPSERVER_JOBS_ROOT=str(tmp_path / "buckets"), MAPSERVER_JOBS_WORKERS="1",
               MAPSERVER_JOBS_LEASE="1", MAPSERVER_JOBS_SHARD_DELAY="0.25",
               PYTHONPATH=str(PROJECT_ROOT))
    worker = subprocess.Popen([sys.executable, "-m", "mapserver.cli.jobs", "worker"], env=env,
                              start_new_session=True)
    try:
        end = time.monotonic() + 60
        while client.get(f"/v1/{name}").get_json()["metadata"]["stages"][0][
                "completeWorkUnits"] < 3:
            assert time.monotonic() < end and worker.poll() is None
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool die at once
        worker.wait()
    db = sqlite3.connect(tmp_path / "jobs.sqlite")
    done_before = {i for (i,) in db.execute("SELECT idx FROM shards WHERE op_id=? AND done=1",
                                            (op_id,))}
    assert 3 <= len(done_before) < 16
    assert client.get(f"/v1/{name}").get_json()["metadata"]["state"] == "RUNNING"
    svc.dispatcher.start()  # the surviving server
    try:
        op = wait_done(client, name)
        assert op["metadata"]["state"] == "SUCCEEDED" and op["metadata"]["attempt"] == 2
        runs = dict(db.execute("SELECT idx, runs FROM shards WHERE op_id=?", (op_id,)))
        assert all(runs[i] == 1 for i in done_before)  # finished work is never redone
        with rasterio.open(tmp_path / "buckets" / "ops" / "resume.tif") as ds:
            tif = ds.read().transpose(1, 2, 0)
        ref = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/export", query_string={
            "bbox": "290000,9109760,290600,9120000", "size": "60,1024", "format": "png32",
            "transparent": "true", "f": "image"})
        assert (tif == np.asarray(Image.open(io.BytesIO(ref.data)).convert("RGBA"))).all()
    finally:
        svc.close()


def test_dask_cluster_pyramid_equals_tiles_and_is_published_as_tile_cache(tmp_path):
    from distributed import LocalCluster

    from mapserver.maps.tiles import render_tile

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        app, svc = make_app(tmp_path, dask_scheduler=cluster.scheduler_address)
        try:
            client = app.test_client()
            body = {"expression": load("WorldMercator"), "description": "dasktiles",
                    "publishTileCache": True, "tileOptions": {"startZoom": 0, "endZoom": 1},
                    "tileExportOptions": gcs("tiles", "dask", "PNG")}
            op = wait_done(client, client.post("/v1/projects/p/map:export", json=body)
                           .get_json()["name"])
            assert op["metadata"]["state"] == "SUCCEEDED", op
            root = tmp_path / "buckets" / "tiles" / "dask"
            tiles = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
            assert tiles == ["0/0/0", "1/0/0", "1/0/1", "1/1/0", "1/1/1", "index.html"]
            world = app.extensions["mapserver"].catalog.service("WorldMercator")
            for t in tiles[:-1]:
                z, x, y = map(int, t.split("/"))
                exported = (root / t).read_bytes()
                assert (rgba(exported) == rgba(render_tile(world, z, y, x))).all(), t
                cached = client.get(
                    f"/arcgis/rest/services/WorldMercator/MapServer/tile/{z}/{y}/{x}")
                assert cached.data == exported  # /tile serves the published pyramid
        finally:
            svc.close()


def rgba(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_s3_bucket_through_moto_server(env, moto_s3):
    import boto3

    client, _ = env
    body = {"expression": load("Samples/Olinda"), "description": "s3img", "grid": GRID,
            "fileExportOptions": gcs("cloud", "out/olinda")}
    op = wait_done(client, client.post("/v1/projects/p/image:export", json=body)
                   .get_json()["name"])
    assert op["metadata"]["state"] == "SUCCEEDED", op
    assert op["metadata"]["destinationUris"] == [
        "s3://real-bucket/out/olinda.tif", "http://localhost/v1/exports/cloud/out/olinda.tif"]
    obj = boto3.client("s3", endpoint_url=moto_s3).get_object(Bucket="real-bucket",
                                                              Key="out/olinda.tif")
    data = obj["Body"].read()
    assert obj["ContentType"] == "image/tiff" and data[:4] == b"II*\x00"
    assert client.get("/v1/exports/cloud/out/olinda.tif").data == data


def test_cli_submits_and_shows_progress_until_done(env, capsys, monkeypatch):
    """``mapserver-jobs submit`` against a real HTTP server: progress bar, then the URIs."""
    from werkzeug.serving import make_server

    from mapserver.cli import jobs as cli

    client, tmp = env
    server = make_server("127.0.0.1", 0, client.application, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp / "body.json"
        path.write_text(json.dumps(image_body("cli")))
        err = io.StringIO()
        monkeypatch.setattr(cli.sys, "stderr", err)
        url = f"http://127.0.0.1:{server.server_port}"
        assert cli.main(["submit", "image", str(path), "--url", url, "--project", "cli"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0].startswith("projects/cli/operations/") and len(out[0]) == 48
        assert out[1:] == [(tmp / "buckets" / "ops" / "cli.tif").resolve().as_uri(),
                           f"{url}/v1/exports/ops/cli.tif"]
        assert err.getvalue().split("\r")[-1] == "[" + "#" * 30 + "] 100.0% 1/1 SUCCEEDED \n"
    finally:
        server.shutdown()
