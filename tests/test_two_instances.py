"""Two app instances (gunicorn, as deployed, on two ports) sharing an S3-compatible object store
(moto's server) for outputs and tiles, and PostgreSQL for operations, serve as one:

- an ``export?f=json`` href made by A is served by B, with the same bytes;
- a tile rendered by A is a cache hit on B (B serves what is in the bucket, writes nothing);
- an operation submitted to A is visible on B, cancellable on B, and finished by B's
  dispatcher (A does not dispatch: ``MAPSERVER_JOBS_DISPATCH=0``).

Needs PostgreSQL (``.ci/start-postgres``); fails without it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mapserver.settings import PROJECT_ROOT
from tests.jobs_helpers import gcs, load, pixel_grid
from tests.shared_state_helpers import CREDENTIALS, free_port, moto_server, postgres_schema, s3
from tests.test_serving_live import stop_group, wait_for_port

EXPORT = "/arcgis/rest/services/World/MapServer/export"
TILE = "/arcgis/rest/services/World/MapServer/tile/3/2/4"
HEALTH = "/arcgis/rest/info/healthCheck"


def request(port: int, method: str, target: str, body: dict | None = None,
            ) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, target, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def get_json(port: int, target: str, method: str = "GET", body: dict | None = None) -> dict:
    status, _, data = request(port, method, target, body)
    assert status == 200, (status, data[:300])
    return json.loads(data)


@pytest.fixture(scope="module")
def instances(tmp_path_factory):
    """(port A, port B, S3 endpoint, shared bucket root) with both instances answering."""
    tmp = tmp_path_factory.mktemp("two")
    with moto_server() as endpoint, postgres_schema() as pg:
        for bucket in ("outputs", "tiles"):
            s3(endpoint).create_bucket(Bucket=bucket)
        common = {**os.environ, **CREDENTIALS, "MAPSERVER_S3_ENDPOINT": endpoint,
                  "MAPSERVER_OUTPUT": "s3://outputs/hrefs",
                  "MAPSERVER_TILE_CACHE": "s3://tiles/cache", "MAPSERVER_JOBS_DB": pg,
                  "MAPSERVER_JOBS_ROOT": str(tmp / "buckets"), "MAPSERVER_WORKERS": "1",
                  "MAPSERVER_THREADS": "4", "MAPSERVER_JOBS_WORKERS": "1",
                  "MAPSERVER_SECRET": "two-instances"}
        common.pop("MAPSERVER_JOBS_INSTANCE", None)
        specific = {"a": {"MAPSERVER_JOBS_DISPATCH": "0"},
                    # B's shards sleep, so an operation stays RUNNING long enough to queue
                    # (and cancel) another one behind it
                    "b": {"MAPSERVER_JOBS_DISPATCH": "1", "MAPSERVER_JOBS_SHARD_DELAY": "5"}}
        procs, ports, logs = {}, {}, {}
        try:
            for name, extra in specific.items():
                ports[name] = free_port()
                logs[name] = open(tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed below
                env = {**common, **extra, "MAPSERVER_BIND": f"127.0.0.1:{ports[name]}"}
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                    cwd=PROJECT_ROOT, env=env, stdout=logs[name], stderr=subprocess.STDOUT,
                    start_new_session=True)
            for name in procs:
                wait_for_port(ports[name], procs[name], f"instance {name}", timeout=180)
                assert get_json(ports[name], HEALTH) == {"success": True}
            yield ports["a"], ports["b"], endpoint, tmp / "buckets"
        finally:
            for proc in procs.values():
                stop_group(proc)
            for log in logs.values():
                log.close()


def test_an_href_made_by_one_instance_is_served_by_the_other(instances):
    a, b, endpoint, _ = instances
    meta = get_json(a, EXPORT + "?bbox=-30,-20,30,20&size=120,80&format=png&f=json")
    assert meta["href"].startswith(f"http://127.0.0.1:{a}/arcgis/rest/directories/")
    path = meta["href"].split(f":{a}", 1)[1]
    name = path.rsplit("/", 1)[1]
    stored = s3(endpoint).get_object(Bucket="outputs", Key=f"hrefs/{name}")["Body"].read()
    status, headers, body = request(b, "GET", path)
    assert status == 200 and headers["content-type"] == "image/png"
    assert body == stored
    # the same picture B draws itself
    assert body == request(b, "GET", EXPORT + "?bbox=-30,-20,30,20&size=120,80&format=png"
                                              "&f=image")[2]
    # a name that is not an output: the same answer on both
    bogus = path.replace(name, "_ags_map" + "f" * 32 + ".png")
    assert request(a, "GET", bogus)[2] == request(b, "GET", bogus)[2]
    assert json.loads(request(b, "GET", bogus)[2])["error"]["code"] == 400


def tile_counts(port: int) -> dict[str, float]:
    """World's tile cache hits and misses from an instance's ``/metrics``."""
    status, _, text = request(port, "GET", "/metrics")
    assert status == 200
    counts = {"hit": 0.0, "miss": 0.0}
    for line in text.decode().splitlines():
        m = re.match(r'mapserver_tile_cache_requests_total\{(.*)\} (\S+)$', line)
        if m and 'service="World"' in m.group(1):
            result = re.search(r'result="(\w+)"', m.group(1)).group(1)
            counts[result] += float(m.group(2))
    return counts


def test_a_tile_rendered_by_one_instance_is_a_cache_hit_on_the_other(instances):
    a, b, endpoint, _ = instances
    client = s3(endpoint)
    status, _, first = request(a, "GET", TILE)
    assert status == 200
    objects = client.list_objects_v2(Bucket="tiles")["Contents"]
    key = next(o["Key"] for o in objects if o["Key"].endswith("/3/2/4.png"))
    assert client.get_object(Bucket="tiles", Key=key)["Body"].read() == first
    before = tile_counts(b)
    status, _, second = request(b, "GET", TILE)
    assert status == 200 and second == first
    assert client.list_objects_v2(Bucket="tiles")["Contents"] == objects  # B wrote nothing
    after = tile_counts(b)  # B's /metrics: one more hit, no miss
    assert (after["hit"] - before["hit"], after["miss"] - before["miss"]) == (1, 0)
    # B really reads the bucket: put other bytes (a neighbouring tile) under that key
    neighbour = request(b, "GET", TILE[:-1] + "5")[2]
    assert neighbour != first
    client.put_object(Bucket="tiles", Key=key, Body=neighbour)
    assert request(b, "GET", TILE)[2] == neighbour
    assert request(a, "GET", TILE)[2] == neighbour


GRID = pixel_grid("EPSG:4326", -35.0, -7.9, 0.001, 64, 64)


def body(prefix: str) -> dict:
    return {"expression": load("Samples/Olinda"), "description": prefix, "grid": GRID,
            "fileExportOptions": gcs("shared", prefix)}


def test_an_operation_submitted_to_one_is_seen_cancelled_and_finished_by_the_other(instances):
    a, b, _, buckets = instances
    first = get_json(a, "/v1/projects/p/image:export", "POST", body("first"))
    second = get_json(a, "/v1/projects/p/image:export", "POST", body("second"))
    # visible on B at once
    seen = get_json(b, f"/v1/{first['name']}")
    assert seen["name"] == first["name"] and seen["metadata"]["description"] == "first"
    # cancelled on B: it was queued behind the first (B runs one at a time, A runs none)
    assert get_json(b, f"/v1/{second['name']}:cancel", "POST", {}) == {}
    cancelled = get_json(a, f"/v1/{second['name']}")
    assert cancelled["metadata"]["state"] == "CANCELLED" and cancelled["done"]
    assert cancelled["error"] == {"code": 1, "message": "Cancelled."}
    # finished by B's dispatcher; A reports the same
    end = time.monotonic() + 120
    while time.monotonic() < end:
        done = get_json(a, f"/v1/{first['name']}")
        if done["done"]:
            break
        time.sleep(0.2)
    assert done["metadata"]["state"] == "SUCCEEDED", done
    assert get_json(b, f"/v1/{first['name']}") == done
    assert (buckets / "shared" / "first.tif").is_file()
    assert not (buckets / "shared" / "second.tif").exists()
    listed = get_json(b, "/v1/projects/p/operations")["operations"]
    assert {o["name"]: o["metadata"]["state"] for o in listed} == {
        first["name"]: "SUCCEEDED", second["name"]: "CANCELLED"}


def test_both_instances_are_healthy_and_a_third_without_the_database_is_not(instances,
                                                                            tmp_path):
    """The hostile case, live: an instance whose PostgreSQL URL points nowhere starts, draws
    maps, and says 503 on its health check; the other two are unaffected."""
    a, b, endpoint, _ = instances
    port = free_port()
    env = {**os.environ, **CREDENTIALS, "MAPSERVER_S3_ENDPOINT": endpoint,
           "MAPSERVER_OUTPUT": "s3://outputs/hrefs", "MAPSERVER_TILE_CACHE": "s3://tiles/cache",
           "MAPSERVER_JOBS_DB": f"postgresql://mapserver:x@127.0.0.1:{free_port()}/none",
           "MAPSERVER_WORKERS": "1", "MAPSERVER_BIND": f"127.0.0.1:{port}",
           "MAPSERVER_JOBS_ROOT": str(tmp_path / "b")}
    with open(tmp_path / "c.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        try:
            wait_for_port(port, proc, "instance c", timeout=180)
            status, _, data = request(port, "GET", HEALTH)
            assert status == 503
            assert json.loads(data)["error"]["details"] == [
                "operation store: the database server does not answer"]
            status, headers, _ = request(port, "GET", EXPORT + "?bbox=-30,-20,30,20&size=60,40"
                                                              "&f=image")
            assert status == 200 and headers["content-type"] == "image/png"
            status, _, data = request(port, "GET", "/v1/projects/p/operations")
            assert status == 503 and json.loads(data)["error"]["status"] == "UNAVAILABLE"
        finally:
            stop_group(proc)
    assert "does not answer" in Path(tmp_path / "c.log").read_text()
    for p in (a, b):
        assert get_json(p, HEALTH) == {"success": True}
