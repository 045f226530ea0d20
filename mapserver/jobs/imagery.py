"""Pixels for an :class:`ImageSpec` on a :class:`Grid`, drawn exactly as ``/export`` draws them.

A service image is parsed by the same map-filter parser as ``/export`` (params/filters.py),
planned by the same planner and drawn by :func:`mapserver.maps.export.draw_map` (transparent,
as a png32 export before encoding), so a batch image can never drift from what ``/export``
returns for the same grid. A ``<service>/<layerId>`` image is the raster
layer's data values warped with :meth:`RasterSource.read`. Clip geometries mask pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely.geometry
from affine import Affine

from mapserver.catalog.model import Catalog, Service
from mapserver.errors import MapServerError
from mapserver.geo.grid import Grid
from mapserver.geo.project import MERCATOR_MAX_LAT, project_bounds, project_geometry
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.jobs.crs import parse_crs
from mapserver.jobs.errors import invalid
from mapserver.jobs.expression import RGBA_BANDS, ImageSpec, export_params, source_band_names
from mapserver.jobs.expression import band_names as _band_names
from mapserver.maps.export import draw_map
from mapserver.params.filters import parse_map_filters
from mapserver.select.plan import resolve_map
from mapserver.tiling import TilingScheme, parse_tiling

WGS84 = parse_sr("4326", None)
WEB_MERCATOR = parse_sr("3857", None)
MAX_ZOOM = 22  # deepest map:export level
DEFAULT_MAX_DIMENSION = 1024


@dataclass
class Pixels:
    """Band-first data, a validity mask and band names."""

    data: np.ndarray  # (bands, h, w)
    valid: np.ndarray  # (h, w) bool
    bands: tuple[str, ...]
    rgba: bool  # a rendered (visualised) image: bands are vis-red..vis-alpha


def band_names(spec: ImageSpec, catalog: Catalog) -> tuple[str, ...]:
    """The image's output band names (after select, rename and visualize)."""
    return _band_names(spec, catalog)


def clip_bounds(spec: ImageSpec) -> tuple[tuple[float, float, float, float], SpatialRef]:
    """The clip geometry's bounds and the SR they are in."""
    assert spec.clip is not None
    sr = parse_crs(spec.clip_crs, None) if spec.clip_crs else WGS84
    return shapely.geometry.shape(spec.clip).bounds, sr


def _snap(v: float) -> float:
    """Pixel edges within 1e-6 px of an integer are that integer (no sliver rows/columns)."""
    r = round(v)
    return float(r) if abs(v - r) < 1e-6 else v


def native_sr(spec: ImageSpec, svc: Service) -> SpatialRef:
    if spec.layer_id is not None:
        return svc.layer(spec.layer_id).raster.sr
    return svc.sr


def default_grid(spec: ImageSpec, catalog: Catalog) -> Grid:
    """The grid when the request has no ``grid``: the image's bounds (clip, else the service or
    raster extent) in its projection, at the requested scale/dimensions, else the raster's
    native resolution, else at most 1024 pixels on the long side."""
    svc = catalog.service(spec.service)
    assert svc is not None
    sr = parse_crs(spec.crs, None) if spec.crs else native_sr(spec, svc)
    if spec.clip is not None:
        bounds, src = clip_bounds(spec)
    elif spec.layer_id is not None:
        raster = svc.layer(spec.layer_id).raster
        bounds, src = raster.bounds, raster.sr
    else:
        bounds, src = svc.full_extent, svc.sr
    if src.key != sr.key and not src.crs.equals(sr.crs):
        pb = project_bounds(tuple(bounds), src, sr)
        if pb is None or not all(map(math.isfinite, pb)):
            raise invalid("The image bounds cannot be projected into " + sr.key)
        bounds = pb
    xmin, ymin, xmax, ymax = bounds
    if spec.crs_transform is not None:
        a, b, c, d, e, f = spec.crs_transform
        t = Affine(a, b, c, d, e, f)
        inv = ~t
        cols, rows = zip(*(inv @ (x, y) for x in (xmin, xmax) for y in (ymin, ymax)),
                         strict=True)
        c0, r0 = math.floor(_snap(min(cols))), math.floor(_snap(min(rows)))
        c1, r1 = math.ceil(_snap(max(cols))), math.ceil(_snap(max(rows)))
        return Grid(sr, t @ Affine.translation(c0, r0), max(1, c1 - c0), max(1, r1 - r0))
    bw, bh = xmax - xmin, ymax - ymin
    if spec.width and spec.height:
        return Grid(sr, Affine(bw / spec.width, 0, xmin, 0, -bh / spec.height, ymax),
                    spec.width, spec.height)
    if spec.scale:
        # Earth Engine's grid at a scale is the CRS's own grid at that resolution (origin 0,0):
        # the bounds are widened to whole pixels of it, so exports at one scale line up
        res = spec.scale / sr.meters_per_unit
        x0, y1 = math.floor(_snap(xmin / res)) * res, math.ceil(_snap(ymax / res)) * res
        w = max(1, math.ceil(_snap((xmax - x0) / res)))
        h = max(1, math.ceil(_snap((y1 - ymin) / res)))
        return Grid(sr, Affine(res, 0, x0, 0, -res, y1), w, h)
    if spec.layer_id is not None and not spec.max_dimension and (
            src.key == sr.key or src.crs.equals(sr.crs)):
        res = svc.layer(spec.layer_id).raster.resolution
    else:
        res = max(bw, bh) / (spec.max_dimension or DEFAULT_MAX_DIMENSION)
    w, h = max(1, round(bw / res)), max(1, round(bh / res))
    return Grid(sr, Affine(res, 0, xmin, 0, -res, ymax), w, h)


