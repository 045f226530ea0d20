"""Tiling schemes as data: the ``tileInfo`` a cached service advertises, and tile -> Grid.

A service opts in with a ``"tiling"`` object in its definition, written with the same field
names as ArcGIS ``tileInfo`` (``rows``, ``cols``, ``dpi``, ``format``, ``compressionQuality``,
``origin``, ``spatialReference``, ``lods``) plus ``levels`` (how many standard levels to
generate). The scheme is always in the service's own spatial reference, as ArcGIS caches are
(esri-leaflet maps cache levels only when the service SR is Web Mercator; a Web Mercator cache
under a 4326 service misleads every client): a scheme whose ``spatialReference`` differs from
the service's is rejected at load. ``"tiling": {}`` gives the standard scheme of the service's
SR: Esri's Web Mercator one for a 3857 service (esri-leaflet remaps its zooms by resolution and
ignores the origin, so the defaults must be exactly Esri's), and for a geographic (4326) service
the geographic one of ArcGIS and OGC WorldCRS84Quad (origin -180, 90; 0.703125° per pixel at
level 0, two 256-pixel tiles across the world); any other SR must give ``origin`` and
``lods``. The scheme is parsed once at load; this module knows nothing of services, so the
catalog can import it without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from affine import Affine

from mapserver.encode.image import Format, parse_format
from mapserver.errors import InvalidParameter
from mapserver.geo import mercator
from mapserver.geo.grid import INCHES_PER_METER, Grid
from mapserver.geo.sr import SpatialRef, parse_sr

# Esri's standard Web Mercator cache (ArcGIS Online / Google / Bing compatible).
WM_ORIGIN = (-mercator.ESRI_TILE_ORIGIN, mercator.ESRI_TILE_ORIGIN)
WM_RESOLUTION0 = mercator.ESRI_RESOLUTION0
WM_SCALE0 = mercator.ESRI_SCALE0
DEFAULT_LEVELS = 20  # levels 0..19 (~0.3 m / px at the last one)
# the standard geographic scheme (WGS 84): ArcGIS's and OGC WorldCRS84Quad's
GEO_ORIGIN = (-180.0, 90.0)
GEO_RESOLUTION0 = 180.0 / 256.0  # degrees per pixel at level 0 (2 x 1 tiles of 256 px)
MAX_LEVELS = 32
# tileInfo.format spelling -> our encoder (ArcGIS writes upper case; MIXED is not offered)
TILE_FORMATS = {"PNG": "png", "PNG8": "png8", "PNG24": "png24", "PNG32": "png32",
                "JPEG": "jpg", "JPG": "jpg"}


class TilingError(ValueError):
    """The ``tiling`` object of a service definition is malformed; ``path`` names the field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Lod:
    level: int
    resolution: float
    scale: float

    def to_json(self) -> dict:
        return {"level": self.level, "resolution": self.resolution, "scale": self.scale}


