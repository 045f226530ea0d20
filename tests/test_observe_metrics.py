"""``/metrics`` (issue 11): Prometheus text format; requests by route (never the raw path)
and status, latency histograms, ArcGIS errors by code, render time by layer, tile cache hits
and misses, operations by state; off with ``metrics=False``; all gunicorn workers in one
scrape (prometheus_client multiprocess mode, a live ``mapserver serve`` with 2 workers).

The counters are per process and shared by every app a test builds, so tests compare values
before and after their own requests."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from jobs_helpers import gcs, load, make_app, pixel_grid
from prometheus_client.parser import text_string_to_metric_families
from serve_support import free_port, get, server_env, start, stop, wait_healthy

from mapserver.app import create_app
from mapserver.observe.routes import ROUTES
from mapserver.settings import PROJECT_ROOT, Settings

S = "/arcgis/rest/services/World/MapServer"
EXPORT = S + "/export?bbox=-180,-90,180,90&size=200,100&f=image"


class BufferedClient(FlaskClient):
    """The test client as a WSGI server uses the app: the body read whole and closed at once
    (werkzeug's client otherwise closes it only when the test closes the response), so each
    request is measured before the next scrape."""

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201 - FlaskClient's signature
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


@pytest.fixture()
def client(app) -> BufferedClient:
    return BufferedClient(app, app.response_class)


def buffered(app) -> BufferedClient:
    return BufferedClient(app, app.response_class)


def scrape(http) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return parse(resp.data.decode())


def parse(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_by_route_and_status_with_latency(client):
    before = scrape(client)
    for _ in range(2):
        assert client.get(EXPORT).status_code == 200
    assert client.get(S + "/1/query?where=1%3D1&f=json").status_code == 200
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)
    req = "mapserver_http_requests_total"
    assert value(after, req, route="export", status="200") - \
        value(before, req, route="export", status="200") == 2
    assert value(after, req, route="query", status="200") - \
        value(before, req, route="query", status="200") == 1
    assert value(after, req, route="other", status="404") - \
        value(before, req, route="other", status="404") == 1
    # the scrape before this one is counted too, by the time of this one
    assert value(after, req, route="metrics", status="200") >= 1
    lat = "mapserver_http_request_duration_seconds"
    assert value(after, lat + "_count", route="export") - \
        value(before, lat + "_count", route="export") == 2
    assert value(after, lat + "_sum", route="export") > value(before, lat + "_sum",
                                                              route="export")
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in after.items()
                     if k[0] == lat + "_bucket" and dict(k[1])["route"] == "export")
    counts = [v for _le, v in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert counts[-1] == value(after, lat + "_count", route="export")


def test_route_labels_stay_bounded(client):
    """Hundreds of distinct paths (tiles, bboxes, ids, junk) give a handful of route labels
    from a closed set: the raw path is never a label."""
    for i in range(30):
        client.get(f"{S}/tile/3/{i}/{i + 1}")
        client.get(f"{S}/export?bbox={i},0,{i + 10},10&f=image")
        client.get(f"/junk/{i}/x{i}")
        client.get(f"{S}/{i}/query?where=1=1&f=json")
        client.get(f"/arcgis/rest/directories/arcgisoutput/nope{i}.png")
        client.get(f"{S}/op{i}")
    routes = {dict(k[1])["route"] for k in scrape(client)
              if k[0] == "mapserver_http_requests_total"}
    assert routes <= ROUTES
    assert {"tile", "export", "other", "query", "output", "invalid"} <= routes
    assert not any("/" in r for r in routes)


def test_render_time_by_layer(client):
    before = scrape(client)
    assert client.get(EXPORT).mimetype == "image/png"
    after = scrape(client)
    name = "mapserver_layer_render_seconds_count"
    for layer in ("0", "1"):  # World: Cities and Countries
        assert value(after, name, service="World", layer=layer) - \
            value(before, name, service="World", layer=layer) == 1
    assert value(after, "mapserver_layer_render_seconds_sum", service="World", layer="1") > \
        value(before, "mapserver_layer_render_seconds_sum", service="World", layer="1")


def test_tile_cache_hits_and_misses(tmp_path, settings):
    app = create_app(Settings(service_dirs=settings.service_dirs, data_dir=settings.data_dir,
                              output_dir=tmp_path / "out", tile_cache_dir=tmp_path / "tiles"))
    http = buffered(app)
    name = "mapserver_tile_cache_requests_total"
    before = scrape(http)
    first = http.get(S + "/tile/3/2/3")
    assert first.status_code == 200 and first.mimetype == "image/png"
    mid = scrape(http)
    assert value(mid, name, service="World", result="miss") - \
        value(before, name, service="World", result="miss") == 1
    assert value(mid, name, service="World", result="hit") == \
        value(before, name, service="World", result="hit")
    again = http.get(S + "/tile/3/2/3")
    assert again.data == first.data
    after = scrape(http)
    assert value(after, name, service="World", result="hit") - \
        value(mid, name, service="World", result="hit") == 1
    assert value(after, name, service="World", result="miss") == \
        value(mid, name, service="World", result="miss")


def test_arcgis_errors_by_code(client):
    before = scrape(client)
    bad = client.get(S + "/1/query?where=nosuchfield%3D1&f=json")
    assert bad.status_code == 200 and bad.get_json()["error"]["code"] == 400
    client.get(S + "/1/query?where=nosuchfield%3D1&f=json&callback=cb")
    client.get("/arcgis/rest/services/Nope/MapServer?f=json")
    after = scrape(client)
    err = "mapserver_arcgis_errors_total"
    assert value(after, err, route="query", code="400") - \
        value(before, err, route="query", code="400") == 2
    assert value(after, err, route="service", code="404") - \
        value(before, err, route="service", code="404") == 1
    # the HTTP status stays what clients see (200), the error is counted beside it
    assert value(after, "mapserver_http_requests_total", route="query", status="200") - \
        value(before, "mapserver_http_requests_total", route="query", status="200") == 2


def test_operations_by_state(tmp_path):
    app, svc = make_app(tmp_path, dispatch=False)
    try:
        http = buffered(app)
        grid = pixel_grid("EPSG:31985", 289000, 9120000, 50, 40, 30)
        for i in range(2):
            body = {"expression": load("Samples/Olinda"), "description": f"m{i}",
                    "grid": grid, "fileExportOptions": gcs("ops", f"m{i}")}
            op = http.post("/v1/projects/p/image:export", json=body).get_json()
            assert op["name"].startswith("projects/p/operations/"), op
        samples = scrape(http)
        assert value(samples, "mapserver_operations", state="PENDING") == 2
        assert value(samples, "mapserver_operations", state="SUCCEEDED") == 0
        http.post(f"/v1/{op['name']}:cancel")
        samples = scrape(http)
        assert value(samples, "mapserver_operations", state="PENDING") == 1
        assert value(samples, "mapserver_operations", state="CANCELLED") + \
            value(samples, "mapserver_operations", state="CANCELLING") == 1
        # a store that cannot be read: the scrape still answers, without the gauge
        svc.store.path.unlink()
        os.chmod(tmp_path, 0o500)
        try:
            resp = http.get("/metrics")
            assert resp.status_code == 200 and b"mapserver_http_requests_total" in resp.data
        finally:
            os.chmod(tmp_path, 0o700)
    finally:
        svc.close()


def test_metrics_off(tmp_path, settings):
    app = create_app(Settings(service_dirs=settings.service_dirs, data_dir=settings.data_dir,
                              output_dir=tmp_path / "out", tile_cache_dir=tmp_path / "tiles",
                              metrics=False))
    http = buffered(app)
    resp = http.get("/metrics")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == 404
    assert http.get(S + "?f=json").status_code == 200  # everything else unchanged


def test_hostile_requests_then_an_ordinary_one_count_once_each(client):
    """A 10 KB path, a broken query and a bad callback are each counted once under a
    bounded route; the ordinary request after them is counted as itself."""
    before = scrape(client)
    client.get("/" + "a" * 10_000)
    client.get(S + "/1/query?where=%27&f=json&callback=x%0A")
    client.get(S + "/export?bbox=nan,nan,nan,nan&f=image")
    ok = client.get(S + "?f=json")
    assert ok.status_code == 200 and "error" not in ok.get_json()
    after = scrape(client)
    req = "mapserver_http_requests_total"
    assert value(after, req, route="other", status="404") - \
        value(before, req, route="other", status="404") == 1
    assert value(after, req, route="service", status="200") - \
        value(before, req, route="service", status="200") == 1
    assert value(after, "mapserver_arcgis_errors_total", route="export", code="400") - \
        value(before, "mapserver_arcgis_errors_total", route="export", code="400") == 1
    assert not any(len(v) > 40 for k in after for _n, v in k[1])


# --- gunicorn: every worker in one scrape ---------------------------------------------------

def test_scrape_sums_all_gunicorn_workers(tmp_path):
    port = free_port()
    metrics_dir = tmp_path / "prom"
    env = server_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    log = tmp_path / "server.log"
    proc = start([sys.executable, "-m", "mapserver.cli", "serve",
                  "--services", str(PROJECT_ROOT / "services"),
                  "--data", str(PROJECT_ROOT / "data"), "--bind", f"127.0.0.1:{port}",
                  "--workers", "2"], Path(tmp_path), env, log)
    try:
        wait_healthy(port, proc, log)
        n = 24
        errors: list[str] = []

        def hit(i: int) -> None:
            status, _h, body = get(port, f"{EXPORT}&size={100 + i},50")
            if status != 200 or body[:4] != b"\x89PNG":
                errors.append(f"{status} {body[:80]!r}")

        # bursts until both workers have served (a worker still warming up at boot takes
        # none of the first burst); every export of every burst is counted once
        sent = 0
        deadline = time.monotonic() + 90  # the second worker may still be warming up
        while time.monotonic() < deadline:
            threads = [threading.Thread(target=hit, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            sent += n
            # each worker that served writes its own value files
            pids = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
            if len(pids) >= 2:
                break
        assert not errors
        assert len(pids) >= 2, sorted(p.name for p in metrics_dir.iterdir())
        n = sent  # the warm-up draws of both workers are not requests: not counted
        # any worker answering the scrape reports all n exports (several scrapes, several
        # connections: whichever worker takes them)
        for _ in range(6):
            status, headers, body = get(port, "/metrics")
            assert status == 200 and headers["content-type"].startswith("text/plain")
            samples = parse(body.decode())
            assert value(samples, "mapserver_http_requests_total", route="export",
                         status="200") == n
            assert value(samples, "mapserver_http_request_duration_seconds_count",
                         route="export") == n
            assert value(samples, "mapserver_layer_render_seconds_count", service="World",
                         layer="1") == n
    finally:
        stop(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_metrics_dir_is_emptied_when_the_server_starts(tmp_path):
    """Value files left by an earlier run (same PROMETHEUS_MULTIPROC_DIR) are removed by the
    master's on_starting hook, so counts start from zero."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    port = free_port()
    log = tmp_path / "server.log"
    proc = start([sys.executable, "-m", "mapserver.cli", "serve",
                  "--services", str(PROJECT_ROOT / "services"),
                  "--data", str(PROJECT_ROOT / "data"), "--bind", f"127.0.0.1:{port}",
                  "--workers", "1"], Path(tmp_path),
                 server_env(tmp_path, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)), log)
    try:
        wait_healthy(port, proc, log)
        assert not (metrics_dir / "counter_999999.db").exists()
        status, _h, body = get(port, "/metrics")
        samples = parse(body.decode())
        assert value(samples, "mapserver_http_requests_total", route="export",
                     status="200") == 0
        assert json.loads(get(port, S + "?f=json")[2])["layers"]
    finally:
        stop(proc)
