"""The tile cache: tile bytes by key in a :mod:`mapserver.blobs` store (a local folder shared
by the workers of a host, or an object store shared by many hosts, so a tile rendered by one
host is a cache hit on every other).

The caller (``maps/tiles.py``) builds the key; this module only stores bytes. Keys start with
the service name, so ``truncate(service)`` drops a service's tiles.

A cache is an optimisation: when the store does not answer, ``get`` is a miss and ``put`` is
skipped (logged at most once a minute), so tiles are still drawn rather than failing; after a
failure the store is left alone for ``RETRY_AFTER`` seconds, so a dead cache does not add its
timeouts to every tile of every metatile. The health check reports the store.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mapserver.blobs import Blobs, StoreUnavailable, open_blobs

log = logging.getLogger(__name__)
_LOG_EVERY = 60.0
RETRY_AFTER = 10.0
_last_warning = 0.0
_down_until: dict[str, float] = {}  # store (repr) -> monotonic time to try it again


def _warn(exc: StoreUnavailable) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning >= _LOG_EVERY:
        _last_warning = now
        log.warning("tile cache unavailable, rendering without it: %s", exc.message)


class TileCache:
    def __init__(self, store: Blobs | Path | str, s3_endpoint: str | None = None) -> None:
        self.store: Blobs = store if hasattr(store, "get") and hasattr(store, "put") \
            else open_blobs(store, s3_endpoint)  # type: ignore[arg-type]
        self._name = repr(self.store) + str(getattr(self.store, "endpoint", ""))

    def _down(self) -> bool:
        until = _down_until.get(self._name)
        return until is not None and time.monotonic() < until

    def _failed(self, exc: StoreUnavailable) -> None:
        _down_until[self._name] = time.monotonic() + RETRY_AFTER
        _warn(exc)

    def get(self, key: str) -> bytes | None:
        if self._down():
            return None
        try:
            return self.store.get(key)
        except StoreUnavailable as exc:
            self._failed(exc)
            return None

    def put(self, key: str, content: bytes) -> None:
        if self._down():
            return
        try:
            self.store.put(key, content)
        except StoreUnavailable as exc:
            self._failed(exc)

    def truncate(self, prefix: str) -> int:
        """Delete every tile under ``prefix`` (e.g. a service name); how many went. Unlike
        get/put, an unreachable store is an error here (the caller asked for this)."""
        return self.store.delete_prefix(prefix)

    def problem(self) -> str | None:
        return self.store.problem()
