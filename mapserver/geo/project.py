"""The one way geometry reaches a grid: datum choice, densify, antimeridian cut, pole clamp,
world copies and a clip to the view with a margin.

A map's SR has a *frame*: the geographic CRS under it, its central meridian ``lon0`` and so
its antimeridian ``lon0 ± 180``. ArcGIS clients ask for views across the date line with WKT
SRs whose central meridian is shifted (the ArcGIS Maps SDK sends Web Mercator or Plate Carrée
with Central_Meridian 175, 10, -150, ...). Data stored in -180..180 crosses *that* antimeridian
somewhere, and a ring projected as it is would jump from one side of the world to the other,
smearing a band across the image. So geometry on its way to a grid goes:

1. source SR → the frame's geographic CRS, through the requested datum transformation
   (``datumTransformations``, in whichever direction it was requested) or pyproj's best;
2. densified (1°) for projections that bend lines, cut at the antimeridian into pieces each
   shifted into the window ``[lon0 - 180, lon0 + 180]``, latitudes clamped where the
   projection sends the poles to infinity (Mercator);
3. projected (a pure conversion, no datum step) and mapped to pixels through the grid's
   affine, then clipped to the pixel rectangle plus a margin.

When none of that is needed (same SR, or central meridian 0 with a finite pole) the source
goes straight to the map SR in one pyproj call, as fast as before. Cylindrical projections
(meridians straight and evenly spaced) repeat every ``period`` map units; a view wider than
the world, or reaching past the antimeridian, is drawn once per world copy
(:func:`world_shifts`).
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyproj
import shapely

from mapserver import datum as datum_mod
from mapserver.geo import mercator
from mapserver.geo.grid import Grid
from mapserver.geo.sr import SpatialRef, from_crs, transformer

MERCATOR_HALF_WORLD = mercator.HALF_WORLD
MERCATOR_MAX_LAT = mercator.MAX_LAT
# Projections that send the poles to infinity draw up to this latitude.
POLE_CLAMP_LAT = 89.5
# Pieces cut at the antimeridian stay this far (degrees) inside it, so PROJ never wraps them.
CUT_EPS = 1e-7
DENSIFY_DEG = 1.0
MAX_COPIES = 5

Datum = tuple  # tuple[datum.Requested, ...]


@dataclass(frozen=True)
class Frame:
    """What a map SR needs from geometry: see the module docstring."""

    geodetic: SpatialRef | None  # None: the map SR is itself geographic
    lon0: float
    cut: bool  # geometries must be cut at lon0 + 180
    lat_range: tuple[float, float]  # latitudes drawn: the poles a projection cannot take
    # (Mercator sends both to infinity, a polar azimuthal its antipode to a whole circle)
    # are clamped to POLE_CLAMP_LAT
    cylindrical: bool  # x is linear in longitude, the same at every latitude
    period: float | None  # map x units of one world (cylindrical only)
    x_center: float  # map x of lon0 on the equator

    @property
    def via_geodetic(self) -> bool:
        return self.geodetic is not None and (self.cut or self.lat_range != (-90.0, 90.0))


def _lon0(crs: pyproj.CRS) -> float:
    op = crs.coordinate_operation
    if op is None:
        return 0.0
    for p in op.params:
        name = p.name.lower()
        if name.startswith("longitude of") or name in ("central meridian", "central_meridian"):
            value = float(p.value)
            if p.unit_name and "rad" in p.unit_name.lower():
                value = math.degrees(value)
            return value
    return 0.0


@lru_cache(maxsize=256)
def frame(sr: SpatialRef) -> Frame:
    crs = sr.crs
    if crs.is_geographic:
        return Frame(None, 0.0, False, (-90.0, 90.0), True, 360.0, 0.0)
    geodetic = from_crs(crs.geodetic_crs) if crs.geodetic_crs is not None else None
    if geodetic is None:
        return Frame(None, 0.0, False, (-90.0, 90.0), False, None, 0.0)
    lon0 = _lon0(crs)
    to_map = transformer(geodetic, sr)
    lons = np.array([lon0 - 90.0, lon0 + 90.0, lon0 - 90.0, lon0 + 90.0, lon0,
                     lon0, lon0, lon0, lon0, lon0, lon0])
    lats = np.array([0.0, 0.0, 60.0, 60.0, 0.0, 90.0, 89.9999, 89.99,
                     -90.0, -89.9999, -89.99])
    with np.errstate(all="ignore"):
        x, y = to_map.transform(lons, lats, errcheck=False)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    finite = np.isfinite(x[:5]).all() and np.isfinite(y[:5]).all()
    span = x[1] - x[0] if finite else float("nan")
    cylindrical = bool(finite and span > 0 and abs((x[3] - x[2]) - span) <= 1e-9 * abs(span)
                       and abs(x[2] - x[0]) <= 1e-9 * abs(span))

    def bad_pole(i: int) -> bool:
        # a pole the projection cannot take: no result, or the last 0.01 degree towards it
        # still spans half a world (Mercator)
        pts = np.array([x[i], y[i], x[i + 1], y[i + 1], x[i + 2], y[i + 2]])
        if not np.isfinite(pts).all():
            return True
        return bool(finite and np.hypot(x[i + 1] - x[i + 2], y[i + 1] - y[i + 2])
                    > 0.5 * abs(span))

    lat_range = (-POLE_CLAMP_LAT if bad_pole(8) else -90.0,
                 POLE_CLAMP_LAT if bad_pole(5) else 90.0)
    cut = abs(((lon0 + 180.0) % 360.0) - 180.0) > 1e-9  # lon0 is not 0
    return Frame(geodetic=geodetic, lon0=lon0, cut=cut, lat_range=lat_range,
                 cylindrical=cylindrical, period=2.0 * span if cylindrical else None,
                 x_center=float(x[4]) if finite else 0.0)


def cuts_geometry(src: SpatialRef, grid: Grid) -> bool:
    """Whether geometry from ``src`` is cut at the map's antimeridian on its way to ``grid``
    (then polygon fills gain edges along the cut that must not be stroked)."""
    fr = frame(grid.sr)
    return src != grid.sr and fr.via_geodetic and fr.cut


def world_shifts(grid: Grid) -> list[float]:
    """x shifts (map units) of the world copies a view shows: a cylindrical map reaching past
    its antimeridian also shows the world from the other side. ``[0.0]`` when the view lies
    in one world, or is so many worlds wide that one copy is drawn."""
    fr = frame(grid.sr)
    if fr.period is None:
        return [0.0]
    p = fr.period
    xmin, _ymin, xmax, _ymax = grid.bounds
    first = math.floor((xmin - fr.x_center + p / 2) / p)
    last = math.ceil((xmax - fr.x_center + p / 2) / p) - 1
    if last < first or last - first >= MAX_COPIES:
        return [0.0]
    return [k * p for k in range(first, last + 1)]


# Where a vertex does not project (outside the projection's domain), the transform writes this
# finite stand-in: NaN would break ring closure in GEOS; the vertices are dropped just after.
UNPROJECTED = 1e250


def _xy(tr: pyproj.Transformer):
    def fn(xy: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
        out = np.column_stack([x, y])
        out[~np.isfinite(out)] = UNPROJECTED
        return out

    return fn


def _transformer(src: SpatialRef, dst: SpatialRef, datum: Datum) -> pyproj.Transformer:
    """The requested datum transformation between the two, else pyproj's best."""
    chosen = datum_mod.choose(src, dst, datum) if datum else None
    return chosen or transformer(src, dst)


