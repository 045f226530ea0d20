"""Load service definition files (``services/**/*.json``) into an immutable :class:`Catalog`.

Every field is validated here, once, with errors that name the file and the field. A bad file is
reported and skipped; it never takes the other services down. Data sources are opened here too,
so extents, fields and time extents come from the real data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.colors import LinearSegmentedColormap

from mapserver.catalog import declared, definitions
from mapserver.catalog.model import Catalog, LabelClass, Layer, RasterStyle, Service, TimeInfo
from mapserver.catalog.schema import SchemaProblem, schema_problems
from mapserver.errors import InvalidParameter, ServiceDefinitionError, WhereClauseError
from mapserver.geo.project import project_bounds
from mapserver.geo.sr import SpatialRef, parse_sr
from mapserver.render.labels import LABEL_PLACEMENTS, LabelExpressionError, compile_label
from mapserver.render.style import StyleError, parse_color, parse_renderer
from mapserver.security.policy import Access, AccessError, parse_access
from mapserver.sources.features import FeatureTable
from mapserver.sources.rasters import RESAMPLING, RasterSource
from mapserver.tiling import TilingError, TilingScheme, parse_tiling
from mapserver.where import compile_where

TIME_UNITS = {"esriTimeUnitsMilliseconds", "esriTimeUnitsSeconds", "esriTimeUnitsMinutes",
              "esriTimeUnitsHours", "esriTimeUnitsDays", "esriTimeUnitsWeeks",
              "esriTimeUnitsMonths", "esriTimeUnitsYears", "esriTimeUnitsDecades",
              "esriTimeUnitsCenturies", "esriTimeUnitsUnknown"}


def load_catalog(service_dirs: list[Path], data_dir: Path) -> Catalog:
    """Load every ``*.json`` under each services folder; sub-folders are ArcGIS folders.

    Problems are collected, not logged: the caller reports them once (``create_app`` at start,
    ``catalog/reload.py`` on a change, ``mapserver validate`` on the console)."""
    files, problems = definitions.scan(service_dirs)
    loaded: list[tuple[definitions.DefinitionFile, Service | None, str | None]] = []
    for f in files:
        try:
            loaded.append((f, load_service(f.path, f.name, data_dir), None))
        except ServiceDefinitionError as exc:
            loaded.append((f, None, str(exc)))
        except Exception as exc:  # noqa: BLE001 - a check that missed a shape: skip the file
            loaded.append((f, None, unexpected(f.path, exc)))
    return definitions.assemble(loaded, problems)


def unexpected(path: Path, exc: BaseException) -> str:
    """The problem line for a definition that broke the loader itself (a bug, not the
    author's fault alone): the file is skipped like any rejected one."""
    return f"{path}: (file): cannot be loaded: {type(exc).__name__}: {exc}"[:500]


class _Ctx:
    """Carries the file path so every check can name it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, fieldname: str, problem: str) -> ServiceDefinitionError:
        return ServiceDefinitionError(str(self.path), fieldname, problem)

    def get(self, obj: Mapping, key: str, where: str, types: type | tuple, default: Any = None,
            required: bool = False) -> Any:
        if key not in obj or obj[key] is None:
            if required:
                raise self.fail(f"{where}{key}", "is required")
            return default
        v = obj[key]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.fail(f"{where}{key}", f"must be {_tname(types)}")
        if not isinstance(v, types):
            raise self.fail(f"{where}{key}", f"must be {_tname(types)}")
        return v


def _tname(types: type | tuple) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "an object"}
    ts = types if isinstance(types, tuple) else (types,)
    return " or ".join(names.get(t, t.__name__) for t in ts)


def load_service(path: Path, name: str, data_dir: Path) -> Service:
    ctx = _Ctx(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ctx.fail("(file)", f"cannot be read: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ctx.fail("(file)", f"is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    except RecursionError as exc:
        raise ctx.fail("(file)", "is nested too deeply to be a service definition") from exc
    if not isinstance(doc, dict):
        raise ctx.fail("(file)", "must hold a JSON object")
    # the schema first for keys nobody reads ("strech"), before any data file is opened; its
    # other findings after the checks below, which name the same fields with sharper messages
    problems = schema_problems(doc)
    unknown = [p for p in problems if p.unknown_key]
    if unknown:
        raise DefinitionProblems(str(path), unknown)
    try:
        service = _load_document(ctx, doc, path, name, data_dir)
    except ServiceDefinitionError:
        raise
    except Exception as exc:  # a shape the checks below did not expect: the schema names it
        if problems:
            raise DefinitionProblems(str(path), problems) from exc
        raise
    if problems:
        raise DefinitionProblems(str(path), problems)
    return service


class DefinitionProblems(ServiceDefinitionError):
    """A definition that breaks the schema; ``problems`` lists every finding (``mapserver
    validate`` prints them all), the message names the first."""

    def __init__(self, path: str, problems: list[SchemaProblem]) -> None:
        super().__init__(path, problems[0].field, problems[0].problem)
        self.problems = tuple(problems)


def _load_document(ctx: _Ctx, doc: dict, path: Path, name: str, data_dir: Path) -> Service:
    layer_docs = ctx.get(doc, "layers", "", list, required=True)
    if not layer_docs:
        raise ctx.fail("layers", "must list at least one layer")

    # referenceScale: symbols of layers with scaleSymbols draw at referenceScale / scale
    reference_scale = float(ctx.get(doc, "referenceScale", "", (int, float), 0))
    if not 0 <= reference_scale < float("inf"):
        raise ctx.fail("referenceScale", "must be 0 (none) or a positive scale")
    layers: list[Layer] = []
    seen: set[int] = set()
    for i, ldoc in enumerate(layer_docs):
        where = f"layers[{i}]."
        if not isinstance(ldoc, dict):
            raise ctx.fail(f"layers[{i}]", "must be an object")
        layer = _load_layer(ctx, ldoc, where, path.parent, data_dir)
        if layer.kind == "feature":
            layer = dataclasses.replace(layer, reference_scale=reference_scale)
        if layer.id in seen:
            raise ctx.fail(f"{where}id", f"duplicate layer id {layer.id}")
        seen.add(layer.id)
        layers.append(layer)
    layers = _link_groups(ctx, layers)

    sr_value = doc.get("spatialReference")
    if sr_value is None:
        first = next((lyr.sr for lyr in layers if lyr.sr is not None), None)
        if first is None:
            raise ctx.fail("spatialReference", "is required when no layer has data")
        sr = first
    else:
        try:
            sr = parse_sr(sr_value)
        except InvalidParameter as exc:
            raise ctx.fail("spatialReference", "; ".join(exc.details) or exc.message) from exc

    full = _full_extent(layers, sr)
    initial = full
    if doc.get("initialExtent") is not None:
        initial = _extent(ctx, doc["initialExtent"], "initialExtent")
    if doc.get("fullExtent") is not None:
        full = _extent(ctx, doc["fullExtent"], "fullExtent")

    limits = {}
    for key, default in (("maxImageWidth", 4096), ("maxImageHeight", 4096),
                         ("maxRecordCount", 1000)):
        v = ctx.get(doc, key, "", int, default)
        if v < 1:
            raise ctx.fail(key, "must be at least 1")
        limits[key] = v

    times = [lyr.time_info for lyr in layers if lyr.time_info and lyr.time_info.extent]
    svc_time = None
    if times:
        svc_time = TimeInfo(start_field="", end_field=None,
                            extent=(min(t.extent[0] for t in times),
                                    max(t.extent[1] for t in times)),
                            interval=times[0].interval, interval_units=times[0].interval_units)

    return Service(
        name=name, path=str(path), sr=sr, layers=tuple(layers), full_extent=full,
        initial_extent=initial,
        description=ctx.get(doc, "description", "", str, ""),
        service_description=ctx.get(doc, "serviceDescription", "", str, ""),
        map_name=ctx.get(doc, "mapName", "", str, "Layers"),
        copyright=ctx.get(doc, "copyrightText", "", str, ""),
        max_image_width=limits["maxImageWidth"], max_image_height=limits["maxImageHeight"],
        max_record_count=limits["maxRecordCount"], time_info=svc_time,
        tiling=_tiling(ctx, doc, sr, full),
        workspaces=_workspaces(ctx, doc, path.parent, data_dir), source=doc,
        versions=declared.load_versions(
            ctx, doc.get("versions"), {lyr.id: lyr for lyr in layers},
            lambda v, w: _resolve_source(ctx, v, w, path.parent, data_dir)),
        access=_access(ctx, doc))


def _access(ctx: _Ctx, doc: dict) -> Access | None:
    """``access``: the users and roles who may use a secured service (absent: public)."""
    try:
        return parse_access(doc.get("access"))
    except AccessError as exc:
        raise ctx.fail(exc.field, exc.problem) from exc


def _workspaces(ctx: _Ctx, doc: dict, def_dir: Path, data_dir: Path) -> dict[str, str]:
    """Registered workspaces: folders whose files ``dynamicLayers`` dataLayer sources may name
    (``[{"id": "shapes", "type": "folder", "path": "world"}]``; paths as for ``source``)."""
    value = ctx.get(doc, "workspaces", "", list, [])
    out: dict[str, str] = {}
    for i, ws in enumerate(value):
        where = f"workspaces[{i}]."
        if not isinstance(ws, dict):
            raise ctx.fail(f"workspaces[{i}]", "must be an object")
        wid = ctx.get(ws, "id", where, str, required=True)
        if ctx.get(ws, "type", where, str, "folder") != "folder":
            raise ctx.fail(f"{where}type", "only folder workspaces are supported")
        raw = ctx.get(ws, "path", where, str, required=True)
        p = Path(raw)
        if not p.is_absolute():
            p = (def_dir / p) if raw.startswith(("./", "../")) else (data_dir / p)
        if not p.is_dir():
            raise ctx.fail(f"{where}path", f"folder not found: {p}")
        if wid in out:
            raise ctx.fail(f"{where}id", f"duplicate workspace id {wid!r}")
        out[wid] = str(p.resolve())
    return out


def _tiling(ctx: _Ctx, doc: dict, sr: SpatialRef,
            full: tuple[float, float, float, float]) -> TilingScheme | None:
    """The optional ``tiling`` scheme (``{}`` = the standard scheme of the service's SR: Esri
    Web Mercator, or the geographic scheme for 4326); tiles outside the full extent (projected
    into the scheme's SR) are 404."""
    if doc.get("tiling") is None:
        return None
    try:
        scheme = parse_tiling(doc["tiling"], "tiling", service_sr=sr)  # in the service's SR
    except TilingError as exc:
        raise ctx.fail(exc.path, exc.problem) from exc
    coverage = project_bounds(full, sr, scheme.sr)
    if coverage is None:
        raise ctx.fail("tiling.spatialReference", "the full extent does not project into it")
    return dataclasses.replace(scheme, coverage=coverage)


def _extent(ctx: _Ctx, value: Any, key: str) -> tuple[float, float, float, float]:
    if isinstance(value, dict):
        value = [value.get(k) for k in ("xmin", "ymin", "xmax", "ymax")]
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)):
        raise ctx.fail(key, "must be [xmin, ymin, xmax, ymax] or an envelope object")
    xmin, ymin, xmax, ymax = (float(v) for v in value)
    if xmin >= xmax or ymin >= ymax:
        raise ctx.fail(key, "min must be less than max")
    return (xmin, ymin, xmax, ymax)


