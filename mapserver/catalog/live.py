"""The catalog as the definition files are now: re-read only what changed, keep what did not.

gunicorn preloads the app in the master and forks the workers, so neither SIGHUP nor a file
change reaches a worker's copy of the catalog; each worker therefore checks for itself (a stat
of the definition files, at most once per interval, and always once after a fork). A changed
or added file is loaded on its own; every unchanged service keeps its objects, so its feature
tables stay the ones shared copy-on-write with the master. A file that no longer loads does not
replace the version being served: the old service keeps answering and the problem is listed
until the file is fixed. A removed file removes its service.

No Flask here: ``catalog/reload.py`` wires this into the app; anything else (a batch worker)
can hold one too.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mapserver.catalog import definitions
from mapserver.catalog.loader import load_service, unexpected
from mapserver.catalog.model import Catalog, Service
from mapserver.errors import ServiceDefinitionError

KEPT = " (the previous version is still served)"


@dataclass(frozen=True)
class _Entry:
    file: definitions.DefinitionFile
    service: Service | None  # what is served for this file (maybe an older version)
    problem: str | None  # why the current file content is not served


@dataclass(frozen=True)
class Change:
    """What one check found: the new catalog, and what to report about it."""

    catalog: Catalog
    loaded: tuple[str, ...]  # service names (re)loaded from a changed or added file
    removed: tuple[str, ...]  # service names whose file is gone
    new_problems: tuple[str, ...]  # problems not reported before


class LiveCatalog:
    """Holds the current catalog of some services folders and reloads it on demand.

    :meth:`check` is cheap when nothing changed (a directory walk and a stat per file) and
    never raises for a bad definition; one thread reloads at a time while others keep using
    :attr:`catalog`."""

    def __init__(self, service_dirs: Sequence[Path], data_dir: Path, interval: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 initial: Catalog | None = None) -> None:
        self.service_dirs = tuple(Path(p) for p in service_dirs)
        self.data_dir = Path(data_dir)
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[Path, _Entry] = {}
        self._folder_problems: tuple[str, ...] = ()
        self.catalog = Catalog(services={}, folders=())
        self._pid = os.getpid()
        self._next = 0.0
        self.generation = 0
        self._stale = False
        if initial is not None:
            self._adopt(initial)
        else:
            self._reload(force_all=True)

    def _adopt(self, catalog: Catalog) -> None:
        """Take over a catalog ``load_catalog`` just made, with the file stamps it read."""
        by_path = {svc.path: svc for svc in catalog.services.values()}
        files, folder_problems = definitions.scan(self.service_dirs)
        for f in files:
            stamp = catalog.files.get(str(f.path))
            if stamp is None:
                continue  # added since: the first check loads it
            svc = by_path.get(str(f.path))
            problem = next((p for p in catalog.problems if p.startswith(f"{f.path}: ")), None)
            self._entries[f.path] = _Entry(
                definitions.DefinitionFile(f.path, f.root, f.name, stamp), svc, problem)
        self._folder_problems = tuple(folder_problems)
        self.catalog = catalog
        self._next = self.clock() + self.interval
        # a file read by load_catalog is gone already: the first check must rebuild
        self._stale = set(catalog.files) != {str(p) for p in self._entries}

    def use_clock(self, clock: Callable[[], float]) -> None:
        """Measure the interval with ``clock`` from now on (tests step through it)."""
        self.clock = clock
        self._next = clock() + self.interval

    def due(self) -> bool:
        """Whether a check is due: the interval passed (0: never by time), or this process
        is a fork of the one that last checked (a new gunicorn worker after SIGHUP or
        max_requests)."""
        if os.getpid() != self._pid:
            return True
        return self.interval > 0 and self.clock() >= self._next

    def check(self, force: bool = False) -> Change | None:
        """Reload what changed if a check is due (or ``force``); ``None`` when nothing
        changed or another thread is checking right now."""
        if not (force or self.due()):
            return None
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._reload()
        finally:
            self._lock.release()

    def _reload(self, force_all: bool = False) -> Change | None:
        self._pid = os.getpid()
        self._next = self.clock() + self.interval
        files, folder_problems = definitions.scan(self.service_dirs)
        old_entries = self._entries
        entries: dict[Path, _Entry] = {}
        loaded: list[str] = []
        for f in files:
            old = old_entries.get(f.path)
            if not force_all and old is not None and old.file.stamp == f.stamp \
                    and old.file.name == f.name:
                entries[f.path] = old
                continue
            try:
                svc = load_service(f.path, f.name, self.data_dir)
                entries[f.path] = _Entry(f, svc, None)
                loaded.append(f.name)
            except Exception as exc:  # noqa: BLE001 - one file never stops the others
                problem = str(exc) if isinstance(exc, ServiceDefinitionError) \
                    else unexpected(f.path, exc)
                keep = old.service if old is not None and old.file.name == f.name else None
                entries[f.path] = _Entry(f, keep, problem + (KEPT if keep else ""))
        removed = [e.file.name for p, e in old_entries.items() if p not in entries]
        if not force_all and not self._stale and not loaded and not removed and entries.keys() == \
                old_entries.keys() and tuple(folder_problems) == self._folder_problems \
                and all(entries[p] is old_entries[p] for p in entries):
            return None
        before = set(self.catalog.problems)
        self._stale = False
        self._entries = entries
        self._folder_problems = tuple(folder_problems)
        catalog = definitions.assemble(
            ((e.file, e.service, e.problem) for e in entries.values()), folder_problems)
        self.catalog = catalog
        self.generation += 1
        return Change(catalog, tuple(loaded), tuple(removed),
                      tuple(p for p in catalog.problems if p not in before))