def _window_pieces(geoms: np.ndarray, fr: Frame) -> tuple[np.ndarray, np.ndarray]:
    """Parts of lon/lat geometries cut at the frame's antimeridian (and clamped in latitude),
    each shifted into ``[lon0 - 180, lon0 + 180]``. Returns (parts, feature index)."""
    south, north = fr.lat_range
    if not fr.cut:  # only the clamp, and only for geometries that reach past it
        parts, owner = shapely.get_parts(_clip_outside(geoms, -1e9, south, 1e9, north),
                                         return_index=True)
        keep = ~shapely.is_empty(parts)
        return parts[keep], owner[keep]
    lo, hi = fr.lon0 - 180.0 + CUT_EPS, fr.lon0 + 180.0 - CUT_EPS
    shifts = (-360.0, 0.0, 360.0)
    all_parts, all_owner = [], []
    for k in shifts:
        pieces = shapely.clip_by_rect(geoms, lo + k, south, hi + k, north)
        parts, owner = shapely.get_parts(pieces, return_index=True)
        keep = ~shapely.is_empty(parts)
        parts, owner = parts[keep], owner[keep]
        if k and len(parts):
            parts = shapely.transform(parts, lambda xy, k=k: xy - np.array([k, 0.0]))
        all_parts.append(parts)
        all_owner.append(owner)
    return np.concatenate(all_parts), np.concatenate(all_owner)