def _full_extent(layers: list[Layer], sr: SpatialRef) -> tuple[float, float, float, float]:
    boxes = []
    for lyr in layers:
        b = lyr.native_bounds
        if b is None or lyr.sr is None:
            continue
        boxes.append(project_bounds(b, lyr.sr, sr))
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return (-180.0, -90.0, 180.0, 90.0) if sr.is_geographic else (0.0, 0.0, 1.0, 1.0)
    arr = np.array(boxes)
    return (float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()),
            float(arr[:, 3].max()))


def _resolve_source(ctx: _Ctx, value: str, where: str, def_dir: Path, data_dir: Path) -> str:
    """``./x`` and ``../x`` are relative to the definition file; other relative paths to data/;
    absolute paths and URLs (``/vsicurl/``, ``https://``) are passed to the reader as they are."""
    if "://" in value or value.startswith("/vsi"):
        return value
    p = Path(value)
    if not p.is_absolute():
        p = (def_dir / p) if value.startswith(("./", "../")) else (data_dir / p)
    if not p.exists():
        raise ctx.fail(f"{where}source", f"file not found: {p}")
    return str(p)


def _load_layer(ctx: _Ctx, d: dict, where: str, def_dir: Path, data_dir: Path) -> Layer:
    lid = ctx.get(d, "id", where, int, required=True)
    if lid < 0:
        raise ctx.fail(f"{where}id", "must be 0 or more")
    name = ctx.get(d, "name", where, str, required=True)
    kind = ctx.get(d, "type", where, str, "feature")
    kind = {"feature layer": "feature", "raster layer": "raster",
            "group layer": "group"}.get(kind.lower(), kind.lower())
    if kind not in ("feature", "raster", "group"):
        raise ctx.fail(f"{where}type", f"unknown layer type {d['type']!r} "
                                       "(feature, raster or group)")
    common = dict(
        id=lid, name=name, kind=kind,
        description=ctx.get(d, "description", where, str, ""),
        copyright=ctx.get(d, "copyrightText", where, str, ""),
        default_visibility=ctx.get(d, "defaultVisibility", where, bool, True),
        min_scale=float(ctx.get(d, "minScale", where, (int, float), 0)),
        max_scale=float(ctx.get(d, "maxScale", where, (int, float), 0)),
    )
    if common["min_scale"] and common["max_scale"] and common["max_scale"] > common["min_scale"]:
        raise ctx.fail(f"{where}maxScale", "must be smaller than minScale (0 means no limit)")
    drawing = ctx.get(d, "drawingInfo", where, dict, {})
    transparency = ctx.get(drawing, "transparency", f"{where}drawingInfo.", (int, float), 0)
    if not 0 <= transparency <= 100:
        raise ctx.fail(f"{where}drawingInfo.transparency", "must be between 0 and 100")
    common["transparency"] = int(transparency)

    if kind == "group":
        subs = ctx.get(d, "subLayerIds", where, list, required=True)
        if not all(isinstance(s, int) and not isinstance(s, bool) for s in subs):
            raise ctx.fail(f"{where}subLayerIds", "must be a list of layer ids")
        return Layer(sublayer_ids=tuple(subs), **common)

    series = ()
    if kind == "raster" and d.get("timeSeries") is not None:
        series = declared.load_time_series(
            ctx, d["timeSeries"], f"{where}timeSeries",
            lambda v, w: _resolve_source(ctx, v, w, def_dir, data_dir))
    raw_source = ctx.get(d, "source", where, str, required=not series)
    source = (_resolve_source(ctx, raw_source, where, def_dir, data_dir) if raw_source
              else series[-1].raster.path)
    if kind == "raster":
        try:
            raster = RasterSource.open(source)
        except Exception as exc:  # rasterio raises several types; all mean "cannot use it"
            raise ctx.fail(f"{where}source", f"cannot be opened as a raster: {exc}") from exc
        style = _raster_style(ctx, ctx.get(d, "raster", where, dict, {}), f"{where}raster.",
                              raster)
        series_time = None
        if series:  # time-aware raster: the service's timeInfo and slider cover its dates
            series_time = TimeInfo(start_field="", end_field=None,
                                   extent=(series[0].time, series[-1].time),
                                   interval=float(d.get("timeInterval", 1)),
                                   interval_units=str(d.get("timeIntervalUnits",
                                                            "esriTimeUnitsYears")))
        return Layer(raster=raster, raster_style=style, time_series=series,
                     time_info=series_time, **common)

    try:
        table = FeatureTable.read(source, ctx.get(d, "sourceLayer", where, str, None))
    except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, ...
        raise ctx.fail(f"{where}source", f"cannot be read as vector data: {exc}") from exc
    names = [f.name for f in table.fields]
    renderer_doc = drawing.get("renderer")
    if renderer_doc is None:
        renderer_doc = _default_renderer(table.geometry_type)
    try:
        renderer = parse_renderer(renderer_doc, f"{where}drawingInfo.renderer", names)
    except StyleError as exc:
        raise ctx.fail(exc.path, exc.problem) from exc
    display = ctx.get(d, "displayField", where, str, None)
    if display is not None:
        f = table.field(display)
        if f is None:
            raise ctx.fail(f"{where}displayField", f"unknown field {display!r}")
        display = f.name
    else:
        display = next((f.name for f in table.fields if f.type == "esriFieldTypeString"),
                       table.oid_field)
    labels = _labels(ctx, drawing.get("labelingInfo"), f"{where}drawingInfo.labelingInfo", table)
    time_info = _time_info(ctx, d.get("timeInfo"), f"{where}timeInfo", table)
    definition = ctx.get(d, "definitionExpression", where, str, "")
    try:  # checked once here, so a bad clause never reaches a request
        compile_where(definition, table.field_infos)
    except WhereClauseError as exc:
        raise ctx.fail(f"{where}definitionExpression", "; ".join(exc.details) or exc.message
                       ) from exc
    scale_symbols = ctx.get(drawing, "scaleSymbols", f"{where}drawingInfo.", bool, True)
    return Layer(table=table, renderer=renderer, display_field=display, labels=labels,
                 time_info=time_info, scale_symbols=scale_symbols,
                 range_infos=declared.load_range_infos(ctx, d.get("rangeInfos"),
                                                       f"{where}rangeInfos", table),
                 parameter_filter=declared.load_parameter_filter(ctx, d, where, table),
                 archiving=declared.load_archiving(ctx, d.get("archiving"), f"{where}archiving",
                                                   table),
                 definition_expression=definition, **common)


