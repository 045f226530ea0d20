"""The batch features that need an optional extra, checked when an export is submitted (and
again where the module is used, for an operation queued by a server that had it)."""

from __future__ import annotations

from mapserver.extras import missing
from mapserver.jobs.config import JobConfig
from mapserver.jobs.errors import ApiError

VIDEO = ("av", "batch", "video export")
DASK = ("distributed", "batch", "running shards on a Dask cluster (MAPSERVER_DASK_SCHEDULER)")


def require(module: str, extra: str, feature: str) -> None:
    """FAILED_PRECONDITION (HTTP 400) naming the extra to install, when ``module`` is missing."""
    message = missing(module, extra, feature)
    if message is not None:
        raise ApiError("FAILED_PRECONDITION", message)


def check_submit(kind: str, config: JobConfig) -> None:
    """What an export of ``kind`` needs on this server, beyond its destination (which
    :func:`mapserver.jobs.destinations.bucket` checks)."""
    if kind == "video":
        require(*VIDEO)
    if config.dask_scheduler:
        require(*DASK)