def _drop_nonfinite(parts: np.ndarray) -> np.ndarray:
    """Parts without the vertices that did not project (outside the projection's domain);
    rings or lines left with too few vertices become empty."""
    coords, which = shapely.get_coordinates(parts, return_index=True)
    bad = (coords == UNPROJECTED).any(axis=1)
    if not bad.any():
        return parts
    out = parts.copy()
    for i in np.unique(which[bad]):
        out[i] = _finite_only(parts[i])
    return out


def _finite_only(g: shapely.Geometry) -> shapely.Geometry:
    def ring(coords: np.ndarray, closed: bool) -> np.ndarray | None:
        c = coords[(coords != UNPROJECTED).all(axis=1)]
        need = 4 if closed else 2
        if closed and len(c) >= 3 and not np.array_equal(c[0], c[-1]):
            c = np.vstack([c, c[:1]])
        return c if len(c) >= need else None

    kind = g.geom_type
    if kind == "Polygon":
        shell = ring(np.asarray(g.exterior.coords), True)
        if shell is None:
            return shapely.Polygon()
        holes = [h for h in (ring(np.asarray(r.coords), True) for r in g.interiors)
                 if h is not None]
        return shapely.Polygon(shell, holes)
    if kind in ("LineString", "LinearRing"):
        c = ring(np.asarray(g.coords), kind == "LinearRing")
        return shapely.LineString(c) if c is not None else shapely.LineString()
    if kind == "Point":
        return g if UNPROJECTED not in g.coords[0] else shapely.Point()
    parts = [p for p in (_finite_only(part) for part in shapely.get_parts(g)) if not p.is_empty]
    return shapely.geometrycollections(parts) if kind == "GeometryCollection" else \
        type(g)(parts) if parts else type(g)()


def _to_pixels_fn(tr: pyproj.Transformer | None, grid: Grid, unprojected: list[bool]):
    """One coordinate function for ``shapely.transform``: the map projection (``tr``, None
    for none) and the grid's affine in one pass, so every geometry is cloned once. Vertices
    that did not project get :data:`UNPROJECTED` and are reported in ``unprojected``."""
    inv = ~grid.transform

    def fn(xy: np.ndarray) -> np.ndarray:
        if tr is None:
            x, y, bad = xy[:, 0], xy[:, 1], None
        else:
            with np.errstate(all="ignore"):
                x, y = tr.transform(xy[:, 0], xy[:, 1], errcheck=False)
            x, y = np.asarray(x), np.asarray(y)
            bad = ~(np.isfinite(x) & np.isfinite(y))
        out = np.column_stack([inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f])
        if bad is not None and bad.any():
            out[bad] = UNPROJECTED
            unprojected.append(True)
        return out

    return fn


