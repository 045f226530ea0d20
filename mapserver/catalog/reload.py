"""Hot reload of service definitions: publish, change or remove a service without a restart.

Each process checks the definition files itself (:class:`~mapserver.catalog.live.LiveCatalog`)
lazily, before a request, at most once per ``reload_interval`` seconds
(``MAPSERVER_RELOAD``; 0: only after a fork or SIGHUP), and swaps the new catalog in wherever
the app holds one: the :class:`AppState` (replaced as a whole, one dict assignment, so a
request sees either the old or the new state), the security state, and the batch API's base
catalog. Requests in flight keep the service objects they already hold.

Why per process: gunicorn's ``preload_app`` loads the app once in the master and forks the
workers, so a SIGHUP to the master starts new workers from the master's (old) app; those new
workers check the files before their first request (a changed pid forces the check), and so do
workers that replace one after ``max_requests``. Outside gunicorn, a SIGHUP handler forces the
next check.

Problems are logged once per change: the process that loads the app logs them at start
(``create_app``); later ones are logged by the first worker of that server to find them (a
marker file per problem and file stamp under the temp folder), not once per worker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

from flask import Flask

from mapserver.catalog.live import Change, LiveCatalog
from mapserver.catalog.model import Catalog
from mapserver.settings import Settings

log = logging.getLogger(__name__)
EXT = "mapserver_reload"


class Reloader:
    """The app's :class:`LiveCatalog` plus the swap into the app's holders."""

    def __init__(self, app: Flask, settings: Settings) -> None:
        self.app = app
        state = app.extensions["mapserver"]
        self.live = LiveCatalog(settings.service_dirs, settings.data_dir,
                                settings.reload_interval, initial=state.catalog)
        self._hup = False

    def before_request(self) -> None:
        """Check (cheaply) and swap; never fails a request."""
        force, self._hup = self._hup, False
        try:
            change = self.live.check(force=force)
        except Exception:  # noqa: BLE001 - a reload bug must not take requests down
            log.exception("service definitions could not be reloaded")
            return
        if change is not None:
            self.swap(change.catalog)
            report(change)

    def swap(self, catalog: Catalog) -> None:
        app = self.app
        state = app.extensions["mapserver"]
        app.extensions["mapserver"] = dataclasses.replace(state, catalog=catalog)
        sec = app.extensions.get("mapserver_security")
        if sec is not None:
            sec.use_catalog(catalog)
        jobs = app.extensions.get("mapserver_jobs")
        live = getattr(jobs, "live", None)
        if live is not None:  # jobs/assets.py LiveCatalog: this base, merged with the assets
            live.rebase(catalog)  # (rest/jobs.py's hook merges them before the view runs)

    def on_sighup(self, _signum: int, _frame: object) -> None:
        self._hup = True


def report(change: Change) -> None:
    """Log what a check found, once per server (see the module docstring)."""
    for name in change.loaded:
        if _first_to_say(f"loaded {name} {change.catalog.files}"):
            log.info("service (re)loaded: %s", name)
    for name in change.removed:
        if _first_to_say(f"removed {name} {change.catalog.files}"):
            log.info("service removed: %s", name)
    for problem in change.new_problems:
        path = problem.split(": ", 1)[0]
        if _first_to_say(f"{problem} {change.catalog.files.get(path)}"):
            log.error("service not loaded: %s", problem)


def _first_to_say(message: str) -> bool:
    """True in exactly one worker of this server for a given message (an O_EXCL marker file
    keyed by the master's pid); True whenever the marker folder cannot be used."""
    key = hashlib.sha1(f"{os.getppid()}|{message}".encode()).hexdigest()
    folder = Path(tempfile.gettempdir()) / f"mapserver-reload-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return True
    os.close(fd)
    _forget_old_markers(folder)
    return True


def _forget_old_markers(folder: Path, max_age: float = 86400.0) -> None:
    """Markers older than a day go (only written when a definition changes: rare)."""
    limit = time.time() - max_age
    for marker in folder.iterdir():
        try:
            if marker.stat().st_mtime < limit:
                marker.unlink()
        except OSError:
            pass


def install(app: Flask, settings: Settings) -> Reloader:
    """Check before every request (first of the app's hooks, so access control and the
    batch API see the same catalog as the view)."""
    reloader = Reloader(app, settings)
    app.extensions[EXT] = reloader
    app.before_request_funcs.setdefault(None, []).insert(0, reloader.before_request)
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
                signal.signal(signal.SIGHUP, reloader.on_sighup)
        except (ValueError, OSError, AttributeError):  # no SIGHUP here (Windows)
            pass
    return reloader
