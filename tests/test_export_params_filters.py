"""Export parameters that choose features: layerDefs (+ the service definition), time,
timeRelation, layerTimeOptions, and the declared-support parameters that must be refused.

World at bbox -180,-90,180,90 and size 360x180 is one pixel per degree: pixel (col, row) is
(lon + 180, 90 - lat). Brazil's interior is at (-50, -10), Australia's at (134, -25).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
GAP = "/arcgis/rest/services/Gapminder/MapServer/export"
BASE = {"bbox": "-180,-90,180,90", "size": "360,180", "f": "image", "format": "png32",
        "transparent": "true"}
BRAZIL = (100, 130)  # (row, col)
AUSTRALIA = (115, 314)
Y1947, Y1952, Y1957, Y1960 = -725846400000, -568080000000, -410227200000, -315619200000
Y2002, Y2007, Y2012 = 1009843200000, 1167609600000, 1325376000000
ORANGE, GREEN = [252, 174, 97, 255], [26, 152, 80, 255]  # Gapminder 50-65 and 65+ classes


def image(client, url: str, **params) -> np.ndarray:
    r = client.get(url, query_string={**BASE, **params})
    assert r.mimetype == "image/png", r.data[:300]
    return decode(r.data)


def error(client, url: str, **params) -> dict:
    r = client.get(url, query_string={**BASE, "f": "json", **params})
    assert r.status_code == 200
    return r.get_json()


def test_layer_defs_json_filters_out_a_country(client):
    img = image(client, WORLD, layers="show:1", layerDefs=json.dumps({"1": "name <> 'Brazil'"}))
    assert img[BRAZIL][3] == 0
    assert img[AUSTRALIA][3] == 255


def test_layer_defs_legacy_form_keeps_only_matching_country(client):
    img = image(client, WORLD, layers="show:1", layerDefs="1:name = 'Brazil'")
    assert list(img[BRAZIL]) == [240, 59, 32, 255]  # 100-500 million class
    assert img[AUSTRALIA][3] == 0


def test_layer_defs_unknown_field_is_an_arcgis_error(client):
    body = error(client, WORLD, layerDefs=json.dumps({"1": "nme = 1"}))
    assert body == {"error": {"code": 400, "message": "Invalid or missing input parameters.",
                              "details": ["'layerDefs' parameter is invalid",
                                          "Unknown field 'nme' in where clause"]}}


def test_layer_defs_unknown_layer_is_an_arcgis_error(client):
    body = error(client, WORLD, layerDefs="7:name = 'x'")
    assert body["error"]["details"] == [
        "'layerDefs': the requested layer (layerId: 7) was not found."]


@pytest.mark.parametrize(("when", "color"), [(Y1952, ORANGE), (Y2007, GREEN)])
def test_time_instant_draws_that_year(client, when, color):
    img = image(client, GAP, time=str(when))
    assert list(img[BRAZIL]) == color


def test_time_open_start_draws_all_years_up_to_end(client):
    img = image(client, GAP, time=f"null,{Y1947}")
    assert img[BRAZIL][3] == 0
    img = image(client, GAP, time=f"null,{Y1952}")
    assert list(img[BRAZIL]) == ORANGE


@pytest.mark.parametrize(("window", "relation", "drawn"), [
    ((Y1947, Y1952), "esriTimeRelationOverlaps", True),
    ((Y1947, Y1952), "esriTimeRelationOverlapsStartWithinEnd", False),  # end excluded
    ((Y2007, Y2012), "esriTimeRelationOverlaps", True),
    ((Y2007, Y2012), "esriTimeRelationAfterStartOverlapsEnd", False),  # start excluded
    ((Y1947, Y1952), "esriTimeRelationWithin", False),
    ((Y1947, Y1952 + 1), "esriTimeRelationWithin", True),
])
def test_time_relation_ends(client, window, relation, drawn):
    img = image(client, GAP, time=f"{window[0]},{window[1]}", timeRelation=relation)
    assert bool(img[BRAZIL][3] == 255) is drawn


def test_time_relation_unknown_is_refused(client):
    body = error(client, GAP, time=str(Y1952), timeRelation="esriTimeRelationSometimes")
    assert body["error"]["code"] == 400
    assert body["error"]["details"][0].startswith("'timeRelation' must be one of")


def test_layer_time_options_use_time_false_ignores_time(client):
    img = image(client, GAP, time=str(Y1947),
                layerTimeOptions=json.dumps({"0": {"useTime": False}}))
    assert img[BRAZIL][3] == 255


def test_layer_time_options_offset_shows_an_earlier_year(client):
    img = image(client, GAP, time=str(Y2007), layerTimeOptions=json.dumps(
        {"0": {"useTime": True, "timeOffset": 55, "timeOffsetUnits": "esriTimeUnitsYears"}}))
    assert list(img[BRAZIL]) == ORANGE  # the 1952 value, moved to 2007


def test_layer_time_options_cumulative_draws_from_the_beginning(client):
    assert image(client, GAP, time=str(Y1960))[BRAZIL][3] == 0
    img = image(client, GAP, time=str(Y1960),
                layerTimeOptions=json.dumps({"0": {"timeDataCumulative": True}}))
    assert list(img[BRAZIL]) == ORANGE


def test_layer_time_options_bad_units_refused(client):
    body = error(client, GAP, time=str(Y1952), layerTimeOptions=json.dumps(
        {"0": {"timeOffset": 1, "timeOffsetUnits": "esriTimeUnitsFortnights"}}))
    assert body["error"]["details"][0].startswith(
        "'layerTimeOptions[0]' timeOffsetUnits must be one of")


@pytest.mark.parametrize("name", ["historicMoment", "gdbVersion", "layerParameterValues",
                                  "mapRangeValues", "layerRangeValues"])
def test_undeclared_parameters_are_refused_not_ignored(client, name):
    body = error(client, WORLD, **{name: "1"})
    assert body["error"]["code"] == 400
    assert body["error"]["message"] == f"'{name}' is not supported by this service."
    assert body["error"]["details"][1] == (f"Service 'World' declares nothing '{name}' could "
                                           "apply to.")


def test_emf_is_refused_by_name(client):
    body = error(client, WORLD, format="emf")
    assert body["error"]["message"] == "Output format not supported."
    assert "Enhanced Metafile" in body["error"]["details"][0]
