"""Spatial references as ArcGIS clients speak them: WKID ints, ``{"wkid"}``, ``{"latestWkid"}``,
``{"wkt"}`` JSON, and the Esri Web Mercator aliases (102100, 102113, 900913 -> EPSG:3857).

A :class:`SpatialRef` holds the pyproj CRS used for all maths plus the ids we echo back. On output
we always emit both ``wkid`` and ``latestWkid`` when an authority code exists, because OpenLayers'
EsriJSON reads only ``wkid`` while esri-leaflet, QGIS and GDAL prefer ``latestWkid``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache

import pyproj
from pyproj.exceptions import CRSError

from mapserver.errors import InvalidParameter

# Esri ids that mean EPSG:3857. The first is what ArcGIS reports as ``wkid`` for Web Mercator.
WEB_MERCATOR_ALIASES = {102100: 3857, 102113: 3857, 900913: 3857, 3857: 3857}

# Metres per degree used for scale in geographic SRs. Esri's WGS84 tiling schemes pair
# 0.703125 deg/px with 1:295497593.05875 at 96 dpi, which implies this constant (authalic sphere).
METERS_PER_DEGREE = 111194.87428468118


@dataclass(frozen=True)
class SpatialRef:
    """A parsed spatial reference. ``wkid`` is the id reported to clients (may be an Esri alias)."""

    crs: pyproj.CRS = field(compare=False, hash=False)
    key: str  # stable identity, e.g. "EPSG:3857" or the WKT; used for caching and equality
    wkid: int | None = None
    latest_wkid: int | None = None

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    @property
    def is_web_mercator(self) -> bool:
        return self.latest_wkid == 3857

    @property
    def meters_per_unit(self) -> float:
        mpu = _METERS_PER_UNIT.get(self.key)
        if mpu is None:  # keyed by ``key``: hashing a pyproj CRS writes its WKT (0.1 ms)
            if len(_METERS_PER_UNIT) >= 512:  # client WKTs are keys too: stay bounded
                _METERS_PER_UNIT.clear()
            mpu = _METERS_PER_UNIT[self.key] = _meters_per_unit(self.crs)
        return mpu

    @property
    def units(self) -> str:
        """ArcGIS ``units`` value for the service root JSON."""
        if self.is_geographic:
            return "esriDecimalDegrees"
        mpu = self.meters_per_unit
        if abs(mpu - 0.3048) < 1e-6:
            return "esriFeet"
        if abs(mpu - 0.3048006096012192) < 1e-9:
            return "esriFeet"
        return "esriMeters"

    def to_json(self) -> dict:
        if self.wkid is not None:
            return {"wkid": self.wkid, "latestWkid": self.latest_wkid or self.wkid}
        return {"wkt": self.crs.to_wkt(pyproj.enums.WktVersion.WKT1_ESRI)}

    def __str__(self) -> str:  # pragma: no cover - debugging aid
        return self.key


_METERS_PER_UNIT: dict[str, float] = {}  # per SR key


def _meters_per_unit(crs: pyproj.CRS) -> float:
    if crs.is_geographic:
        return METERS_PER_DEGREE
    try:
        factor = crs.axis_info[0].unit_conversion_factor
    except (IndexError, AttributeError):
        factor = None
    return float(factor) if factor else 1.0


@lru_cache(maxsize=256)
def from_wkid(wkid: int) -> SpatialRef:
    """A SpatialRef from an integer id (EPSG, or ESRI where no EPSG code exists)."""
    if wkid in WEB_MERCATOR_ALIASES:
        crs = pyproj.CRS.from_epsg(3857)
        # ArcGIS reports Web Mercator as {"wkid": 102100, "latestWkid": 3857}, whatever alias
        # the client used.
        return SpatialRef(crs=crs, key="EPSG:3857", wkid=102100, latest_wkid=3857)
    try:
        crs = pyproj.CRS.from_epsg(wkid)
        return SpatialRef(crs=crs, key=f"EPSG:{wkid}", wkid=wkid, latest_wkid=wkid)
    except CRSError:
        pass
    try:
        crs = pyproj.CRS.from_authority("ESRI", str(wkid))
        return SpatialRef(crs=crs, key=f"ESRI:{wkid}", wkid=wkid, latest_wkid=wkid)
    except CRSError as exc:
        raise InvalidParameter("Invalid spatial reference",
                               [f"Unknown spatial reference wkid {wkid}"]) from exc


WKT_KEYWORDS = ("GEOGCS", "PROJCS", "GEOGCRS", "PROJCRS", "COMPD", "GEODCRS", "BOUNDCRS",
                 "COMPOUNDCRS", "GEOCCS", "BASEGEOGCRS")


def from_wkt(wkt: str) -> SpatialRef:
    """A SpatialRef from WKT (OGC or Esri flavour); ids are reported when the WKT matches one.

    Client WKT is checked before use: at most MAPSERVER_MAX_WKT_LENGTH characters, a datum
    PROJ knows (by id or name) or one defined by TOWGS84, and projection parameters PROJ
    accepts (e.g. no latitude of origin past 90 degrees)."""
    from mapserver import limits

    most = limits.current().max_wkt_length
    if len(wkt) > most:
        raise InvalidParameter("Invalid spatial reference",
                               [f"The spatial reference WKT is longer than {most} characters "
                                "(MAPSERVER_MAX_WKT_LENGTH)"])
    return _from_wkt_checked(wkt)


@lru_cache(maxsize=128)
def _from_wkt_checked(wkt: str) -> SpatialRef:
    try:
        crs = pyproj.CRS.from_user_input(wkt)
    except CRSError as exc:
        raise InvalidParameter("Invalid spatial reference",
                               ["Could not parse the spatial reference WKT"]) from exc
    if wkt.lstrip().upper().startswith(WKT_KEYWORDS):
        _check_datum(crs)
    _check_usable(crs)
    return from_crs(crs)


def _check_datum(crs: pyproj.CRS) -> None:
    """Refuse a made-up datum (``DATUM["y", …]`` with no id, no known name, no TOWGS84): the
    map would be drawn as if it were some other datum."""
    if crs.is_bound or crs.datum is None:
        return
    if crs.geodetic_crs is not None and crs.geodetic_crs.to_authority(min_confidence=70):
        return
    datum = crs.datum
    info = datum.to_json_dict()
    if info.get("id") or info.get("ids") or info.get("type") == "DatumEnsemble":
        return
    from pyproj.crs import Datum

    try:
        Datum.from_name(datum.name)
        return
    except CRSError:
        pass
    raise InvalidParameter("Invalid spatial reference",
                           [f"Unknown datum '{datum.name[:80]}' in the spatial reference WKT: "
                            "use a datum PROJ knows or give its TOWGS84 parameters"])


def _check_usable(crs: pyproj.CRS) -> None:
    """Projection parameters PROJ refuses (``lat_0`` > 90 degrees, ...) fail here, not while
    drawing."""
    if not crs.is_projected or crs.geodetic_crs is None:
        return
    try:
        pyproj.Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True)
    except (CRSError, pyproj.exceptions.ProjError) as exc:
        reason = str(exc).split("(Internal Proj Error: ")[-1].rstrip(")")[:160]
        raise InvalidParameter("Invalid spatial reference",
                               ["The spatial reference WKT has projection parameters PROJ "
                                f"cannot use: {reason}"]) from exc


def from_crs(crs: pyproj.CRS | str) -> SpatialRef:
    """A SpatialRef for a CRS read from data (rasterio/pyogrio WKT or a pyproj CRS)."""
    crs = pyproj.CRS.from_user_input(crs)
    auth = crs.to_authority(min_confidence=90)
    if auth is not None and auth[0] in ("EPSG", "ESRI"):
        try:
            return from_wkid(int(auth[1]))
        except (ValueError, InvalidParameter):
            pass
    return SpatialRef(crs=crs, key=crs.to_wkt(), wkid=None, latest_wkid=None)


def parse_sr(value: object, default: SpatialRef | None = None) -> SpatialRef:
    """Parse an SR parameter: ``4326``, ``"EPSG:4326"``, ``{"wkid":…}``, ``{"latestWkid":…}``,
    ``{"wkt":…}`` or a JSON string of those. Empty means ``default``.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise InvalidParameter("Invalid spatial reference", ["Spatial reference is required"])
        return default
    if isinstance(value, bool):
        raise InvalidParameter("Invalid spatial reference",
                               [f"Invalid spatial reference {value!r}"])
    if isinstance(value, int):
        return from_wkid(value)
    if isinstance(value, float) and value.is_integer():
        return from_wkid(int(value))
    if isinstance(value, dict):
        return _from_json(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                obj = json.loads(text)
            except ValueError as exc:
                raise InvalidParameter(
                    "Invalid spatial reference",
                    [f"Spatial reference is not valid JSON: {text[:80]}"]) from exc
            if not isinstance(obj, dict):
                raise InvalidParameter("Invalid spatial reference", ["Expected a JSON object"])
            return _from_json(obj)
        code = text.rsplit(":", 1)[-1] if ":" in text else text
        if code.lstrip("-").isdigit() and len(code) < 10:
            if text.upper().startswith("ESRI:"):
                try:
                    crs = pyproj.CRS.from_authority("ESRI", code)
                except CRSError as exc:
                    raise InvalidParameter("Invalid spatial reference",
                                           [f"Unknown spatial reference {text}"]) from exc
                if int(code) in WEB_MERCATOR_ALIASES:
                    return from_wkid(int(code))
                return SpatialRef(crs=crs, key=f"ESRI:{code}", wkid=int(code),
                                  latest_wkid=int(code))
            return from_wkid(int(code))
        if text.upper().startswith(("GEOGCS", "PROJCS", "GEOGCRS", "PROJCRS", "COMPD")):
            return from_wkt(text)
    raise InvalidParameter("Invalid spatial reference",
                           [f"Invalid spatial reference {value!r}"[:200]])


def _from_json(obj: dict) -> SpatialRef:
    for key in ("latestWkid", "wkid"):
        v = obj.get(key)
        if v is not None:
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                raise InvalidParameter("Invalid spatial reference", [f"Invalid {key} {v!r}"])
            try:
                return from_wkid(int(v))
            except (ValueError, OverflowError) as exc:  # "abc", 1e400 (inf)
                raise InvalidParameter("Invalid spatial reference",
                                       [f"Invalid {key} {v!r}"]) from exc
    wkt = obj.get("wkt") or obj.get("wkt2")
    if isinstance(wkt, str) and wkt.strip():
        return from_wkt(wkt)
    raise InvalidParameter("Invalid spatial reference",
                           ["Spatial reference JSON needs wkid, latestWkid or wkt"])


WGS84 = from_wkid(4326)
WEB_MERCATOR = from_wkid(102100)


@lru_cache(maxsize=512)
def transformer(src: SpatialRef, dst: SpatialRef) -> pyproj.Transformer:
    """A cached always_xy transformer between two SRs."""
    return pyproj.Transformer.from_crs(src.crs, dst.crs, always_xy=True)
