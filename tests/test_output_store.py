"""Images behind ``f=json`` hrefs: served by the app (whichever worker asks), never outside the
output folder, and swept once older than the max age."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mapserver.output import OutputStore
from tests.conftest import decode

EXPORT = "/arcgis/rest/services/World/MapServer/export"
OUTPUTS = "/arcgis/rest/directories/arcgisoutput/"


def test_json_href_is_served_and_decodes(client):
    meta = client.get(EXPORT, query_string={"bbox": "-20,-20,20,20", "size": "64,48",
                                            "format": "png32", "f": "json"}).get_json()
    assert meta["href"].startswith("http://localhost" + OUTPUTS + "_ags_map")
    resp = client.get(meta["href"])
    assert resp.status_code == 200
    assert resp.mimetype == "image/png"
    assert decode(resp.data).shape == (48, 64, 4)


def test_href_file_is_readable_by_a_second_app_on_the_same_folder(app, settings):
    """Another gunicorn worker is another process: it finds the file on the shared disk."""
    from mapserver.app import create_app

    meta = app.test_client().get(EXPORT, query_string={"bbox": "-20,-20,20,20", "size": "8,8",
                                                       "f": "json"}).get_json()
    other = create_app(settings).test_client()
    assert other.get(meta["href"]).status_code == 200


def test_unknown_or_traversing_output_names_are_invalid_url(client):
    for name in ("_ags_map" + "0" * 32 + ".png", "..%2F..%2Fetc%2Fpasswd", "conftest.py"):
        resp = client.get(OUTPUTS + name)
        assert resp.mimetype == "application/json"
        assert resp.get_json() == {"error": {"code": 400, "message": "Invalid URL",
                                             "details": ["Invalid URL"]}}


def _file(store: OutputStore, name: str, mtime: float) -> Path:
    p = store.directory / name
    p.write_bytes(b"x")
    os.utime(p, (mtime, mtime))
    return p


def test_sweep_removes_files_older_than_max_age_only(tmp_path):
    store = OutputStore(tmp_path, max_age=900, sweep_interval=60)
    now = 1_800_000_000.0
    old = _file(store, "_ags_map" + "a" * 32 + ".png", now - 901)
    young = _file(store, "_ags_map" + "b" * 32 + ".png", now - 899)
    stale_tmp = _file(store, "._ags_map" + "c" * 32 + ".png.tmp", now - 5000)
    foreign = _file(store, "keep-me.txt", now - 10_000)
    assert store.sweep(now=now) == 2
    assert not old.exists() and not stale_tmp.exists()
    assert young.exists() and foreign.exists()


def test_sweep_runs_at_most_once_per_interval_unless_forced(tmp_path):
    store = OutputStore(tmp_path, max_age=10, sweep_interval=60)
    now = 1_800_000_000.0
    assert store.sweep(now=now) == 0
    f = _file(store, "_ags_map" + "d" * 32 + ".jpg", now - 100)
    assert store.sweep(now=now + 30) == 0 and f.exists()   # within the interval
    assert store.sweep(now=now + 30, force=True) == 1 and not f.exists()
    g = _file(store, "_ags_map" + "e" * 32 + ".jpg", now - 100)
    assert store.sweep(now=now + 91) == 1 and not g.exists()  # interval passed


def test_save_writes_atomically_and_names_are_unguessable(tmp_path):
    store = OutputStore(tmp_path)
    a, b = store.save(b"one", "png"), store.save(b"two", "png")
    assert a != b
    assert store.path(a).read_bytes() == b"one"
    assert store.path("../" + a) is None
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


# --- the output store on S3 (MAPSERVER_OUTPUT=s3://bucket/prefix): many hosts, one store -----

@pytest.fixture(scope="module")
def s3_endpoint():
    from tests.shared_state_helpers import moto_server, s3

    with moto_server() as url:
        s3(url).create_bucket(Bucket="outputs")
        yield url


def _s3_app(tmp_path: Path, endpoint: str, location: str = "s3://outputs/hrefs"):
    from mapserver.app import create_app
    from mapserver.settings import PROJECT_ROOT, Settings

    return create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                               data_dir=PROJECT_ROOT / "data", output_dir=location,
                               tile_cache_dir=tmp_path / "tiles", s3_endpoint=endpoint))


def test_s3_href_made_by_one_app_is_served_by_another_with_the_same_bytes(tmp_path, client,
                                                                          s3_endpoint):
    from tests.shared_state_helpers import s3

    client_local = client  # the default: a local folder
    host_a = _s3_app(tmp_path, s3_endpoint).test_client()
    host_b = _s3_app(tmp_path, s3_endpoint).test_client()
    query = {"bbox": "-20,-20,20,20", "size": "64,48", "format": "png32"}
    meta = host_a.get(EXPORT, query_string={**query, "f": "json"}).get_json()
    name = meta["href"].rsplit("/", 1)[1]
    stored = s3(s3_endpoint).get_object(Bucket="outputs", Key=f"hrefs/{name}")["Body"].read()
    resp = host_b.get(meta["href"])
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert resp.data == stored
    assert resp.data == host_b.get(EXPORT, query_string={**query, "f": "image"}).data
    local = client_local.get(client_local.get(EXPORT, query_string={**query, "f": "json"})
                             .get_json()["href"])
    assert resp.headers["Cache-Control"] == local.headers["Cache-Control"]
    assert resp.headers["Content-Type"] == local.headers["Content-Type"]
    again = host_a.get(meta["href"], headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status_code == 304
    # the same answers as the local store for names that are not ours
    for bad in ("_ags_map" + "0" * 32 + ".png", "..%2F..%2Fetc%2Fpasswd", "conftest.py"):
        assert host_b.get(OUTPUTS + bad).get_json() == {"error": {
            "code": 400, "message": "Invalid URL", "details": ["Invalid URL"]}}
    assert host_b.get(meta["href"]).data == stored  # and the real one still answers


def test_s3_sweep_deletes_only_our_expired_objects_once_per_interval(s3_endpoint):
    from tests.shared_state_helpers import s3

    store = OutputStore("s3://outputs/sweep", max_age=10, sweep_interval=60,
                        s3_endpoint=s3_endpoint)
    client = s3(s3_endpoint)
    client.put_object(Bucket="outputs", Key="sweep/keep-me.txt", Body=b"x")
    client.put_object(Bucket="outputs", Key="sweep/sub/_ags_map" + "a" * 32 + ".png", Body=b"x")
    name = store.save(b"one", "png")  # this save swept (nothing old yet)
    now = time.time()
    assert store.sweep(now=now + 30) == 0  # old by then, but within the sweep interval
    assert store.read(name) == b"one"
    assert store.sweep(now=now + 5, force=True) == 0  # not old enough
    assert store.sweep(now=now + 70) == 1  # the interval (since the forced one) passed
    assert store.read(name) is None
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="outputs",
                                                           Prefix="sweep/")["Contents"])
    assert keys == ["sweep/keep-me.txt", "sweep/sub/_ags_map" + "a" * 32 + ".png"]


def test_unreachable_output_store_is_a_503_for_hrefs_only_and_the_health_check(tmp_path):
    from tests.shared_state_helpers import CREDENTIALS, free_port

    os.environ.update({k: os.environ.get(k, v) for k, v in CREDENTIALS.items()})
    app = _s3_app(tmp_path, f"http://127.0.0.1:{free_port()}")
    client = app.test_client()
    health = client.get("/arcgis/rest/info/healthCheck")
    assert health.status_code == 503
    assert "outputs: object store s3://outputs/hrefs: the endpoint does not answer" in \
        health.get_json()["error"]["details"]
    query = {"bbox": "-20,-20,20,20", "size": "32,32"}
    failed = client.get(EXPORT, query_string={**query, "f": "json"})
    assert failed.status_code == 200  # ArcGIS error JSON, as every other export error
    assert failed.get_json() == {"error": {
        "code": 503, "message": "s3://outputs/hrefs: cannot write "
        + failed.get_json()["error"]["message"].split("cannot write ")[1], "details": []}}
    assert failed.get_json()["error"]["message"].endswith(": the endpoint does not answer")
    href = client.get(OUTPUTS + "_ags_map" + "1" * 32 + ".png")
    assert href.status_code == 503 and href.get_json()["error"]["code"] == 503
    # requests that do not need the store answer as usual, right after the failures
    image = client.get(EXPORT, query_string={**query, "f": "image"})
    assert image.status_code == 200 and decode(image.data).shape == (32, 32, 4)
    info = client.get("/arcgis/rest/services/World/MapServer", query_string={"f": "json"})
    assert info.status_code == 200 and info.get_json()["mapName"]
