"""Exported images behind ``f=json`` hrefs, stored where every gunicorn worker can read them.

Files live in one directory on disk (shared by all workers of a host), are named by a random
id, kept for at least ``max_age`` seconds, and swept by whichever worker writes next after the
sweep interval. No per-process cache: the worker that serves the href is often not the one that
rendered it.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

NAME_RE = re.compile(r"^_ags_map[0-9a-f]{32}\.[a-z]{2,5}$")


class OutputStore:
    def __init__(self, directory: Path, max_age: float = 900.0,
                 sweep_interval: float = 60.0) -> None:
        self.directory = Path(directory)
        self.max_age = max_age
        self.sweep_interval = sweep_interval
        self.directory.mkdir(parents=True, exist_ok=True)
        self._last_sweep = 0.0

    def save(self, content: bytes, extension: str) -> str:
        """Write atomically (temp file + rename) and return the file name."""
        name = f"_ags_map{uuid.uuid4().hex}.{extension}"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(content)
        os.replace(tmp, self.directory / name)
        self.sweep()
        return name

    def path(self, name: str) -> Path | None:
        """The file for a name, or None for anything that is not one of ours (no traversal)."""
        if not NAME_RE.match(name):
            return None
        p = self.directory / name
        return p if p.is_file() else None

    def sweep(self, now: float | None = None, force: bool = False) -> int:
        """Delete files older than ``max_age``; at most once per ``sweep_interval``."""
        now = time.time() if now is None else now
        if not force and now - self._last_sweep < self.sweep_interval:
            return 0
        self._last_sweep = now
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
