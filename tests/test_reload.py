"""Hot reload of service definitions: a definition added, changed or removed is served without
a restart; a broken one leaves the old version serving and shows in the Services Directory
and, once, in the log. In-process (a test client, stepping a clock through the interval) and
live (gunicorn with two preloaded workers, a client requesting all the while)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

RED, GREEN, BLUE = [255, 0, 0, 255], [0, 160, 0, 255], [0, 0, 255, 255]
EXPORT = {"bbox": "-20,-20,20,20", "size": "40,40", "format": "png32", "transparent": "true",
          "f": "image"}


def _definition(color: list[int], **layer_extra) -> dict:
    return {"spatialReference": {"wkid": 4326}, "layers": [{
        "id": 0, "name": "Points", "source": "points.gpkg", **layer_extra,
        "drawingInfo": {"renderer": {"type": "simple", "symbol": {
            "type": "esriSMS", "style": "esriSMSSquare", "color": color, "size": 12}}}}]}


def _write(path: Path, doc: dict | str) -> None:
    """Atomically, as a deploy (or an editor's safe write) does: a hidden temporary file
    renamed over the definition."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    os.replace(tmp, path)


def _points(root: Path) -> None:
    pts = shapely.points([(0, 0), (10, 10), (-10, 5)])
    pyogrio.raw.write(root / "points.gpkg", shapely.to_wkb(pts),
                      [np.array(["a", "b", "c"], dtype=object)], ["name"], crs="EPSG:4326",
                      geometry_type="Point", driver="GPKG")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def site(tmp_path):
    """A services folder with A (red squares) and an app checking it every 2 s of a clock
    the test steps."""
    root = tmp_path / "services"
    root.mkdir()
    _points(root)
    _write(root / "A.json", _definition(RED))
    app = create_app(Settings(service_dirs=(root,), data_dir=root, output_dir=tmp_path / "out",
                              tile_cache_dir=tmp_path / "tiles", reload_interval=2.0))
    clock = Clock()
    app.extensions["mapserver_reload"].live.use_clock(clock)
    return root, app, clock


def _pixel(client, name: str) -> tuple | dict:
    resp = client.get(f"/arcgis/rest/services/{name}/MapServer/export", query_string=EXPORT)
    if resp.mimetype != "image/png":
        return resp.get_json()
    return tuple(int(v) for v in decode(resp.data)[10, 30])  # the point at (10, 10)


def _services(client) -> list[str]:
    return [s["name"] for s in client.get("/arcgis/rest/services?f=json").get_json()["services"]]


def test_an_added_definition_is_served_once_the_interval_passed(site):
    root, app, clock = site
    client = app.test_client()
    _write(root / "B.json", _definition(BLUE))
    assert _services(client) == ["A"]
    clock.now += 1.9
    assert _services(client) == ["A"]  # not checked yet
    clock.now += 0.2
    assert _services(client) == ["A", "B"]
    assert _pixel(client, "B") == tuple(BLUE)


def test_a_changed_renderer_changes_the_pixels_and_the_rest_is_kept(site):
    root, app, clock = site
    client = app.test_client()
    _write(root / "B.json", _definition(BLUE))
    clock.now += 2.1
    assert _pixel(client, "A") == tuple(RED)
    b_before = app.extensions["mapserver"].catalog.service("B")
    _write(root / "A.json", _definition(GREEN))
    assert _pixel(client, "A") == tuple(RED)  # the old one until the next check
    clock.now += 2.1
    assert _pixel(client, "A") == tuple(GREEN)
    # B's file did not change: the very same objects (its feature table is not read again)
    b_after = app.extensions["mapserver"].catalog.service("B")
    assert b_after is b_before and b_after.layers[0].table is b_before.layers[0].table


def test_a_broken_file_keeps_the_old_version_and_is_shown_once(site, caplog):
    root, app, clock = site
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="mapserver.catalog.reload")
    _write(root / "A.json", _definition(GREEN, defaultVisiblity=True))
    for _ in range(3):  # several checks, one report
        clock.now += 2.1
        assert _pixel(client, "A") == tuple(RED)
    problem = (f"{root.name}/A.json: layers[0].defaultVisiblity: unknown key; did you mean "
               "&#39;defaultVisibility&#39;? (the previous version is still served)")
    html = client.get("/arcgis/rest/services").get_data(as_text=True)
    assert "Problems" in html and problem in html and str(root) not in html
    logged = [r.getMessage() for r in caplog.records if "A.json" in r.getMessage()]
    assert logged == [f"service not loaded: {root / 'A.json'}: layers[0].defaultVisiblity: "
                      "unknown key; did you mean 'defaultVisibility'? (the previous version "
                      "is still served)"]
    assert _services(client) == ["A"]
    # fixed: the new version is served and the box is gone
    _write(root / "A.json", _definition(GREEN))
    clock.now += 2.1
    assert _pixel(client, "A") == tuple(GREEN)
    assert "Problems" not in client.get("/arcgis/rest/services").get_data(as_text=True)


