"""The PostgreSQL operation store (``MAPSERVER_JOBS_DB=postgresql://…``): the same answers as
the SQLite store, exclusive claims between processes, lease takeover, cancel, and a database
that is down (503s and a failing health check, while maps keep drawing).

Needs the PostgreSQL server CI starts (``.ci/start-postgres``); fails without it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from mapserver.jobs.config import JobConfig
from mapserver.jobs.store import Store, open_store
from mapserver.jobs.store_pg import PgStore
from mapserver.settings import PROJECT_ROOT
from tests.jobs_helpers import gcs, load, make_app, pixel_grid, wait_done
from tests.shared_state_helpers import free_port, postgres_schema

HEALTH = "/arcgis/rest/info/healthCheck"


@pytest.fixture()
def pg_url():
    with postgres_schema() as url:
        yield url


def row(op_id: str, priority: int = 0, request_id: str | None = None,
        created: float | None = None) -> dict:
    now = time.time() if created is None else created
    return {"id": op_id, "project": "p", "type": "EXPORT_IMAGE", "kind": "image",
            "state": "PENDING", "description": op_id, "priority": priority,
            "request_id": request_id, "body_hash": "h", "workload_tag": None,
            "payload": "{}", "create_time": now, "update_time": now, "total": 2}


def test_config_selects_postgres_by_url_and_sqlite_otherwise(tmp_path, pg_url):
    cfg = JobConfig.from_env({"MAPSERVER_JOBS_DB": pg_url})
    assert cfg.db_url == pg_url
    assert isinstance(open_store(cfg.db_url), PgStore)
    cfg = JobConfig.from_env({"MAPSERVER_JOBS_DB": str(tmp_path / "j.sqlite")})
    assert cfg.db_url is None and cfg.db_path == tmp_path / "j.sqlite"
    assert type(open_store(cfg.db_path)) is Store


def _scenario(store) -> list:
    """A sequence of store calls; the observable answers, for comparing the two stores."""
    t = 1_800_000_000.0
    out = []
    for i, (prio, rid) in enumerate([(0, None), (5, "r1"), (0, None), (5, None)]):
        op, created = store.insert(row(f"OP{i}", prio, rid, t + i), [{"a": i}, {"b": i}])
        out.append((op["id"], op["state"], created))
    op, created = store.insert(row("OPX", 5, "r1", t + 9), [])  # requestId replay
    out.append((op["id"], created))
    order = []
    while (op := store.claim("me", 30)) is not None:
        order.append((op["id"], op["state"], op["attempt"]))
    out.append(order)
    store.shard_done("OP1", 0, {"cpu": 1.5})
    out.append(store.pending_shards("OP1"))
    out.append([(i, s, r) for i, s, r in store.shard_results("OP1")])
    store.request_cancel("OP2")
    store.finish("OP3", "SUCCEEDED", uris=["gs://b/x"])
    store.delete("OP0")
    got = store.get("OP1")
    out.append((got["done"], got["cpu_seconds"], got["total"]))
    out.append(store.get("OP0"))
    out.append([(r["id"], r["state"]) for r in store.list("p", "", [], 10, 0)])
    out.append([r["id"] for r in store.list("p", "AND state = ?", ["RUNNING"], 10, 0)])
    out.append([r["id"] for r in store.list("p", "AND create_time >= ?", [t + 2], 1, 1)])
    out.append(json.loads(store.get("OP3")["destination_uris"]))
    out.append(store.renew("OP2", "me", 30))
    out.append(store.renew("OP2", "someone-else", 30))
    out.append(store.count_by_state())
    return out


def test_postgres_store_answers_as_the_sqlite_store(tmp_path, pg_url):
    sqlite_answers = _scenario(Store(tmp_path / "jobs.sqlite"))
    pg_answers = _scenario(PgStore(pg_url))
    assert pg_answers == sqlite_answers
    # and what they are: priority first, then age; the replay returns the first op
    assert sqlite_answers[4] == ("OP1", False)
    assert sqlite_answers[5] == [("OP1", "RUNNING", 1), ("OP3", "RUNNING", 1),
                                 ("OP0", "RUNNING", 1), ("OP2", "RUNNING", 1)]
    assert sqlite_answers[-3:] == ["CANCELLING", None, {"RUNNING": 1, "CANCELLING": 1,
                                                       "SUCCEEDED": 1}]


CLAIMER = """
import json, sys, time
from pathlib import Path
from mapserver.jobs.store_pg import PgStore
store = PgStore(sys.argv[1])
go = Path(sys.argv[3])
(go.parent / f"ready-{sys.argv[2]}").touch()  # connected
while not go.exists():
    time.sleep(0.001)
got = []
while (op := store.claim(sys.argv[2], 60)) is not None:
    got.append(op["id"])
    time.sleep(0.01)
