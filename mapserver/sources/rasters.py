"""Raster data access: warp a dataset's bands straight onto a :class:`Grid`.

Metadata is read once at load. Dataset handles are opened lazily and cached per process,
because GDAL handles must not cross gunicorn's fork. Zoomed-out views read from the overview
whose resolution best fits the grid, so a world view of a large COG touches a few hundred KB.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio
import rasterio.crs
from rasterio.enums import Resampling
from rasterio.warp import reproject

from mapserver.geo.grid import Grid
from mapserver.geo.sr import SpatialRef, from_crs

RESAMPLING = {"nearest": Resampling.nearest, "bilinear": Resampling.bilinear,
              "cubic": Resampling.cubic, "average": Resampling.average,
              "mode": Resampling.mode, "lanczos": Resampling.lanczos}

_handles: dict[tuple[str, int | None], rasterio.DatasetReader] = {}
_handles_pid = os.getpid()
_lock = threading.Lock()


@lru_cache(maxsize=256)
def rasterio_crs(sr: SpatialRef) -> rasterio.crs.CRS:
    """The rasterio CRS for an SR (EPSG codes stay codes so GDAL picks its best pipeline)."""
    if sr.key.startswith("EPSG:"):
        return rasterio.crs.CRS.from_epsg(int(sr.key[5:]))
    return rasterio.crs.CRS.from_wkt(sr.crs.to_wkt())


def _open(path: str, overview_level: int | None) -> rasterio.DatasetReader:
    global _handles_pid
    with _lock:
        if _handles_pid != os.getpid():  # forked: never reuse the parent's GDAL handles
            _handles.clear()
            _handles_pid = os.getpid()
        key = (path, overview_level)
        ds = _handles.get(key)
        if ds is None:
            kwargs = {} if overview_level is None else {"overview_level": overview_level}
            ds = rasterio.open(path, **kwargs)
            _handles[key] = ds
        return ds


@dataclass(frozen=True)
class RasterSource:
    """Facts about one raster file, read once at load."""

    path: str
    sr: SpatialRef
    transform: tuple[float, ...]
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    overview_factors: tuple[int, ...]
    bounds: tuple[float, float, float, float]

    @classmethod
    def open(cls, path: str | Path) -> RasterSource:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise ValueError("raster has no coordinate reference system")
            return cls(path=str(path), sr=from_crs(ds.crs.to_wkt()),
                       transform=tuple(ds.transform)[:6], width=ds.width, height=ds.height,
                       count=ds.count, dtype=ds.dtypes[0], nodata=ds.nodata,
                       overview_factors=tuple(ds.overviews(1)), bounds=tuple(ds.bounds))

    @property
    def resolution(self) -> float:
        a, b, _c, d, e, _f = self.transform
        return float(min(np.hypot(a, d), np.hypot(b, e)))

    def _overview_level(self, grid: Grid) -> int | None:
        """The coarsest overview still at least as fine as the grid (None: full resolution)."""
        if not self.overview_factors:
            return None
        fp = grid.footprint(self.sr)
        if fp is None or fp.is_empty:
            return None
        xmin, ymin, xmax, ymax = fp.bounds
        # source pixels the grid spans along its width, per output pixel
        ratio = min((xmax - xmin) / grid.width, (ymax - ymin) / grid.height) / self.resolution
        level = None
        for i, factor in enumerate(self.overview_factors):
            if factor <= ratio:
                level = i
        return level

    def read(self, grid: Grid, bands: tuple[int, ...], resampling: str = "nearest",
             out_dtype: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Warp ``bands`` (1-based) onto ``grid``. Returns (data[bands, h, w], valid[h, w]).

        Nodata and areas outside the raster are ``valid == False``; they become transparent.
        """
        ds = _open(self.path, self._overview_level(grid))
        nb = len(bands)
        dtype = out_dtype or self.dtype
        dest = np.zeros((nb + 1, grid.height, grid.width), dtype=dtype)
        reproject(rasterio.band(ds, list(bands)), dest, src_nodata=self.nodata,
                  dst_transform=grid.transform, dst_crs=rasterio_crs(grid.sr),
                  resampling=RESAMPLING[resampling], dst_alpha=nb + 1, num_threads=1)
        return dest[:nb], dest[nb] > 0
