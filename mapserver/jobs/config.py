"""Jobs settings, read from the environment (see README "Batch exports").

| variable | default | meaning |
| --- | --- | --- |
| MAPSERVER_JOBS_DB | ``<tmp>/mapserver-jobs/jobs.sqlite`` | operation store |
| MAPSERVER_JOBS_ROOT | ``<tmp>/mapserver-jobs/buckets`` | local buckets: ``<root>/<bucket>`` |
| MAPSERVER_JOBS_BUCKETS | ``{}`` | JSON ``{"bucket": "file:///dir" or "s3://name"}`` |
| MAPSERVER_S3_ENDPOINT | unset | endpoint URL of the S3-compatible store |
| MAPSERVER_JOBS_WORKERS | ``2`` | local worker processes |
| MAPSERVER_DASK_SCHEDULER | unset | ``tcp://host:port``: run shards on that Dask cluster |
| MAPSERVER_JOBS_DISPATCH | ``1`` | ``0``: this process only accepts requests |
| MAPSERVER_JOBS_LEASE | ``30`` | seconds before a RUNNING op of a dead process is taken over |
| MAPSERVER_JOBS_SHARD_DELAY | ``0`` | test hook: seconds each shard sleeps (to observe RUNNING) |
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BASE = Path(tempfile.gettempdir()) / "mapserver-jobs"


@dataclass(frozen=True)
class JobConfig:
    db_path: Path = BASE / "jobs.sqlite"
    bucket_root: Path = BASE / "buckets"
    buckets: dict[str, str] = field(default_factory=dict)
    s3_endpoint: str | None = None
    workers: int = 2
    dask_scheduler: str | None = None
    dispatch: bool = True
    lease_seconds: float = 30.0
    poll_seconds: float = 0.2
    max_tiles: int = 100_000
    max_wait_seconds: float = 60.0
    shard_delay: float = 0.0  # test hook: slow shards down to observe RUNNING states

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> JobConfig:
        env = dict(os.environ if env is None else env)
        base = cls()
        return cls(
            db_path=Path(env.get("MAPSERVER_JOBS_DB", base.db_path)),
            bucket_root=Path(env.get("MAPSERVER_JOBS_ROOT", base.bucket_root)),
            buckets=json.loads(env.get("MAPSERVER_JOBS_BUCKETS", "{}")),
            s3_endpoint=env.get("MAPSERVER_S3_ENDPOINT") or None,
            workers=max(1, int(env.get("MAPSERVER_JOBS_WORKERS", base.workers))),
            dask_scheduler=env.get("MAPSERVER_DASK_SCHEDULER") or None,
            dispatch=env.get("MAPSERVER_JOBS_DISPATCH", "1") != "0",
            lease_seconds=float(env.get("MAPSERVER_JOBS_LEASE", base.lease_seconds)),
            shard_delay=float(env.get("MAPSERVER_JOBS_SHARD_DELAY", 0.0)),
        )