def test_a_removed_file_removes_its_service(site):
    root, app, clock = site
    client = app.test_client()
    (root / "A.json").unlink()
    assert _pixel(client, "A") == tuple(RED)
    clock.now += 2.1
    assert _services(client) == []
    assert _pixel(client, "A")["error"]["code"] == 404


def test_hostile_files_are_problems_and_the_rest_serves(site):
    root, app, clock = site
    client = app.test_client()
    _write(root / "Junk.json", "\x00\xff not json")
    _write(root / "List.json", "[1, 2]")
    _write(root / "Deep.json", "[" * 100000 + "]" * 100000)
    (root / "Bin.json").write_bytes(b"\xff\xfe\x00garbage")
    clock.now += 2.1
    assert _services(client) == ["A"]  # this request's check loads them
    problems = app.extensions["mapserver"].catalog.problems
    assert sorted(p.split(": ", 2)[0].rsplit("/", 1)[-1] for p in problems) == [
        "Bin.json", "Deep.json", "Junk.json", "List.json"]
    assert _pixel(client, "A") == tuple(RED)


def test_security_follows_the_new_catalog(site):
    """A service published with an ``access`` block is secured at once: hidden from the
    anonymous listing, its export asks for a token."""
    root, app, clock = site
    client = app.test_client()
    _write(root / "Secret.json", {**_definition(BLUE), "access": {"users": ["alice"]}})
    clock.now += 2.1
    assert _services(client) == ["A"]
    assert _pixel(client, "Secret")["error"]["code"] == 499
    assert _pixel(client, "A") == tuple(RED)


def test_interval_zero_waits_for_sighup(tmp_path):
    root = tmp_path / "services"
    root.mkdir()
    _points(root)
    _write(root / "A.json", _definition(RED))
    previous = signal.signal(signal.SIGHUP, signal.SIG_DFL)  # so this app installs its own
    try:
        app = create_app(Settings(service_dirs=(root,), data_dir=root,
                                  output_dir=tmp_path / "out", reload_interval=0))
        clock = Clock()
        app.extensions["mapserver_reload"].live.use_clock(clock)
        client = app.test_client()
        _write(root / "A.json", _definition(BLUE))
        clock.now += 3600
        assert _pixel(client, "A") == tuple(RED)  # never by time
        os.kill(os.getpid(), signal.SIGHUP)
        assert _pixel(client, "A") == tuple(BLUE)
    finally:
        signal.signal(signal.SIGHUP, previous)


# --- live: gunicorn, two preloaded workers -------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, target: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{target}", timeout=30) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


def _live_pixel(port: int, name: str) -> tuple | None:
    q = "&".join(f"{k}={v}" for k, v in EXPORT.items())
    status, ctype, body = _get(port, f"/arcgis/rest/services/{name}/MapServer/export?{q}")
    if status != 200 or ctype != "image/png":
        return None
    return tuple(int(v) for v in decode(body)[10, 30])