def _default_renderer(geometry_type: str) -> dict:
    grey = [128, 128, 128, 255]
    if geometry_type == "esriGeometryPolygon":
        sym = {"type": "esriSFS", "style": "esriSFSSolid", "color": [200, 200, 200, 255],
               "outline": {"type": "esriSLS", "style": "esriSLSSolid", "color": grey,
                           "width": 0.75}}
    elif geometry_type == "esriGeometryPolyline":
        sym = {"type": "esriSLS", "style": "esriSLSSolid", "color": grey, "width": 1}
    else:
        sym = {"type": "esriSMS", "style": "esriSMSCircle", "color": grey, "size": 6}
    return {"type": "simple", "symbol": sym}


def _labels(ctx: _Ctx, value: Any, where: str, table: FeatureTable) -> tuple[LabelClass, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ctx.fail(where, "must be a list")
    out = []
    for i, info in enumerate(value):
        w = f"{where}[{i}]"
        if not isinstance(info, dict):
            raise ctx.fail(w, "must be an object")
        expression, where_clause, placement = _label_rules(ctx, info, w, table)
        sym = ctx.get(info, "symbol", f"{w}.", dict, {})
        font = ctx.get(sym, "font", f"{w}.symbol.", dict, {})
        try:
            color = parse_color(sym.get("color", [0, 0, 0, 255]), f"{w}.symbol.color")
            halo = parse_color(sym.get("haloColor"), f"{w}.symbol.haloColor")
        except StyleError as exc:
            raise ctx.fail(exc.path, exc.problem) from exc
        out.append(LabelClass(
            field=expression.fields[0] if expression.fields else "",
            expression=expression, where=where_clause, placement=placement,
            size=float(ctx.get(font, "size", f"{w}.symbol.font.", (int, float), 8)),
            color=color or (0, 0, 0, 1), halo_color=halo,
            halo_size=float(ctx.get(sym, "haloSize", f"{w}.symbol.", (int, float), 0)),
            weight=ctx.get(font, "weight", f"{w}.symbol.font.", str, "normal"),
            min_scale=float(ctx.get(info, "minScale", f"{w}.", (int, float), 0)),
            max_scale=float(ctx.get(info, "maxScale", f"{w}.", (int, float), 0)),
            source=info))
    return tuple(out)


def _label_rules(ctx: _Ctx, info: dict, w: str, table: FeatureTable) -> tuple:
    """A labelling class's expression (Arcade ``labelExpressionInfo.expression`` or VBScript
    ``labelExpression``), its ``where`` clause and its ``labelPlacement``, checked against the
    layer's fields and geometry type."""
    names = [f.name for f in table.fields]
    arcade = info.get("labelExpressionInfo")
    try:
        if arcade is not None:
            if not isinstance(arcade, dict) or not isinstance(arcade.get("expression"), str):
                raise ctx.fail(f"{w}.labelExpressionInfo.expression", "must be a string")
            field_path = f"{w}.labelExpressionInfo.expression"
            expression = compile_label(arcade["expression"], "arcade", names)
        else:
            field_path = f"{w}.labelExpression"
            text = ctx.get(info, "labelExpression", f"{w}.", str, required=True)
            expression = compile_label(text, "vbscript", names)
    except LabelExpressionError as exc:
        raise ctx.fail(field_path, str(exc)) from exc
    clause = ctx.get(info, "where", f"{w}.", str, None)
    where_clause = None
    if clause and clause.strip():
        try:
            where_clause = compile_where(clause, table.field_infos)
        except WhereClauseError as exc:
            raise ctx.fail(f"{w}.where", "; ".join(exc.details) or exc.message) from exc
    placement = ctx.get(info, "labelPlacement", f"{w}.", str, "") or ""
    if placement:
        family = LABEL_PLACEMENTS.get(table.geometry_type, LABEL_PLACEMENTS["esriGeometryPoint"])
        if placement not in family:
            raise ctx.fail(f"{w}.labelPlacement", f"{placement!r} is not a placement for "
                                                  f"{table.geometry_type} (one of "
                                                  f"{', '.join(sorted(family))})")
    return expression, where_clause, placement


def _time_info(ctx: _Ctx, value: Any, where: str, table: FeatureTable) -> TimeInfo | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ctx.fail(where, "must be an object")
    names = {}
    for key in ("startTimeField", "endTimeField"):
        v = ctx.get(value, key, f"{where}.", str, None, required=(key == "startTimeField"))
        if v is None:
            continue
        f = table.field(v)
        if f is None:
            raise ctx.fail(f"{where}.{key}", f"unknown field {v!r}")
        if f.type not in ("esriFieldTypeDate", "esriFieldTypeInteger", "esriFieldTypeDouble"):
            raise ctx.fail(f"{where}.{key}", "must be a date or epoch-milliseconds number field")
        names[key] = f.name
    units = ctx.get(value, "timeIntervalUnits", f"{where}.", str, "esriTimeUnitsYears")
    if units not in TIME_UNITS:
        raise ctx.fail(f"{where}.timeIntervalUnits", f"unknown time unit {units!r}")
    start = names["startTimeField"]
    end = names.get("endTimeField")
    vals = [table.columns[start]]
    if end:
        vals.append(table.columns[end])
    all_vals = np.concatenate([np.asarray(v, dtype=np.int64) for v in vals]) if table.n else None
    extent = (int(all_vals.min()), int(all_vals.max())) if all_vals is not None else None
    return TimeInfo(start_field=start, end_field=end, extent=extent,
                    interval=float(ctx.get(value, "timeInterval", f"{where}.", (int, float), 1)),
                    interval_units=units)


def _raster_style(ctx: _Ctx, d: dict, where: str, raster: RasterSource) -> RasterStyle:
    bands = ctx.get(d, "bands", where, list, None)
    if bands is None:
        bands = [1, 2, 3] if raster.count >= 3 else [1]
    if len(bands) not in (1, 3) or not all(
            isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= raster.count
            for b in bands):
        raise ctx.fail(f"{where}bands", f"must list 1 or 3 band numbers between 1 and "
                                        f"{raster.count}")
    resampling = ctx.get(d, "resampling", where, str, "nearest")
    if resampling not in RESAMPLING:
        raise ctx.fail(f"{where}resampling", f"must be one of {', '.join(RESAMPLING)}")
    stretch = ctx.get(d, "stretch", where, dict, {"type": "none"})
    stype = stretch.get("type", "none")
    smin = smax = None
    if stype == "minMax" and ("min" in stretch or "max" in stretch):
        smin = ctx.get(stretch, "min", f"{where}stretch.", list, required=True)
        smax = ctx.get(stretch, "max", f"{where}stretch.", list, required=True)
        if len(smin) != len(bands) or len(smax) != len(bands):
            raise ctx.fail(f"{where}stretch", "min and max need one value per band")
        smin, smax = tuple(float(v) for v in smin), tuple(float(v) for v in smax)
    elif stype == "minMax":  # from the statistics: declared ones, else the data's own
        stats = _band_statistics(ctx, stretch, f"{where}stretch.", raster, bands)
        smin = tuple(st[0] for st in stats)
        smax = tuple(st[1] if st[1] > st[0] else st[0] + 1.0 for st in stats)
    elif stype == "percentClip":
        lo = float(ctx.get(stretch, "minPercent", f"{where}stretch.", (int, float), 2))
        hi = float(ctx.get(stretch, "maxPercent", f"{where}stretch.", (int, float), 98))
        if not 0 <= lo < hi <= 100:
            raise ctx.fail(f"{where}stretch", "need 0 <= minPercent < maxPercent <= 100")
        smin, smax = _percentiles(raster, bands, lo, hi)
    elif stype == "standardDeviation":
        n = float(ctx.get(stretch, "numberOfStandardDeviations", f"{where}stretch.",
                          (int, float), 2))
        if not 0 < n <= 10:
            raise ctx.fail(f"{where}stretch.numberOfStandardDeviations",
                           "must be above 0 and at most 10")
        stats = _band_statistics(ctx, stretch, f"{where}stretch.", raster, bands)
        smin = tuple(max(mn, mean - n * sd) for mn, _mx, mean, sd in stats)
        smax = tuple(min(mx, mean + n * sd) for _mn, mx, mean, sd in stats)
        smax = tuple(hi if hi > lo else lo + 1.0 for lo, hi in zip(smin, smax, strict=True))
    elif stype != "none":
        raise ctx.fail(f"{where}stretch.type", f"unknown stretch {stype!r} "
                                               "(none, minMax, percentClip or "
                                               "standardDeviation)")
    if smin is not None and any(a >= b for a, b in zip(smin, smax, strict=True)):
        raise ctx.fail(f"{where}stretch", "each min must be below its max")
    colormap = None
    ramp = d.get("colorRamp")
    if ramp is not None:
        if len(bands) != 1:
            raise ctx.fail(f"{where}colorRamp", "needs exactly one band")
        colormap = _colormap(ctx, ramp, f"{where}colorRamp")
        if smin is None:
            raise ctx.fail(f"{where}stretch", "a colour ramp needs a minMax or percentClip "
                                              "stretch to map values onto it")
    return RasterStyle(bands=tuple(bands), stretch_min=smin, stretch_max=smax,
                       colormap=colormap, resampling=resampling, source=d)


def _percentiles(raster: RasterSource, bands: list[int], lo: float,
                 hi: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band percentiles over valid pixels (from a decimated read for big rasters)."""
    import rasterio

    with rasterio.open(raster.path) as ds:
        f = max(1, int(np.ceil(max(ds.width, ds.height) / 1024)))
        shape = (len(bands), max(1, ds.height // f), max(1, ds.width // f))
        data = ds.read(bands, out_shape=shape, masked=True)
    mins, maxs = [], []
    for b in range(len(bands)):
        vals = data[b].compressed().astype(float)
        vals = vals[np.isfinite(vals)]
        if vals.size == 0:
            mins.append(0.0)
            maxs.append(1.0)
            continue
        a, z = np.percentile(vals, [lo, hi])
        mins.append(float(a))
        maxs.append(float(z) if z > a else float(a) + 1.0)
    return tuple(mins), tuple(maxs)


# ``mapserver init`` writes a definition's stretch from the same percentiles a percentClip uses
band_percentiles = _percentiles


def _band_statistics(ctx: _Ctx, stretch: dict, where: str, raster: RasterSource,
                     bands: list[int]) -> list[tuple[float, float, float, float]]:
    """Per band (min, max, mean, standard deviation): the stretch's ``statistics`` (ArcGIS:
    one ``[min, max, mean, stddev]`` per band) or computed over the valid pixels of a
    decimated read."""
    declared_stats = stretch.get("statistics")
    if declared_stats is not None:
        if (not isinstance(declared_stats, list) or len(declared_stats) != len(bands)
                or not all(isinstance(st, list) and len(st) == 4 and all(
                    isinstance(v, int | float) and not isinstance(v, bool) for v in st)
                    for st in declared_stats)):
            raise ctx.fail(f"{where}statistics", "must be one [min, max, mean, stddev] per "
                                                 "band")
        return [tuple(float(v) for v in st) for st in declared_stats]
    out = []
    for vals in _sample_bands(raster, bands):
        if vals.size == 0:
            out.append((0.0, 1.0, 0.5, 0.0))
            continue
        out.append((float(vals.min()), float(vals.max()), float(vals.mean()),
                    float(vals.std())))
    return out


def _sample_bands(raster: RasterSource, bands: list[int]) -> list[np.ndarray]:
    """Each band's finite valid values from a read decimated to about 1024 pixels across."""
    import rasterio

    with rasterio.open(raster.path) as ds:
        f = max(1, int(np.ceil(max(ds.width, ds.height) / 1024)))
        shape = (len(bands), max(1, ds.height // f), max(1, ds.width // f))
        data = ds.read(bands, out_shape=shape, masked=True)
    out = []
    for b in range(len(bands)):
        vals = data[b].compressed().astype(float)
        out.append(vals[np.isfinite(vals)])
    return out


ALGORITHMS = ("esriHSVAlgorithm", "esriCIELabAlgorithm", "esriLabLChAlgorithm")


def _algorithmic(ctx: _Ctx, ramp: dict, where: str) -> np.ndarray:
    """An ``algorithmic`` ramp: fromColor to toColor in HSV, CIELab or LCh, (256, 4) floats."""
    from mapserver.render.color import ramp_colors

    algorithm = ramp.get("algorithm", "esriHSVAlgorithm")
    if algorithm not in ALGORITHMS:
        raise ctx.fail(f"{where}.algorithm", f"unknown algorithm {algorithm!r} (one of "
                                             f"{', '.join(ALGORITHMS)})")
    try:
        a = parse_color(ramp.get("fromColor"), f"{where}.fromColor")
        b = parse_color(ramp.get("toColor"), f"{where}.toColor")
    except StyleError as exc:
        raise ctx.fail(exc.path, exc.problem) from exc
    if a is None or b is None:
        raise ctx.fail(where, "an algorithmic ramp needs fromColor and toColor")
    return ramp_colors(a, b, algorithm, 256)


def _colormap(ctx: _Ctx, ramp: Any, where: str) -> np.ndarray:
    """A 256-entry RGBA lookup table from ``{"name": <matplotlib colormap>}`` or
    ``{"colors": [[r,g,b(,a)], ...]}`` (evenly spaced stops)."""
    if not isinstance(ramp, dict):
        raise ctx.fail(where, "must be an object")
    if ramp.get("type") == "algorithmic":
        return (_algorithmic(ctx, ramp, where) * 255).round().astype(np.uint8)
    if ramp.get("type") == "multipart":
        parts = ramp.get("colorRamps")
        if not isinstance(parts, list) or not parts:
            raise ctx.fail(f"{where}.colorRamps", "must list algorithmic ramps")
        pieces = []
        for i, part in enumerate(parts):
            if not isinstance(part, dict) or part.get("type") != "algorithmic":
                raise ctx.fail(f"{where}.colorRamps[{i}]", "must be an algorithmic ramp")
            pieces.append(_algorithmic(ctx, part, f"{where}.colorRamps[{i}]"))
        joined = np.concatenate(pieces)
        pick = np.linspace(0, len(joined) - 1, 256).round().astype(int)
        return (joined[pick] * 255).round().astype(np.uint8)
    if "colors" in ramp:
        colors = ramp["colors"]
        if not isinstance(colors, list) or len(colors) < 2:
            raise ctx.fail(f"{where}.colors", "must list at least two colours")
        try:
            stops = [parse_color(c, f"{where}.colors[{i}]") for i, c in enumerate(colors)]
        except StyleError as exc:
            raise ctx.fail(exc.path, exc.problem) from exc
        cmap = LinearSegmentedColormap.from_list("ramp", stops, N=256)
    elif "name" in ramp:
        try:
            cmap = matplotlib.colormaps[str(ramp["name"])]
        except KeyError as exc:
            raise ctx.fail(f"{where}.name", f"unknown colour ramp {ramp['name']!r}") from exc
    else:
        raise ctx.fail(where, "needs colors or name")
    return (cmap(np.linspace(0, 1, 256)) * 255).round().astype(np.uint8)


def _link_groups(ctx: _Ctx, layers: list[Layer]) -> list[Layer]:
    """Set each layer's parent id from the group layers' subLayerIds."""
    import dataclasses

    ids = {lyr.id for lyr in layers}
    parent: dict[int, int] = {}
    for lyr in layers:
        for sub in lyr.sublayer_ids:
            if sub not in ids:
                raise ctx.fail(f"layers[id={lyr.id}].subLayerIds", f"unknown layer id {sub}")
            if sub == lyr.id or sub in parent:
                raise ctx.fail(f"layers[id={lyr.id}].subLayerIds",
                               f"layer {sub} cannot be in two groups or in itself")
            parent[sub] = lyr.id
    # reject cycles
    for lid in ids:
        seen, cur = set(), lid
        while cur in parent:
            if cur in seen:
                raise ctx.fail("layers", f"group cycle through layer {lid}")
            seen.add(cur)
            cur = parent[cur]
    return [dataclasses.replace(lyr, parent_id=parent.get(lyr.id, -1)) for lyr in layers]