def _clip_outside(parts: np.ndarray, xmin: float, ymin: float, xmax: float, ymax: float
                  ) -> np.ndarray:
    """``clip_by_rect`` for just the parts that reach outside the rectangle (the others are
    returned as they are: clipping copies every geometry)."""
    b = shapely.bounds(parts)
    out = (b[:, 0] < xmin) | (b[:, 1] < ymin) | (b[:, 2] > xmax) | (b[:, 3] > ymax)
    if not out.any():
        return parts
    parts = parts.copy()
    src = parts[out]
    clipped = shapely.clip_by_rect(src, xmin, ymin, xmax, ymax)
    # a clip never grows a geometry: where it did, the part was invalid (a self-intersection
    # after projection, e.g. Sudan on a 1088 px Web Mercator view) and GEOS answered the whole
    # rectangle; clip a repaired copy instead
    cb, sb = shapely.bounds(clipped), b[out]
    grown = ((cb[:, 0] < sb[:, 0] - 1e-6) | (cb[:, 1] < sb[:, 1] - 1e-6)
             | (cb[:, 2] > sb[:, 2] + 1e-6) | (cb[:, 3] > sb[:, 3] + 1e-6))
    if grown.any():
        clipped[grown] = shapely.clip_by_rect(shapely.make_valid(src[grown]), xmin, ymin,
                                              xmax, ymax)
    parts[out] = clipped
    return parts


COMPUTE = object()  # to_pixel_parts(area=COMPUTE): work out the view's area itself


def to_pixel_parts(geoms: np.ndarray, src: SpatialRef, grid: Grid, datum: Datum = (),
                   margin: float = 64.0, area: object = COMPUTE
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Lines or polygons in ``src`` → their single parts in ``grid``'s pixel space (cut,
    clamped, clipped to the pixel rectangle grown by ``margin`` pixels). ``area`` is
    :func:`view_area` of the grid in ``src`` when the caller has it (the planner does).
    Returns (parts, index of the feature each part came from); empty parts are dropped."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    fr = frame(grid.sr)
    if src != grid.sr:
        # a cheap first cut in the source SR: nothing outside the view's area can show, and
        # far fewer vertices are projected for a zoomed-in view of large features
        if area is COMPUTE:
            area = view_area(grid, src)
        if area is not None:
            geoms = _clip_outside(geoms, *area.bounds)  # type: ignore[union-attr]
    unprojected: list[bool] = []
    if src == grid.sr:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        parts = shapely.transform(parts, _to_pixels_fn(None, grid, unprojected))
    elif fr.via_geodetic:
        g = fr.geodetic
        assert g is not None
        world = geoms if src == g else _drop_nonfinite(shapely.transform(
            geoms, _xy(_transformer(src, g, datum))))
        parts, owner = _window_pieces(world, fr)
        if not fr.cylindrical:  # after the cut: its new edges (a meridian, a parallel) bend
            parts = shapely.segmentize(parts, DENSIFY_DEG)
        parts = shapely.transform(parts, _to_pixels_fn(transformer(g, grid.sr), grid,
                                                       unprojected))
    else:
        parts, owner = shapely.get_parts(geoms, return_index=True)
        parts = shapely.transform(parts, _to_pixels_fn(_transformer(src, grid.sr, datum), grid,
                                                       unprojected))
    if unprojected:
        parts = _drop_nonfinite(parts)
    parts = _clip_outside(parts, -margin, -margin, grid.width + margin, grid.height + margin)
    parts, sub = shapely.get_parts(parts, return_index=True)
    owner = owner[sub]
    keep = ~shapely.is_empty(parts)
    return parts[keep], owner[keep]


