"""Tiles per second of a map:export pyramid (World, zoom 0-4, 341 tiles) with 1 and 2 local
worker processes. Run: ``python bench/jobs_bench.py``. Pool start-up is excluded by a warm-up
export; the figure is tiles / (endTime - startTime) of the measured operation."""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mapserver.app import create_app  # noqa: E402
from mapserver.jobs.config import JobConfig  # noqa: E402
from mapserver.rest.jobs import install  # noqa: E402
from mapserver.settings import Settings  # noqa: E402

EXPR = {"result": "0", "values": {"0": {"functionInvocationValue": {
    "functionName": "Image.load", "arguments": {"id": {"constantValue": "World"}}}}}}


def body(desc: str, end_zoom: int) -> dict:
    return {"expression": EXPR, "description": desc,
            "tileOptions": {"startZoom": 0, "endZoom": end_zoom},
            "tileExportOptions": {"fileFormat": "PNG", "cloudStorageDestination": {
                "bucket": "bench", "filenamePrefix": desc}}}


def run(client, desc: str, end_zoom: int) -> dict:
    op = client.post("/v1/projects/bench/map:export", json=body(desc, end_zoom)).get_json()
    while not op.get("done"):
        time.sleep(0.1)
        op = client.get(f"/v1/{op['name']}").get_json()
    assert op["metadata"]["state"] == "SUCCEEDED", op
    return op


def ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main() -> None:
    for workers in (1, 2):
        tmp = Path(tempfile.mkdtemp(prefix="jobs-bench-"))
        app = create_app(Settings(output_dir=tmp / "out"))
        svc = install(app, JobConfig(db_path=tmp / "jobs.sqlite", bucket_root=tmp / "b",
                                     workers=workers, poll_seconds=0.02))
        client = app.test_client()
        run(client, "warmup", 1)
        op = run(client, "pyramid", 4)
        meta = op["metadata"]
        tiles = sum(4 ** z for z in range(5))
        secs = ts(meta["endTime"]) - ts(meta["startTime"])
        print(f"workers={workers} tiles={tiles} seconds={secs:.2f} "
              f"tiles_per_second={tiles / secs:.1f}")
        svc.close()


if __name__ == "__main__":
    main()
