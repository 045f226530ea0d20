"""``mapserver init``: a GeoTIFF and a GeoPackage made here become definitions that pass
``validate``, load in an app and export what the data holds (stretched grey values, not
white; features drawn where they are), and whose layers answer query with their fields."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from affine import Affine

from mapserver.app import create_app
from mapserver.cli import main
from mapserver.settings import Settings
from tests.conftest import decode

X0, Y0, RES, W, H = 500000.0, 4000000.0, 30.0, 60, 40  # EPSG:32633
NODATA = -9999.0


def _values() -> np.ndarray:
    """100 + 10 per column (100 … 690); a 5 x 5 nodata block at the top left."""
    data = np.tile(100.0 + 10.0 * np.arange(W, dtype=np.float32), (H, 1)).astype(np.float32)
    data[:5, :5] = NODATA
    return data


@pytest.fixture()
def tif(tmp_path) -> Path:
    path = tmp_path / "dem.tif"
    with rasterio.open(path, "w", driver="GTiff", width=W, height=H, count=1,
                       dtype="float32", crs="EPSG:32633", nodata=NODATA,
                       transform=Affine(RES, 0.0, X0, 0.0, -RES, Y0)) as ds:
        ds.write(_values(), 1)
    return path


def _write_points(path: Path, layer: str | None = None) -> None:
    pts = shapely.points([(10, 10), (20, 15), (-5, -5)])
    pyogrio.raw.write(path, shapely.to_wkb(pts), [
        np.array(["Alpha", "Beta", "Gamma"], dtype=object),
        np.array([3, 7, 11], dtype=np.int32), np.array([0.5, 1.25, 2.0])],
        ["name", "count", "value"], crs="EPSG:4326", geometry_type="Point", driver="GPKG",
        layer=layer)


def _app(root: Path):
    return create_app(Settings(service_dirs=(root,), data_dir=root, output_dir=root / "out",
                               tile_cache_dir=root / "tiles"))


def _init(capsys, *args: str) -> tuple[int, str]:
    status = main(["init", *args])
    return status, capsys.readouterr().out


def test_a_geotiff_becomes_a_stretched_raster_service(capsys, tmp_path, tif):
    status, out = _init(capsys, str(tif), "-o", str(tmp_path / "Dem.json"), "--data",
                        str(tmp_path))
    assert status == 0, out
    assert out.splitlines()[-1] == f"ok: {tmp_path / 'Dem.json'} loads (1 layer(s))"
    doc = json.loads((tmp_path / "Dem.json").read_text())
    assert doc["spatialReference"] == {"wkid": 32633}
    assert doc["initialExtent"] == {"xmin": X0, "ymin": Y0 - H * RES, "xmax": X0 + W * RES,
                                    "ymax": Y0}
    (layer,) = doc["layers"]
    assert (layer["source"], layer["type"], layer["raster"]["bands"]) == ("dem.tif", "raster",
                                                                           [1])
    # the stretch is the data's own 2-98 % over the valid pixels (nodata left out)
    valid = _values()[_values() != NODATA]
    lo, hi = np.percentile(valid, [2, 98])
    stretch = layer["raster"]["stretch"]
    assert stretch["type"] == "minMax"
    assert stretch["min"][0] == pytest.approx(lo, abs=1e-3)
    assert stretch["max"][0] == pytest.approx(hi, abs=1e-3)
    assert layer["description"] == "nodata -9999 (drawn transparent)"

    assert main(["validate", str(tmp_path / "Dem.json"), "--data", str(tmp_path)]) == 0
    client = _app(tmp_path).test_client()
    img = decode(client.get("/arcgis/rest/services/Dem/MapServer/export", query_string={
        "bbox": f"{X0},{Y0 - H * RES},{X0 + W * RES},{Y0}", "bboxSR": 32633,
        "size": f"{W},{H}", "format": "png32", "transparent": "true", "f": "image"}).data)
    assert img.shape == (H, W, 4)
    row = img[H // 2]
    # grey, rising from black to white across the columns; the middle is mid-grey, not white
    assert (row[:, 0] == row[:, 1]).all() and (row[:, 1] == row[:, 2]).all()
    assert row[0, 0] == 0 and row[-1, 0] == 255
    assert (np.diff(row[:, 0].astype(int)) >= 0).all()
    expected_mid = (float(_values()[H // 2, W // 2]) - lo) / (hi - lo) * 255
    assert abs(int(row[W // 2, 0]) - expected_mid) <= 3
    # nodata stays transparent, data is opaque
    assert (img[:5, :5, 3] == 0).all() and (img[10:, :, 3] == 255).all()


def test_a_geopackage_becomes_a_feature_service_that_draws_and_queries(capsys, tmp_path):
    _write_points(tmp_path / "sites.gpkg")
    status, out = _init(capsys, str(tmp_path / "sites.gpkg"), "--name", "Sites", "-o",
                        str(tmp_path / "Sites.json"), "--data", str(tmp_path))
    assert status == 0, out
    # the fields and their Esri types are listed for the author
    assert "      count: esriFieldTypeInteger" in out.splitlines()
    doc = json.loads((tmp_path / "Sites.json").read_text())
    assert doc["spatialReference"] == {"wkid": 4326}
    assert doc["initialExtent"] == {"xmin": -5.0, "ymin": -5.0, "xmax": 20.0, "ymax": 15.0}
    (layer,) = doc["layers"]
    assert (layer["name"], layer["source"], layer["displayField"]) == ("Sites", "sites.gpkg",
                                                                       "name")
    assert layer["drawingInfo"]["renderer"]["symbol"]["type"] == "esriSMS"

    assert main(["validate", str(tmp_path / "Sites.json"), "--data", str(tmp_path)]) == 0
    client = _app(tmp_path).test_client()
    base = "/arcgis/rest/services/Sites/MapServer"
    img = decode(client.get(base + "/export", query_string={
        "bbox": "-10,-10,30,20", "size": "400,300", "format": "png32", "transparent": "true",
        "f": "image"}).data)
    # (10, 10) is pixel (200, 100): the renderer's colour there; nothing far from the points
    assert tuple(img[100, 200]) == (56, 120, 190, 255)
    assert tuple(img[250, 50]) == (56, 120, 190, 255)  # (-5, -5)
    assert img[280, 380, 3] == 0
    body = client.get(base + "/0/query", query_string={
        "where": "1=1", "outFields": "*", "orderByFields": "count", "f": "json"}).get_json()
    types = {f["name"]: f["type"] for f in body["fields"]}
    assert types == {"OBJECTID": "esriFieldTypeOID", "name": "esriFieldTypeString",
                     "count": "esriFieldTypeInteger", "value": "esriFieldTypeDouble"}
    assert [(f["attributes"]["name"], f["attributes"]["count"], f["attributes"]["value"])
            for f in body["features"]] == [("Alpha", 3, 0.5), ("Beta", 7, 1.25),
                                           ("Gamma", 11, 2.0)]
    assert body["displayFieldName"] == "name"


def test_each_layer_of_a_multi_layer_geopackage_is_a_layer(capsys, tmp_path):
    path = tmp_path / "two.gpkg"
    _write_points(path, layer="sites")
    zones = shapely.polygons([[(0, 0), (8, 0), (8, 8), (0, 8), (0, 0)]])
    pyogrio.raw.write(path, shapely.to_wkb(zones), [np.array(["Z1"], dtype=object)], ["label"],
                      crs="EPSG:4326", geometry_type="Polygon", driver="GPKG", layer="zones")
    out_dir = tmp_path / "services"
    status, out = _init(capsys, str(path), "-o", str(out_dir / "Two.json"), "--data",
                        str(tmp_path / "elsewhere"))
    assert status == 0, out
    doc = json.loads((out_dir / "Two.json").read_text())
    # outside the data folder: named relative to the definition
    assert [(lyr["name"], lyr["sourceLayer"], lyr["source"]) for lyr in doc["layers"]] == [
        ("sites", "sites", "../two.gpkg"), ("zones", "zones", "../two.gpkg")]
    client = create_app(Settings(service_dirs=(out_dir,), data_dir=tmp_path / "elsewhere",
                                 output_dir=tmp_path / "out")).test_client()
    img = decode(client.get("/arcgis/rest/services/Two/MapServer/export", query_string={
        "bbox": "-10,-10,30,20", "size": "400,300", "format": "png32", "transparent": "true",
        "f": "image"}).data)
    zone = img[180, 140]  # (4, 2): inside the zone, drawn in the second colour, see-through
    assert 0 < zone[3] < 255 and zone[0] > zone[2]
    assert tuple(img[100, 200]) == (56, 120, 190, 255)  # the point on top of it all


def test_init_never_overwrites_without_force(capsys, tmp_path, tif):
    target = tmp_path / "Dem.json"
    target.write_text("{}")
    status, out = _init(capsys, str(tif), "-o", str(target))
    assert status == 2 and "exists" in out and target.read_text() == "{}"
    status, _out = _init(capsys, str(tif), "-o", str(target), "--force", "--data",
                         str(tmp_path))
    assert status == 0 and json.loads(target.read_text())["layers"]


def test_a_file_that_is_not_data_is_refused(capsys, tmp_path):
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    status, out = _init(capsys, str(junk), "-o", str(tmp_path / "N.json"))
    assert status == 1 and out.startswith(f"mapserver init: {junk}: neither a raster")
    assert not (tmp_path / "N.json").exists()
