"""One dispatcher thread per process: claim an operation, fan its shards out, finalize, commit.

Higher priority first, then oldest first (the claim's ORDER BY). Shard completion is recorded
as it happens, so progress is visible and a takeover after a crash re-runs only unfinished
shards. Cancellation is checked whenever a shard finishes or the lease is renewed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from mapserver.jobs.config import JobConfig
from mapserver.jobs.destinations import AssetTarget, Folder, destination
from mapserver.jobs.executor import make_executor, worker_lost
from mapserver.jobs.shards import run_shard, shard_path
from mapserver.jobs.store import Store
from mapserver.jobs.wire import PYRAMIDING, grid_from_json
from mapserver.jobs.writers import (
    write_geotiff,
    write_mp4,
    write_picture,
    write_viewer,
    write_vrt,
)

log = logging.getLogger(__name__)
EXT = {"GEO_TIFF": ".tif", "PNG": ".png", "JPEG": ".jpg"}
SHARD_RETRIES = 3  # times a shard is re-run after its worker process died


class Cancelled(Exception):
    pass


class Abandoned(Exception):
    """Another dispatcher owns the operation now (our lease lapsed)."""


class Dispatcher:
    def __init__(self, config: JobConfig, store: Store, catalog_key: tuple) -> None:
        self.config = config
        self.store = store
        self.catalog_key = catalog_key
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._crash = False
        self._thread: threading.Thread | None = None
        self._executor = None

    @property
    def executor(self):
        if self._executor is None:
            self._executor = make_executor(self.config.workers, self.config.dask_scheduler)
        return self._executor

    def start(self) -> None:
        self._thread = threading.Thread(target=self.loop, name="jobs-dispatcher", daemon=True)
        self._thread.start()

    def stop(self, crash: bool = False) -> None:
        """``crash=True`` walks away from a running op without recording anything, as a killed
        process would (used to test takeover)."""
        self._crash = crash
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        if self._executor is not None:
            self._executor.close()
            self._executor = None

    def loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # noqa: BLE001 - e.g. the shared store went away: retry later
                log.exception("dispatcher: operation store error; retrying")
                busy = False
                self._stop.wait(self.config.lease_seconds / 2)
            if not busy:
                self._stop.wait(self.config.poll_seconds)

    def run_once(self) -> bool:
        op = self.store.claim(self.owner, self.config.lease_seconds)
        if op is None:
            return False
        staging = self.config.bucket_root / ".staging" / op["id"]
        try:
            if op["state"] == "CANCELLING":
                raise Cancelled()
            self.run(op, staging)
        except Cancelled:
            shutil.rmtree(staging, ignore_errors=True)
            self.store.finish(op["id"], "CANCELLED", {"code": 1, "message": "Cancelled."})
        except Abandoned:
            pass
        except Exception as exc:  # noqa: BLE001 - any failure fails the op, never the thread
            if self._crash:
                return True
            log.exception("operation %s failed", op["id"])
            shutil.rmtree(staging, ignore_errors=True)
            self.store.finish(op["id"], "FAILED", {"code": 13, "message": str(exc)[:500]})
        return True

    def _check(self, op_id: str) -> None:
        if self._crash and self._stop.is_set():
            raise Abandoned()
        state = self.store.renew(op_id, self.owner, self.config.lease_seconds)
        if state is None:
            raise Abandoned()
        if state == "CANCELLING":
            raise Cancelled()

    def run(self, op: dict, staging: Path) -> None:
        payload = json.loads(op["payload"])
        kind = op["kind"]
        pending = self.store.pending_shards(op["id"])
        if op["attempt"] > 1 and not staging.exists():
            # taken over from another host (a shared PostgreSQL store): the finished shards'
            # results are on that host's disk, not here, so they run again
            pending = [(i, spec) for i, spec, _ in self.store.shard_results(op["id"])]
        self.store.mark_started(op["id"], [i for i, _ in pending])
        shards = dict(pending)

        def submit(idx: int):
            return self.executor.submit(run_shard, kind, payload, idx, shards[idx],
                                        str(staging), self.catalog_key, self.config.shard_delay)

        futs = {submit(idx): idx for idx in shards}
        lost: dict[int, int] = {}
        try:
            while futs:
                for fut in self.executor.as_completed(list(futs), self.config.poll_seconds):
                    idx = futs.pop(fut)
                    exc = fut.exception()
                    if exc is not None and worker_lost(exc):
                        # the process running it died (killed, out of memory): not the shard's
                        # fault; retry it on a fresh pool, a bounded number of times
                        lost[idx] = lost.get(idx, 0) + 1
                        if lost[idx] > SHARD_RETRIES:
                            raise RuntimeError(f"shard {idx}: its worker process died "
                                               f"{lost[idx]} times") from exc
                        log.warning("operation %s: shard %s lost its worker process; retry %d",
                                    op["id"], idx, lost[idx])
                        futs[submit(idx)] = idx
                        continue
                    self.store.shard_done(op["id"], idx, fut.result())
                self._check(op["id"])
        except BaseException:
            self.executor.cancel(list(futs))
            for _ in self.executor.as_completed(list(futs), 60):  # let running shards end
                pass
            raise
        self._check(op["id"])
        out = staging / "out"
        out.mkdir(parents=True, exist_ok=True)
        cpu0 = time.thread_time()
        getattr(self, f"finalize_{kind}")(op, payload, staging, out)
        self.store.add_cpu(op["id"], time.thread_time() - cpu0)
        self._check(op["id"])
        dest = payload["dest"]
        b = destination(self.config, dest, op["description"])
        if kind == "map" and payload.get("publishTileCache"):
            self.publish_tiles(payload, out)
        keys = b.commit(out)
        base = payload.get("httpBase", "").rstrip("/")
        http = base + f"/v1/exports/{dest.get('bucket')}/"
        if isinstance(b, AssetTarget):
            from mapserver.jobs.assets import service_name

            uris = [b.storage_uri(keys[0]),
                    f"{base}/arcgis/rest/services/{service_name(b.project)}/MapServer"]
        elif isinstance(b, Folder):
            uris = [b.storage_uri(key) for key in keys[:100]]
        elif kind == "map":
            uris = [b.storage_uri(dest["prefix"]) + "/", http + dest["prefix"] + "/index.html",
                    http + dest["prefix"] + "/{z}/{x}/{y}"]
        else:
            uris = []
            for key in keys[:50]:
                uris += [b.storage_uri(key), http + key]
        shutil.rmtree(staging, ignore_errors=True)
        self.store.finish(op["id"], "SUCCEEDED", uris=uris)

    # --- finalize: assemble shard results into files ------------------------------------------
    def finalize_image(self, op: dict, payload: dict, staging: Path, out: Path) -> None:
        from affine import Affine

        from mapserver.geo.grid import Grid

        grid = grid_from_json(payload["grid"])
        dest, files = payload["dest"], payload["files"]
        by_file: dict[int, list] = {}
        for idx, shard, _ in self.store.shard_results(op["id"]):
            by_file.setdefault(shard["file"], []).append((idx, shard))
        split = len(files) > 1
        ext = EXT[dest["format"]]
        parts = []
        dtype = None
        for fi, f in enumerate(files):
            data = valid = None
            for idx, shard in by_file.get(fi, []):
                with np.load(shard_path(str(staging), idx)) as z:
                    d, v = z["data"], z["valid"]
                if data is None:
                    data = np.zeros((d.shape[0], f["height"], f["width"]), d.dtype)
                    valid = np.zeros((f["height"], f["width"]), bool)
                r = shard["row"] - f["row"]
                data[:, r:r + shard["height"]] = d
                valid[r:r + shard["height"]] = v
            assert data is not None and valid is not None
            if payload["skipEmptyFiles"] and not valid.any():
                continue
            sub = Grid(grid.sr, grid.transform @ Affine.translation(f["col"], f["row"]),
                       f["width"], f["height"])
            name = (f"{dest['prefix']}-{f['row']:010d}-{f['col']:010d}{ext}" if split
                    else dest["prefix"] + ext)
            path = out / name
            path.parent.mkdir(parents=True, exist_ok=True)
            rgba = payload["bands"][0].startswith("vis-")
            if dest["format"] == "GEO_TIFF":
                meta = payload.get("metadata", {})
                # GDAL reads "a:b=c" as the item "a" = "b=c": ':' becomes '_' in tag names
                tags = {k.replace(":", "_"): meta[k] for k in payload.get("metadataKeys", [])
                        if k in meta}
                write_geotiff(path, data, valid, sub, rgba, payload["noData"],
                              payload["cloudOptimized"], tags,
                              PYRAMIDING.get(dest.get("pyramiding", "")))
                import rasterio

                with rasterio.open(path) as ds:
                    dtype = ds.dtypes[0]
            else:
                write_picture(path, data, dest["format"])
            parts.append((path.name, f["col"], f["row"], f["width"], f["height"]))
        if split and dest["format"] == "GEO_TIFF" and parts:
            nodata = payload["noData"]
            if nodata is None and not payload["bands"][0].startswith("vis-"):
                nodata = 0.0
            write_vrt(out / (dest["prefix"] + ".vrt"), parts, grid, len(payload["bands"]),
                      dtype or "uint8", nodata)

    def finalize_map(self, op: dict, payload: dict, staging: Path, out: Path) -> None:
        src = staging / "out" / payload["dest"]["prefix"]
        src.mkdir(parents=True, exist_ok=True)
        write_viewer(src / "index.html", op["description"], payload["startZoom"],
                     payload["endZoom"], payload["bounds"])

    def publish_tiles(self, payload: dict, out: Path) -> None:
        """Seed the service's /tile cache (its keys ``<service>/<digest>/<z>/<row>/<col>.png``,
        maps/tiles.py) with the pyramid, atomically per tile, so /tile serves it without
        rendering. Only for a service whose own scheme is the standard XYZ one in PNG (other
        schemes' tiles are not these tiles)."""
        from mapserver.jobs.imagery import standard_scheme
        from mapserver.jobs.shards import catalog_for
        from mapserver.maps.tiles import TileCache, tile_key

        svc = catalog_for(*self.catalog_key).service(payload["spec"]["service"])
        scheme = standard_scheme(svc)
        if scheme is None or scheme.format.extension != "png":
            return
        cache = TileCache(payload["tileCacheDir"], self.config.s3_endpoint)  # folder or s3://
        data_dir = Path(self.catalog_key[1])
        root = out / payload["dest"]["prefix"]
        for path in root.glob("*/*/*"):
            z, x, y = (int(p) for p in path.relative_to(root).parts)
            if scheme.tile_grid(z, y, x) is not None:
                cache.put(tile_key(svc, z, y, x, data_dir), path.read_bytes())

    def finalize_video(self, op: dict, payload: dict, staging: Path, out: Path) -> None:
        frames = []
        for idx, _shard, _ in self.store.shard_results(op["id"]):
            with np.load(shard_path(str(staging), idx)) as z:
                frames.append(z["rgb"])
        path = out / (payload["dest"]["prefix"] + ".mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_mp4(path, frames, payload["fps"])