class Client(threading.Thread):
    """Requests A's export and the catalog without pause; every answer must be a 200 with
    an image or the catalog JSON."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.count = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if _live_pixel(self.port, "A") is None:
                    self.failures.append("export of A failed")
                status, ctype, body = _get(self.port, "/arcgis/rest/services?f=json")
                if status != 200 or "A" not in [s["name"] for s in json.loads(body)["services"]]:
                    self.failures.append(f"catalog: {status} {body[:200]!r}")
            except Exception as exc:  # noqa: BLE001 - a dropped connection is a failure too
                self.failures.append(repr(exc))
            self.count += 1


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    import socket

    end = time.monotonic() + 120
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("gunicorn did not listen within 120 s")


def _until(what: str, check, seconds: float = 60.0, times: int = 8) -> None:
    """Until ``check()`` holds ``times`` times in a row (requests spread over both workers);
    fails (never skips) past the deadline."""
    end = time.monotonic() + seconds
    streak = 0
    while time.monotonic() < end:
        streak = streak + 1 if check() else 0
        if streak >= times:
            return
        time.sleep(0.05)
    pytest.fail(f"not seen within {seconds} s: {what}")


@contextlib.contextmanager
def _gunicorn(tmp_path: Path, reload: str):
    """gunicorn as deployed (gunicorn.conf.py: preload_app, gthread), 2 workers, on a services
    folder holding A (red); yields (root, port, master pid); stopped (its session) after."""
    root = tmp_path / "services"
    root.mkdir()
    _points(root)
    _write(root / "A.json", _definition(RED))
    port = _free_port()
    env = {**os.environ, "MAPSERVER_SERVICES": str(root), "MAPSERVER_DATA": str(root),
           "MAPSERVER_RELOAD": reload, "MAPSERVER_JOBS_API": "off", "MAPSERVER_WORKERS": "2",
           "MAPSERVER_THREADS": "4", "MAPSERVER_BIND": f"127.0.0.1:{port}",
           "MAPSERVER_OUTPUT": str(tmp_path / "out"),
           "MAPSERVER_TILE_CACHE": str(tmp_path / "tiles")}
    pidfile = tmp_path / "gunicorn.pid"
    log = (tmp_path / "gunicorn.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                             "--pid", str(pidfile), "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc, tmp_path / "gunicorn.log")
        _until("the server answers", lambda: _live_pixel(port, "A") == tuple(RED), 120)
        master = int(pidfile.read_text())
        assert master == proc.pid
        yield root, port, master
        assert proc.poll() is None and int(pidfile.read_text()) == master  # same master
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        log.close()


def test_live_gunicorn_reloads_without_dropping_a_request(tmp_path):
    client = None
    try:
        with _gunicorn(tmp_path, "0.5") as (root, port, _master):
            client = Client(port)
            client.start()

            _write(root / "B.json", _definition(BLUE))  # add
            _until("B is served", lambda: _live_pixel(port, "B") == tuple(BLUE))

            _write(root / "A.json", _definition(GREEN))  # change a renderer
            _until("A is green", lambda: _live_pixel(port, "A") == tuple(GREEN))

            _write(root / "A.json", _definition(BLUE, defaultVisiblity=True))  # break it
            _until("the directory shows the problem", lambda: "defaultVisiblity" in _get(
                port, "/arcgis/rest/services")[2].decode())
            for _ in range(10):
                assert _live_pixel(port, "A") == tuple(GREEN)  # the old version serves

            (root / "B.json").unlink()  # remove
            _until("B is gone", lambda: json.loads(_get(
                port, "/arcgis/rest/services/B/MapServer?f=json")[2]).get("error", {}).get(
                    "code") == 404)

            client.stop.set()
            client.join(timeout=60)
            assert client.failures == []
            assert client.count > 20
    finally:
        if client is not None:
            client.stop.set()
    # the broken file was reported once, although two workers found it
    lines = (tmp_path / "gunicorn.log").read_text().splitlines()
    assert len([ln for ln in lines if "A.json: layers[0].defaultVisiblity" in ln]) == 1, lines


def test_live_sighup_to_the_master_reloads_with_interval_zero(tmp_path):
    """MAPSERVER_RELOAD=0: nothing by time; ``kill -HUP <master>`` starts new workers from
    the preloaded app, which read the changed file before their first request."""
    client = None
    try:
        with _gunicorn(tmp_path, "0") as (root, port, master):
            client = Client(port)
            client.start()
            _write(root / "A.json", _definition(BLUE))
            for _ in range(20):
                assert _live_pixel(port, "A") == tuple(RED)  # not without the signal
            os.kill(master, signal.SIGHUP)
            _until("A is blue after SIGHUP", lambda: _live_pixel(port, "A") == tuple(BLUE))
            client.stop.set()
            client.join(timeout=60)
            assert client.failures == []
    finally:
        if client is not None:
            client.stop.set()


def test_a_rejected_file_is_logged_once_at_start(tmp_path, caplog):
    """The issue saw every rejected file twice on stderr (loader and app); now once."""
    root = tmp_path / "services"
    root.mkdir()
    _points(root)
    _write(root / "Bad.json", _definition(RED, defaultVisiblity=True))
    caplog.set_level(logging.INFO)
    create_app(Settings(service_dirs=(root,), data_dir=root, output_dir=tmp_path / "out"))
    mine = [r for r in caplog.records if "Bad.json" in r.getMessage()]
    assert [r.getMessage() for r in mine] == [
        f"service not loaded: {root / 'Bad.json'}: layers[0].defaultVisiblity: unknown key; "
        "did you mean 'defaultVisibility'?"]


def test_batch_shards_see_the_changed_definition(tmp_path, monkeypatch):
    """Batch-export shards (separate processes) load the catalog themselves: they re-read a
    changed definition too, so a batch image shows what the server now serves."""
    from mapserver.jobs.shards import catalog_for

    root = tmp_path / "services"
    root.mkdir()
    _points(root)
    _write(root / "A.json", _definition(RED))
    monkeypatch.setenv("MAPSERVER_RELOAD", "0.01")

    def colour() -> tuple:
        svc = catalog_for((str(root),), str(root)).service("A")
        return tuple(round(c * 255) for c in svc.layers[0].renderer.classes[0].symbol.color)

    assert colour() == tuple(RED)
    _write(root / "A.json", _definition(BLUE))
    time.sleep(0.05)  # past the interval (not a timing assertion: any later check sees it)
    assert colour() == tuple(BLUE)
