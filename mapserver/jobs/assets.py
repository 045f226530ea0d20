"""Exported assets (``assetExportOptions``): an export becomes a map service layer.

Layout under the configured asset root (``MAPSERVER_JOBS_ASSETS``)::

    data/<project>/<asset path>.tif          the COG, overviews built with the pyramiding policy
    services/Assets/<project>.json           the MapServer service ``Assets/<project>``: one
                                             raster layer per asset, named by its asset id
    .generation                              rewritten on every publish

The service files are ordinary service definitions, loaded by the ordinary catalog loader. Every
process (web workers, shard workers) merges them into its catalog and reloads them when
``.generation`` changes (:class:`LiveCatalog`), so a published asset shows up in the catalog,
``/export`` and ``Image.load('projects/<p>/assets/<path>')`` within a request, without a
restart. Publishing holds an exclusive file lock, so concurrent exports cannot lose layers.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mapserver.catalog.loader import load_catalog
from mapserver.catalog.model import Catalog, Service

FOLDER = "Assets"


def service_name(project: str) -> str:
    return f"{FOLDER}/{project}"


def tif_path(root: Path, project: str, path: str) -> Path:
    return root / "data" / project / (path + ".tif")


def service_file(root: Path, project: str) -> Path:
    return root / "services" / FOLDER / f"{project}.json"


def generation(root: Path) -> int:
    try:
        return (root / ".generation").stat().st_mtime_ns
    except FileNotFoundError:
        return 0


@contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def exists(root: Path, project: str, path: str) -> bool:
    return tif_path(root, project, path).exists()


def _style(tif: Path) -> dict:
    """How the new layer draws: 8-bit RGB(A) as it is; anything else as a grey min-max stretch
    of its first band over the valid pixels."""
    import rasterio

    with rasterio.open(tif) as ds:
        if ds.count >= 3 and ds.dtypes[0] == "uint8":
            return {"bands": [1, 2, 3], "stretch": {"type": "none"}}
        ovr = ds.overviews(1)
        factor = ovr[-1] if ovr else 1
        arr = ds.read(1, masked=True, out_shape=(max(1, ds.height // factor),
                                                 max(1, ds.width // factor)))
    vals = arr.compressed() if np.ma.isMaskedArray(arr) else np.asarray(arr).ravel()
    vals = vals[np.isfinite(vals)] if vals.dtype.kind == "f" else vals
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return {"bands": [1], "stretch": {"type": "minMax", "min": [lo], "max": [hi]},
            "resampling": "nearest"}


def publish(root: Path, project: str, path: str, staged: Path, description: str) -> str:
    """Move the staged COG into place and add (or refresh) its layer; returns the service name."""
    asset_id = f"projects/{project}/assets/{path}"
    target = tif_path(root, project, path)
    with _locked(root):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(target))
        sfile = service_file(root, project)
        doc = json.loads(sfile.read_text()) if sfile.exists() else {
            "serviceDescription": f"Assets exported by batch exports in project {project}.",
            "description": "Published by image:export with assetExportOptions.",
            "mapName": project, "layers": []}
        layers = [lyr for lyr in doc["layers"] if lyr.get("name") != asset_id]
        old = next((lyr for lyr in doc["layers"] if lyr.get("name") == asset_id), None)
        lid = old["id"] if old else max((lyr["id"] for lyr in doc["layers"]), default=-1) + 1
        layers.append({"id": lid, "name": asset_id, "type": "raster",
                       "source": str(target.resolve()), "description": description,
                       "raster": _style(target)})
        doc["layers"] = sorted(layers, key=lambda lyr: lyr["id"])
        sfile.parent.mkdir(parents=True, exist_ok=True)
        tmp = sfile.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1))
        os.replace(tmp, sfile)
        (root / ".generation").write_text(str(lid))
        os.utime(root / ".generation")
    return service_name(project)


def normalize(asset_id: str) -> tuple[str, str] | None:
    parts = asset_id.split("/")
    if len(parts) >= 4 and parts[0] == "projects" and parts[2] == "assets":
        if parts[1] in ("earthengine-legacy", "earthengine-public"):
            return normalize("/".join(parts[3:]))
        return parts[1], "/".join(parts[3:])
    return None


def find_asset_layer(catalog: Catalog, asset_id: str) -> tuple[Service, int] | None:
    """``projects/<p>/assets/<path>`` (or the legacy form) to its service and layer id."""
    norm = normalize(asset_id)
    if norm is None:
        return None
    svc = catalog.service(service_name(norm[0]))
    if svc is None:
        return None
    name = f"projects/{norm[0]}/assets/{norm[1]}"
    layer = next((lyr for lyr in svc.layers if lyr.name == name), None)
    return (svc, layer.id) if layer is not None else None


def merge(base: Catalog, extra: Catalog) -> Catalog:
    """The base catalog plus the asset services (a base service of the same name wins)."""
    services = dict(base.services)
    for name, svc in extra.services.items():
        services.setdefault(name, svc)
    return Catalog(services=services, folders=tuple(sorted(set(base.folders) | set(
        extra.folders))), problems=base.problems + extra.problems)


class LiveCatalog:
    """The base catalog merged with the asset services, reloaded when an asset is published."""

    def __init__(self, base: Catalog, root: Path | None) -> None:
        self.base = base
        self.root = root
        self._gen = -1
        self._catalog = base
        self._lock = threading.Lock()

    def rebase(self, base: Catalog) -> None:
        """Use ``base`` from now on (its definition files changed: catalog/reload.py)."""
        with self._lock:
            self.base = base
            self._catalog = base
            self._gen = -1  # merge the assets again on the next call

    def current(self) -> Catalog:
        if self.root is None:
            return self.base
        gen = generation(self.root)
        if gen != self._gen:
            with self._lock:
                if gen != self._gen:
                    services = self.root / "services"
                    extra = load_catalog([services], self.root / "data") if services.is_dir() \
                        else Catalog(services={}, folders=())
                    self._catalog = merge(self.base, extra)
                    self._gen = gen
        return self._catalog