def points_to_pixels(geoms: np.ndarray, src: SpatialRef, grid: Grid, datum: Datum = ()
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Every point of ``geoms`` (multipoints give several) in pixel space, its longitude put
    inside the map's world window. Returns ((n, 2) pixels, feature index)."""
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    if len(coords) == 0:
        return coords.reshape(0, 2), owner
    fr = frame(grid.sr)
    if src == grid.sr:
        xy = coords
    elif fr.via_geodetic:
        g = fr.geodetic
        assert g is not None
        ll = coords if src == g else _xy(_transformer(src, g, datum))(coords)
        lo = fr.lon0 - 180.0
        lon = lo + np.mod(ll[:, 0] - lo, 360.0)
        lat = np.clip(ll[:, 1], *fr.lat_range)
        xy = _xy(transformer(g, grid.sr))(np.column_stack([lon, lat]))
    else:
        xy = _xy(_transformer(src, grid.sr, datum))(coords)
    col, row = grid.to_pixels(xy[:, 0], xy[:, 1])
    return np.column_stack([col, row]), owner


def view_area(grid: Grid, sr: SpatialRef) -> shapely.Geometry | None:
    """An area in ``sr`` that holds everything the grid can show, for candidate selection
    (envelope tests only, so a superset is right and cheap). None: any feature may show (the
    view holds a pole, or crosses the antimeridian of ``sr``, or its outline does not
    project)."""
    if sr == grid.sr:
        return shapely.box(*grid.bounds)
    fr = frame(grid.sr)
    if fr.geodetic is not None:
        with np.errstate(all="ignore"):
            px, py = transformer(fr.geodetic, grid.sr).transform(
                np.array([0.0, 0.0]), np.array([90.0, -90.0]), errcheck=False)
        col, row = grid.to_pixels(np.asarray(px), np.asarray(py))
        inside = (np.isfinite(col) & np.isfinite(row) & (col >= 0) & (col <= grid.width)
                  & (row >= 0) & (row <= grid.height))
        if inside.any():
            return None
    fp = grid.footprint(sr, densify=32)
    if fp is None or fp.is_empty:
        return None
    xmin, ymin, xmax, ymax = fp.bounds
    if sr.is_geographic and xmax - xmin > 180.0:
        return None
    # 2 % of the view, and never less than the spread between datum transformations (~1 km)
    slack = 0.01 if sr.is_geographic else 1000.0 / sr.meters_per_unit
    dx, dy = max((xmax - xmin) * 0.02, slack), max((ymax - ymin) * 0.02, slack)
    return shapely.box(xmin - dx, ymin - dy, xmax + dx, ymax + dy)


def project_geometry(geom: shapely.Geometry, src: SpatialRef, dst: SpatialRef,
                     datum: Datum = (), segments: int = 64) -> shapely.Geometry:
    """One geometry (a query shape, a clip polygon, a spatial filter) from ``src`` to ``dst``,
    its edges densified first so straight edges in one SR follow the curve they make in the
    other. Vertices that do not project are dropped; the result is made valid."""
    if src == dst or geom.is_empty:
        return geom if shapely.is_valid(geom) else shapely.make_valid(geom)
    if geom.geom_type not in ("Point", "MultiPoint"):
        xmin, ymin, xmax, ymax = geom.bounds
        step = max(xmax - xmin, ymax - ymin) / segments
        if step > 0:
            geom = shapely.segmentize(geom, step)
    out = shapely.transform(geom, _xy(_transformer(src, dst, datum)))
    if (shapely.get_coordinates(out) == UNPROJECTED).any():
        parts = _drop_nonfinite(shapely.get_parts(out))
        parts = parts[~shapely.is_empty(parts)]
        out = shapely.union_all(shapely.make_valid(parts)) if len(parts) else \
            shapely.GeometryCollection()
    return out if shapely.is_valid(out) else shapely.make_valid(out)


def project_bounds(b: tuple[float, float, float, float], src: SpatialRef,
                   dst: SpatialRef) -> tuple[float, float, float, float] | None:
    """Bounds of a box after projection (edges densified), clamped to the target's domain."""
    if src == dst:
        return b
    xmin, ymin, xmax, ymax = b
    if dst.is_web_mercator and src.is_geographic:
        ymin, ymax = max(ymin, -MERCATOR_MAX_LAT), min(ymax, MERCATOR_MAX_LAT)
    t = np.linspace(0, 1, 21)
    xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(21, xmax),
                         xmin + (xmax - xmin) * t, np.full(21, xmin)])
    ys = np.concatenate([np.full(21, ymin), ymin + (ymax - ymin) * t, np.full(21, ymax),
                         ymin + (ymax - ymin) * t])
    with np.errstate(all="ignore"):
        tx, ty = transformer(src, dst).transform(xs, ys, errcheck=False)
    tx, ty = np.asarray(tx), np.asarray(ty)
    ok = np.isfinite(tx) & np.isfinite(ty)
    if not ok.any():
        return None
    return (float(tx[ok].min()), float(ty[ok].min()), float(tx[ok].max()), float(ty[ok].max()))


