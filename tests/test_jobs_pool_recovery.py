"""Batch pool recovery (issue 9): errors raised in a pool child come back intact, a child
killed with SIGKILL mid-export costs a retry of its shard (not the operation), and a broken
pool is replaced so later operations never fail because of an earlier one."""

from __future__ import annotations

import os
import pickle
import signal
import sys
import time
from pathlib import Path

import pytest
from jobs_helpers import gcs, load, make_app, pixel_grid, wait_done

from mapserver.errors import InvalidParameter, MapServerError, NotFound
from mapserver.jobs.errors import ApiError
from mapserver.jobs.executor import LocalExecutor
from mapserver.limits import BudgetExceeded

sys.path.insert(0, str(Path(__file__).parent))
import pool_children  # noqa: E402

TALL = pixel_grid("EPSG:31985", 290000, 9120000, 10, 60, 1024)  # 16 strips of 64 rows


def tall_body(prefix: str) -> dict:
    return {"expression": load("Samples/Olinda"), "description": prefix, "grid": TALL,
            "fileExportOptions": gcs("ops", prefix, geoTiffOptions={"tileSize": 64})}


@pytest.mark.parametrize("err", [
    ApiError("INVALID_ARGUMENT", "bad grid"), ApiError("NOT_FOUND", "no such service"),
    InvalidParameter("Invalid", ["'dpi' bad"]), NotFound(), MapServerError("x", code=498),
    BudgetExceeded(details=["took too long"])])
def test_every_error_survives_pickling(err):
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err) and back.to_json() == err.to_json()
    assert str(back) == str(err)


def test_an_error_raised_in_a_child_comes_back_and_the_pool_stays_usable():
    ex = LocalExecutor(1)
    try:
        fut = ex.submit(pool_children.raise_api_error, "bad tileDimensions")
        exc = fut.exception(timeout=60)
        assert isinstance(exc, ApiError) and exc.status == "INVALID_ARGUMENT"
        assert exc.message == "bad tileDimensions" and exc.code == 400
        exc = ex.submit(pool_children.raise_invalid_parameter, "'dpi' x").exception(timeout=60)
        assert isinstance(exc, InvalidParameter) and exc.details == ["'dpi' x"]
        assert not ex.broken
        assert ex.submit(pool_children.pid_after, 0).result(timeout=60) > 0
    finally:
        ex.close()


def test_a_broken_pool_is_replaced_on_the_next_submit():
    ex = LocalExecutor(1)
    try:
        pid = ex.submit(pool_children.pid_after, 0).result(timeout=60)
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 30
        while not ex.broken:  # the pool's manager thread notices the dead child
            assert time.monotonic() < end
            time.sleep(0.05)
        assert ex.submit(pool_children.pid_after, 0).result(timeout=60) != pid
    finally:
        ex.close()


def _pool_pids(svc) -> list[int]:
    pool = svc.dispatcher.executor.pool
    return [p.pid for p in list((pool._processes or {}).values()) if p.is_alive()]


def test_child_killed_mid_export_retries_its_shard_and_later_operations_run(tmp_path, caplog):
    caplog.set_level("WARNING", logger="mapserver.jobs")
    app, svc = make_app(tmp_path, shard_delay=0.2, workers=2)
    client = app.test_client()
    try:
        name = client.post("/v1/projects/p/image:export",
                           json=tall_body("killed")).get_json()["name"]
        end = time.monotonic() + 60
        while True:  # RUNNING with shards in flight
            meta = client.get(f"/v1/{name}").get_json()["metadata"]
            if meta["state"] == "RUNNING" and _pool_pids(svc):
                break
            assert time.monotonic() < end
            time.sleep(0.02)
        time.sleep(0.1)
        victim = _pool_pids(svc)[0]
        os.kill(victim, signal.SIGKILL)
        op = wait_done(client, name, 120)
        assert op["metadata"]["state"] == "SUCCEEDED", op
        assert "lost its worker process; retry 1" in caplog.text  # retried, not failed
        assert (tmp_path / "buckets" / "ops" / "killed.tif").exists()
        assert victim not in _pool_pids(svc)
        # the same worker's next operation runs normally on the renewed pool
        name2 = client.post("/v1/projects/p/image:export",
                            json=tall_body("after")).get_json()["name"]
        op2 = wait_done(client, name2, 120)
        assert op2["metadata"]["state"] == "SUCCEEDED", op2
        a = (tmp_path / "buckets" / "ops" / "killed.tif").read_bytes()
        b = (tmp_path / "buckets" / "ops" / "after.tif").read_bytes()
        assert a == b  # the retried export is exactly the undisturbed one
    finally:
        svc.close()


def test_pool_killed_between_operations_does_not_fail_the_next_one(tmp_path):
    app, svc = make_app(tmp_path, workers=1)
    client = app.test_client()
    try:
        name = client.post("/v1/projects/p/image:export",
                           json=tall_body("first")).get_json()["name"]
        assert wait_done(client, name, 120)["metadata"]["state"] == "SUCCEEDED"
        for pid in _pool_pids(svc):
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.5)
        name = client.post("/v1/projects/p/image:export",
                           json=tall_body("second")).get_json()["name"]
        op = wait_done(client, name, 120)
        assert op["metadata"]["state"] == "SUCCEEDED", op
    finally:
        svc.close()
