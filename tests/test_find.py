"""Find on the World service; expected matches computed from the GeoPackages with pyogrio."""

from __future__ import annotations

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import shapely

from mapserver.settings import PROJECT_ROOT

WORLD = "/arcgis/rest/services/World/MapServer"


def read(path: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    meta, _f, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / path))
    return shapely.from_wkb(wkb), dict(zip(meta["fields"], data, strict=True))


def find(client, **params) -> dict:
    resp = client.get(WORLD + "/find", query_string={"f": "json", **params})
    assert resp.mimetype == "application/json"
    return resp.get_json()


def test_contains_is_case_insensitive_and_reports_the_field(client):
    expected = []
    for lid, path in ((0, "world/cities.gpkg"), (1, "world/countries.gpkg")):
        _g, cols = read(path)
        strings = [k for k, v in cols.items() if v.dtype == object]
        for i in range(len(cols["name"])):
            for k in strings:
                if cols[k][i] is not None and "bra" in cols[k][i].lower():
                    expected.append((lid, k, cols[k][i], cols["name"][i]))
    body = find(client, searchText="bra", layers="0,1", returnGeometry="false")
    got = [(r["layerId"], r["foundFieldName"], r["value"], r["attributes"]["name"])
           for r in body["results"]]
    assert got == expected
    assert (1, "iso_a3", "BRA", "Brazil") in got and (1, "name", "Brazil", "Brazil") in got
    brazil = next(r for r in body["results"] if r["value"] == "Brazil")
    assert brazil["layerName"] == "Countries" and brazil["displayFieldName"] == "name"
    assert "geometry" not in brazil


def test_exact_match_is_case_sensitive(client):
    body = find(client, searchText="Brazil", contains="false", layers="1",
                returnGeometry="false")
    assert [(r["foundFieldName"], r["value"]) for r in body["results"]] == [("name", "Brazil")]
    assert find(client, searchText="brazil", contains="false", layers="1")["results"] == []


def test_search_fields_layer_defs_and_output_sr(client):
    geoms, cols = read("world/cities.gpkg")
    i = int(np.flatnonzero(cols["name"] == "Paris")[0])
    x, y = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(
        geoms[i].x, geoms[i].y)
    body = find(client, searchText="Paris", searchFields="name", layers="0", sr="3857",
                geometryPrecision="3")
    [res] = body["results"]
    assert res["geometry"] == {"x": round(x, 3), "y": round(y, 3),
                               "spatialReference": {"wkid": 102100, "latestWkid": 3857}}
    assert res["attributes"] == {"OBJECTID": str(i + 1), "name": "Paris"}
    iso_only = find(client, searchText="bra", searchFields="iso_a3", layers="1",
                    returnGeometry="false")
    assert [r["value"] for r in iso_only["results"]] == ["BRA"]
    _g, countries = read("world/countries.gpkg")
    african = sorted(n for n, c in zip(countries["name"], countries["continent"], strict=True)
                     if c == "Africa" and "ia" in n.lower())
    filtered = find(client, searchText="ia", searchFields="name", layers="1",
                    layerDefs="1:continent = 'Africa'", returnGeometry="false")
    assert sorted(r["value"] for r in filtered["results"]) == african and len(african) > 3


@pytest.mark.parametrize("params, details", [
    ({"layers": "0"}, ["'searchText' parameter is required"]),
    ({"searchText": "x"}, ["'layers' parameter is required"]),
    ({"searchText": "x", "layers": "0,9"}, ["The requested layer (layerId: 9) was not found."]),
])
def test_invalid_parameters_give_exact_error_bodies(client, params, details):
    assert find(client, **params) == {"error": {"code": 400,
                                                "message": "Invalid or missing input parameters.",
                                                "details": details}}