# The XYZ pyramid of services without a standard scheme of their own: Esri's Web Mercator
# scheme (as /tile serves it), levels 0..MAX_ZOOM, with no coverage limit.
XYZ_SCHEME = parse_tiling({"levels": MAX_ZOOM + 1})


def standard_scheme(svc: Service) -> TilingScheme | None:
    """The service's own tiling scheme when it is the standard XYZ Web Mercator pyramid (then
    its tile grids are reused, so exported tiles equal ``/tile`` responses), else None."""
    t = svc.tiling
    if (t is None or t.sr != XYZ_SCHEME.sr or (t.rows, t.cols) != (256, 256)
            or max(abs(a - b) for a, b in zip(t.origin, XYZ_SCHEME.origin, strict=True)) > 1):
        return None
    return t


def export_tile_grid(svc: Service, z: int, x: int, y: int) -> Grid | None:
    """The grid of XYZ tile z/x/y: the service scheme's (None: outside its coverage, an empty
    tile) or, for services without a standard scheme, the default XYZ scheme's."""
    scheme = standard_scheme(svc)
    if scheme is not None and scheme.lod(z) is not None:
        return scheme.tile_grid(z, y, x)
    return XYZ_SCHEME.tile_grid(z, y, x)


def tile_range(bounds4326: tuple[float, float, float, float], z: int
               ) -> tuple[int, int, int, int]:
    """Inclusive (x0, y0, x1, y1) of the tiles covering a lon/lat box at zoom ``z``."""
    n = 1 << z
    lon0, lat0, lon1, lat1 = bounds4326
    lat0, lat1 = max(lat0, -MERCATOR_MAX_LAT), min(lat1, MERCATOR_MAX_LAT)

    def tx(lon: float) -> int:
        return min(n - 1, max(0, math.floor((lon + 180.0) / 360.0 * n)))

    def ty(lat: float) -> int:
        r = math.radians(lat)
        v = (1.0 - math.asinh(math.tan(r)) / math.pi) / 2.0 * n
        return min(n - 1, max(0, math.floor(v)))

    return tx(lon0), ty(lat1), tx(lon1 - 1e-12), ty(lat0 + 1e-12)


def image_bounds_4326(spec: ImageSpec, catalog: Catalog) -> tuple[float, float, float, float]:
    svc = catalog.service(spec.service)
    assert svc is not None
    if spec.clip is not None:
        b, sr = clip_bounds(spec)
    elif spec.layer_id is not None:
        raster = svc.layer(spec.layer_id).raster
        b, sr = raster.bounds, raster.sr
    else:
        b, sr = svc.full_extent, svc.sr
    pb = b if sr == WGS84 else project_bounds(tuple(b), sr, WGS84)
    if pb is None:
        raise invalid("The image bounds cannot be projected to EPSG:4326")
    return (max(pb[0], -180.0), max(pb[1], -90.0), min(pb[2], 180.0), min(pb[3], 90.0))


