"""Where shared bytes live: a local folder, or (issue 11) an S3-compatible object store.

Export images behind ``f=json`` hrefs and rendered tiles must be readable by every worker of
every host, so both go through this small interface instead of the file system directly.
Keys are ``/``-separated relative names chosen by the caller (never user input verbatim).
``open_blobs(location)`` picks the backend from the location: a path is a folder on this host;
``s3://bucket/prefix`` is an object store shared by many hosts.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from mapserver.errors import MapServerError

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class StoreUnavailable(MapServerError):
    """The shared store cannot be reached or refuses us: the server's problem, not the
    client's (HTTP 503 where a status is chosen). Messages name the location, never a path
    on this host or a credential."""

    code = 503
    default_message = "The shared store is unavailable."


class Blobs(Protocol):
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, content: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def keys(self, prefix: str = "") -> Iterator[tuple[str, float]]:
        """(key, modified time as a Unix timestamp) under ``prefix``."""
        ...
    def problem(self) -> str | None:
        """Why the store is unusable (for the health check), or None."""
        ...


class LocalBlobs:
    """Files under one folder, written atomically (temp file + ``os.replace``), so several
    processes may write the same key at once and a reader never sees half a file."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"LocalBlobs({str(self.directory)!r})"

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

    def problem(self) -> str | None:
        """The folder (or the nearest existing parent, for a folder made on first write)
        must be writable by this process."""
        existing = next((p for p in (self.directory, *self.directory.parents) if p.exists()),
                        None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK):
            return "local folder: not writable"
        return None

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


