"""Query items of issue 12: having, EXTRACT, COALESCE, percentile statistics, returnZ/returnM,
case-insensitive text. Expected answers computed here with numpy from the GeoPackages."""

from __future__ import annotations

import json

import numpy as np
import pyogrio.raw
import shapely

from mapserver.features.geometry_out import to_esri
from mapserver.settings import PROJECT_ROOT

WORLD = "/arcgis/rest/services/World/MapServer"
GAP = "/arcgis/rest/services/Gapminder/MapServer"


def _cols(path: str) -> dict[str, np.ndarray]:
    meta, _f, _w, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / path))
    return {n: np.asarray(a) for n, a in zip(meta["fields"], data, strict=True)}


C = _cols("world/countries.gpkg")
G = _cols("gapminder/countries_gapminder.gpkg")


def q(client, path, **params):
    params.setdefault("f", "json")
    return client.get(path, query_string=params).get_json()


def stats(client, path, stats_, **params):
    return q(client, path, outStatistics=json.dumps(stats_), **params)


def test_having_keeps_the_groups_whose_aggregates_match(client):
    body = stats(client, WORLD + "/1/query",
                 [{"statisticType": "count", "onStatisticField": "name", "outStatisticFieldName":
                   "n"}], groupByFieldsForStatistics="continent",
                 having="COUNT(name) > 20 AND SUM(pop_est) > 1000000000",
                 orderByFields="continent")
    expected = []
    for cont in sorted(set(C["continent"])):
        m = C["continent"] == cont
        if m.sum() > 20 and C["pop_est"][m].sum() > 1e9:
            expected.append({"attributes": {"continent": cont, "n": int(m.sum())}})
    assert body["features"] == expected
    assert [f["attributes"]["continent"] for f in expected] == ["Africa", "Asia"]
    # a bare field must be grouped; unknown aggregate fields are refused
    bad = stats(client, WORLD + "/1/query", [{"statisticType": "count",
                                              "onStatisticField": "name"}],
                groupByFieldsForStatistics="continent", having="name = 'x'")
    assert bad["error"]["code"] == 400
    assert "'having' parameter is invalid" in bad["error"]["details"]
    assert q(client, WORLD + "/1/query", where="1=1", having="COUNT(name) > 1"
             )["error"]["code"] == 400


def test_extract_year_from_a_date(client):
    years = G["date"].astype("datetime64[Y]").astype(int) + 1970
    body = q(client, GAP + "/0/query", where="EXTRACT(YEAR FROM date) = 2007 AND "
             "continent = 'Oceania'", outFields="name,year", returnGeometry="false",
             orderByFields="name")
    m = (years == 2007) & (G["continent"] == "Oceania")
    assert body["features"] == [{"attributes": {"name": n, "year": 2007}}
                                for n in sorted(G["name"][m])]
    count = q(client, GAP + "/0/query", where="EXTRACT(MONTH FROM date) = 1 AND "
              "EXTRACT(DAY FROM date) = 1", returnCountOnly="true")
    assert count == {"count": len(G["date"])}


def test_coalesce(client):
    body = q(client, WORLD + "/1/query", where="COALESCE(iso_a3, 'none') = 'FRA'",
             outFields="name", returnGeometry="false")
    assert body["features"] == [{"attributes": {"name": "France"}}]
    n = q(client, WORLD + "/1/query", where="COALESCE(gdp_md_est, 0) >= 0",
          returnCountOnly="true")
    assert n == {"count": int((np.nan_to_num(C["gdp_md_est"]) >= 0).sum())}


def test_percentile_statistics(client):
    body = stats(client, WORLD + "/1/query", [
        {"statisticType": "percentile_cont", "onStatisticField": "pop_est",
         "outStatisticFieldName": "median", "statisticParameters": {"value": 0.5}},
        {"statisticType": "percentile_disc", "onStatisticField": "pop_est",
         "outStatisticFieldName": "p90", "statisticParameters": {"value": 0.9}},
        {"statisticType": "percentile_disc", "onStatisticField": "pop_est",
         "outStatisticFieldName": "p90desc",
         "statisticParameters": {"value": 0.9, "orderBy": "DESC"}}],
        where="continent = 'Europe'")
    v = np.sort(C["pop_est"][C["continent"] == "Europe"])
    n = len(v)
    k = int(np.ceil(0.9 * n)) - 1
    assert body["features"] == [{"attributes": {
        "median": float(np.percentile(v, 50)), "p90": float(v[k]),
        "p90desc": float(v[::-1][k])}}]
    assert body["fields"][0] == {"name": "median", "type": "esriFieldTypeDouble",
                                 "alias": "median"}
    bad = stats(client, WORLD + "/1/query", [{"statisticType": "percentile_cont",
                                              "onStatisticField": "pop_est"}])
    assert bad["error"]["code"] == 400


