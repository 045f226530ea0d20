"""A digest of what a service draws: its definition and its data files.

Tile cache keys carry it (``<service>/<digest>/<level>/<row>/<col>.<ext>``), so a changed
definition or a replaced data file never serves old tiles: the new catalog asks for new keys,
and the old tiles stay on disk (or in the bucket) until ``mapserver truncate`` removes them.
Computed once per loaded ``Service`` object (a reload builds new ones).

Data files count by their content, not their modification time: hosts sharing one cache (an
object store) must agree on the digest although each unpacked or cloned the same files at
another time. Files up to ``FULL_HASH_BYTES`` are hashed whole; a larger one by its size, its
mtime and its first and last MiB (reading gigabytes at start-up is not worth it; such hosts
should then also share the mtimes, e.g. one image or ``rsync -t``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from mapserver.catalog.model import Service

DIGEST_CHARS = 16
FULL_HASH_BYTES = 64 * 1024 * 1024
EDGE_BYTES = 1024 * 1024
_memo: dict[int, tuple[Service, str]] = {}
_memo_lock = threading.Lock()
_MEMO_SIZE = 256


def _data_files(service: Service, data_dir: Path | None) -> list[str]:
    """The files the layers read (rasters by their opened path, vector sources by the
    definition's ``source``, looked up as the loader does: the data folder, then the
    definition's folder)."""
    out = [str(layer.raster.path) for layer in service.layers if layer.raster is not None]
    docs = service.source.get("layers") if hasattr(service.source, "get") else None
    for doc in docs if isinstance(docs, list) else []:
        src = doc.get("source") if isinstance(doc, dict) else None
        if not isinstance(src, str):
            continue
        for base in (data_dir, Path(service.path).parent):
            p = Path(src) if base is None else Path(base) / src
            if p.is_file():
                out.append(str(p))
                break
    return out


def _file_digest(path: str) -> str:
    """The content of one data file (see the module docstring for large files)."""
    h = hashlib.blake2b(digest_size=16)
    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            if st.st_size <= FULL_HASH_BYTES:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            else:
                h.update(f"{st.st_size}\0{st.st_mtime_ns}\0".encode())
                h.update(fh.read(EDGE_BYTES))
                fh.seek(-EDGE_BYTES, os.SEEK_END)
                h.update(fh.read(EDGE_BYTES))
    except OSError:
        return "missing"
    return h.hexdigest()


def compute_digest(service: Service, data_dir: Path | None = None) -> str:
    """blake2b of the canonical definition JSON plus each data file's name and content."""
    h = hashlib.blake2b(digest_size=DIGEST_CHARS // 2)
    h.update(json.dumps(service.source, sort_keys=True, separators=(",", ":"),
                        default=str).encode())
    for path in _data_files(service, data_dir):
        h.update(f"\0{Path(path).name}\0{_file_digest(path)}".encode())
    return h.hexdigest()


def service_digest(service: Service, data_dir: Path | None = None) -> str:
    """The digest of this loaded service, computed on first use and remembered."""
    with _memo_lock:
        hit = _memo.get(id(service))
        if hit is not None and hit[0] is service:
            return hit[1]
    digest = compute_digest(service, data_dir)
    with _memo_lock:
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[id(service)] = (service, digest)
    return digest
