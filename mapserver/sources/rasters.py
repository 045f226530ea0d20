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
import pyproj
import rasterio
import rasterio.crs
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import reproject
from rasterio.windows import Window

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
    """The rasterio CRS for an SR (EPSG codes stay codes so GDAL picks its best pipeline).

    GDAL recognises some CRS names and replaces the definition by the registered one: a WKT
    named "WGS 84 / Pseudo-Mercator" with Central_Meridian 175 (what the ArcGIS Maps SDK
    sends for a view across the date line) became plain EPSG:3857. So the result is checked
    against the SR and, when GDAL changed it, built again under a name GDAL does not know."""
    if sr.key.startswith("EPSG:"):
        return rasterio.crs.CRS.from_epsg(int(sr.key[5:]))
    wkt = sr.crs.to_wkt()
    crs = rasterio.crs.CRS.from_wkt(wkt)
    if not pyproj.CRS.from_wkt(crs.to_wkt()).equals(sr.crs, ignore_axis_order=True):
        name = sr.crs.name
        crs = rasterio.crs.CRS.from_wkt(wkt.replace(f'"{name}"', f'"{name} (as sent)"', 1))
    return crs


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
    all_valid: bool = False  # no nodata value, mask or alpha band: every pixel is data

    @classmethod
    def open(cls, path: str | Path) -> RasterSource:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise ValueError("raster has no coordinate reference system")
            return cls(path=str(path), sr=from_crs(ds.crs.to_wkt()),
                       transform=tuple(ds.transform)[:6], width=ds.width, height=ds.height,
                       count=ds.count, dtype=ds.dtypes[0], nodata=ds.nodata,
                       overview_factors=tuple(ds.overviews(1)), bounds=tuple(ds.bounds),
                       all_valid=ds.nodata is None and all(
                           flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums))

    def open_handles(self) -> None:
        """Open this process's dataset handles, full resolution and every overview level, so
        that no request pays for it (the first open of a large COG reads its directory of
        tiles: ~40 ms for the bench's 8192² one, ~3 ms per overview level after it)."""
        for level in (None, *range(len(self.overview_factors))):
            _open(self.path, level)

    @property
    def resolution(self) -> float:
        a, b, _c, d, e, _f = self.transform
        return float(min(np.hypot(a, d), np.hypot(b, e)))

    def _overview_level(self, grid: Grid) -> int | None:
        """The coarsest overview still at least as fine as the grid (None: full resolution)."""
        if not self.overview_factors:
            return None
        if grid.sr == self.sr:  # the grid's own bounds (no outline polygon to build)
            xmin, ymin, xmax, ymax = grid.bounds
        else:
            fp = grid.footprint(self.sr)
            if fp is None or fp.is_empty:
                return None
            xmin, ymin, xmax, ymax = fp.bounds
        # source pixels the grid spans along its width, per output pixel
        ratio = min((xmax - xmin) / grid.width, (ymax - ymin) / grid.height) / self.resolution
        level = None
        for i, factor in enumerate(self.overview_factors):
            # relative slack: a view at exactly an overview's resolution computes as 15.99999...
            # and must still use that overview, not decode the next finer one (4x the pixels)
            if factor <= ratio * (1 + 1e-6):
                level = i
        return level

    def read(self, grid: Grid, bands: tuple[int, ...], resampling: str = "nearest",
             out_dtype: str | None = None, *,
             operation: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Warp ``bands`` (1-based) onto ``grid``. Returns (data[bands, h, w], valid[h, w]).

        Nodata and areas outside the raster are ``valid == False``; they become transparent.
        ``operation`` (a PROJ pipeline or WKT2 coordinate operation from the raster's CRS to the
        grid's, e.g. ``datum.raster_operation``) replaces the transformation GDAL would pick.
        """
        ds = _open(self.path, self._overview_level(grid))
        if operation is None and resampling == "nearest" and self.all_valid \
                and grid.is_north_up \
                and ds.transform.b == 0 and ds.transform.d == 0 and ds.transform.a > 0 \
                and ds.transform.e < 0 and ds.crs == rasterio_crs(grid.sr):
            return _read_gather(ds, grid, bands, out_dtype or self.dtype)
        # rasterio (1.4) writes source band b into destination band b when an alpha band is
        # added, whatever order was asked for (bands 3,2,1 came out as 1,2,3). So warp bands
        # 1..max(bands) in file order and pick the requested ones afterwards.
        nb = max(bands)
        dtype = out_dtype or self.dtype
        dest = np.zeros((nb + 1, grid.height, grid.width), dtype=dtype)
        # COORDINATE_OPERATION reaches GDAL's GDALCreateGenImgProjTransformer2 (rasterio passes
        # extra keywords to the transformer and the warp options)
        extra = {} if operation is None else {"COORDINATE_OPERATION": operation}
        reproject(rasterio.band(ds, list(range(1, nb + 1))), dest, src_nodata=self.nodata,
                  dst_transform=grid.transform, dst_crs=rasterio_crs(grid.sr),
                  resampling=RESAMPLING[resampling], dst_alpha=nb + 1, num_threads=1, **extra)
        return dest[[b - 1 for b in bands]], dest[nb] > 0


def _read_gather(ds: rasterio.DatasetReader, grid: Grid, bands: tuple[int, ...],
                 dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """Nearest neighbour onto a north-up grid in the raster's own CRS, without GDAL's warper.

    Source column and row are separable here (one per output column, one per output row), so
    one windowed read of the covering source pixels and a numpy gather give what the warper
    gives, at a fraction of its CPU time (the warper transforms every output pixel). Pixel
    centres pick the source pixel they fall in, as GDAL's nearest does.
    """
    g, t = grid.transform, ds.transform
    h, w = grid.height, grid.width
    eps = 1e-9  # GDAL's RasterIO nudges exact pixel-edge hits the same way
    cols = np.floor((g.c + (np.arange(w) + 0.5) * g.a - t.c) / t.a + eps).astype(np.int64)
    rows = np.floor((g.f + (np.arange(h) + 0.5) * g.e - t.f) / t.e + eps).astype(np.int64)
    ci = np.flatnonzero((cols >= 0) & (cols < ds.width))
    ri = np.flatnonzero((rows >= 0) & (rows < ds.height))
    if len(ci) == 0 or len(ri) == 0:
        return np.zeros((len(bands), h, w), dtype=dtype), np.zeros((h, w), dtype=bool)
    i0, i1, j0, j1 = int(ci[0]), int(ci[-1]) + 1, int(ri[0]), int(ri[-1]) + 1
    c0, r0 = int(cols[i0]), int(rows[j0])
    window = Window(c0, r0, int(cols[i1 - 1]) + 1 - c0, int(rows[j1 - 1]) + 1 - r0)
    sub_r, sub_c = rows[j0:j1] - r0, cols[i0:i1] - c0
    # the grid's pixels are the raster's (same size, whole-pixel offset, as for a tile or a
    # view aligned with the raster): the window is the answer, no gather (1 ms at 512x512)
    one_to_one = bool((np.diff(sub_r) == 1).all() and (np.diff(sub_c) == 1).all())
    whole = i0 == 0 and j0 == 0 and i1 == w and j1 == h
    if one_to_one and whole and ds.dtypes[0] == np.dtype(dtype):
        data = np.empty((len(bands), h, w), dtype=dtype)
        ds.read(list(bands), window=window, out=data)  # straight into the answer
        return data, np.ones((h, w), dtype=bool)
    data = np.zeros((len(bands), h, w), dtype=dtype)
    valid = np.zeros((h, w), dtype=bool)
    block = ds.read(list(bands), window=window)
    if one_to_one:
        data[:, j0:j1, i0:i1] = block
    else:
        for k in range(len(bands)):
            data[k, j0:j1, i0:i1] = block[k].take(sub_r, axis=0).take(sub_c, axis=1)
    valid[j0:j1, i0:i1] = True
    return data, valid