def test_text_is_case_insensitive(client):
    body = q(client, WORLD + "/1/query", text="uniTED", outFields="name",
             returnGeometry="false", orderByFields="name")
    names = sorted(n for n in C["name"] if "united" in n.lower())
    assert [f["attributes"]["name"] for f in body["features"]] == names
    assert len(names) >= 3


def test_return_z_and_m(client):
    plain = q(client, WORLD + "/0/query", where="name = 'Paris'", outFields="name")
    withz = q(client, WORLD + "/0/query", where="name = 'Paris'", outFields="name",
              returnZ="true", returnM="true")
    assert withz == plain and "hasZ" not in withz  # the sample layers are 2D
    assert q(client, WORLD + "/0/query", where="1=1", returnZ="maybe")["error"]["code"] == 400
    # a 3D geometry keeps its z with returnZ
    assert to_esri(shapely.Point(1, 2, 3), z=True) == {"x": 1.0, "y": 2.0, "z": 3.0}
    assert to_esri(shapely.LineString([(0, 0, 1), (1, 1, 2)]), z=True) == {
        "paths": [[[0.0, 0.0, 1.0], [1.0, 1.0, 2.0]]]}
    assert to_esri(shapely.Point(1, 2, 3)) == {"x": 1.0, "y": 2.0}


DYN = {"id": 7, "source": {"type": "mapLayer", "mapLayerId": 1},
       "definitionExpression": "continent = 'Oceania'"}


def test_dynamic_layer_query_goes_through_the_planner(client):
    body = q(client, WORLD + "/dynamicLayer/query", layer=json.dumps(DYN), where="1=1",
             outFields="name", returnGeometry="false", orderByFields="name")
    names = sorted(C["name"][C["continent"] == "Oceania"])
    assert body["features"] == [{"attributes": {"name": n}} for n in names]
    n = q(client, WORLD + "/dynamicLayer/query", layer=json.dumps(DYN),
          where="name LIKE 'A%'", returnCountOnly="true")
    assert n == {"count": sum(1 for x in names if x.startswith("A"))}
    bad = q(client, WORLD + "/dynamicLayer/query", where="1=1")
    assert bad["error"]["code"] == 400
    assert q(client, WORLD + "/dynamicLayer/other", layer=json.dumps(DYN))["error"][
        "message"] == "Invalid URL"


def test_layers_with_dynamic_layers(client):
    dyn = [DYN, {"id": 8, "source": {"type": "mapLayer", "mapLayerId": 0}}]
    body = q(client, WORLD + "/layers", dynamicLayers=json.dumps(dyn))
    assert [lyr["id"] for lyr in body["layers"]] == [7, 8]
    assert body["layers"][0]["definitionExpression"] == "continent = 'Oceania'"
    assert body["layers"][0]["geometryType"] == "esriGeometryPolygon"
    assert body["layers"][1]["geometryType"] == "esriGeometryPoint"
    assert [lyr["id"] for lyr in q(client, WORLD + "/layers")["layers"]] == [0, 1]


def test_feature_resource(client):
    i = list(C["iso_a3"]).index("FRA")
    body = q(client, WORLD + "/1/" + str(i + 1))
    feat = body["feature"]
    assert feat["attributes"] == {"OBJECTID": i + 1, "name": "France", "iso_a3": "FRA",
                                  "continent": "Europe", "pop_est": float(C["pop_est"][i]),
                                  "gdp_md_est": float(C["gdp_md_est"][i])}
    assert "rings" in feat["geometry"]
    missing = q(client, WORLD + "/1/100000")
    assert missing["error"]["code"] == 404
