"""The one target every renderer draws onto: a pixel grid (SR, affine transform, size, dpi).

``/export``, tiles, legend swatches and batch exports all build a :class:`Grid` and hand it to
the same renderers; nothing downstream re-derives the view from request parameters. The affine
may be rotated (``rotation``), so renderers always go through :meth:`Grid.to_pixels` rather
than assuming north-up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from affine import Affine

from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef, transformer

# Esri's inches per metre (not 1/0.0254): 156543.03392800014 m/px x 96 x 39.37 = 591657527.591555.
INCHES_PER_METER = 39.37


@dataclass(frozen=True)
class Grid:
    """A pixel grid. ``transform`` maps pixel (col, row) corners to map coordinates in ``sr``."""

    sr: SpatialRef
    transform: Affine
    width: int
    height: int
    dpi: float = 96.0

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_bbox(cls, bbox: tuple[float, float, float, float], width: int, height: int,
                  sr: SpatialRef, dpi: float = 96.0, rotation: float = 0.0) -> Grid:
        """The ArcGIS aspect rule: keep the bbox centre, square pixels, enlarge the short side."""
        xmin, ymin, xmax, ymax = bbox
        bw, bh = xmax - xmin, ymax - ymin
        if not (bw > 0 and bh > 0):
            raise InvalidParameter("Invalid bbox", ["bbox must have a positive width and height"])
        res = max(bw / width, bh / height)
        cx, cy = (xmin + xmax) / 2.0, (ymin + ymax) / 2.0
        return cls.from_center(cx, cy, res, width, height, sr, dpi, rotation)

    @classmethod
    def from_scale(cls, center: tuple[float, float], scale: float, width: int, height: int,
                   sr: SpatialRef, dpi: float = 96.0, rotation: float = 0.0) -> Grid:
        """``mapScale``: resolution = scale / (dpi x 39.37 x metres per unit), centred."""
        res = scale / (dpi * INCHES_PER_METER * sr.meters_per_unit)
        return cls.from_center(center[0], center[1], res, width, height, sr, dpi, rotation)

    @classmethod
    def from_center(cls, cx: float, cy: float, res: float, width: int, height: int,
                    sr: SpatialRef, dpi: float = 96.0, rotation: float = 0.0) -> Grid:
        """A grid of square ``res`` pixels centred on (cx, cy), rotated ``rotation`` degrees
        counter-clockwise: the map turns CCW on screen, so the grid axes turn clockwise in map
        space (the image's up direction points ``rotation`` degrees west of north)."""
        if not (math.isfinite(res) and res > 0):
            raise InvalidParameter("Invalid bbox", ["Resulting resolution is not positive"])
        t = (Affine.translation(cx, cy) @ Affine.rotation(-rotation) @ Affine.scale(res, -res)
             @ Affine.translation(-width / 2.0, -height / 2.0))
        return cls(sr=sr, transform=t, width=int(width), height=int(height), dpi=float(dpi))

    # --- properties ---------------------------------------------------------------------------
    @property
    def resolution(self) -> float:
        """Map units per pixel (the length of one pixel's x edge)."""
        return math.hypot(self.transform.a, self.transform.d)

    @property
    def rotation(self) -> float:
        """Counter-clockwise map rotation in degrees."""
        return -math.degrees(math.atan2(self.transform.d, self.transform.a))

    @property
    def is_north_up(self) -> bool:
        t = self.transform
        return t.b == 0 and t.d == 0 and t.a > 0 and t.e < 0

    @property
    def scale(self) -> float:
        """ArcGIS scale: resolution x metres per unit x dpi x 39.37."""
        return self.resolution * self.sr.meters_per_unit * self.dpi * INCHES_PER_METER

    @property
    def center(self) -> tuple[float, float]:
        x, y = self.from_pixels(np.array(self.width / 2.0), np.array(self.height / 2.0))
        return (float(x), float(y))

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """The un-rotated view envelope (what the export JSON reports)."""
        cx, cy = self.center
        hw, hh = self.width * self.resolution / 2.0, self.height * self.resolution / 2.0
        return (cx - hw, cy - hh, cx + hw, cy + hh)

    @cached_property
    def bounds(self) -> tuple[float, float, float, float]:
        """Axis-aligned bounds of the pixel area in the grid's SR (covers rotated grids too)."""
        xs, ys = self.corners()
        return (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))

    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        cols = np.array([0, self.width, self.width, 0], dtype=float)
        rows = np.array([0, 0, self.height, self.height], dtype=float)
        return self.from_pixels(cols, rows)

    def extent_json(self) -> dict:
        xmin, ymin, xmax, ymax = self.extent
        return {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax,
                "spatialReference": self.sr.to_json()}

    # --- coordinate conversion ----------------------------------------------------------------
    def to_pixels(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates (in ``sr``) to fractional pixel (col, row)."""
        inv = ~self.transform
        return (inv.a * x + inv.b * y + inv.c, inv.d * x + inv.e * y + inv.f)

    def from_pixels(self, col: np.ndarray, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.transform
        return (t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f)

    def footprint(self, sr: SpatialRef, densify: int = 16) -> shapely.Polygon | None:
        """The grid's outline in another SR, densified so curved edges are followed.

        Points that do not project (outside the other CRS's domain) are dropped; ``None`` when
        nothing projects. Used to select candidate features and raster windows.
        """
        n = densify
        t = np.linspace(0.0, 1.0, n, endpoint=False)
        cols = np.concatenate([t * self.width, np.full(n, self.width), (1 - t) * self.width,
                               np.zeros(n)])
        rows = np.concatenate([np.zeros(n), t * self.height, np.full(n, self.height),
                               (1 - t) * self.height])
        x, y = self.from_pixels(cols, rows)
        if sr == self.sr:
            return shapely.Polygon(np.column_stack([x, y]))
        tx, ty = transformer(self.sr, sr).transform(x, y, errcheck=False)
        ok = np.isfinite(tx) & np.isfinite(ty)
        if ok.sum() < 3:
            return None
        poly = shapely.Polygon(np.column_stack([tx[ok], ty[ok]]))
        if not poly.is_valid:
            poly = shapely.make_valid(poly)
        return poly