print(json.dumps(got))
"""


def test_two_processes_never_claim_the_same_operation(tmp_path, pg_url):
    store = PgStore(pg_url)
    ids = [f"OP{i:03d}" for i in range(60)]
    for i, op_id in enumerate(ids):
        store.insert(row(op_id, created=1_800_000_000.0 + i), [{"s": 0}])
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CLAIMER, pg_url, name, str(go)],
                              cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
             for name in ("A", "B")]
    end = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in ("A", "B")):
        assert time.monotonic() < end and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()  # both connected: they start claiming together
    got = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    a, b = set(got[0]), set(got[1])
    assert not a & b  # exclusive
    assert sorted(a | b) == ids  # and complete
    assert a and b  # both really competed
    rows = {r["id"]: r for r in store.list("p", "", [], 100, 0)}
    assert {r["attempt"] for r in rows.values()} == {1}
    assert {rows[i]["owner"] for i in a} == {"A"} and {rows[i]["owner"] for i in b} == {"B"}


def test_a_lapsed_lease_is_taken_over_and_the_old_owner_walks_away(pg_url):
    a, b = PgStore(pg_url), PgStore(pg_url)  # two hosts: two connections
    a.insert(row("OPL"), [{"s": 0}, {"s": 1}])
    first = a.claim("host-a", 3.0)
    assert (first["id"], first["attempt"], first["owner"]) == ("OPL", 1, "host-a")
    assert b.claim("host-b", 3.0) is None  # the lease holds
    a.shard_done("OPL", 0, {"cpu": 0.25})
    time.sleep(3.3)  # host A died: no renewal
    taken = b.claim("host-b", 30.0)
    assert (taken["id"], taken["attempt"], taken["owner"], taken["state"]) == \
        ("OPL", 2, "host-b", "RUNNING")
    assert b.pending_shards("OPL") == [(1, {"s": 1})]  # only the unfinished shard re-runs
    assert a.renew("OPL", "host-a", 30.0) is None  # A, back, sees it lost the operation
    assert b.renew("OPL", "host-b", 30.0) == "RUNNING"


def test_cancel_pending_running_and_lapsed_cancelling(pg_url):
    store = PgStore(pg_url)
    store.insert(row("OPP", created=1.0), [{}])
    store.insert(row("OPR", created=2.0), [{}])
    store.request_cancel("OPP")  # still PENDING: cancelled at once, never claimed
    op = store.get("OPP")
    assert op["state"] == "CANCELLED" and json.loads(op["error"]) == {
        "code": 1, "message": "Cancelled."}
    assert store.claim("d1", 0.5)["id"] == "OPR"
    store.request_cancel("OPR")  # RUNNING: its dispatcher sees it on the next renewal
    assert store.renew("OPR", "d1", 0.5) == "CANCELLING"
    time.sleep(0.8)  # that dispatcher died before recording the cancel
    again = store.claim("d2", 30)  # the taker-over gets it still CANCELLING, to finish it
    assert (again["id"], again["state"], again["attempt"]) == ("OPR", "CANCELLING", 2)
    store.finish("OPR", "CANCELLED", {"code": 1, "message": "Cancelled."})
    store.request_cancel("OPR")  # terminal: no change
    assert store.get("OPR")["state"] == "CANCELLED"
    assert store.claim("d3", 30) is None


GRID = pixel_grid("EPSG:4326", -35.0, -7.9, 0.001, 64, 64)


def test_jobs_api_on_postgres_submits_runs_lists_and_replays(tmp_path, pg_url):
    app, svc = make_app(tmp_path, db_url=pg_url)
    try:
        client = app.test_client()
        body = {"expression": load("Samples/Olinda"), "description": "pg", "grid": GRID,
                "fileExportOptions": gcs("ops", "pg"), "requestId": "once"}
        op = client.post("/v1/projects/p/image:export", json=body).get_json()
        assert client.post("/v1/projects/p/image:export", json=body).get_json()["name"] == \
            op["name"]  # requestId replay: the same operation
        done = wait_done(client, op["name"])
        assert done["metadata"]["state"] == "SUCCEEDED", done
        assert (tmp_path / "buckets" / "ops" / "pg.tif").is_file()
        listed = client.get("/v1/projects/p/operations",
                            query_string={"filter": 'metadata.state="SUCCEEDED"'}).get_json()
        assert [o["name"] for o in listed["operations"]] == [op["name"]]
        assert client.get(HEALTH).get_json() == {"success": True}
    finally:
        svc.close()


@pytest.mark.parametrize("url, reason", [
    (lambda: f"postgresql://mapserver:mapserver@127.0.0.1:{free_port()}/mapserver_test",
     "the database server does not answer"),
    (lambda: _with_password("wrong-secret"), "password authentication failed"),
    (lambda: "postgresql://mapserver:wrong-secret@[::1/mapserver_test",
     "MAPSERVER_JOBS_DB is not a valid postgresql:// URL"),
])
def test_a_database_that_is_down_is_a_503_not_a_500_and_maps_still_draw(tmp_path, url, reason):
    from tests.shared_state_helpers import postgres_url

    postgres_url()  # the server itself is up: only this URL is bad
    bad = url()
    app, svc = make_app(tmp_path, db_url=bad)
    try:
        client = app.test_client()
        health = client.get(HEALTH)
        assert health.status_code == 503
        details = health.get_json()["error"]["details"]
        assert details == [f"operation store: {reason}"]
        assert "wrong-secret" not in health.get_data(as_text=True)
        body = {"expression": load("Samples/Olinda"), "description": "down", "grid": GRID,
                "fileExportOptions": gcs("ops", "down")}
        resp = client.post("/v1/projects/p/image:export", json=body)
        assert resp.status_code == 503
        assert resp.get_json() == {"error": {"code": 503, "message": f"operation store: {reason}",
                                             "status": "UNAVAILABLE"}}
        assert client.get("/v1/projects/p/operations/NOPE").status_code == 503
        # requests that need no operation store are unaffected
        export = client.get("/arcgis/rest/services/World/MapServer/export",
                            query_string={"bbox": "-20,-20,20,20", "size": "32,32",
                                          "f": "image"})
        assert export.status_code == 200 and export.mimetype == "image/png"
        assert client.get("/arcgis/rest/services/World/MapServer",
                          query_string={"f": "json"}).status_code == 200
    finally:
        svc.close()


def _with_password(password: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    from tests.shared_state_helpers import postgres_url

    parts = urlsplit(postgres_url())
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_the_store_reconnects_when_the_server_dropped_its_connection(pg_url):
    import psycopg

    store = PgStore(pg_url)
    store.insert(row("OPC"), [{}])
    pid = store.conn().execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    base = pg_url.split("?")[0]
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    # the call on the dead connection is retried once on a new one: the caller sees nothing
    assert store.get("OPC")["id"] == "OPC"
    assert store.conn().execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] != pid


TALL = pixel_grid("EPSG:31985", 290000, 9120000, 10, 60, 1024)  # 16 strips of 64 rows


def test_a_dead_hosts_operation_is_finished_by_another_host_without_its_disk(tmp_path,
                                                                             pg_url):
    """Host A (a ``mapserver-jobs worker`` process with its own staging folder) dies mid-export;
    host B (another folder, the same PostgreSQL) takes the operation over once the lease
    lapses. A's finished shards are on A's disk, so B runs them again: the file is whole."""
    import io
    import os
    import signal

    import numpy as np
    import psycopg
    import rasterio
    from PIL import Image

    app, svc = make_app(tmp_path / "host-b", db_url=pg_url, dispatch=False, lease_seconds=1.0)
    client = app.test_client()
    body = {"expression": load("Samples/Olinda"), "description": "move", "grid": TALL,
            "fileExportOptions": gcs("ops", "move", geoTiffOptions={"tileSize": 64})}
    name = client.post("/v1/projects/p/image:export", json=body).get_json()["name"]
    op_id = name.rsplit("/", 1)[1]
    env = dict(os.environ, MAPSERVER_JOBS_DB=pg_url,
               MAPSERVER_JOBS_ROOT=str(tmp_path / "host-a"), MAPSERVER_JOBS_WORKERS="1",
               MAPSERVER_JOBS_LEASE="1", MAPSERVER_JOBS_SHARD_DELAY="0.25",
               PYTHONPATH=str(PROJECT_ROOT))
    worker = subprocess.Popen([sys.executable, "-m", "mapserver.cli.jobs", "worker"], env=env,
                              start_new_session=True)
    try:
        end = time.monotonic() + 90
        while client.get(f"/v1/{name}").get_json()["metadata"]["stages"][0][
                "completeWorkUnits"] < 3:
            assert time.monotonic() < end and worker.poll() is None
            time.sleep(0.05)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    assert list((tmp_path / "host-a" / ".staging" / op_id / "shards").glob("*.npz"))
    try:
        svc.dispatcher.start()  # host B
        op = wait_done(client, name, timeout=120)
        assert op["metadata"]["state"] == "SUCCEEDED" and op["metadata"]["attempt"] == 2, op
        with psycopg.connect(pg_url) as db:
            runs = dict(db.execute("SELECT idx, runs FROM mapserver_shards WHERE op_id=%s",
                                   (op_id,)).fetchall())
        assert len(runs) == 16 and min(runs.values()) >= 1
        with rasterio.open(tmp_path / "host-b" / "buckets" / "ops" / "move.tif") as ds:
            tif = ds.read().transpose(1, 2, 0)
        ref = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/export", query_string={
            "bbox": "290000,9109760,290600,9120000", "size": "60,1024", "format": "png32",
            "transparent": "true", "f": "image"})
        assert (tif == np.asarray(Image.open(io.BytesIO(ref.data)).convert("RGBA"))).all()
    finally:
        svc.close()