@dataclass(frozen=True)
class TilingScheme:
    """Tile size, origin (top-left), SR and levels. ``coverage`` is where the service has data,
    in the scheme's SR: tiles that do not overlap it are answered with HTTP 404."""

    sr: SpatialRef
    origin: tuple[float, float]
    lods: tuple[Lod, ...]
    rows: int = 256  # tile height in pixels
    cols: int = 256  # tile width in pixels
    dpi: float = 96.0
    format_name: str = "PNG32"
    compression_quality: int = 0
    coverage: tuple[float, float, float, float] | None = None

    @property
    def format(self) -> Format:
        return parse_format(TILE_FORMATS[self.format_name])

    def lod(self, level: int) -> Lod | None:
        for lod in self.lods:
            if lod.level == level:
                return lod
        return None

    def tile_bounds(self, lod: Lod, row: int, col: int) -> tuple[float, float, float, float]:
        x0 = self.origin[0] + col * self.cols * lod.resolution
        y1 = self.origin[1] - row * self.rows * lod.resolution
        return (x0, y1 - self.rows * lod.resolution, x0 + self.cols * lod.resolution, y1)

    def tile_grid(self, level: int, row: int, col: int) -> Grid | None:
        """The pixel grid of one tile, or ``None`` when the tile is outside the scheme (unknown
        level, negative row/col) or outside the service's data coverage."""
        lod = self.lod(level)
        if lod is None or row < 0 or col < 0:
            return None
        xmin, ymin, xmax, ymax = self.tile_bounds(lod, row, col)
        if self.coverage is not None:
            # overlap of more than a hundredth of a pixel: projected extents carry float noise
            # (World's 180° edge lands millimetres past the Web Mercator origin)
            eps = lod.resolution / 100.0
            cx0, cy0, cx1, cy1 = self.coverage
            if not (xmin + eps < cx1 and cx0 < xmax - eps and ymin + eps < cy1
                    and cy0 < ymax - eps):
                return None
        transform = Affine(lod.resolution, 0.0, xmin, 0.0, -lod.resolution, ymax)
        return Grid(sr=self.sr, transform=transform, width=self.cols, height=self.rows,
                    dpi=self.dpi)

    def to_json(self) -> dict:
        """ArcGIS ``tileInfo`` as GDAL, QGIS and esri-leaflet read it."""
        return {"rows": self.rows, "cols": self.cols, "dpi": self.dpi,
                "format": self.format_name, "compressionQuality": self.compression_quality,
                "origin": {"x": self.origin[0], "y": self.origin[1]},
                "spatialReference": self.sr.to_json(),
                "lods": [lod.to_json() for lod in self.lods]}


def web_mercator_lods(levels: int = DEFAULT_LEVELS, dpi: float = 96.0) -> tuple[Lod, ...]:
    """Esri's standard levels: resolution 156543.03392800014 / 2^z, scale 591657527.591555 / 2^z
    (at 96 dpi; another dpi scales the scale denominators, as ArcGIS does)."""
    k = dpi / 96.0
    return tuple(Lod(z, WM_RESOLUTION0 / 2 ** z, WM_SCALE0 * k / 2 ** z) for z in range(levels))


def _num(obj: Mapping, key: str, path: str, default: float, minimum: float = 0.0,
         integer: bool = False) -> Any:
    v = obj.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise TilingError(f"{path}.{key}", "must be a number")
    if integer and int(v) != v:
        raise TilingError(f"{path}.{key}", "must be an integer")
    if v < minimum:
        raise TilingError(f"{path}.{key}", f"must be at least {minimum:g}")
    return int(v) if integer else float(v)


def same_sr(a: SpatialRef, b: SpatialRef) -> bool:
    """The same spatial reference (102100 and 3857 are one)."""
    return a == b or (a.is_web_mercator and b.is_web_mercator)


def geographic_lods(sr: SpatialRef, levels: int = DEFAULT_LEVELS, dpi: float = 96.0
                    ) -> tuple[Lod, ...]:
    """The standard geographic levels: 0.703125° / 2^z per pixel, scales at ``dpi`` from the
    SR's metres per degree, as ``lods`` given without ``scale`` get them (and as Esri's
    WGS 1984 scheme lists them: 0.3515625° is 1:147748796.53)."""
    k = sr.meters_per_unit * dpi * INCHES_PER_METER
    return tuple(Lod(z, GEO_RESOLUTION0 / 2 ** z, GEO_RESOLUTION0 / 2 ** z * k)
                 for z in range(levels))


