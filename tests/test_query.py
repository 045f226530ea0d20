"""Layer query on the sample data; expected answers computed independently (pyogrio, shapely,
numpy, pyproj), never by the server's own code."""

from __future__ import annotations

import json

import numpy as np
import pyogrio.raw
import pyproj
import pytest
import shapely

from mapserver.settings import PROJECT_ROOT

WORLD = "/arcgis/rest/services/World/MapServer"
GAP = "/arcgis/rest/services/Gapminder/MapServer"


def read(path: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Geometries and columns of a GeoPackage; OBJECTID is the 1-based row number."""
    meta, _fids, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data" / path))
    cols = {name: np.asarray(arr) for name, arr in zip(meta["fields"], data, strict=True)}
    cols["OBJECTID"] = np.arange(1, len(wkb) + 1)
    return shapely.from_wkb(wkb), cols


COUNTRIES = read("world/countries.gpkg")
CITIES = read("world/cities.gpkg")


def q(client, path: str, **params) -> dict:
    params.setdefault("f", "json")
    resp = client.get(path, query_string=params)
    assert resp.mimetype == "application/json"
    return resp.get_json()


def test_where_geometry_order_and_paging_return_the_expected_page(client):
    geoms, cols = COUNTRIES
    box = shapely.box(0, -10, 40, 10)
    ok = (cols["continent"] == "Africa") & shapely.intersects(geoms, box)
    order = sorted(np.flatnonzero(ok), key=lambda i: (-cols["pop_est"][i], cols["name"][i]))
    expected = [str(cols["name"][i]) for i in order][2:5]
    body = q(client, WORLD + "/1/query", where="continent = 'Africa'",
             geometry="0,-10,40,10", inSR="4326", outFields="name,pop_est",
             orderByFields="pop_est DESC, name ASC", resultOffset="2", resultRecordCount="3",
             returnGeometry="false")
    assert [f["attributes"]["name"] for f in body["features"]] == expected
    assert body["features"][0]["attributes"]["pop_est"] == float(cols["pop_est"][order[2]])
    assert body["exceededTransferLimit"] is True
    assert body["fields"] == [
        {"name": "name", "type": "esriFieldTypeString", "alias": "name",
         "length": max(len(n) for n in cols["name"]), "domain": None},
        {"name": "pop_est", "type": "esriFieldTypeDouble", "alias": "pop_est", "domain": None}]
    assert "geometryType" not in body and body["displayFieldName"] == "name"


def test_ids_count_and_extent_only(client):
    geoms, cols = COUNTRIES
    ids = cols["OBJECTID"][cols["continent"] == "Africa"].tolist()
    where = "continent = 'Africa'"
    assert q(client, WORLD + "/1/query", where=where, returnIdsOnly="true") == {
        "objectIdFieldName": "OBJECTID", "objectIds": ids}
    assert q(client, WORLD + "/1/query", where=where, returnCountOnly="true") == {
        "count": len(ids)}
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms[np.asarray(ids) - 1])
    ext = q(client, WORLD + "/1/query", where=where, returnExtentOnly="true")["extent"]
    assert ext.pop("spatialReference") == {"wkid": 4326, "latestWkid": 4326}
    assert ext == pytest.approx({"xmin": xmin, "ymin": ymin, "xmax": xmax, "ymax": ymax})


def test_statistics_grouped_by_continent_match_numpy(client):
    _geoms, cols = COUNTRIES
    stats = [{"statisticType": t, "onStatisticField": "pop_est", "outStatisticFieldName": t}
             for t in ("count", "sum", "min", "max", "avg", "stddev", "var")]
    body = q(client, WORLD + "/1/query", where="1=1", outStatistics=json.dumps(stats),
             groupByFieldsForStatistics="continent", orderByFields="continent ASC")
    continents = sorted(set(cols["continent"].tolist()))
    assert [f["attributes"]["continent"] for f in body["features"]] == continents
    for feat in body["features"]:
        a = feat["attributes"]
        v = cols["pop_est"][cols["continent"] == a["continent"]]
        assert a["count"] == len(v)
        assert a["sum"] == pytest.approx(v.sum())
        assert (a["min"], a["max"]) == (v.min(), v.max())
        assert a["avg"] == pytest.approx(v.mean())
        if len(v) > 1:
            assert a["stddev"] == pytest.approx(np.std(v, ddof=1))
            assert a["var"] == pytest.approx(np.var(v, ddof=1))
        else:
            assert a["stddev"] is None and a["var"] is None
    assert body["fields"][1] == {"name": "count", "type": "esriFieldTypeInteger",
                                 "alias": "count"}


QUERY_BOX = shapely.box(-60, -20, -40, 0)  # central/eastern South America


@pytest.mark.parametrize("rel, pred", [
    ("esriSpatialRelIntersects", lambda g: shapely.intersects(QUERY_BOX, g)),
    ("esriSpatialRelContains", lambda g: shapely.contains(QUERY_BOX, g)),
    ("esriSpatialRelWithin", lambda g: shapely.within(QUERY_BOX, g)),
    ("esriSpatialRelCrosses", lambda g: shapely.crosses(QUERY_BOX, g)),
    ("esriSpatialRelOverlaps", lambda g: shapely.overlaps(QUERY_BOX, g)),
    ("esriSpatialRelTouches", lambda g: shapely.touches(QUERY_BOX, g)),
    ("esriSpatialRelEnvelopeIntersects",
     lambda g: shapely.intersects(QUERY_BOX, shapely.envelope(g))),
    ("esriSpatialRelIndexIntersects",
     lambda g: shapely.intersects(QUERY_BOX, shapely.envelope(g))),
])
@pytest.mark.parametrize("layer", [0, 1])
def test_every_spatial_rel_matches_shapely(client, rel, pred, layer):
    geoms, cols = (CITIES, COUNTRIES)[layer]
    expected = cols["OBJECTID"][pred(geoms)].tolist()
    body = q(client, WORLD + f"/{layer}/query", geometry=json.dumps(
        {"xmin": -60, "ymin": -20, "xmax": -40, "ymax": 0, "spatialReference": {"wkid": 4326}}),
        spatialRel=rel, returnIdsOnly="true")
    assert body["objectIds"] == expected


def test_relation_with_de9im_param_and_point_within_country(client):
    geoms, cols = COUNTRIES
    brazil = int(cols["OBJECTID"][cols["name"] == "Brazil"][0])
    # the query point lies in the interior of exactly one country: Brazil
    body = q(client, WORLD + "/1/query", geometry="-52,-10", geometryType="esriGeometryPoint",
             spatialRel="esriSpatialRelRelation", relationParam="0FFFFF212",
             returnIdsOnly="true")
    assert body["objectIds"] == [brazil]
    body = q(client, WORLD + "/1/query", geometry="-52,-10", geometryType="esriGeometryPoint",
             spatialRel="esriSpatialRelWithin", returnIdsOnly="true")
    assert body["objectIds"] == [brazil]


def test_distance_in_kilometres_is_geodesic(client):
    geoms, cols = CITIES
    geod = pyproj.Geod(ellps="WGS84")
    x, y = shapely.get_x(geoms), shapely.get_y(geoms)
    _az, _baz, dist = geod.inv(np.full(len(x), -43.2), np.full(len(x), -22.9), x, y)
    assert not ((dist > 480_000) & (dist < 520_000)).any()  # no borderline city
    expected = cols["OBJECTID"][dist < 500_000].tolist()
    body = q(client, WORLD + "/0/query", geometry='{"x": -43.2, "y": -22.9}',
             geometryType="esriGeometryPoint", inSR="4326", distance="500",
             units="esriSRUnit_Kilometer", returnIdsOnly="true")
    assert body["objectIds"] == expected and len(expected) >= 2
    miles = q(client, WORLD + "/0/query", geometry="-43.2,-22.9",
              geometryType="esriGeometryPoint", distance=str(500_000 / 1609.344),
              units="esriSRUnit_StatuteMile", returnIdsOnly="true")
    assert miles["objectIds"] == expected


def test_out_sr_precision_and_geojson(client):
    geoms, cols = CITIES
    i = int(np.flatnonzero(cols["name"] == "Rio de Janeiro")[0])
    oid = i + 1
    x, y = pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(
        geoms[i].x, geoms[i].y)
    body = q(client, WORLD + "/0/query", objectIds=str(oid), outFields="*", outSR="102100",
             geometryPrecision="2")
    assert body["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    assert body["geometryType"] == "esriGeometryPoint"
    assert body["features"] == [{"attributes": {"OBJECTID": oid, "name": "Rio de Janeiro"},
                                 "geometry": {"x": round(x, 2), "y": round(y, 2)}}]
    gj = q(client, WORLD + "/0/query", objectIds=str(oid), outFields="name", f="geojson")
    assert gj == {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": oid, "geometry": {"type": "Point",
                                                    "coordinates": [geoms[i].x, geoms[i].y]},
         "properties": {"name": "Rio de Janeiro"}}]}


def test_polygon_rings_are_clockwise_and_generalised(client):
    body = q(client, WORLD + "/1/query", where="name = 'Brazil'", maxAllowableOffset="1")
    rings = body["features"][0]["geometry"]["rings"]
    shell = shapely.LinearRing(rings[0])
    assert not shell.is_ccw
    geoms, cols = COUNTRIES
    full = shapely.get_num_coordinates(geoms[cols["name"] == "Brazil"][0])
    assert 4 <= len(rings[0]) < full / 3


def test_time_text_distinct_and_max_record_count(client):
    # Gapminder: 1620 features, one per country and year; maxRecordCount is 1000
    body = q(client, GAP + "/0/query", where="1=1", outFields="OBJECTID",
             returnGeometry="false")
    assert len(body["features"]) == 1000 and body["exceededTransferLimit"] is True
    t1952 = -568_080_000_000  # 1952-01-01 in epoch ms
    body = q(client, GAP + "/0/query", text="Braz", time=str(t1952), outFields="name,year",
             returnGeometry="false")
    assert [f["attributes"] for f in body["features"]] == [{"name": "Brazil", "year": 1952}]
    assert "exceededTransferLimit" not in body
    _g, cols = COUNTRIES
    distinct = q(client, WORLD + "/1/query", where="1=1", outFields="continent",
                 returnDistinctValues="true", orderByFields="continent")
    assert [f["attributes"]["continent"] for f in distinct["features"]] == sorted(
        set(cols["continent"].tolist()))


def test_html_shows_the_json(client):
    resp = client.get(WORLD + "/1/query", query_string={
        "where": "name = 'Brazil'", "outFields": "name", "returnGeometry": "false"})
    assert resp.mimetype == "text/html"
    assert '<pre class="result">' in resp.text and '"name": "Brazil"' in resp.text
    assert 'name="where"' in resp.text  # the form keeps every parameter


@pytest.mark.parametrize("params, expected", [
    ({"where": "nosuchfield = 1"},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'where' parameter is invalid", "Unknown field 'nosuchfield' in where clause"]}),
    ({"geometry": "{x: 1"},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'geometry' parameter is invalid"]}),
    ({"geometry": "1,2", "spatialRel": "esriSpatialRelNear"},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'spatialRel' parameter is invalid"]}),
    ({"where": "1=1", "outFields": "name,nope"},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'outFields' parameter is invalid", "Field 'nope' does not exist"]}),
    ({"where": "1=1", "resultOffset": "-1"},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'resultOffset' parameter is invalid"]}),
    ({"where": "1=1", "outStatistics": '[{"statisticType":"median","onStatisticField":"x"}]'},
     {"code": 400, "message": "Cannot perform query. Invalid query parameters.",
      "details": ["'outStatistics' parameter is invalid"]}),
])
def test_invalid_parameters_give_exact_error_bodies(client, params, expected):
    assert q(client, WORLD + "/1/query", **params) == {"error": expected}


def test_raster_layer_query_is_an_error(client):
    body = q(client, "/arcgis/rest/services/Samples/Olinda/MapServer/0/query", where="1=1")
    assert body == {"error": {"code": 400, "message": "Query is not supported on raster layers.",
                              "details": ["Layer 0 (Landsat 7 (true colour)) is a raster layer"]}}
