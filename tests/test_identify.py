"""Identify on the sample services as esri-leaflet, QGIS and GDAL send it; expected values come
from the data files read independently (pyogrio, rasterio, pyproj)."""

from __future__ import annotations

import json

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import rasterio
import shapely

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings

WORLD = "/arcgis/rest/services/World/MapServer"
OLINDA = "/arcgis/rest/services/Samples/Olinda/MapServer"
# a 500 px wide view of South America: 0.1 degree per pixel
VIEW = {"mapExtent": "-80,-40,-30,10", "imageDisplay": "500,500,96", "f": "json"}


def row_of(path: str, name: str) -> tuple[int, dict]:
    meta, _f, _wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / path))
    cols = dict(zip(meta["fields"], data, strict=True))
    i = int(np.flatnonzero(cols["name"] == name)[0])
    return i + 1, {k: v[i] for k, v in cols.items()}


def identify(client, base: str = WORLD, **params) -> dict:
    resp = client.get(base + "/identify", query_string={**VIEW, **params})
    assert resp.mimetype == "application/json"
    return resp.get_json()


def brazil_result() -> dict:
    oid, row = row_of("world/countries.gpkg", "Brazil")
    return {"layerId": 1, "layerName": "Countries", "value": "Brazil",
            "displayFieldName": "name",
            "attributes": {"OBJECTID": str(oid), "name": "Brazil", "iso_a3": row["iso_a3"],
                           "continent": row["continent"],
                           "pop_est": str(int(row["pop_est"])),
                           "gdp_md_est": str(int(row["gdp_md_est"]))},
            "geometryType": "esriGeometryPolygon"}


def test_click_in_brazil_with_sr_4326_identifies_brazil(client):
    body = identify(client, geometry=json.dumps({"x": -52, "y": -10,
                                                 "spatialReference": {"wkid": 4326}}),
                    geometryType="esriGeometryPoint", sr="4326", layers="all:1",
                    tolerance="3", returnGeometry="false")
    assert body == {"results": [brazil_result()], "exceededTransferLimit": False}


def test_qgis_unquoted_keys_and_gdal_shorthand(client):
    qgis = identify(client, geometry="{x: -52, y: -10}", layers="all:1", tolerance="10",
                    returnGeometry="false", geometryType="esriGeometryPoint")
    gdal = identify(client, geometry="-52,-10", sr="4326", layers="visible", tolerance="2",
                    layerdefs="", time="", layerTimeOptions="", maxAllowableOffset="",
                    returnGeometry="false", geometryType="esriGeometryPoint")
    assert qgis["results"] == gdal["results"] == [brazil_result()]


def test_top_returns_only_the_topmost_layer_with_a_hit(client):
    oid, _row = row_of("world/cities.gpkg", "Rio de Janeiro")
    rio = {"layerId": 0, "layerName": "Cities", "value": "Rio de Janeiro",
           "displayFieldName": "name",
           "attributes": {"OBJECTID": str(oid), "name": "Rio de Janeiro"},
           "geometryType": "esriGeometryPoint"}
    top = identify(client, geometry="-43.2,-22.9", tolerance="3", returnGeometry="false")
    assert top["results"] == [rio]
    everything = identify(client, geometry="-43.2,-22.9", tolerance="3", layers="all",
                          returnGeometry="false")
    assert [(r["layerId"], r["value"]) for r in everything["results"]] == [
        (0, "Rio de Janeiro"), (1, "Brazil")]


def test_tolerance_is_in_screen_pixels(client):
    _oid, _ = row_of("world/cities.gpkg", "Rio de Janeiro")
    # 0.35 degrees west of Rio is 3.5 pixels at 0.1 degree per pixel
    near = {"geometry": "-43.55,-22.9", "layers": "all:0", "returnGeometry": "false"}
    assert identify(client, tolerance="3", **near)["results"] == []
    assert [r["value"] for r in identify(client, tolerance="4", **near)["results"]] == [
        "Rio de Janeiro"]
    # the same 4 px at twice the zoom are only 0.2 degrees: no hit
    zoomed = identify(client, tolerance="4", mapExtent="-55,-35,-30,-10", **near)
    assert zoomed["results"] == []


def test_output_geometry_in_sr_with_precision(client):
    meta, _f, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data/world/cities.gpkg"))
    i = int(np.flatnonzero(data[0] == "Rio de Janeiro")[0])
    pt = shapely.from_wkb(wkb[i])
    tr = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    x, y = tr.transform(pt.x, pt.y)
    (xmin, xmax), (ymin, ymax) = tr.transform([-80, -30], [-40, 10])
    body = identify(client, geometry=f"{x},{y}", sr="3857", layers="all:0", tolerance="2",
                    mapExtent=f"{xmin},{ymin},{xmax},{ymax}", geometryPrecision="1")
    assert body["results"][0]["geometry"] == {
        "x": round(x, 1), "y": round(y, 1), "spatialReference": {"wkid": 102100,
                                                                 "latestWkid": 3857}}


def test_polygon_geometry_is_generalised_by_max_allowable_offset(client):
    body = identify(client, geometry="-52,-10", layers="all:1", tolerance="1",
                    maxAllowableOffset="0.5", geometryPrecision="3")
    geom = body["results"][0]["geometry"]
    assert geom["spatialReference"] == {"wkid": 4326, "latestWkid": 4326}
    shell = shapely.Polygon(geom["rings"][0])
    assert not shell.exterior.is_ccw
    assert shell.contains(shapely.Point(-52, -10))
    assert all(len(str(c).split(".")[-1]) <= 3 for ring in geom["rings"] for p in ring
               for c in p)