def parse_tiling(obj: Any, path: str = "tiling",
                 coverage: tuple[float, float, float, float] | None = None,
                 service_sr: SpatialRef | None = None) -> TilingScheme:
    """Validate a ``tiling`` object. ``service_sr``: the service's SR, which the scheme must
    be in (and the default SR of the scheme); missing fields take the standard values of a
    Web Mercator or geographic scheme; a scheme in another SR must give ``origin`` and
    ``lods``."""
    if not isinstance(obj, Mapping):
        raise TilingError(path, "must be an object (use {} for the standard scheme of the "
                          "service's spatial reference)")
    try:
        given = obj.get("spatialReference")
        sr = parse_sr(given) if given else service_sr or parse_sr({"wkid": 102100})
    except InvalidParameter as exc:
        raise TilingError(f"{path}.spatialReference", "; ".join(exc.details) or exc.message
                          ) from exc
    if service_sr is not None and not same_sr(sr, service_sr):
        raise TilingError(f"{path}.spatialReference",
                          f"must be the service's spatial reference ({_sr_text(service_sr)}), "
                          f"not {_sr_text(sr)}: ArcGIS caches are in the service's SR, and "
                          "tile clients rely on it (make a separate service for another SR)")
    standard = sr.is_web_mercator or sr.is_geographic and sr.meters_per_unit > 100000 \
        and sr.latest_wkid == 4326
    rows = _num(obj, "rows", path, 256, 1, integer=True)
    cols = _num(obj, "cols", path, 256, 1, integer=True)
    if rows > 4096 or cols > 4096:
        raise TilingError(f"{path}.rows", "tiles may be at most 4096 pixels on a side")
    dpi = _num(obj, "dpi", path, 96.0, 1.0)
    quality = _num(obj, "compressionQuality", path, 0, 0, integer=True)
    fmt = obj.get("format", "PNG32")
    if not isinstance(fmt, str) or fmt.upper() not in TILE_FORMATS:
        raise TilingError(f"{path}.format", f"must be one of {', '.join(TILE_FORMATS)}")

    origin_obj = obj.get("origin")
    if origin_obj is None:
        if not standard:
            raise TilingError(f"{path}.origin", "is required for a scheme that is neither "
                              "Web Mercator nor WGS 84 geographic")
        origin = WM_ORIGIN if sr.is_web_mercator else GEO_ORIGIN
    else:
        if not isinstance(origin_obj, Mapping):
            raise TilingError(f"{path}.origin", "must be an object {\"x\": …, \"y\": …}")
        origin = (_num(origin_obj, "x", f"{path}.origin", math.nan, -math.inf),
                  _num(origin_obj, "y", f"{path}.origin", math.nan, -math.inf))
        if not all(math.isfinite(v) for v in origin):
            raise TilingError(f"{path}.origin", "needs numbers x and y")

    lods_obj = obj.get("lods")
    if lods_obj is None:
        if not standard:
            raise TilingError(f"{path}.lods", "is required for a scheme that is neither "
                              "Web Mercator nor WGS 84 geographic")
        levels = _num(obj, "levels", path, DEFAULT_LEVELS, 1, integer=True)
        if levels > MAX_LEVELS:
            raise TilingError(f"{path}.levels", f"must be at most {MAX_LEVELS}")
        lods = web_mercator_lods(levels, dpi) if sr.is_web_mercator \
            else geographic_lods(sr, levels, dpi)
    else:
        lods = _parse_lods(lods_obj, f"{path}.lods", sr, dpi)
    return TilingScheme(sr=sr, origin=origin, lods=lods, rows=rows, cols=cols, dpi=dpi,
                        format_name=fmt.upper(), compression_quality=quality,
                        coverage=coverage)


def _sr_text(sr: SpatialRef) -> str:
    return f"wkid {sr.latest_wkid or sr.wkid}" if (sr.latest_wkid or sr.wkid) else "a WKT SR"


def _parse_lods(value: Any, path: str, sr: SpatialRef, dpi: float) -> tuple[Lod, ...]:
    if not isinstance(value, list) or not value:
        raise TilingError(path, "must be a non-empty list of {level, resolution}")
    out: list[Lod] = []
    for i, item in enumerate(value):
        p = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            raise TilingError(p, "must be an object {level, resolution[, scale]}")
        level = _num(item, "level", p, 0, 0, integer=True) if item.get("level") is not None \
            else i
        res = _num(item, "resolution", p, math.nan, 0.0)
        if not (math.isfinite(res) and res > 0):
            raise TilingError(f"{p}.resolution", "must be a positive number")
        scale = item.get("scale")
        if scale is None:
            scale = res * sr.meters_per_unit * dpi * INCHES_PER_METER
        else:
            scale = _num(item, "scale", p, 0.0, 0.0)
        if out and (level <= out[-1].level or res >= out[-1].resolution):
            raise TilingError(p, "levels must increase and resolutions decrease")
        out.append(Lod(level, res, float(scale)))
    return tuple(out)
