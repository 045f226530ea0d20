"""``quantizationParameters``: integer coordinates on a grid of ``tolerance`` output units.

``{"mode": "view"|"edit", "originPosition": "upperLeft"|"bottomLeft", "tolerance": t,
"extent": {...}}``. A coordinate becomes ``round((x - xmin) / t)`` and, measured from the
origin, ``round((ymax - y) / t)`` (upperLeft, y grows downwards) or ``round((y - ymin) / t)``
(bottomLeft). The answer carries the ``transform`` (``scale`` ``[t, t]``, ``translate`` the
origin) and, as ArcGIS writes it, each path / ring / multipoint holds its first vertex as an
absolute integer and every later vertex as the difference from the one before.

``view`` mode generalises the geometry to the tolerance first (Douglas-Peucker, at least the
request's ``maxAllowableOffset``) and drops repeated vertices, so a ring collapses to nothing
below a pixel and is left out (a feature whose every part collapsed has no geometry). ``edit``
mode keeps every vertex (snapped to the grid, no generalisation).

Without ``extent`` the grid's origin is the corner of the features' own extent; without
``tolerance`` it is 1/1e6 of that extent's larger side (``f=pbf`` without quantization
parameters uses that default grid too, since pbf coordinates are always integers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely

from mapserver.errors import InvalidParameter
from mapserver.features.geometry_out import project, to_esri
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.params.common import parse_json

MODES = ("view", "edit")
ORIGINS = {"upperleft": "upperLeft", "bottomleft": "bottomLeft", "lowerleft": "bottomLeft"}
#: pbf coords are sint32: keep every integer coordinate inside that range.
MAX_STEPS = 2**31 - 1


@dataclass(frozen=True)
class Quantization:
    mode: str = "view"
    origin: str = "upperLeft"
    tolerance: float | None = None
    extent: tuple[float, float, float, float] | None = None  # in its own SR
    extent_sr: SpatialRef | None = None


@dataclass(frozen=True)
class Transform:
    origin: str
    scale: float
    tx: float
    ty: float  # ymax for upperLeft, ymin for bottomLeft

    def to_json(self) -> dict:
        return {"originPosition": self.origin, "scale": [self.scale, self.scale, 0, 0],
                "translate": [self.tx, self.ty, 0, 0]}

    def ints(self, coords: np.ndarray) -> np.ndarray:
        """(n, 2) float coordinates -> (n, 2) int64 grid coordinates."""
        x = np.rint((coords[:, 0] - self.tx) / self.scale)
        if self.origin == "upperLeft":
            y = np.rint((self.ty - coords[:, 1]) / self.scale)
        else:
            y = np.rint((coords[:, 1] - self.ty) / self.scale)
        return np.column_stack([x, y]).astype(np.int64)


def parse_quantization(raw: str | None, message: str) -> Quantization | None:
    if raw is None or not raw.strip():
        return None
    bad = InvalidParameter(message, ["'quantizationParameters' parameter is invalid"])
    try:
        obj = parse_json(raw, "quantizationParameters")  # within the request limits
    except InvalidParameter:
        raise bad from None
    if not isinstance(obj, dict):
        raise bad
    mode = str(obj.get("mode") or "view").lower()
    origin = ORIGINS.get(str(obj.get("originPosition") or "upperLeft").lower())
    if mode not in MODES or origin is None:
        raise bad
    tol = obj.get("tolerance")
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, int | float)
                            or not np.isfinite(tol) or tol <= 0):
        raise bad
    extent = sr = None
    ext = obj.get("extent")
    if ext is not None:
        try:
            extent = tuple(float(ext[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, KeyError, ValueError):
            raise bad from None
        if not all(np.isfinite(extent)) or extent[2] < extent[0] or extent[3] < extent[1]:
            raise bad
        if ext.get("spatialReference") is not None:
            try:
                sr = parse_sr(ext["spatialReference"], None)
            except InvalidParameter:
                raise bad from None
    return Quantization(mode, origin, float(tol) if tol is not None else None,
                        extent, sr)  # type: ignore[arg-type]


def make_transform(q: Quantization | None, geoms: np.ndarray, out_sr: SpatialRef
                   ) -> Transform:
    """The grid for these (already projected) geometries."""
    q = q or Quantization()
    if q.extent is not None:
        box = q.extent
        if q.extent_sr is not None and q.extent_sr != out_sr:
            b = shapely.bounds(project(shapely.box(*box), q.extent_sr, out_sr))
            box = tuple(float(v) for v in b)  # type: ignore[assignment]
    else:
        live = geoms[~shapely.is_empty(geoms)] if len(geoms) else geoms
        box = (tuple(float(v) for v in shapely.total_bounds(live)) if len(live)
               else (0.0, 0.0, 0.0, 0.0))  # type: ignore[assignment]
        if not all(np.isfinite(box)):
            box = (0.0, 0.0, 0.0, 0.0)
    xmin, ymin, xmax, ymax = box
    side = max(xmax - xmin, ymax - ymin)
    tol = q.tolerance or (side / 1e6 if side > 0 else 1.0)
    if q.tolerance is None and q.extent is None:
        # pbf's sint32: the whole extent must fit in the integer range
        tol = max(tol, side / (MAX_STEPS // 2))
    return Transform(q.origin, tol, xmin, ymax if q.origin == "upperLeft" else ymin)


def _part(coords: np.ndarray, tr: Transform, view: bool, min_len: int) -> np.ndarray | None:
    ints = tr.ints(np.asarray(coords, dtype=float)[:, :2])
    if view and len(ints) > 1:
        keep = np.ones(len(ints), dtype=bool)
        keep[1:] = np.any(ints[1:] != ints[:-1], axis=1)
        ints = ints[keep]
        if len(ints) < min_len:
            return None
    return ints


def quantized_parts(geom: shapely.Geometry | None, tr: Transform, view: bool
                    ) -> tuple[str, list[np.ndarray]] | None:
    """("point"|"points"|"paths"|"rings", absolute integer parts) or None (no geometry)."""
    esri = to_esri(geom)
    if esri is None:
        return None
    if "x" in esri:
        if esri["x"] is None:
            return None
        return "point", [tr.ints(np.array([[esri["x"], esri["y"]]], dtype=float))]
    if "points" in esri:
        part = _part(np.asarray(esri["points"]).reshape(-1, 2), tr, False, 1) \
            if esri["points"] else None
        if part is not None and view:  # distinct grid cells, in order
            _, first = np.unique(part, axis=0, return_index=True)
            part = part[np.sort(first)]
        return ("points", [part]) if part is not None and len(part) else None
    key = "paths" if "paths" in esri else "rings"
    min_len = 2 if key == "paths" else 4
    parts = [p for p in (_part(np.asarray(c), tr, view, min_len) for c in esri[key] if c)
             if p is not None]
    return (key, parts) if parts else None


def to_esri_quantized(geom: shapely.Geometry | None, tr: Transform, view: bool) -> dict | None:
    """Esri JSON with integer, delta-encoded coordinates (first vertex of a part absolute)."""
    q = quantized_parts(geom, tr, view)
    if q is None:
        return None
    key, parts = q
    if key == "point":
        x, y = parts[0][0].tolist()
        return {"x": x, "y": y}
    out = []
    for p in parts:
        d = p.copy()
        d[1:] = p[1:] - p[:-1]
        out.append(d.tolist())
    return {key: out[0]} if key == "points" else {key: out}
