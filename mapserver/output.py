"""Exported images behind ``f=json`` hrefs, stored where every worker of every host can read them.

The images live in a :mod:`mapserver.blobs` store: a folder on disk (shared by the workers of
one host) or, with ``MAPSERVER_OUTPUT=s3://bucket/prefix``, an object store shared by every
host behind a load balancer, so an href made by one host is served by any other. Files are
named by a random id, kept for at least ``max_age`` seconds, and swept (by listing the store)
by whichever worker writes next after the sweep interval. No per-process cache: the worker
that serves the href is often not the one that rendered it.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from pathlib import Path

from mapserver.blobs import Blobs, LocalBlobs, StoreUnavailable, open_blobs

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^_ags_map[0-9a-f]{32}\.[a-z]{2,5}$")


class OutputStore:
    def __init__(self, location: Path | str | Blobs, max_age: float = 900.0,
                 sweep_interval: float = 60.0, s3_endpoint: str | None = None) -> None:
        self.store: Blobs = location if hasattr(location, "put") \
            else open_blobs(location, s3_endpoint)  # type: ignore[arg-type]
        self.max_age = max_age
        self.sweep_interval = sweep_interval
        self.local = isinstance(self.store, LocalBlobs)
        self.directory: Path | None = self.store.directory if isinstance(
            self.store, LocalBlobs) else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._last_sweep = 0.0

    def save(self, content: bytes, extension: str) -> str:
        """Store the bytes (atomically: readers never see a partial image) and return the
        name. Raises :class:`mapserver.blobs.StoreUnavailable` when the store is down."""
        name = f"_ags_map{uuid.uuid4().hex}.{extension}"
        self.store.put(name, content)
        self.sweep()
        return name

    def read(self, name: str) -> bytes | None:
        """The bytes for a name, or None for anything that is not one of ours (no traversal:
        only names this store makes are looked up) or that has expired."""
        if not NAME_RE.match(name):
            return None
        return self.store.get(name)

    def path(self, name: str) -> Path | None:
        """The file for a name in a local store (None: not ours, absent, or not local)."""
        if not NAME_RE.match(name) or self.directory is None:
            return None
        p = self.directory / name
        return p if p.is_file() else None

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete outputs older than ``max_age``; at most once per ``sweep_interval``."""
        now = time.time() if now is None else now
        if not force and now - self._last_sweep < self.sweep_interval:
            return 0
        self._last_sweep = now
        if self.directory is not None:
            return self._sweep_folder(now)
        removed = 0
        try:
            entries = list(self.store.keys())
        except StoreUnavailable as exc:  # the write that triggered the sweep succeeded
            log.warning("output sweep skipped: %s", exc.message)
            return removed
        for key, mtime in entries:
            if "/" in key or not NAME_RE.match(key) or now - mtime <= self.max_age:
                continue
            try:
                self.store.delete(key)
            except StoreUnavailable:
                return removed
            removed += 1
        return removed

    def _sweep_folder(self, now: float) -> int:
        """A local folder: its own entries only (not sub-folders), our names and the temp
        files a killed writer left behind."""
        assert self.directory is not None
        removed = 0
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return 0
        for entry in entries:
            if not (NAME_RE.match(entry.name) or entry.name.endswith(".tmp")):
                continue
            try:
                if now - entry.stat().st_mtime > self.max_age:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
