"""``datumTransformations``: which datum transformation projects vector layers to imageSR.

pyproj picks the best transformation it knows for the area; a client may instead name one
(EPSG code, ``{"wkid"}``, ``{"wkt"}`` of a WKT2 coordinate operation, or a composite
``{"geoTransforms": [{"wkid", "transformForward"}]}``). For each layer/image SR pair the first
requested transformation that PROJ lists as a candidate between them (``TransformerGroup``,
matched on the EPSG ids or names of its steps, in either direction) is used; requested
transformations that do not connect the two datums are not used for that pair, as in ArcGIS.
The choice is held in a context variable for the duration of one export, so the renderer's
projection step (render/geometry.py) needs no new arguments.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache

import pyproj
from pyproj.crs import CoordinateOperation
from pyproj.exceptions import CRSError
from pyproj.transformer import TransformerGroup

from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef

MAX_TRANSFORMATIONS = 16


@dataclass(frozen=True)
class Requested:
    """One requested transformation: the EPSG codes / names of its steps."""

    codes: tuple[int, ...]
    names: tuple[str, ...]
    text: str  # as the client wrote it, for messages


_current: ContextVar[tuple[Requested, ...]] = ContextVar("datum_transformations", default=())


def _bad(problem: str) -> InvalidParameter:
    return InvalidParameter("Invalid or missing input parameters.",
                            [f"'datumTransformations' {problem}"])


def _from_code(code: object) -> CoordinateOperation:
    if isinstance(code, bool) or not isinstance(code, int):
        raise _bad("wkids must be integers")
    try:
        return CoordinateOperation.from_epsg(code)
    except CRSError as exc:
        raise _bad(f"has an unknown transformation wkid {code}") from exc


def _one(item: object) -> Requested:
    if isinstance(item, int) and not isinstance(item, bool):
        op = _from_code(item)
        return Requested((item,), (op.name,), str(item))
    if not isinstance(item, dict):
        raise _bad("entries must be a wkid, {\"wkid\"}, {\"wkt\"} or {\"geoTransforms\"}")
    if "wkid" in item:
        return _one(item["wkid"])
    if "wkt" in item:
        wkt = item["wkt"]
        if not isinstance(wkt, str) or len(wkt) > 20000:
            raise _bad("wkt must be a string")
        try:
            op = CoordinateOperation.from_string(wkt)
        except CRSError as exc:
            raise _bad("wkt is not a coordinate operation PROJ can read (Esri GEOGTRAN WKT "
                       "is not supported; name the transformation by its EPSG wkid)") from exc
        code = op.to_json_dict().get("id", {}).get("code")
        return Requested((code,) if isinstance(code, int) else (), (op.name,), op.name)
    steps = item.get("geoTransforms")
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise _bad("entries must be a wkid, {\"wkid\"}, {\"wkt\"} or {\"geoTransforms\"}")
    codes, names = [], []
    for s in steps:
        if not isinstance(s.get("transformForward", True), bool):
            raise _bad("transformForward must be true or false")
        op = _from_code(s.get("wkid"))
        codes.append(s["wkid"])
        names.append(op.name)
    return Requested(tuple(codes), tuple(names), json.dumps(item)[:80])


def parse_datum_transformations(value: str | None) -> tuple[Requested, ...]:
    if value is None or not value.strip():
        return ()
    try:
        obj = json.loads(value)
    except ValueError:
        obj = [p.strip() for p in value.split(",")]
        try:
            obj = [int(p) for p in obj]
        except ValueError as exc:
            raise _bad("must be a JSON array of transformations") from exc
    if not isinstance(obj, list):
        obj = [obj]
    if not obj or len(obj) > MAX_TRANSFORMATIONS:
        raise _bad(f"must list 1 to {MAX_TRANSFORMATIONS} transformations")
    return tuple(_one(item) for item in obj)


@contextmanager
def using(requested: tuple[Requested, ...]) -> Iterator[None]:
    """Use ``requested`` for every vector projection inside the block (one export)."""
    token = _current.set(requested)
    try:
        yield
    finally:
        _current.reset(token)


def _steps(t: pyproj.Transformer) -> tuple[set[int], set[str]]:
    codes: set[int] = set()
    names: set[str] = set()

    def walk(d: object) -> None:
        if isinstance(d, dict):
            if d.get("type") in ("Transformation", "ConcatenatedOperation"):
                ident = d.get("id")
                if isinstance(ident, dict) and ident.get("authority") == "EPSG":
                    codes.add(int(ident["code"]))
                if isinstance(d.get("name"), str):
                    names.add(d["name"])
            for v in d.values():
                walk(v)
        elif isinstance(d, list):
            for v in d:
                walk(v)

    walk(t.to_json_dict())
    return codes, names


@lru_cache(maxsize=64)
def _chosen(src: SpatialRef, dst: SpatialRef,
            requested: tuple[Requested, ...]) -> pyproj.Transformer | None:
    with warnings.catch_warnings():  # "best transformation is not available" (grids)
        warnings.simplefilter("ignore", UserWarning)
        group = TransformerGroup(src.crs, dst.crs, always_xy=True)
    candidates = [(t, *_steps(t)) for t in group.transformers]
    for req in requested:
        for t, codes, names in candidates:
            if (req.codes and set(req.codes) <= codes) or (not req.codes and
                                                           set(req.names) <= names):
                return t
    return None


def override(src: SpatialRef, dst: SpatialRef) -> pyproj.Transformer | None:
    """The requested transformation between ``src`` and ``dst``, if one applies."""
    requested = _current.get()
    if not requested or src == dst:
        return None
    return _chosen(src, dst, requested)
