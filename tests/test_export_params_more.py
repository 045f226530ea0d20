"""Export parameters that act on what a service declares (Samples/Demo, data/build_demo.py):
mapRangeValues/layerRangeValues (layer 1 rangeInfos on elevation), layerParameterValues
(layer 1 parameterInfos), historicMoment (layer 2 archiving), gdbVersion (versions) and a raster
time series (layer 3). datumTransformations (layer 4, a square in NAD27) is tested in
tests/test_datum_transformations.py.

Sites at bbox 0,0,50,10 and size 500x100 are 10 px per degree: site i (A, B, C, D; version
sde.USER1 adds E) is the square lon 10i+2..10i+8, lat 2..8, centred on pixel (row 50,
col 100i+50). A: school, 1 floor, 100 m, valid 2000-; B: hospital, 3, 500 m, 2000-2010;
C: park, 5, 1000 m, 2010-; D: school, 8, 1500 m, 2015-2020; E: hospital, 2, 700 m, 2005-.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import decode

DEMO = "/arcgis/rest/services/Samples/Demo/MapServer"
EXPORT = DEMO + "/export"
SITES = {"bbox": "0,0,50,10", "size": "500,100", "f": "image", "format": "png32",
         "transparent": "true"}
RED, BLUE = [220, 40, 40, 255], [40, 40, 220, 255]
Y2005, Y2017, Y2019 = 1104537600000, 1483228800000, 1546300800000
D2020, D2021, D2022 = 1577836800000, 1609459200000, 1640995200000


def image(client, layer: int, **params) -> np.ndarray:
    r = client.get(EXPORT, query_string={**SITES, "layers": f"show:{layer}", **params})
    assert r.mimetype == "image/png", r.data[:300]
    return decode(r.data)


def drawn(img: np.ndarray) -> str:
    """Which sites (A..E) are drawn: the letters whose centre pixel is opaque."""
    return "".join(letter for i, letter in enumerate("ABCDE") if img[50, 100 * i + 50][3])


def error(client, **params) -> dict:
    r = client.get(EXPORT, query_string={**SITES, "f": "json", **params})
    assert r.status_code == 200
    return r.get_json()


def bad(*details: str) -> dict:
    return {"error": {"code": 400, "message": "Invalid or missing input parameters.",
                      "details": list(details)}}


# ---- mapRangeValues / layerRangeValues ---------------------------------------------------

def test_without_range_values_every_site_is_drawn_in_its_colour(client):
    img = image(client, 1)
    assert drawn(img) == "ABCD"
    assert list(img[50, 50]) == RED


@pytest.mark.parametrize(("value", "sites"), [
    ([400, 1200], "BC"), (1000, "C"), ([None, 500], "AB"), ([1000, None], "CD"),
    ([None, None], "ABCD")])
def test_map_range_values_keep_sites_in_range(client, value, sites):
    img = image(client, 1, mapRangeValues=json.dumps([{"name": "elevation", "value": value}]))
    assert drawn(img) == sites


def test_layer_range_values_override_map_range_values(client):
    img = image(client, 1, mapRangeValues=json.dumps([{"name": "elevation", "value": 100}]),
                layerRangeValues=json.dumps({"1": [{"name": "Elevation",
                                                    "value": [1200, 2000]}]}))
    assert drawn(img) == "D"


def test_unknown_range_name_is_an_arcgis_error(client):
    body = error(client, mapRangeValues=json.dumps([{"name": "salinity", "value": 5}]))
    assert body == bad("'mapRangeValues' no layer has a range named 'salinity'")


def test_range_values_on_a_layer_without_ranges_are_refused(client):
    body = error(client, layerRangeValues=json.dumps({"0": [{"name": "elevation",
                                                             "value": 1}]}))
    assert body == bad("'layerRangeValues' layer 0 has no range named 'elevation'")


def test_range_value_must_be_numbers(client):
    body = error(client, mapRangeValues=json.dumps([{"name": "elevation", "value": "1; x"}]))
    assert body == bad("'mapRangeValues' values must be a number or [min, max] (null: no "
                       "limit)")


# ---- layerParameterValues ------------------------------------------------------------------

@pytest.mark.parametrize(("values", "sites"), [
    ({"minFloors": 4}, "CD"), ({"kinds": ["school"]}, "AD"),
    ({"minFloors": 2, "kinds": ["school", "hospital"]}, "BD")])
def test_parameter_values_fill_the_declared_filter(client, values, sites):
    img = image(client, 1, layerParameterValues=json.dumps([{"1": values}]))
    assert drawn(img) == sites


def test_a_quote_in_a_string_parameter_stays_a_literal(client):
    img = image(client, 1, layerParameterValues=json.dumps(
        {"1": {"kinds": ["x') OR 1=1 OR kind IN ('park"]}}))
    assert drawn(img) == ""


def test_parameter_value_of_the_wrong_type_is_an_arcgis_error(client):
    body = error(client, layerParameterValues=json.dumps({"1": {"minFloors": "4 OR 1=1"}}))
    assert body == bad("'layerParameterValues' layer 1: 'minFloors' must be a number")


def test_multiple_value_parameter_needs_a_list(client):
    body = error(client, layerParameterValues=json.dumps({"1": {"kinds": "school"}}))
    assert body == bad("'layerParameterValues' layer 1: 'kinds' takes a list of 1 to 100 "
                       "values")


def test_unknown_parameter_is_an_arcgis_error(client):
    body = error(client, layerParameterValues=json.dumps({"1": {"floor": 1}}))
    assert body == bad("'layerParameterValues' layer 1 has no parameter 'floor'; it has "
                       "minFloors, kinds")


# ---- historicMoment ------------------------------------------------------------------------

@pytest.mark.parametrize(("moment", "sites"), [(None, "AC"), (Y2005, "AB"), (Y2017, "ACD")])
def test_historic_moment_draws_the_sites_valid_then(client, moment, sites):
    params = {} if moment is None else {"historicMoment": str(moment)}
    img = image(client, 2, **params)
    assert drawn(img) == sites
    assert list(img[50, 50]) == BLUE


def test_bad_historic_moment_is_an_arcgis_error(client):
    body = error(client, historicMoment="yesterday")
    assert body == bad("'historicMoment' must be a time in epoch milliseconds")


# ---- gdbVersion ----------------------------------------------------------------------------

@pytest.mark.parametrize(("version", "sites"), [
    (None, "ABCD"), ("sde.DEFAULT", "ABCD"), ("sde.USER1", "ABCDE"), ("SDE.user1", "ABCDE")])
def test_gdb_version_reads_the_layer_from_that_version(client, version, sites):
    params = {} if version is None else {"gdbVersion": version}
    assert drawn(image(client, 1, **params)) == sites


def test_unknown_gdb_version_is_an_arcgis_error(client):
    body = error(client, gdbVersion="sde.USER2")
    assert body == bad("'gdbVersion' names unknown version 'sde.USER2'; this service has "
                       "sde.DEFAULT, sde.USER1")


def test_undeclared_parameter_is_still_refused_on_a_service_without_it(client):
    body = client.get("/arcgis/rest/services/World/MapServer/export",
                      query_string={**SITES, "f": "json", "gdbVersion": "sde.USER1"}).get_json()
    assert body["error"]["message"] == "'gdbVersion' is not supported by this service."


# ---- raster time series --------------------------------------------------------------------

OLINDA = {"bbox": "288776,9110771,298765,9120760", "bboxSR": "31985", "imageSR": "31985",
          "size": "20,20", "layers": "show:3"}


def series_pixel(client, **params) -> list[int]:
    r = client.get(EXPORT, query_string={**SITES, **OLINDA, **params})
    assert r.mimetype == "image/png", r.data[:300]
    return list(decode(r.data)[10, 10])


def test_time_series_draws_the_raster_of_the_requested_date(client):
    c2020, c2021, c2022 = (series_pixel(client, time=str(t)) for t in (D2020, D2021, D2022))
    assert c2020[3] == c2021[3] == c2022[3] == 255
    # values 10, 20, 30 on a blue-to-red ramp over 0..40: redder every year
    assert c2020[0] < c2021[0] < c2022[0]
    assert c2020[2] > c2021[2] > c2022[2]
    assert series_pixel(client) == c2022  # no time: the latest raster
    # a window holding 2020 and 2021: the latest inside it
    assert series_pixel(client, time=f"{D2020},{D2021 + 1}") == c2021
    assert series_pixel(client, time=f"null,{D2020}") == c2020
    # layerTimeOptions apply: one year back in time shows 2021 at 2022
    assert series_pixel(client, time=str(D2022), layerTimeOptions=json.dumps(
        {"3": {"timeOffset": 1, "timeOffsetUnits": "esriTimeUnitsYears"}})) == c2021


def test_time_series_draws_nothing_outside_its_dates(client):
    assert series_pixel(client, time=str(Y2019))[3] == 0
    assert series_pixel(client, time=f"{D2020},{D2021}",
                        timeRelation="esriTimeRelationWithin")[3] == 0


# ---- metadata ------------------------------------------------------------------------------

def test_declarations_are_advertised(client):
    root = client.get(DEMO, query_string={"f": "json"}).get_json()
    assert root["hasVersionedData"] is True
    assert root["versions"] == ["sde.DEFAULT", "sde.USER1"]
    assert root["timeInfo"]["timeExtent"] == [D2020, D2022]
    sites = client.get(DEMO + "/1", query_string={"f": "json"}).get_json()
    assert sites["rangeInfos"] == [{"name": "elevation", "type": "rangeInfo",
                                    "currentRangeExtent": [100.0, 1500.0],
                                    "fullRangeExtent": [100.0, 1500.0]}]
    assert [p["name"] for p in sites["parameterInfos"]] == ["minFloors", "kinds"]
    assert sites["parameterInfos"][1]["multipleValues"] is True
    assert sites["isDataVersioned"] is True
    archive = client.get(DEMO + "/2", query_string={"f": "json"}).get_json()
    assert archive["supportsQueryWithHistoricMoment"] is True
    assert archive["archivingInfo"] == {"supportsQueryWithHistoricMoment": True,
                                        "startArchivingMoment": 946684800000}
    series = client.get(DEMO + "/3", query_string={"f": "json"}).get_json()
    assert series["timeInfo"]["timeExtent"] == [D2020, D2022]
