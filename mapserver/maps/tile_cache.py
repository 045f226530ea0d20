"""The tile cache: tile bytes by key in a :mod:`mapserver.blobs` store (a local folder shared
by the workers of a host, or an object store shared by many hosts, so a tile rendered by one
host is a cache hit on every other).

The caller (``maps/tiles.py``) builds the key; this module only stores bytes. Keys start with
the service name, so ``truncate(service)`` drops a service's tiles.

A cache is an optimisation: when the store does not answer, ``get`` is a miss and ``put`` is
skipped (both logged, at most once a minute), so tiles are still drawn rather than failing;
the health check reports the store.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from mapserver.blobs import Blobs, StoreUnavailable, open_blobs

log = logging.getLogger(__name__)
_LOG_EVERY = 60.0
_last_warning = 0.0


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

    def get(self, key: str) -> bytes | None:
        try:
            return self.store.get(key)
        except StoreUnavailable as exc:
            _warn(exc)
            return None

    def put(self, key: str, content: bytes) -> None:
        try:
            self.store.put(key, content)
        except StoreUnavailable as exc:
            _warn(exc)

    def truncate(self, prefix: str) -> int:
        """Delete every tile under ``prefix`` (e.g. a service name); how many went. Unlike
        get/put, an unreachable store is an error here (the caller asked for this)."""
        return self.store.delete_prefix(prefix)

    def problem(self) -> str | None:
        return self.store.problem()
