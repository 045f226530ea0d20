"""A vector layer's features held in memory: a shapely geometry array, numpy attribute columns
and an STRtree.

Read once per process (before gunicorn forks, so workers share the pages) with pyogrio; filters
return index arrays and nothing copies geometries per request. Dates are kept as int64 epoch
milliseconds with a ``<name>__null`` mask, the representation the where-clause engine expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pyogrio
import shapely

from mapserver.geo.sr import SpatialRef, from_crs
from mapserver.where import FieldInfo, WhereExpression

OID_FIELD = "OBJECTID"
NUMERIC_FIELD_TYPES = ("esriFieldTypeSmallInteger", "esriFieldTypeInteger",
                       "esriFieldTypeSingle", "esriFieldTypeDouble", "esriFieldTypeOID")

GEOMETRY_TYPES = {
    "Point": "esriGeometryPoint", "MultiPoint": "esriGeometryMultipoint",
    "LineString": "esriGeometryPolyline", "MultiLineString": "esriGeometryPolyline",
    "Polygon": "esriGeometryPolygon", "MultiPolygon": "esriGeometryPolygon",
}


@dataclass(frozen=True)
class Field:
    """An attribute field as ArcGIS describes it."""

    name: str
    type: str
    alias: str
    length: int | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "type": self.type, "alias": self.alias}
        if self.length is not None:
            out["length"] = self.length
        out["domain"] = None
        return out


class FeatureTable:
    """Features of one vector layer. Immutable after construction."""

    def __init__(self, geometry: np.ndarray, columns: dict[str, np.ndarray],
                 fields: Sequence[Field], sr: SpatialRef, geometry_type: str) -> None:
        self.geometry = geometry
        self.columns = columns
        self.fields = tuple(fields)
        self.sr = sr
        self.geometry_type = geometry_type
        self.n = len(geometry)
        self.tree = shapely.STRtree(geometry)
        valid = geometry[~shapely.is_empty(geometry) & ~shapely.is_missing(geometry)]
        self.bounds = (tuple(float(v) for v in shapely.total_bounds(valid)) if len(valid)
                       else (0.0, 0.0, 0.0, 0.0))
        self._by_lower = {f.name.lower(): f for f in self.fields}

    def field(self, name: str) -> Field | None:
        """Case-insensitive field lookup."""
        return self._by_lower.get(name.lower())

    @cached_property
    def field_infos(self) -> tuple[FieldInfo, ...]:
        """The fields as the where-clause engine checks them."""
        return tuple(FieldInfo(f.name, f.type) for f in self.fields)

    def where_mask(self, expr: WhereExpression, idx: np.ndarray) -> np.ndarray:
        """Which of the features ``idx`` a compiled where clause selects (only the columns
        the clause uses are sliced, with their null masks)."""
        cols: dict[str, np.ndarray] = {}
        for name in expr.fields_used:
            cols[name] = self.columns[name][idx]
            null = self.columns.get(name + "__null")
            if null is not None:
                cols[name + "__null"] = null[idx]
        return expr.evaluate(cols, len(idx))

    @property
    def oid_field(self) -> str:
        return OID_FIELD

    def candidates(self, area: shapely.Geometry | None) -> np.ndarray:
        """Indexes of features whose envelope meets ``area`` (all when ``area`` is None)."""
        if area is None:
            return np.arange(self.n)
        return np.sort(self.tree.query(area))

    def value(self, name: str, i: int) -> object:
        """One attribute as a Python value (None for NULL; dates as epoch ms)."""
        col = self.columns[name]
        null = self.columns.get(name + "__null")
        if null is not None and null[i]:
            return None
        v = col[i]
        if isinstance(v, np.floating):
            return None if np.isnan(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    @classmethod
    def read(cls, path: str | Path, layer: str | None = None) -> FeatureTable:
        meta, _fids, wkb, field_data = pyogrio.raw.read(str(path), layer=layer,
                                                        datetime_as_string=False)
        geometry = shapely.from_wkb(wkb)
        columns: dict[str, np.ndarray] = {}
        fields = [Field(OID_FIELD, "esriFieldTypeOID", OID_FIELD)]
        n = len(geometry)
        columns[OID_FIELD] = np.arange(1, n + 1, dtype=np.int64)
        for name, data in zip(meta["fields"], field_data, strict=True):
            if name.lower() == OID_FIELD.lower():
                continue
            arr = np.asarray(data)
            kind = arr.dtype.kind
            if kind == "M":
                ms = arr.astype("datetime64[ms]")
                null = np.isnat(ms)
                columns[name] = np.where(null, 0, ms.astype(np.int64))
                columns[name + "__null"] = null
                fields.append(Field(name, "esriFieldTypeDate", name, 8))
            elif kind in "iu":
                columns[name] = arr.astype(np.int64)
                ftype = "esriFieldTypeSmallInteger" if arr.dtype.itemsize <= 2 else \
                    "esriFieldTypeInteger"
                fields.append(Field(name, ftype, name))
            elif kind == "f":
                columns[name] = arr.astype(np.float64)
                ftype = "esriFieldTypeSingle" if arr.dtype.itemsize == 4 else \
                    "esriFieldTypeDouble"
                fields.append(Field(name, ftype, name))
            elif kind == "b":
                columns[name] = arr.astype(np.int64)
                fields.append(Field(name, "esriFieldTypeSmallInteger", name))
            else:
                obj = np.array([None if v is None else str(v) for v in arr], dtype=object)
                columns[name] = obj
                length = max((len(v) for v in obj if v is not None), default=1)
                fields.append(Field(name, "esriFieldTypeString", name, max(length, 1)))
        gtype = meta.get("geometry_type") or ""
        esri_type = GEOMETRY_TYPES.get(gtype.replace(" Z", "").replace("25D", "").strip())
        if esri_type is None:
            types = set(shapely.get_type_id(geometry[~shapely.is_missing(geometry)]).tolist())
            esri_type = ("esriGeometryPoint" if types <= {0, 4} else
                         "esriGeometryPolyline" if types <= {1, 2, 5} else
                         "esriGeometryPolygon")
        crs = meta.get("crs") or "EPSG:4326"
        return cls(geometry, columns, fields, from_crs(crs), esri_type)
