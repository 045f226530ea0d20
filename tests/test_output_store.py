"""Images behind ``f=json`` hrefs: served by the app (whichever worker asks), never outside the
output folder, and swept once older than the max age."""

from __future__ import annotations

import os
from pathlib import Path

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
