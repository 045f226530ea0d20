"""Metrics across gunicorn workers: prometheus_client's multiprocess mode, set up by the
gunicorn config (Flask-free, and free of prometheus_client at import time).

Why: each worker is its own process with its own counters; a scrape lands on one worker.
In multiprocess mode every process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR``
and ``/metrics`` adds up the files of all workers, dead ones included (counters never go
back). prometheus_client picks its value class when it is first imported, so the directory
must be in the environment before the app (and so prometheus_client) is loaded: the config
calls :func:`prepare` at load time, in the master, before ``preload_app`` imports the app.

- :func:`prepare`: choose the directory (``PROMETHEUS_MULTIPROC_DIR`` if set, else a new
  temporary one) unless metrics are off (``MAPSERVER_METRICS=off``);
- :func:`on_starting` (gunicorn's hook, once in the master): empty it, so values from an earlier
  run of the server are not added to this one's;
- :func:`child_exit` (gunicorn's hook, in the master): mark a dead worker's live gauges gone;
- :func:`on_exit` (gunicorn's hook, in the master): remove the directory if it was made here.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "mapserver-metrics-"
log = logging.getLogger(__name__)
_made: str | None = None  # the temporary directory prepare() made (removed on_exit)


def enabled(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get("MAPSERVER_METRICS", "")
    return value.strip().lower() not in ("off", "0", "false", "no")


def prepare() -> str | None:
    """The multiprocess directory for this server (created), or None with metrics off."""
    if not enabled():
        return None
    global _made
    path = os.environ.get(ENV)
    if not path:
        _remove_orphans()
        path = _made = tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-")
        os.environ[ENV] = path
        # also when no server runs after all (``mapserver serve --print-config``); only in
        # this process, not in forked workers, which inherit the handler
        atexit.register(_remove_made, os.getpid())
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


def _remove_orphans() -> None:
    """Temporary directories of servers that were killed (SIGKILL skips :func:`on_exit`):
    named after their master's pid, removed once that process is gone."""
    for item in Path(tempfile.gettempdir()).glob(PREFIX + "*-*"):
        pid = item.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(item, ignore_errors=True)
        except OSError:  # alive, another user's
            pass


def wipe(path: str) -> None:
    """Remove the value files of an earlier run (only prometheus_client's ``*.db`` files)."""
    for item in Path(path).glob("*.db"):
        try:
            item.unlink()
        except OSError as exc:
            log.warning("metrics: cannot remove %s: %s", item.name, exc)


def on_starting(_server: object = None) -> None:
    path = os.environ.get(ENV)
    if path and enabled():
        wipe(path)


def on_exit(_server: object = None) -> None:
    """The master stops: remove the directory if :func:`prepare` made it."""
    _remove_made(os.getpid())


def _remove_made(pid: int) -> None:
    if _made is not None and os.getpid() == pid:
        shutil.rmtree(_made, ignore_errors=True)


def child_exit(_server: object, worker: object) -> None:
    if not os.environ.get(ENV) or not enabled():
        return
    from prometheus_client import multiprocess

    pid = getattr(worker, "pid", None)
    if pid is not None:
        multiprocess.mark_process_dead(pid)


def active() -> bool:
    """Is this process writing its metrics to the multiprocess directory?"""
    if not os.environ.get(ENV):
        return False
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue
