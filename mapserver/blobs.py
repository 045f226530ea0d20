"""Where shared bytes live: a local folder, or (issue 11) an S3-compatible object store.

Export images behind ``f=json`` hrefs and rendered tiles must be readable by every worker of
every host, so both go through this small interface instead of the file system directly.
Keys are ``/``-separated relative names chosen by the caller (never user input verbatim).
``open_blobs(location)`` picks the backend from the location: a path is a folder on this host;
``s3://bucket/prefix`` is an object store shared by many hosts.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol


class Blobs(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, content: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def keys(self, prefix: str = "") -> Iterator[tuple[str, float]]:
        """(key, modified time as a Unix timestamp) under ``prefix``."""
        ...


class LocalBlobs:
    """Files under one folder, written atomically (temp file + ``os.replace``), so several
    processes may write the same key at once and a reader never sees half a file."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad key {key!r}")
        return self.directory.joinpath(*parts)

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def put(self, key: str, content: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".blob", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        removed = 0
        for key, _ in list(self.keys(prefix)):
            self.delete(key)
            removed += 1
        return removed

    def keys(self, prefix: str = "") -> Iterator[tuple[str, float]]:
        root = self._path(prefix) if prefix.strip("/") else self.directory
        if root.is_file():
            yield prefix.strip("/"), root.stat().st_mtime
            return
        for dirpath, _, files in os.walk(root):
            for name in files:
                if name.endswith(".tmp"):
                    continue
                full = Path(dirpath) / name
                try:
                    mtime = full.stat().st_mtime
                except FileNotFoundError:
                    continue
                yield full.relative_to(self.directory).as_posix(), mtime


def open_blobs(location: str | Path, s3_endpoint: str | None = None) -> Blobs:
    """The store for a setting's value: ``s3://bucket/prefix`` or a local folder."""
    text = str(location)
    if text.startswith("s3://"):
        raise NotImplementedError("s3:// stores: not written yet (issue 11)")
    return LocalBlobs(Path(text))


def now() -> float:
    return time.time()
