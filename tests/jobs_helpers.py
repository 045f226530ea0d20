"""Shared builders for the batch-export tests (request bodies, a JobService on a temp DB)."""

from __future__ import annotations

import time
from pathlib import Path

from mapserver.app import create_app
from mapserver.jobs.config import JobConfig
from mapserver.rest.jobs import install
from mapserver.settings import PROJECT_ROOT, Settings


def make_app(tmp: Path, **config):
    app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                              data_dir=PROJECT_ROOT / "data", output_dir=tmp / "output",
                              tile_cache_dir=tmp / "tilecache"))
    cfg = dict(db_path=tmp / "jobs.sqlite", bucket_root=tmp / "buckets", workers=2,
               poll_seconds=0.05, lease_seconds=2.0)
    cfg.update(config)
    svc = install(app, JobConfig(**cfg))
    return app, svc


def load(image_id: str, **args) -> dict:
    a = {"id": {"constantValue": image_id}}
    a.update({k: {"constantValue": v} for k, v in args.items()})
    return {"result": "0", "values": {"0": {"functionInvocationValue": {
        "functionName": "Image.load", "arguments": a}}}}


def call(name: str, **args) -> dict:
    return {"functionInvocationValue": {"functionName": name, "arguments": args}}


def gcs(bucket: str, prefix: str, fmt: str | None = None, **extra) -> dict:
    out = {"cloudStorageDestination": {"bucket": bucket, "filenamePrefix": prefix}, **extra}
    if fmt:
        out["fileFormat"] = fmt
    return out


def pixel_grid(crs: str, x0: float, y0: float, res: float, w: int, h: int) -> dict:
    return {"crsCode": crs, "affineTransform": {"scaleX": res, "shearX": 0, "translateX": x0,
                                                "shearY": 0, "scaleY": -res, "translateY": y0},
            "dimensions": {"width": w, "height": h}}


def wait_done(client, name: str, timeout: float = 60) -> dict:
    end = time.monotonic() + timeout
    while True:
        op = client.get(f"/v1/{name}").get_json()
        if op.get("done") or time.monotonic() > end:
            return op
        time.sleep(0.05)