def parse_s3(location: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → (bucket, ``some/prefix/`` or ``""``); a location without
    a valid bucket name is a configuration error, said at start-up rather than on a request."""
    rest = location[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    if not BUCKET_RE.match(bucket):
        raise ValueError(f"{location!r}: not an s3://bucket[/prefix] location (bucket names are "
                         "3-63 lower-case letters, digits, dots and hyphens)")
    prefix = prefix.strip("/")
    if any(p in (".", "..") for p in prefix.split("/")):
        raise ValueError(f"{location!r}: '.' and '..' are not allowed in the prefix")
    return bucket, prefix + "/" if prefix else ""


class S3Blobs:
    """Objects under ``s3://bucket/prefix`` of an S3-compatible store (AWS, MinIO, Ceph, moto).

    Many hosts share it: a PUT is atomic (readers see the old object or the new one, never a
    part), so no temp files are needed. Credentials come from boto3's usual chain
    (``AWS_ACCESS_KEY_ID``…, a profile, an instance role); the endpoint from the setting
    ``MAPSERVER_S3_ENDPOINT`` (unset: AWS). Timeouts are short and retries few: a store that
    does not answer makes a request fail in seconds (503), not hang a worker thread."""

    def __init__(self, location: str, endpoint: str | None = None) -> None:
        self.location = location.rstrip("/")
        self.bucket, self.prefix = parse_s3(location)
        self.endpoint = endpoint

    @property
    def client(self):  # noqa: ANN201 - a botocore client (boto3 is an optional dependency)
        return _s3_client(self.endpoint)

    def _key(self, key: str) -> str:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise ValueError(f"bad key {key!r}")
        return self.prefix + "/".join(parts)

    def _fail(self, exc: Exception, what: str) -> StoreUnavailable:
        if isinstance(exc, StoreUnavailable):  # e.g. boto3 is not installed
            return exc
        return StoreUnavailable(f"{self.location}: {what}: {_reason(exc)}")

    def get(self, key: str) -> bytes | None:
        name = self._key(key)
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=name)
            return obj["Body"].read()
        except Exception as exc:  # noqa: BLE001 - botocore's errors, classified below
            if _status(exc) == 404 and _code(exc) != "NoSuchBucket":
                return None
            raise self._fail(exc, f"cannot read {key}") from exc

    def put(self, key: str, content: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=content)
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"cannot write {key}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ValueError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, f"cannot delete {key}") from exc

    def delete_prefix(self, prefix: str) -> int:
        names = [self._key(k) for k, _ in self.keys(prefix)]
        for i in range(0, len(names), 1000):  # DeleteObjects takes up to 1000 keys
            try:
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": n} for n in names[i:i + 1000]], "Quiet": True})
            except Exception as exc:  # noqa: BLE001
                raise self._fail(exc, f"cannot delete under {prefix}") from exc
        return len(names)

    def keys(self, prefix: str = "") -> Iterator[tuple[str, float]]:
        """Keys equal to ``prefix`` or below ``prefix/`` (as folders behave in LocalBlobs)."""
        inner = prefix.strip("/")
        wanted = [self._key(inner), self._key(inner) + "/"] if inner else [self.prefix]
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=wanted[-1])
            found = [o for page in pages for o in page.get("Contents", ())]
            if inner:
                head = self.client.list_objects_v2(Bucket=self.bucket, Prefix=wanted[0],
                                                   MaxKeys=1).get("Contents", ())
                found += [o for o in head if o["Key"] == wanted[0]]
        except Exception as exc:  # noqa: BLE001
            raise self._fail(exc, "cannot list objects") from exc
        for obj in found:
            yield obj["Key"][len(self.prefix):], obj["LastModified"].timestamp()

    def problem(self) -> str | None:
        """One HEAD of the bucket, with a 2 s timeout and no retry: a health probe answers
        before the balancer gives up on it."""
        try:
            _s3_client(self.endpoint, probe=True).head_bucket(Bucket=self.bucket)
        except Exception as exc:  # noqa: BLE001
            return f"object store {self.location}: {_reason(exc)}"
        return None

    def __repr__(self) -> str:
        return f"S3Blobs({self.location!r})"


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _reason(exc: Exception) -> str:
    """A short, path-free reason for logs and the health check."""
    if isinstance(exc, StoreUnavailable):
        return exc.message
    status, code = _status(exc), _code(exc)
    if code in ("NoSuchBucket",) or (status == 404 and not code.startswith("NoSuchKey")):
        return "the bucket does not exist"
    if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId",
                                        "SignatureDoesNotMatch"):
        return "access denied (check the credentials)"
    name = type(exc).__name__
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                "ConnectionClosedError"):
        return "the endpoint does not answer"
    if name == "NoCredentialsError":
        return "no credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)"
    if code:
        return f"{code} (HTTP {status})"
    return name


_clients: dict[tuple[int, str | None, bool], object] = {}
_clients_lock = threading.Lock()


def _s3_client(endpoint: str | None, probe: bool = False):  # noqa: ANN202
    """One client per process and endpoint: creating one costs tens of milliseconds, and a
    client (thread-safe) must not cross a fork (its connection pool would be shared)."""
    key = (os.getpid(), endpoint, probe)
    client = _clients.get(key)
    if client is None:
        with _clients_lock:
            client = _clients.get(key)
            if client is None:
                try:
                    import boto3
                    from botocore.config import Config
                except ImportError as exc:
                    raise StoreUnavailable(
                        "s3:// locations need boto3: pip install 'mapserver[s3]'") from exc
                config = Config(connect_timeout=2, read_timeout=2,
                                retries={"max_attempts": 1, "mode": "standard"}) if probe \
                    else Config(connect_timeout=3, read_timeout=20,
                                retries={"max_attempts": 2, "mode": "standard"},
                                max_pool_connections=32)
                # region: boto3's own chain (AWS_DEFAULT_REGION, the profile); S3 needs none
                client = boto3.session.Session().client("s3", endpoint_url=endpoint,
                                                        config=config)
                _clients[key] = client
    return client


def open_blobs(location: str | Path, s3_endpoint: str | None = None) -> Blobs:
    """The store for a setting's value: ``s3://bucket/prefix`` or a local folder. The S3
    endpoint defaults to ``MAPSERVER_S3_ENDPOINT`` (for callers without the settings)."""
    text = str(location)
    if text.startswith("s3://"):
        return S3Blobs(text, s3_endpoint or os.environ.get("MAPSERVER_S3_ENDPOINT") or None)
    return LocalBlobs(Path(text))


def is_remote(location: str | Path) -> bool:
    return str(location).startswith("s3://")


def now() -> float:
    return time.time()