def render(spec: ImageSpec, grid: Grid, catalog: Catalog) -> Pixels:
    svc = catalog.service(spec.service)
    if svc is None:
        raise invalid(f"Image.load: no map service '{spec.service}'")
    if spec.layer_id is None:
        # the same parsing, planning and drawing as /export (png32, transparent), no encode
        try:
            m = resolve_map(svc, parse_map_filters(export_params(spec), svc.sr))
        except MapServerError as exc:
            raise invalid(f"Image.load: {exc.message} {' '.join(exc.details)}".strip()) from exc
        rgba = draw_map(m, grid, None)
        data = np.ascontiguousarray(rgba.transpose(2, 0, 1))
        valid = rgba[..., 3] > 0
        all_names = RGBA_BANDS
    else:
        layer = svc.layer(spec.layer_id)
        raster = layer.raster
        # data values are sampled, never interpolated (EE's default): nearest neighbour
        data, valid = raster.read(grid, tuple(range(1, raster.count + 1)), "nearest")
        all_names = tuple(f"b{i + 1}" for i in range(raster.count))
    assert all_names == source_band_names(spec, catalog)
    names = all_names
    if spec.bands:  # Image.select (and the bands Image.visualize reads)
        data = data[[all_names.index(n) for n in spec.bands]]
        names = spec.rename or spec.bands
    if spec.clip is not None:
        valid = valid & clip_mask(spec.clip, grid, spec.clip_crs)
    if spec.vis is not None:
        data, names = visualize(data, valid, spec.vis), RGBA_BANDS
        valid = data[3] > 0
    if spec.rendered and spec.clip is not None:  # clipped-away pixels become transparent
        data = data.copy()
        data[:, ~valid] = 0
    return Pixels(data=data, valid=valid, bands=names, rgba=spec.rendered)


def visualize(data: np.ndarray, valid: np.ndarray, vis: dict) -> np.ndarray:
    """Image.visualize: 1 or 3 bands to RGBA uint8 (min -> 0, max -> 255, then gamma, or a
    palette ramp for one band); alpha is the mask times ``opacity``."""
    x = data.astype(np.float64)
    n = x.shape[0]
    lo = np.array(vis["min"] if vis["min"] is not None else [0.0] * n).reshape(n, 1, 1)
    hi_default = 255.0 if data.dtype == np.uint8 else 1.0
    hi = np.array(vis["max"] if vis["max"] is not None else [hi_default] * n).reshape(n, 1, 1)
    span = np.where(hi == lo, 1.0, hi - lo)
    t = np.clip((x - lo) / span, 0.0, 1.0)
    if vis["gamma"] is not None:
        t = t ** (1.0 / np.array(vis["gamma"]).reshape(n, 1, 1))
    out = np.zeros((4,) + x.shape[1:], np.uint8)
    if vis["palette"] is not None:
        pal = np.array(vis["palette"], np.float64)  # (k, 3)
        pos = t[0] * (len(pal) - 1)
        i0 = np.clip(np.floor(pos).astype(int), 0, len(pal) - 1)
        i1 = np.clip(i0 + 1, 0, len(pal) - 1)
        f = (pos - i0)[..., None]
        rgb = pal[i0] * (1 - f) + pal[i1] * f
        out[:3] = np.round(rgb).astype(np.uint8).transpose(2, 0, 1)
    else:
        v = np.round(t * 255).astype(np.uint8)
        out[:3] = v if n == 3 else np.repeat(v, 3, axis=0)
    opacity = 1.0 if vis["opacity"] is None else vis["opacity"]
    out[3] = np.where(valid, round(255 * opacity), 0).astype(np.uint8)
    out[:3, ~valid] = 0
    return out


def clip_mask(geojson: dict, grid: Grid, crs: str | None = None) -> np.ndarray:
    """True for pixels whose centre lies inside the clip geometry (in ``crs``, default
    EPSG:4326); lines and points keep every pixel they touch."""
    from rasterio.features import geometry_mask

    src = parse_crs(crs, None) if crs else WGS84
    shape = shapely.geometry.shape(geojson)
    geom = shape if src.key == grid.sr.key else project_geometry(shape, src, grid.sr,
                                                                 segments=256)
    if geom is None or geom.is_empty:
        return np.zeros((grid.height, grid.width), bool)
    return geometry_mask([geom], (grid.height, grid.width), grid.transform, invert=True,
                         all_touched=shape.geom_type not in ("Polygon", "MultiPolygon"))
