"""``datumTransformations``: which datum transformation projects layers to imageSR.

pyproj picks the best transformation it knows for the area; a client may instead name one:
an EPSG or Esri transformation code (``1172``, ``{"wkid": 108190}``), a coordinate operation as
WKT (``{"wkt"}``: WKT2 ``COORDINATEOPERATION`` or Esri ``GEOGTRAN``), or a composite
``{"geoTransforms": [{"wkid" or "wkt", "transformForward"}, ...]}`` chaining several.

Every requested transformation is resolved through PROJ's database when the request is parsed,
so codes PROJ does not know, methods it cannot apply and grids that are not installed are
refused there, with the reason. For a layer/image pair, :func:`choose` takes the first requested
transformation whose datums connect the two SRs' datums, in the direction it names or, failing
that, inverted (ArcGIS applies a transformation listed for a pair in both directions), and builds
one PROJ pipeline: the conversion from the source SR to the transformation's source CRS, the
transformation's steps, and the conversion on to the target SR. Requested transformations that do
not connect the two datums are not used for that pair, as in ArcGIS. :func:`raster_operation`
gives the same pipeline as a string for GDAL's ``COORDINATE_OPERATION`` warp option.

The choice travels with the request (``MapFilters.datum``), never in module state.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache

import pyproj
from pyproj.crs import CoordinateOperation
from pyproj.exceptions import CRSError, ProjError

from mapserver.errors import InvalidParameter
from mapserver.geo.sr import SpatialRef

MAX_TRANSFORMATIONS = 16
MAX_STEPS = 8
MAX_WKT = 20000
OPERATION_TYPES = ("Transformation", "Concatenated Operation")


@dataclass(frozen=True)
class Requested:
    """One requested transformation: its steps in the order and directions the client named.

    Each step is ``(definition, forward)``, where ``definition`` is ``"EPSG:<code>"``,
    ``"ESRI:<code>"`` or the WKT2 of a coordinate operation (what :func:`_operation` reads).
    """

    steps: tuple[tuple[str, bool], ...]
    text: str  # as the client wrote it, for messages


def _bad(problem: str) -> InvalidParameter:
    return InvalidParameter("Invalid or missing input parameters.",
                            [f"'datumTransformations' {problem}"])


# ---- reading the parameter -------------------------------------------------------------------

@lru_cache(maxsize=256)
def _operation(definition: str) -> CoordinateOperation:
    """The PROJ operation for a step definition (``"EPSG:1172"``, ``"ESRI:108190"`` or WKT2)."""
    auth, _, code = definition.partition(":")
    if auth in ("EPSG", "ESRI") and code.isdigit():
        return CoordinateOperation.from_authority(auth, code)
    return CoordinateOperation.from_string(definition)


@lru_cache(maxsize=256)
def _ends(definition: str) -> tuple[pyproj.CRS, pyproj.CRS]:
    """The source and target CRS of an operation (pyproj has no accessor for them)."""
    d = _operation(definition).to_json_dict()
    return pyproj.CRS.from_json_dict(d["source_crs"]), pyproj.CRS.from_json_dict(d["target_crs"])


def _check(definition: str, label: str) -> str:
    """Refuse an operation PROJ cannot apply here; ``label`` names it in the message."""
    op = _operation(definition)
    if op.type_name not in OPERATION_TYPES:
        raise _bad(f"{label} is a {op.type_name.lower()}, not a datum transformation")
    d = op.to_json_dict()
    if "source_crs" not in d or "target_crs" not in d:
        raise _bad(f"{label} does not name its source and target coordinate systems")
    missing = [g.short_name for g in op.grids if not g.available]
    if missing:
        raise _bad(f"{label} needs the grid file(s) {', '.join(missing)}, which are not "
                   "installed on this server")
    if not op.to_proj4():
        method = getattr(op, "method_name", "") or "its method"
        raise _bad(f"{label} uses {method}, which PROJ cannot apply")
    return definition


def _from_code(code: object) -> str:
    if isinstance(code, bool) or not isinstance(code, int):
        raise _bad("wkids must be integers")
    found = None
    for auth in ("EPSG", "ESRI"):
        try:
            op = _operation(f"{auth}:{code}")
        except CRSError:
            continue
        if op.type_name in OPERATION_TYPES:
            found = f"{auth}:{code}"
            break
        found = found or f"{auth}:{code}"
    if found is None:
        raise _bad(f"has an unknown transformation wkid {code} (no transformation has that "
                   "code in PROJ's EPSG or ESRI registry)")
    return _check(found, f"wkid {code} ({_operation(found).name})")


def _from_wkt(wkt: object) -> str:
    if not isinstance(wkt, str) or not wkt.strip() or len(wkt) > MAX_WKT:
        raise _bad(f"wkt must be a non-empty string of at most {MAX_WKT} characters")
    text = wkt.strip()
    if text[:9].upper() == "GEOGTRAN[":
        definition = _geogtran_to_wkt2(text)
    else:
        try:
            op = CoordinateOperation.from_string(text)
        except CRSError as exc:
            raise _bad("wkt is not a coordinate operation PROJ can read (expected WKT2 "
                       "COORDINATEOPERATION or Esri GEOGTRAN)") from exc
        definition = text
        if not op.to_proj4() and op.type_name == "Transformation":
            definition = _esri_wkt2_to_wkt2(text) or text  # Esri method names in WKT2
    op = _operation(definition)
    return _check(definition, f"wkt {op.name!r}")


def _one(item: object) -> Requested:
    if isinstance(item, int) and not isinstance(item, bool):
        return Requested(((_from_code(item), True),), str(item))
    if not isinstance(item, dict):
        raise _bad("entries must be a wkid, {\"wkid\"}, {\"wkt\"} or {\"geoTransforms\"}")
    if "geoTransforms" not in item:
        if "wkid" in item:
            return Requested(((_from_code(item["wkid"]), True),), str(item["wkid"]))
        if "wkt" in item:
            definition = _from_wkt(item["wkt"])
            return Requested(((definition, True),), _operation(definition).name)
        raise _bad("entries must be a wkid, {\"wkid\"}, {\"wkt\"} or {\"geoTransforms\"}")
    steps = item["geoTransforms"]
    if not isinstance(steps, list) or not steps or not all(isinstance(s, dict) for s in steps):
        raise _bad("geoTransforms must be a non-empty array of {\"wkid\" or \"wkt\", "
                   "\"transformForward\"} objects")
    if len(steps) > MAX_STEPS:
        raise _bad(f"geoTransforms may chain at most {MAX_STEPS} transformations")
    chain = []
    for s in steps:
        forward = s.get("transformForward", True)
        if not isinstance(forward, bool):
            raise _bad("transformForward must be true or false")
        if "wkid" in s:
            definition = _from_code(s["wkid"])
        elif "wkt" in s:
            definition = _from_wkt(s["wkt"])
        else:
            raise _bad("each geoTransforms step needs a wkid or a wkt")
        chain.append((definition, forward))
    for i in range(1, len(chain)):
        ends_at, starts_at = _step_ends(*chain[i - 1])[1], _step_ends(*chain[i])[0]
        if not _same_datum(ends_at, starts_at):
            name = _operation(chain[i][0]).name
            raise _bad(f"geoTransforms do not connect: step {i + 1} ({name}, "
                       f"{'forward' if chain[i][1] else 'reversed'}) starts in "
                       f"{starts_at.name}, but step {i} ends in {ends_at.name}")
    return Requested(tuple(chain), json.dumps(item)[:80])


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


# ---- Esri GEOGTRAN WKT -----------------------------------------------------------------------
# PROJ reads no GEOGTRAN, and reads Esri's WKT2 operations but cannot apply their Esri-named
# methods. The Helmert-family methods translate to EPSG's; grid methods (NADCON, NTv2, ...)
# and others are refused by name.

_ARCSEC = 'ANGLEUNIT["arc-second",4.84813681109536E-06]'
_PPM = 'SCALEUNIT["parts per million",1E-06]'
_METRE = 'LENGTHUNIT["metre",1]'
_PARAMS = {  # Esri parameter -> (EPSG name, EPSG code, unit)
    "x_axis_translation": ("X-axis translation", 8605, _METRE),
    "y_axis_translation": ("Y-axis translation", 8606, _METRE),
    "z_axis_translation": ("Z-axis translation", 8607, _METRE),
    "x_axis_rotation": ("X-axis rotation", 8608, _ARCSEC),
    "y_axis_rotation": ("Y-axis rotation", 8609, _ARCSEC),
    "z_axis_rotation": ("Z-axis rotation", 8610, _ARCSEC),
    "scale_difference": ("Scale difference", 8611, _PPM),
}
_TRANSLATIONS = ("x_axis_translation", "y_axis_translation", "z_axis_translation")
_HELMERT7 = _TRANSLATIONS + ("x_axis_rotation", "y_axis_rotation", "z_axis_rotation",
                             "scale_difference")
_METHODS = {  # Esri method -> (EPSG name, EPSG code, Esri parameters it takes)
    "geocentric_translation": ("Geocentric translations (geog2D domain)", 9603, _TRANSLATIONS),
    "position_vector": ("Position Vector transformation (geog2D domain)", 9606, _HELMERT7),
    "coordinate_frame": ("Coordinate Frame rotation (geog2D domain)", 9607, _HELMERT7),
    "molodensky": ("Molodensky", 9604, _TRANSLATIONS),
    "molodensky_abridged": ("Abridged Molodensky", 9605, _TRANSLATIONS),
}
_TOKEN = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([A-Za-z_][A-Za-z0-9_]*)\s*([\[(])|([^,\[\]()"]+)'
                    r'|([\])])|(,))')


@dataclass
class _Node:
    keyword: str
    args: list  # str (quoted), float/str (bare) or _Node
    start: int
    end: int


def _parse_wkt(text: str) -> _Node:
    """A WKT node tree (keywords, quoted strings, bare values) with source spans."""
    pos = 0

    def node(keyword: str, start: int) -> _Node:
        nonlocal pos
        args: list = []
        while True:
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError("malformed WKT")
            pos = m.end()
            quoted, key, _open, bare, close, _comma = m.groups()
            if close:
                return _Node(keyword, args, start, pos)
            if quoted is not None:
                args.append(quoted.replace('""', '"'))
            elif key:
                args.append(node(key, m.start(2)))
            elif bare is not None:
                value = bare.strip()
                try:
                    args.append(float(value))
                except ValueError:
                    args.append(value)

    m = _TOKEN.match(text, 0)
    if m is None or not m.group(2):
        raise ValueError("malformed WKT")
    pos = m.end()
    root = node(m.group(2), m.start(2))
    if text[pos:].strip():
        raise ValueError("text after the WKT")
    return root


def _children(n: _Node, *keywords: str) -> list[_Node]:
    return [a for a in n.args if isinstance(a, _Node) and a.keyword.upper() in keywords]


def _wkt2_operation(name: str, source: pyproj.CRS, target: pyproj.CRS, method: str,
                    params: dict[str, float], accuracy: float | None) -> str:
    """WKT2 of a Helmert-family transformation given Esri method and parameter names
    (Esri's units: metres, arc-seconds, parts per million)."""
    key = method.lower()
    if key not in _METHODS:
        raise _bad(f"wkt uses the method {method}, which this server cannot apply (supported: "
                   "Geocentric_Translation, Position_Vector, Coordinate_Frame, Molodensky, "
                   "Molodensky_Abridged)")
    epsg_name, epsg_code, wanted = _METHODS[key]
    unknown = [p for p in params if p.lower() not in wanted]
    if unknown:
        raise _bad(f"wkt method {method} does not take the parameter(s) {', '.join(unknown)}")
    if not source.is_geographic or not target.is_geographic:
        raise _bad("wkt must transform between two geographic coordinate systems")
    values = {p.lower(): v for p, v in params.items()}
    parts = [f'PARAMETER["{_PARAMS[p][0]}",{values.get(p, 0.0)!r},{_PARAMS[p][2]},'
             f'ID["EPSG",{_PARAMS[p][1]}]]' for p in wanted]
    if key.startswith("molodensky"):  # EPSG's Molodensky also takes the ellipsoid differences
        se, te = source.ellipsoid, target.ellipsoid
        fs, ft = 1 / se.inverse_flattening, 1 / te.inverse_flattening
        parts.append(f'PARAMETER["Semi-major axis length difference",'
                     f'{te.semi_major_metre - se.semi_major_metre!r},{_METRE},ID["EPSG",8654]]')
        parts.append(f'PARAMETER["Flattening difference",{ft - fs!r},SCALEUNIT["unity",1],'
                     f'ID["EPSG",8655]]')
    acc = f",OPERATIONACCURACY[{accuracy!r}]" if accuracy is not None else ""
    quoted = name.replace('"', '""')
    return (f'COORDINATEOPERATION["{quoted}",SOURCECRS[{source.to_wkt("WKT2_2019")}],'
            f'TARGETCRS[{target.to_wkt("WKT2_2019")}],METHOD["{epsg_name}",'
            f'ID["EPSG",{epsg_code}]],{",".join(parts)}{acc}]')


def _params(n: _Node) -> dict[str, float]:
    params = {}
    for p in _children(n, "PARAMETER"):
        if len(p.args) < 2 or not isinstance(p.args[0], str) or \
                not isinstance(p.args[1], float):
            raise ValueError("malformed PARAMETER")
        params[p.args[0]] = p.args[1]
    return params


def _accuracy(n: _Node) -> float | None:
    acc = _children(n, "OPERATIONACCURACY")
    return acc[0].args[0] if acc and acc[0].args and isinstance(acc[0].args[0], float) else None


def _geogtran_to_wkt2(text: str) -> str:
    try:
        root = _parse_wkt(text)
        gcs = _children(root, "GEOGCS")
        method = _children(root, "METHOD")
        if len(gcs) != 2 or len(method) != 1 or not root.args or \
                not isinstance(root.args[0], str) or not method[0].args:
            raise ValueError("GEOGTRAN needs a name, two GEOGCS and a METHOD")
        source, target = (pyproj.CRS.from_wkt(text[g.start:g.end]) for g in gcs)
        params = _params(root)
    except (ValueError, CRSError) as exc:
        raise _bad(f"wkt is not a GEOGTRAN this server can read ({exc})") from exc
    return _wkt2_operation(root.args[0], source, target, str(method[0].args[0]), params,
                           _accuracy(root))


def _esri_wkt2_to_wkt2(text: str) -> str | None:
    """Esri's WKT2 (COORDINATEOPERATION with Esri method names) with EPSG's method names."""
    try:
        root = _parse_wkt(text)
        src, tgt = _children(root, "SOURCECRS"), _children(root, "TARGETCRS")
        method = _children(root, "METHOD")
        crss = [a for n in src + tgt for a in n.args if isinstance(a, _Node)]
        if len(crss) != 2 or len(method) != 1 or not method[0].args:
            return None
        source, target = (pyproj.CRS.from_wkt(text[c.start:c.end]) for c in crss)
        params = _params(root)
    except (ValueError, CRSError):
        return None
    if str(method[0].args[0]).lower() not in _METHODS:
        return None
    return _wkt2_operation(str(root.args[0]), source, target, str(method[0].args[0]), params,
                           _accuracy(root))


# ---- choosing and building the transformation ------------------------------------------------

def _datum_key(crs: pyproj.CRS) -> tuple:
    geod = crs.geodetic_crs or crs
    datum, ell = geod.datum, geod.ellipsoid
    name = re.sub(r"\s+ensemble$", "", datum.name.strip(), flags=re.I).lower() if datum else ""
    a = round(ell.semi_major_metre, 3) if ell else None
    rf = round(ell.inverse_flattening, 6) if ell else None
    return name, a, rf


def _same_datum(a: pyproj.CRS, b: pyproj.CRS) -> bool:
    """Whether two CRSs share a geodetic datum (EPSG's WGS 84 ensemble is WGS 84)."""
    ga, gb = a.geodetic_crs or a, b.geodetic_crs or b
    if ga.datum is not None and gb.datum is not None and ga.datum == gb.datum:
        return True
    return _datum_key(a) == _datum_key(b)


def _step_ends(definition: str, forward: bool) -> tuple[pyproj.CRS, pyproj.CRS]:
    source, target = _ends(definition)
    return (source, target) if forward else (target, source)


def _proj_steps(pipeline: str) -> list[str]:
    """The steps of a PROJ string, each a string (a single operation is one step)."""
    tokens = pipeline.split()
    if not tokens or tokens[0] != "+proj=pipeline":
        return [] if pipeline.strip() in ("", "+proj=noop") else [pipeline.strip()]
    steps: list[list[str]] = []
    shared: list[str] = []  # pipeline-wide options apply to every step
    for tok in tokens[1:]:
        if tok == "+step":
            steps.append([])
        elif steps:
            steps[-1].append(tok)
        else:
            shared.append(tok)
    return [" ".join(s + shared) for s in steps if s and s != ["+proj=noop"]]


_SWAP = {"+inv": None, "+omit_fwd": "+omit_inv", "+omit_inv": "+omit_fwd"}


def _inverted(steps: list[str]) -> list[str]:
    out = []
    for step in reversed(steps):
        tokens = step.split()
        flipped = [_SWAP.get(t, t) for t in tokens if _SWAP.get(t, t) is not None]
        if "+inv" not in tokens:
            flipped.insert(0, "+inv")
        out.append(" ".join(flipped))
    return out


def _lat_first(crs: pyproj.CRS) -> bool:
    axes = crs.axis_info
    return len(axes) >= 2 and axes[0].direction in ("north", "south")


def _conversion(a: pyproj.CRS, b: pyproj.CRS, xy: bool) -> list[str] | None:
    """Steps from ``a`` to ``b`` (same datum); None when PROJ has no single operation."""
    try:
        proj = pyproj.Transformer.from_crs(a, b, always_xy=xy).to_proj4()
    except ProjError:
        return None
    return None if proj is None else _proj_steps(proj)


def _chain(src: pyproj.CRS, dst: pyproj.CRS, req: Requested) -> list[tuple[str, bool]] | None:
    """``req``'s steps in the direction that leads from ``src``'s datum to ``dst``'s."""
    if _same_datum(_step_ends(*req.steps[0])[0], src) and \
            _same_datum(_step_ends(*req.steps[-1])[1], dst):
        return list(req.steps)
    inverse = [(d, not fwd) for d, fwd in reversed(req.steps)]
    if _same_datum(_step_ends(*inverse[0])[0], src) and \
            _same_datum(_step_ends(*inverse[-1])[1], dst):
        return inverse
    return None


def _pipeline(src: pyproj.CRS, dst: pyproj.CRS, chain: list[tuple[str, bool]],
              xy: bool) -> str | None:
    """One PROJ pipeline: src -> first step's source CRS -> steps -> dst.

    ``xy``: x/longitude first in and out (pyproj's always_xy); otherwise each CRS's own axis
    order (what GDAL's COORDINATE_OPERATION expects).
    """
    steps: list[str] = []
    at = src
    for i, (definition, forward) in enumerate(chain):
        start, end = _step_ends(definition, forward)
        conv = _conversion(at, start, xy and i == 0)
        if conv is None:
            return None
        steps += conv
        if xy and i == 0 and _lat_first(start):
            steps.append("+proj=axisswap +order=2,1")
        op = _proj_steps(_operation(definition).to_proj4() or "")
        steps += op if forward else _inverted(op)
        at = end
    last = xy and _lat_first(at)
    conv = _conversion(at, dst, xy)
    if conv is None:
        return None
    if last:
        steps.append("+proj=axisswap +order=2,1")
    steps += conv
    if not steps:
        return None
    return "+proj=pipeline " + " ".join(f"+step {s}" for s in steps)


@lru_cache(maxsize=256)
def _built(src: SpatialRef, dst: SpatialRef, requested: tuple[Requested, ...],
           xy: bool) -> str | None:
    if not requested or src == dst or _same_datum(src.crs, dst.crs):
        return None
    for req in requested:
        chain = _chain(src.crs, dst.crs, req)
        if chain is not None:
            pipeline = _pipeline(src.crs, dst.crs, chain, xy)
            if pipeline is not None:
                return pipeline
    return None


@lru_cache(maxsize=128)
def choose(src: SpatialRef, dst: SpatialRef,
           requested: tuple[Requested, ...]) -> pyproj.Transformer | None:
    """The always_xy transformer from ``src`` to ``dst`` through the first requested
    transformation that connects their datums (in either direction); None when none does, or
    when the two share a datum (then pyproj's default is the right projection)."""
    pipeline = _built(src, dst, requested, True)
    return None if pipeline is None else pyproj.Transformer.from_pipeline(pipeline)


def raster_operation(src: SpatialRef, dst: SpatialRef,
                     requested: tuple[Requested, ...]) -> str | None:
    """The same choice as :func:`choose`, as a PROJ pipeline for GDAL's warper option
    ``COORDINATE_OPERATION`` (axes in each CRS's own order, as GDAL expects); None when none
    applies."""
    return _built(src, dst, requested, False)