def test_layer_defs_json_and_legacy(client):
    base = {"geometry": "-52,-10", "layers": "all:1", "tolerance": "1",
            "returnGeometry": "false"}
    assert identify(client, layerDefs="1:continent = 'Africa'", **base)["results"] == []
    kept = identify(client, layerDefs=json.dumps({"1": "iso_a3 = 'BRA'"}), **base)
    assert [r["value"] for r in kept["results"]] == ["Brazil"]


def test_time_and_unformatted_values_with_field_names(client):
    gap = "/arcgis/rest/services/Gapminder/MapServer"
    base = {"geometry": "-52,-10", "layers": "all", "tolerance": "1", "returnGeometry": "false"}
    all_years = identify(client, gap, **base)["results"]
    assert sorted(r["attributes"]["year"] for r in all_years) == [
        str(y) for y in range(1952, 2008, 5)]
    t1952 = -568_080_000_000
    one = identify(client, gap, time=str(t1952), **base)["results"]
    assert len(one) == 1 and one[0]["attributes"]["date"] == "1/1/1952 12:00:00 AM"
    raw = identify(client, gap, time=str(t1952), returnFieldName="true",
                   returnUnformattedValues="true", **base)["results"][0]["attributes"]
    assert raw["date"] == t1952 and raw["year"] == 1952 and isinstance(raw["lifeExp"], float)


def test_raster_identify_returns_the_source_pixel(client):
    with rasterio.open(PROJECT_ROOT / "data/olinda/L7_ETMs.tif") as ds:
        values = ds.read(window=((100, 101), (150, 151)))[:, 0, 0].tolist()
        x, y = ds.xy(100, 150)
    pixel = " ".join(str(v) for v in values)
    body = identify(client, OLINDA, geometry=json.dumps({"x": x, "y": y}), layers="all:0",
                    tolerance="0", mapExtent=f"{x - 3000},{y - 3000},{x + 3000},{y + 3000}")
    [res] = body["results"]
    assert res["attributes"]["Pixel Value"] == pixel
    assert res["value"] == pixel and res["layerName"] == "Landsat 7 (true colour)"
    assert len(res["attributes"]["Stretched value"].split()) == 3
    assert res["geometry"] == {"x": x, "y": y, "spatialReference": {"wkid": 31985,
                                                                     "latestWkid": 31985}}
    # outside the raster: nothing
    away = identify(client, OLINDA, geometry=f"{x + 50000},{y}", layers="all",
                    tolerance="0", mapExtent=f"{x},{y - 3000},{x + 60000},{y + 3000}")
    assert away["results"] == []


@pytest.fixture(scope="module")
def scale_client(tmp_path_factory):
    """Cities visible only at scales larger than 1:10,000,000 (zoomed in)."""
    d = tmp_path_factory.mktemp("scale_range_services")
    (d / "ScaleRange.json").write_text(json.dumps({
        "spatialReference": {"wkid": 4326},
        "layers": [{"id": 0, "name": "Cities", "type": "feature",
                    "source": "world/cities.gpkg", "displayField": "name",
                    "minScale": 10_000_000}]}))
    app = create_app(Settings(service_dirs=(d,), data_dir=PROJECT_ROOT / "data",
                              output_dir=d / "out"))
    return app.test_client()


def test_layers_out_of_scale_are_skipped_for_visible_and_top(scale_client):
    base = "/arcgis/rest/services/ScaleRange/MapServer"
    click = {"geometry": "-43.2,-22.9", "tolerance": "5", "returnGeometry": "false"}
    # 0.1 degree per pixel at 96 dpi is about 1:42,000,000
    for option in ("visible", "top"):
        assert identify(scale_client, base, layers=option, **click)["results"] == []
    assert [r["value"] for r in identify(scale_client, base, layers="all",
                                         **click)["results"]] == ["Rio de Janeiro"]
    zoomed = identify(scale_client, base, layers="visible", mapExtent="-44,-23.5,-42.5,-22",
                      **click)
    assert [r["value"] for r in zoomed["results"]] == ["Rio de Janeiro"]


@pytest.mark.parametrize("params, details", [
    ({"geometry": None}, ["'geometry' parameter is required"]),
    ({"geometry": "{x: -52"}, ["'geometry' parameter is invalid"]),
    ({"mapExtent": None}, ["'mapExtent' parameter is required"]),
    ({"imageDisplay": "500"}, ["'imageDisplay' must be <width>,<height>,<dpi>"]),
    ({"tolerance": None}, ["'tolerance' parameter is required"]),
    ({"layers": "some"}, ["'layers' must be top, visible or all, optionally followed by "
                          ":<layer ids>"]),
    ({"layers": "all:7"}, ["The requested layer (layerId: 7) was not found."]),
    ({"layerDefs": "1:nosuch = 1"}, ["'layerDefs' parameter is invalid",
                                     "Unknown field 'nosuch' in where clause"]),
])
def test_invalid_parameters_give_exact_error_bodies(client, params, details):
    query = {**VIEW, "geometry": "-52,-10", "tolerance": "2", "layers": "all", **params}
    query = {k: v for k, v in query.items() if v is not None}
    resp = client.get(WORLD + "/identify", query_string=query)
    message = ("Invalid where clause" if params.get("layerDefs")
               else "Invalid or missing input parameters.")
    assert resp.get_json() == {"error": {"code": 400, "message": message, "details": details}}
