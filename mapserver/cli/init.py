"""``mapserver init DATAFILE [-o OUT.json] [--name NAME]``: a working definition from a data file.

A raster (GeoTIFF or anything GDAL reads) becomes a raster layer with its bands (the first
three as RGB, else the first), a minMax stretch from the data's own 2–98 % percentiles over
the valid (non-nodata) pixels, written out as numbers so the author sees and can edit them.
A vector file (GeoPackage, shapefile, GeoJSON, … through pyogrio) becomes one feature layer
per layer of the file, with a simple renderer for its geometry type and a display field; the
fields and their Esri types are listed on the console (the server reads them from the data,
so the definition does not repeat them). Both get the data's SR and extent.

The file is then loaded by the server's own loader (as ``mapserver validate`` does), so what
``init`` writes is known to load; the exit status is 1 if it does not.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

# simple-renderer colours per layer (ArcGIS-like defaults, distinct across layers)
PALETTE = [(56, 120, 190), (214, 96, 37), (60, 150, 80), (150, 80, 170), (200, 160, 30)]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "init", help="write a service definition for a raster or vector data file",
        description="Write a working service definition for a data file: a raster (GeoTIFF, "
        "…) with a stretch from its own statistics, or a vector file (GeoPackage, shapefile, "
        "GeoJSON) with a renderer and display field. The result is checked by the server's "
        "loader.")
    p.add_argument("datafile", metavar="DATAFILE", help="the raster or vector data file")
    p.add_argument("-o", "--output", metavar="OUT.json",
                   help="where to write the definition (default: <first services folder>/"
                   "<NAME>.json)")
    p.add_argument("--name", help="the service's map name (default: the data file's name)")
    p.add_argument("--data", metavar="DIR",
                   help="the server's data folder; a data file inside it is referenced "
                   "relative to it (default: MAPSERVER_DATA, else the clone's data/)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mapserver.settings import Settings

    settings = Settings.from_env()
    data_dir = Path(args.data) if args.data else settings.data_dir
    data = Path(args.datafile)
    if not data.exists():
        print(f"mapserver init: {data}: no such file")
        return 2
    name = args.name or data.stem
    out = Path(args.output) if args.output else settings.service_dirs[0] / f"{name}.json"
    if out.exists() and not args.force:
        print(f"mapserver init: {out} exists (use --force to overwrite it)")
        return 2
    try:
        doc, notes = definition_for(data, out.parent, data_dir, name)
    except InitError as exc:
        print(f"mapserver init: {data}: {exc}")
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    for note in notes:
        print(f"  {note}")
    from mapserver.cli.validate import check_file

    found = check_file(out, out.stem, data_dir)
    if isinstance(found, list):
        for line in found:
            print(line)
        return 1
    print(f"ok: {out} loads ({found} layer(s))")
    return 0


class InitError(Exception):
    """The data file cannot be described (not readable as raster or vector, no SR, …)."""


def definition_for(data: Path, def_dir: Path, data_dir: Path, name: str
                   ) -> tuple[dict, list[str]]:
    """The definition document for ``data`` (to be written in ``def_dir``) and notes for the
    console."""
    source = source_reference(data, def_dir, data_dir)
    raster_error = vector_error = None
    try:
        return _raster(data, source, name)
    except InitError:
        raise
    except Exception as exc:  # noqa: BLE001 - rasterio's many types: try it as vector data
        raster_error = exc
    try:
        return _vector(data, source, name)
    except InitError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyogrio's many types
        vector_error = exc
    raise InitError(f"neither a raster ({raster_error}) nor vector data ({vector_error})")


def source_reference(data: Path, def_dir: Path, data_dir: Path) -> str:
    """How the definition names its data, as the loader resolves ``source``: relative to the
    data folder when inside it, else ``./``/``../`` relative to the definition, else
    absolute."""
    data = data.resolve()
    try:
        return data.relative_to(Path(data_dir).resolve()).as_posix()
    except ValueError:
        pass
    rel = Path(os.path.relpath(data, Path(def_dir).resolve()))
    if not rel.as_posix().startswith("../../../"):
        text = rel.as_posix()
        return text if text.startswith("../") else f"./{text}"
    return str(data)


def _service(name: str, description: str, sr: Any, bounds: tuple, layers: list[dict],
             notes: list[str]) -> dict:
    """The service around ``layers``. Its SR is the data's WKID; data whose SR has none (a
    WKT with an unnamed datum) leaves ``spatialReference`` out, so the loader takes the
    data's own SR rather than a WKT that might not read back."""
    xmin, ymin, xmax, ymax = (float(v) for v in bounds)
    if xmin >= xmax or ymin >= ymax:  # a single point: a box around it
        xmin, ymin, xmax, ymax = xmin - 1, ymin - 1, xmax + 1, ymax + 1
    doc: dict[str, Any] = {"serviceDescription": description, "copyrightText": "",
                           "mapName": name}
    if sr.wkid is not None:
        doc["spatialReference"] = {"wkid": sr.wkid}
        notes.insert(0, f"spatial reference: WKID {sr.wkid}")
    else:
        notes.insert(0, "spatial reference: the data's own (it has no WKID)")
    doc["initialExtent"] = {"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax}
    doc["layers"] = layers
    return doc


def _raster(data: Path, source: str, name: str) -> tuple[dict, list[str]]:
    from mapserver.catalog.loader import band_percentiles
    from mapserver.sources.rasters import RasterSource

    try:
        raster = RasterSource.open(data)
    except ValueError as exc:  # opened, but unusable (no SR)
        if "coordinate reference system" in str(exc):
            raise InitError(str(exc)) from exc
        raise
    bands = [1, 2, 3] if raster.count >= 3 else [1]
    lo, hi = band_percentiles(raster, bands, 2.0, 98.0)
    notes = [f"raster {raster.width} x {raster.height}, {raster.count} band(s) of "
             f"{raster.dtype}, nodata {raster.nodata}",
             f"bands {bands}, stretch 2-98 % of the valid pixels: min {_nums(lo)} "
             f"max {_nums(hi)}"]
    layer: dict[str, Any] = {
        "id": 0, "name": name, "type": "raster", "source": source,
        "raster": {"bands": bands, "resampling": "nearest",
                   "stretch": {"type": "minMax", "min": _nums(lo), "max": _nums(hi)}}}
    if raster.nodata is not None:  # read from the file: such pixels are drawn transparent
        layer["description"] = f"nodata {raster.nodata:g} (drawn transparent)"
    return _service(name, f"{name}: raster {data.name}", raster.sr, raster.bounds, [layer],
                    notes), notes


def _nums(values: tuple[float, ...]) -> list[float | int]:
    return [int(v) if float(v).is_integer() else float(f"{v:.6g}") for v in values]


def _vector(data: Path, source: str, name: str) -> tuple[dict, list[str]]:
    import numpy as np
    import pyogrio

    from mapserver.geo.project import project_bounds
    from mapserver.sources.features import FeatureTable

    names = [str(row[0]) for row in pyogrio.list_layers(str(data)) if row[1] is not None]
    if not names:
        raise InitError("no layer with geometry")
    layers, notes, boxes = [], [], []
    service_sr = None
    for i, layer_name in enumerate(names):
        table = FeatureTable.read(data, layer_name if len(names) > 1 else None)
        service_sr = service_sr or table.sr
        strings = [f.name for f in table.fields if f.type == "esriFieldTypeString"]
        display = strings[0] if strings else table.oid_field
        layer: dict[str, Any] = {
            "id": i, "name": layer_name if len(names) > 1 else name, "type": "feature",
            "source": source, "displayField": display,
            "drawingInfo": {"renderer": {"type": "simple",
                                         "symbol": _symbol(table.geometry_type, i)}}}
        if len(names) > 1:
            layer["sourceLayer"] = layer_name
        layers.append(layer)
        if table.n:
            box = project_bounds(table.bounds, table.sr, service_sr)
            if box is not None:
                boxes.append(box)
        notes.append(f"layer {i} {layer_name!r}: {table.n} {table.geometry_type} feature(s), "
                     f"display field {display}")
        notes.extend(f"    {f.name}: {f.type}" for f in table.fields)
    assert service_sr is not None
    arr = np.array(boxes) if boxes else np.array([[0.0, 0.0, 1.0, 1.0]])
    bounds = (arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max())
    return _service(name, f"{name}: vector data {data.name}", service_sr, bounds, layers,
                    notes), notes


def _symbol(geometry_type: str, i: int) -> dict:
    r, g, b = PALETTE[i % len(PALETTE)]
    dark = [int(r * 0.6), int(g * 0.6), int(b * 0.6), 255]
    if geometry_type == "esriGeometryPolygon":
        return {"type": "esriSFS", "style": "esriSFSSolid", "color": [r, g, b, 160],
                "outline": {"type": "esriSLS", "style": "esriSLSSolid", "color": dark,
                            "width": 0.75}}
    if geometry_type == "esriGeometryPolyline":
        return {"type": "esriSLS", "style": "esriSLSSolid", "color": [r, g, b, 255],
                "width": 1.5}
    return {"type": "esriSMS", "style": "esriSMSCircle", "color": [r, g, b, 255], "size": 7,
            "outline": {"type": "esriSLS", "style": "esriSLSSolid", "color": dark, "width": 0.75}}