# --- the fast route: a table's rings projected once per map SR ---------------------------------
# A request draws the same features again and again, and most of :func:`to_pixel_parts` (the
# shapely passes that build, cut and project geometry objects) gives the same map coordinates
# every time: only the grid's affine changes. So the steps before the affine are done once per
# (table, map SR) and kept flat (:class:`ProjectedRings`); a request gathers its features'
# vertices and applies the affine in numpy. Bit-identical to the exact route: the same
# functions produce the map coordinates, the affine is the same expression, and a feature the
# exact route would clip (reaching past the view's area or the pixel margin) goes through the
# exact route itself.


@dataclass(frozen=True)
class ProjectedRings:
    """Every ring (polygons: exterior then holes, part by part) or line of a table's
    geometries in one map SR, in the order :func:`mapserver.render.geometry.feature_paths`
    draws them; ``start[i]:start[i + 1]`` are feature ``i``'s vertices."""

    xy: np.ndarray  # (n, 2) map units
    codes: np.ndarray  # (n,) matplotlib path codes (uint8)
    start: np.ndarray  # (features + 1,) vertex offsets
    src_bounds: np.ndarray  # (features, 4) each geometry's bounds in its own SR (NaN: empty)


MOVETO, LINETO, CLOSEPOLY = 1, 2, 79  # matplotlib.path.Path codes (no matplotlib import here)
_rings: dict[tuple[int, str, str, bool], tuple[weakref.ref, ProjectedRings | None]] = {}
_pinned: set[tuple[int, str, str, bool]] = set()  # built by warm(): never evicted by requests
_seen: dict[tuple[int, str, str, bool], weakref.ref] = {}
_rings_lock = threading.Lock()
RINGS_KEPT = 64


def projected_rings(geometry: np.ndarray, src: SpatialRef, dst: SpatialRef,
                    closed: bool, build: bool = False) -> ProjectedRings | None:
    """The table ``geometry`` (all rows) projected into ``dst`` as flat rings, built once and
    kept while the array lives (the gunicorn master builds them in ``warm()``, so workers share
    them). Built on the second request that draws the same array (``build``: at once), so a
    table made for one request (a dynamic layer's join) never pays for it. None when the fast
    route does not apply (yet): not seen before, or a vertex that does not project."""
    key = (id(geometry), src.key, dst.key, closed)
    with _rings_lock:
        hit = _rings.get(key)
        if hit is not None and hit[0]() is geometry:
            return hit[1]
        seen = _seen.get(key)
        if not build and (seen is None or seen() is not geometry):
            for k in [k for k, ref in _seen.items() if ref() is None]:
                del _seen[k]
            _seen[key] = weakref.ref(geometry)
            return None
        _seen.pop(key, None)
        built = _build_rings(geometry, src, dst, closed)
        for k in [k for k, (ref, _) in _rings.items() if ref() is None]:
            del _rings[k]
            _pinned.discard(k)
        # requests for many other SRs evict each other, never the master's own (warm()) sets:
        # a stream of odd imageSRs cannot push the common views off the fast route
        # (pinned sets go only when nothing else is left: the cap holds either way)
        order = [k for k in _rings if k not in _pinned] + [k for k in _rings if k in _pinned]
        while len(_rings) >= RINGS_KEPT:
            gone = order.pop(0)
            del _rings[gone]
            _pinned.discard(gone)
        _rings[key] = (weakref.ref(geometry), built)
        if build:
            _pinned.add(key)
        return built


