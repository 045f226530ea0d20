"""Buckets: a logical ``cloudStorageDestination.bucket`` maps, by configuration, to a local
directory (the default: ``<MAPSERVER_JOBS_ROOT>/<bucket>``) or to an S3-compatible store.

Outputs are staged locally and committed only when the whole export succeeded: local files are
moved into place, S3 objects uploaded. A failed or cancelled export therefore leaves nothing.
"""

from __future__ import annotations

import mimetypes
import shutil
from dataclasses import dataclass
from pathlib import Path

from mapserver.jobs.config import JobConfig
from mapserver.jobs.errors import ApiError
from mapserver.jobs.extras import require

MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
         (b"II*\x00", "image/tiff"), (b"MM\x00*", "image/tiff"))


def content_type(name: str, head: bytes) -> str:
    """Tiles are extension-less (as in EE), so sniff their magic bytes."""
    for magic, ctype in MAGIC:
        if head.startswith(magic):
            return ctype
    if name.endswith(".vrt"):
        return "application/xml"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class Bucket:
    name: str
    local_dir: Path | None
    s3_bucket: str | None
    endpoint: str | None

    def storage_uri(self, key: str) -> str:
        if self.s3_bucket is not None:
            return f"s3://{self.s3_bucket}/{key}"
        assert self.local_dir is not None
        return (self.local_dir / key).resolve().as_uri()

    def s3(self):
        require("boto3", "s3", f"bucket '{self.name}' on S3")
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def commit(self, out_dir: Path) -> list[str]:
        """Publish every file under ``out_dir`` (relative keys); returns the keys."""
        files = sorted(p for p in out_dir.rglob("*") if p.is_file())
        keys = [p.relative_to(out_dir).as_posix() for p in files]
        if self.s3_bucket is not None:
            client = self.s3()
            for p, key in zip(files, keys, strict=True):
                with open(p, "rb") as fh:
                    head = fh.read(8)
                client.upload_file(str(p), self.s3_bucket, key,
                                   ExtraArgs={"ContentType": content_type(key, head)})
            return keys
        assert self.local_dir is not None
        for p, key in zip(files, keys, strict=True):
            target = self.local_dir / key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(p), str(target))
        return keys

    def open(self, key: str) -> tuple[bytes, str] | None:
        """An object's bytes and content type, or None (for the HTTP download route)."""
        parts = key.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in key:
            return None
        if self.s3_bucket is not None:
            try:
                obj = self.s3().get_object(Bucket=self.s3_bucket, Key=key)
            except Exception:  # noqa: BLE001 - any miss is a 404
                return None
            data = obj["Body"].read()
            return data, obj.get("ContentType") or content_type(key, data[:8])
        assert self.local_dir is not None
        path = self.local_dir / key
        if not path.is_file():
            return None
        data = path.read_bytes()
        return data, content_type(key, data[:8])


@dataclass(frozen=True)
class Folder:
    """``driveDestination``: ``<MAPSERVER_JOBS_DRIVE>/<folder>``, a local folder per EE Drive
    folder name (flat, as Drive's are; the name is made safe for the file system)."""

    local_dir: Path

    def storage_uri(self, key: str) -> str:
        return (self.local_dir / key).resolve().as_uri()

    def commit(self, out_dir: Path) -> list[str]:
        return Bucket("drive", self.local_dir, None, None).commit(out_dir)


@dataclass(frozen=True)
class AssetTarget:
    """``assetExportOptions``: the COG goes into the asset root and becomes a layer of the
    service ``Assets/<project>`` (see assets.py)."""

    root: Path
    project: str
    path: str
    description: str

    def storage_uri(self, key: str) -> str:
        from mapserver.jobs.assets import tif_path

        return tif_path(self.root, self.project, self.path).resolve().as_uri()

    def commit(self, out_dir: Path) -> list[str]:
        from mapserver.jobs.assets import publish

        staged = out_dir / (self.path + ".tif")
        publish(self.root, self.project, self.path, staged, self.description)
        return [self.path + ".tif"]


def destination(config: JobConfig, dest: dict, description: str = "") -> Bucket | Folder | \
        AssetTarget:
    """Where a plan's outputs go; unconfigured destinations are refused (FAILED_PRECONDITION)."""
    kind = dest.get("kind", "bucket")
    if kind == "drive":
        if config.drive_root is None:
            raise ApiError("FAILED_PRECONDITION", "driveDestination is not configured on this "
                           "server: set MAPSERVER_JOBS_DRIVE to a folder, or use "
                           "cloudStorageDestination")
        return Folder(config.drive_root / dest["folder"] if dest["folder"]
                      else config.drive_root)
    if kind == "asset":
        if config.asset_root is None:
            raise ApiError("FAILED_PRECONDITION", "assetExportOptions are not configured on this "
                           "server: set MAPSERVER_JOBS_ASSETS to a folder, or use "
                           "fileExportOptions")
        return AssetTarget(config.asset_root, dest["project"], dest["path"], description)
    return bucket(config, dest["bucket"])


def bucket(config: JobConfig, name: str) -> Bucket:
    target = config.buckets.get(name)
    if target is None or target.startswith("file://") or target.startswith("/"):
        base = Path(target[7:] if target and target.startswith("file://") else target) \
            if target else config.bucket_root / name
        return Bucket(name, base, None, None)
    if target.startswith("s3://"):
        require("boto3", "s3", f"bucket '{name}' on S3")  # refused at submit, not at commit
        return Bucket(name, None, target[5:].strip("/"), config.s3_endpoint)
    raise ApiError("FAILED_PRECONDITION", f"Bucket '{name}' has an unsupported backend")
