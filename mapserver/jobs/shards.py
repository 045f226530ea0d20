"""The unit of work a worker process (or Dask worker) runs: one strip, tile batch or frame.

Shards write their result under the operation's staging directory and return a small JSON
summary, so a restart can resume with only the unfinished shards. Workers load the catalog once
per process (it is cheap to read and must not be pickled across processes).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
from affine import Affine
from PIL import Image

from mapserver.catalog.live import LiveCatalog as DefinitionFiles
from mapserver.catalog.model import Catalog
from mapserver.geo.grid import Grid
from mapserver.jobs.assets import LiveCatalog
from mapserver.jobs.expression import ImageSpec
from mapserver.jobs.imagery import XYZ_SCHEME, render, standard_scheme
from mapserver.settings import Settings

_catalogs: dict[tuple, LiveCatalog] = {}
_definitions: dict[tuple, DefinitionFiles] = {}


def catalog_for(service_dirs: tuple[str, ...], data_dir: str,
                asset_root: str | None = None) -> Catalog:
    """The catalog of these folders, plus the published assets (reloaded when they change);
    a changed definition file is re-read as the server does (catalog/live.py), so shards draw
    the service the server now serves."""
    key = (tuple(service_dirs), data_dir, asset_root)
    if key not in _catalogs:
        files = DefinitionFiles([Path(p) for p in service_dirs], Path(data_dir),
                                Settings.from_env().reload_interval)
        _definitions[key] = files
        _catalogs[key] = LiveCatalog(files.catalog, Path(asset_root) if asset_root else None)
    elif _definitions[key].check() is not None:
        _catalogs[key].rebase(_definitions[key].catalog)
    return _catalogs[key].current()


def shard_path(staging: str, index: int) -> Path:
    return Path(staging) / "shards" / f"{index}.npz"


def _atomic_save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def encode_tile(rgba: np.ndarray, fmt: str) -> tuple[bytes, str]:
    """PNG or JPEG bytes; AUTO_JPEG_PNG picks PNG when any pixel is not opaque."""
    if fmt == "AUTO_JPEG_PNG":
        fmt = "PNG" if (rgba[..., 3] < 255).any() else "JPEG"
    buf = io.BytesIO()
    if fmt == "PNG":
        Image.fromarray(rgba, "RGBA").save(buf, "PNG", compress_level=6)
    else:
        Image.fromarray(rgba[..., :3], "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue(), fmt


def _pyramid(svc, spec: ImageSpec, catalog: Catalog, tiles: list):  # noqa: ANN001, ANN202
    """The shard's XYZ tiles through the metatile renderer (None: outside the coverage)."""
    from mapserver.maps.metatiles import pyramid_tiles
    from mapserver.settings import Settings

    own = standard_scheme(svc)
    settings = Settings.from_env()

    def draw(grid: Grid) -> np.ndarray:
        return np.ascontiguousarray(render(spec, grid, catalog).data.transpose(1, 2, 0))

    return pyramid_tiles([tuple(t) for t in tiles],
                         lambda z: own if own is not None and own.lod(z) is not None
                         else XYZ_SCHEME,
                         draw, settings.metatile, settings.metatile_buffer)


def run_shard(kind: str, payload: dict, index: int, shard: dict, staging: str,
              catalog_key: tuple, delay: float = 0.0) -> dict:
    """Compute one shard; idempotent (a re-run overwrites the same files atomically). The
    result carries the CPU seconds spent (``cpu``, for batchEecuUsageSeconds)."""
    cpu0 = time.process_time()
    result = _run_shard(kind, payload, index, shard, staging, catalog_key, delay)
    result["cpu"] = round(time.process_time() - cpu0, 4)
    return result


def _run_shard(kind: str, payload: dict, index: int, shard: dict, staging: str,
               catalog_key: tuple, delay: float = 0.0) -> dict:
    from mapserver.jobs.wire import grid_from_json

    catalog = catalog_for(*catalog_key)
    if delay:
        time.sleep(delay)
    if kind == "image":
        g = grid_from_json(payload["grid"])
        sub = Grid(g.sr, g.transform @ Affine.translation(shard["col"], shard["row"]),
                   shard["width"], shard["height"])
        px = render(ImageSpec.from_json(payload["spec"]), sub, catalog)
        _atomic_save(shard_path(staging, index), data=px.data, valid=px.valid)
        return {"valid": int(px.valid.sum())}
    if kind == "map":
        spec = ImageSpec.from_json(payload["spec"])
        out = Path(staging) / "out" / payload["dest"]["prefix"]
        written = empty = 0
        svc = catalog.service(spec.service)
        # cut from metatiles as /tile cuts them (maps/metatiles.py), so the pyramid equals
        # the service's tiles, labels included
        for (z, x, y), cut in _pyramid(svc, spec, catalog, shard["tiles"]):
            rgba = np.zeros((256, 256, 4), np.uint8) if cut is None else cut
            if payload["skipEmpty"] and not (rgba[..., 3] > 0).any():
                empty += 1
                continue
            data, _ = encode_tile(rgba, payload["dest"]["format"])
            path = out / str(z) / str(x) / str(y)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += 1
        return {"written": written, "empty": empty}
    if kind == "video":
        g = grid_from_json(payload["grid"])
        px = render(ImageSpec.from_json(payload["frames"][shard["frame"]]), g, catalog)
        rgba = px.data.transpose(1, 2, 0).astype(np.float32)
        a = rgba[..., 3:4] / 255.0
        rgb = (rgba[..., :3] * a + 255.0 * (1 - a)).round().astype(np.uint8)
        _atomic_save(shard_path(staging, index), rgb=rgb)
        return {}
    raise ValueError(kind)
