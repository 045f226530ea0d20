"""Jobs settings, read from the environment (see README "Batch exports").

| variable | default | meaning |
| --- | --- | --- |
| MAPSERVER_JOBS_DB | ``<tmp>/mapserver-jobs/<instance>/jobs.sqlite`` | operation store: a SQLite
  file (the default belongs to one server instance, see :func:`instance_key`), or
  ``postgresql://user:password@host[:port]/db`` shared by many hosts |
| MAPSERVER_JOBS_ROOT | ``<tmp>/mapserver-jobs/buckets`` | local buckets: ``<root>/<bucket>`` |
| MAPSERVER_JOBS_BUCKETS | ``{}`` | JSON ``{"bucket": "file:///dir" or "s3://name"}`` |
| MAPSERVER_S3_ENDPOINT | unset | endpoint URL of the S3-compatible store |
| MAPSERVER_JOBS_WORKERS | ``2`` | local worker processes |
| MAPSERVER_DASK_SCHEDULER | unset | ``tcp://host:port``: run shards on that Dask cluster |
| MAPSERVER_JOBS_DISPATCH | ``1`` | ``0``: this process only accepts requests |
| MAPSERVER_JOBS_LEASE | ``30`` | seconds before a RUNNING op of a dead process is taken over |
| MAPSERVER_JOBS_SHARD_DELAY | ``0`` | test hook: seconds each shard sleeps (to observe RUNNING) |
| MAPSERVER_JOBS_DRIVE | unset | ``driveDestination``: ``<dir>/<folder>/<prefix>.tif``
  (unset: refused) |
| MAPSERVER_JOBS_ASSETS | unset | ``assetExportOptions``: COGs under ``<dir>/data``, published
  as layers of the service ``Assets/<project>`` (unset: refused) |
| MAPSERVER_JOBS_INSTANCE | the bind address | names this instance's default operation store |
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BASE = Path(tempfile.gettempdir()) / "mapserver-jobs"


def instance_key(env: dict[str, str]) -> str:
    """Which server instance this process belongs to, for the default operation store.

    Two servers on one host must not share a queue (each would run the other's operations with
    its own catalog), while the gunicorn workers of one server, and that server after a
    restart, must. A running instance is identified by the address it listens on
    (``MAPSERVER_JOBS_INSTANCE``, which gunicorn.conf.py sets from the real bind, else
    ``MAPSERVER_BIND``) plus its service and data folders."""
    bind = env.get("MAPSERVER_JOBS_INSTANCE") or env.get("MAPSERVER_BIND") or "127.0.0.1:8000"
    dirs = env.get("MAPSERVER_SERVICES", "") + "|" + env.get("MAPSERVER_DATA", "")
    digest = hashlib.sha256(f"{bind}|{dirs}".encode()).hexdigest()[:10]
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '_', bind)[:40]}-{digest}"


def is_db_url(text: str) -> bool:
    """A database server's URL (PostgreSQL) rather than a SQLite file path."""
    return text.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True)
class JobConfig:
    db_path: Path = BASE / "jobs.sqlite"
    db_url: str | None = None  # postgresql://…: the shared store (db_path is then unused)
    bucket_root: Path = BASE / "buckets"
    buckets: dict[str, str] = field(default_factory=dict)
    s3_endpoint: str | None = None
    workers: int = 2
    dask_scheduler: str | None = None
    dispatch: bool = True
    lease_seconds: float = 30.0
    poll_seconds: float = 0.2
    max_wait_seconds: float = 60.0
    shard_delay: float = 0.0  # test hook: slow shards down to observe RUNNING states
    drive_root: Path | None = None
    asset_root: Path | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> JobConfig:
        env = dict(os.environ if env is None else env)
        base = cls()
        db = (env.get("MAPSERVER_JOBS_DB") or "").strip()
        url = db if is_db_url(db) else None
        return cls(
            db_path=Path(db) if db and not url else BASE / instance_key(env) / "jobs.sqlite",
            db_url=url,
            bucket_root=Path(env.get("MAPSERVER_JOBS_ROOT", base.bucket_root)),
            buckets=json.loads(env.get("MAPSERVER_JOBS_BUCKETS", "{}")),
            s3_endpoint=env.get("MAPSERVER_S3_ENDPOINT") or None,
            workers=max(1, int(env.get("MAPSERVER_JOBS_WORKERS", base.workers))),
            dask_scheduler=env.get("MAPSERVER_DASK_SCHEDULER") or None,
            dispatch=env.get("MAPSERVER_JOBS_DISPATCH", "1") != "0",
            lease_seconds=float(env.get("MAPSERVER_JOBS_LEASE", base.lease_seconds)),
            shard_delay=float(env.get("MAPSERVER_JOBS_SHARD_DELAY", 0.0)),
            drive_root=Path(env["MAPSERVER_JOBS_DRIVE"]) if env.get("MAPSERVER_JOBS_DRIVE")
            else None,
            asset_root=Path(env["MAPSERVER_JOBS_ASSETS"]) if env.get("MAPSERVER_JOBS_ASSETS")
            else None,
        )
