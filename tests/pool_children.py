"""Functions run inside batch pool children by tests/test_jobs_pool_recovery.py (importable by
forkserver children by module name)."""

from __future__ import annotations

import os
import time

from mapserver.errors import InvalidParameter
from mapserver.jobs.errors import ApiError


def raise_api_error(message: str) -> None:
    raise ApiError("INVALID_ARGUMENT", message)


def raise_invalid_parameter(message: str) -> None:
    raise InvalidParameter("Invalid or missing input parameters.", [message], code=400)


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()
