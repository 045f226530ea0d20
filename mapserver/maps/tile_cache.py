"""The tile cache: tile bytes by key in a :mod:`mapserver.blobs` store (a local folder shared
by the workers of a host, or an object store shared by many hosts).

The caller (``maps/tiles.py``) builds the key; this module only stores bytes. Keys start with
the service name, so ``truncate(service)`` drops a service's tiles.
"""

from __future__ import annotations

from pathlib import Path

from mapserver.blobs import Blobs, open_blobs


class TileCache:
    def __init__(self, store: Blobs | Path | str, s3_endpoint: str | None = None) -> None:
        self.store = store if hasattr(store, "get") and hasattr(store, "put") \
            else open_blobs(store, s3_endpoint)

    def get(self, key: str) -> bytes | None:
        return self.store.get(key)

    def put(self, key: str, content: bytes) -> None:
        self.store.put(key, content)

    def truncate(self, prefix: str) -> int:
        """Delete every tile under ``prefix`` (e.g. a service name); how many went."""
        return self.store.delete_prefix(prefix)
