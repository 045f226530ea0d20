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
from mapserver.jobs.expression import ImageSpec
from mapserver.maps.export import draw_map
from mapserver.params.common import Params
from mapserver.params.filters import parse_map_filters
from mapserver.select.plan import resolve_map
from mapserver.tiling import TilingScheme, parse_tiling

RGBA_BANDS = ("vis-red", "vis-green", "vis-blue", "vis-alpha")
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
    svc = catalog.service(spec.service)
    assert svc is not None
    if spec.layer_id is None:
        names = RGBA_BANDS
    else:
        raster = svc.layer(spec.layer_id).raster
        names = tuple(f"b{i + 1}" for i in range(raster.count))
    if spec.bands:
        for b in spec.bands:
            if b not in names:
                raise invalid(f"Image.select: band '{b[:40]}' not found; the image has bands "
                              + ", ".join(names))
        return spec.bands
    return names


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
        bounds = shapely.geometry.shape(spec.clip).bounds
        src = WGS84
    elif spec.layer_id is not None:
        raster = svc.layer(spec.layer_id).raster
        bounds, src = raster.bounds, raster.sr
    else:
        bounds, src = svc.full_extent, svc.sr
    if src != sr:
        pb = project_bounds(tuple(bounds), src, sr)
        if pb is None or not all(map(math.isfinite, pb)):
            raise invalid("The image bounds cannot be projected into " + sr.key)
        bounds = pb
    xmin, ymin, xmax, ymax = bounds
    if spec.crs_transform is not None:
        a, b, c, d, e, f = spec.crs_transform
        t = Affine(a, b, c, d, e, f)
        inv = ~t
        cols, rows = zip(*(inv * (x, y) for x in (xmin, xmax) for y in (ymin, ymax)),
                         strict=True)
        c0, r0 = math.floor(min(cols)), math.floor(min(rows))
        c1, r1 = math.ceil(max(cols)), math.ceil(max(rows))
        return Grid(sr, t @ Affine.translation(c0, r0), max(1, c1 - c0), max(1, r1 - r0))
    bw, bh = xmax - xmin, ymax - ymin
    if spec.width and spec.height:
        return Grid(sr, Affine(bw / spec.width, 0, xmin, 0, -bh / spec.height, ymax),
                    spec.width, spec.height)
    if spec.scale:
        res = spec.scale / sr.meters_per_unit
    elif spec.layer_id is not None and not spec.max_dimension and src == sr:
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
    if spec.clip is not None:
        return shapely.geometry.shape(spec.clip).bounds
    svc = catalog.service(spec.service)
    assert svc is not None
    if spec.layer_id is not None:
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
    names = band_names(spec, catalog)
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
    if spec.clip is not None:
        valid = valid & clip_mask(spec.clip, grid)
        if spec.layer_id is None:  # clipped-away pixels become transparent
            data = data.copy()
            data[:, ~valid] = 0
    if names != all_names:
        data = data[[all_names.index(n) for n in names]]
    return Pixels(data=data, valid=valid, bands=names, rgba=spec.layer_id is None)


def export_params(spec: ImageSpec) -> Params:
    """The image's export-time arguments as the /export parameters they are."""
    pairs = [(k, v) for k, v in spec.extras.items()]
    if spec.layers:
        pairs.append(("layers", spec.layers))
    if spec.layer_defs:
        import json

        pairs.append(("layerDefs", json.dumps(spec.layer_defs)))
    if spec.time is not None:
        pairs.append(("time", ",".join("null" if t is None else str(t) for t in spec.time)))
    return Params(pairs)


def clip_mask(geojson: dict, grid: Grid) -> np.ndarray:
    """True for pixels whose centre lies inside the (EPSG:4326) clip geometry."""
    from rasterio.features import geometry_mask

    geom = project_geometry(shapely.geometry.shape(geojson), WGS84, grid.sr, segments=256)
    return geometry_mask([geom], (grid.height, grid.width), grid.transform, invert=True)