def _build_rings(geometry: np.ndarray, src: SpatialRef, dst: SpatialRef,
                 closed: bool) -> ProjectedRings | None:
    n = len(geometry)
    fr = frame(dst)
    if src == dst:
        parts, owner = shapely.get_parts(geometry, return_index=True)
        tr = None
    elif fr.via_geodetic:
        g = fr.geodetic
        assert g is not None
        world = geometry if src == g else _drop_nonfinite(shapely.transform(
            geometry, _xy(transformer(src, g))))
        parts, owner = _window_pieces(world, fr)
        if not fr.cylindrical:
            parts = shapely.segmentize(parts, DENSIFY_DEG)
        tr = transformer(g, dst)
    else:
        parts, owner = shapely.get_parts(geometry, return_index=True)
        tr = transformer(src, dst)
    keep = ~shapely.is_empty(parts)
    parts, owner = parts[keep], owner[keep]
    order = np.argsort(owner, kind="stable")
    parts, owner = parts[order], owner[order]
    if closed:
        lines, line_part = shapely.get_rings(parts, return_index=True)
    else:
        lines, line_part = parts, np.arange(len(parts))
    coords, coord_line = shapely.get_coordinates(lines, return_index=True)
    if tr is not None and len(coords):
        with np.errstate(all="ignore"):
            x, y = tr.transform(coords[:, 0], coords[:, 1], errcheck=False)
        coords = np.column_stack([np.asarray(x), np.asarray(y)])
        if not np.isfinite(coords).all():
            return None
    codes = np.full(len(coords), LINETO, dtype=np.uint8)
    if len(coords):
        starts = np.r_[0, np.flatnonzero(np.diff(coord_line)) + 1]
        codes[starts] = MOVETO
        if closed:
            codes[np.r_[starts[1:] - 1, len(coords) - 1]] = CLOSEPOLY
    line_feature = owner[line_part] if len(line_part) else owner[:0]
    coord_feature = line_feature[coord_line] if len(coord_line) else coord_line
    start = np.searchsorted(coord_feature, np.arange(n + 1))
    with np.errstate(all="ignore"):
        src_bounds = shapely.bounds(geometry)
    return ProjectedRings(np.ascontiguousarray(coords), codes, start, src_bounds)


def to_pixel_rings(geometry: np.ndarray, idx: np.ndarray, src: SpatialRef, grid: Grid,
                   datum: Datum = (), margin: float = 64.0, area: object = COMPUTE,
                   closed: bool = True
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """The features ``geometry[idx]`` in ``grid``'s pixel space through the fast route:
    (xy (n, 2) pixels, codes (n,), offsets (len(idx) + 1,), exact) where ``exact`` marks the
    features that must take the exact route (:func:`to_pixel_parts`) because it would clip
    them; their slices are empty. None: no fast route (datum transformations requested, or a
    vertex that does not project)."""
    if datum:
        return None
    rings = projected_rings(geometry, src, grid.sr, closed)
    if rings is None:
        return None
    a, b = rings.start[idx], rings.start[idx + 1]
    lens = b - a
    offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    take = np.repeat(a - offsets[:-1], lens) + np.arange(offsets[-1])
    xy = rings.xy[take]
    inv = ~grid.transform
    x, y = xy[:, 0], xy[:, 1]
    px = np.column_stack([inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f])
    codes = rings.codes[take]
    # what to_pixel_parts would clip: a feature reaching past the view's area (in its own SR)
    # or any vertex past the pixel rectangle grown by the margin
    exact = np.zeros(len(idx), dtype=bool)
    if src != grid.sr:
        if area is COMPUTE:
            area = view_area(grid, src)
        if area is not None:
            xmin, ymin, xmax, ymax = area.bounds  # type: ignore[attr-defined]
            sb = rings.src_bounds[idx]
            exact |= (sb[:, 0] < xmin) | (sb[:, 1] < ymin) | (sb[:, 2] > xmax) | (sb[:, 3] > ymax)
    if len(px):
        out = ((px[:, 0] < -margin) | (px[:, 1] < -margin) | (px[:, 0] > grid.width + margin)
               | (px[:, 1] > grid.height + margin))
        nonempty = lens > 0
        if out.any() and nonempty.any():
            hit = np.zeros(len(idx), dtype=bool)
            hit[nonempty] = np.logical_or.reduceat(out, offsets[:-1][nonempty])
            exact |= hit
    if exact.any():
        keep = np.repeat(~exact, lens)
        px, codes = px[keep], codes[keep]
        lens = np.where(exact, 0, lens)
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
    return px, codes, offsets, exact
