"""Issue 12, parameters: ``bbSR`` (the Export Map document's spelling) as an alias of
``bboxSR``; the document's ``layerRangeValues`` form ``[{"<layerId>": {"<range>": value}}]``;
``mapRangeValues`` naming ranges that only some layers have applies per layer.

Sites (data/demo/sites.geojson) at bbox 0,0,50,10 and size 500x100: site i (A, B, C, D) is
centred on pixel (row 50, col 100i+50); elevations 100, 500, 1000, 1500 m; floors 1, 3, 5, 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
DEMO = "/arcgis/rest/services/Samples/Demo/MapServer/export"
SITES = {"bbox": "0,0,50,10", "size": "500,100", "f": "image", "format": "png32",
         "transparent": "true"}


def drawn(img) -> str:
    return "".join(letter for i, letter in enumerate("ABCD") if img[50, 100 * i + 50][3])


# ---- bbSR ----------------------------------------------------------------------------------

MERC = {"bbox": "-20037508.342789244,-7558415.656081782,20037508.342789244,7558415.656081782",
        "size": "400,200", "f": "json"}


def extent(client, **params) -> dict:
    body = client.get(WORLD, query_string={**MERC, **params}).get_json()
    assert "extent" in body, body
    return {k: round(v, 6) for k, v in body["extent"].items() if k != "spatialReference"}


def test_bbsr_reads_the_bbox_in_that_sr(client):
    # the Web Mercator box is the world between about -56 and 56 degrees, not metres as degrees
    e = extent(client, bbSR="3857")
    assert e == extent(client, bboxSR="3857")
    assert -180.5 < e["xmin"] < -179.5 and 179.5 < e["xmax"] < 180.5
    assert extent(client)["xmax"] > 1e7  # without it the box is read in the map's degrees


def test_bbsr_as_json_object(client):
    assert extent(client, bbSR='{"wkid": 102100}') == extent(client, bboxSR="102100")


def test_bboxsr_wins_over_bbsr(client):
    body = client.get(WORLD, query_string={"bbox": "-100,-50,100,50", "size": "400,200",
                                           "f": "json", "bboxSR": "4326",
                                           "bbSR": "3857"}).get_json()
    assert round(body["extent"]["xmin"], 6) == -100.0


# ---- layerRangeValues in the document's form -------------------------------------------

def image(client, path=DEMO, layer="show:1", **params):
    r = client.get(path, query_string={**SITES, "layers": layer, **params})
    assert r.mimetype == "image/png", r.data[:300]
    return decode(r.data)


@pytest.mark.parametrize(("value", "sites"), [
    ([400, 1200], "BC"), (1000, "C"), ([None, 500], "AB"), ([1000, None], "CD")])
def test_layer_range_values_document_form(client, value, sites):
    lrv = json.dumps([{"1": {"elevation": value}}])
    assert drawn(image(client, layerRangeValues=lrv)) == sites


def test_layer_range_values_document_form_overrides_map_value(client):
    img = image(client, mapRangeValues=json.dumps([{"name": "elevation", "value": 100}]),
                layerRangeValues=json.dumps([{"1": {"Elevation": [1200, 2000]}}]))
    assert drawn(img) == "D"


def test_layer_range_values_document_form_unknown_range_is_refused(client):
    r = client.get(DEMO, query_string={**SITES, "f": "json",
                                       "layerRangeValues": json.dumps([{"1": {"depth": 3}}])})
    assert r.get_json() == {"error": {"code": 400,
                                      "message": "Invalid or missing input parameters.",
                                      "details": ["'layerRangeValues' layer 1 has no range "
                                                  "named 'depth'"]}}


def test_layer_range_values_bad_shape_is_refused(client):
    r = client.get(DEMO, query_string={**SITES, "f": "json",
                                       "layerRangeValues": json.dumps([{"name": "x"}])})
    assert r.get_json()["error"]["details"] == [
        "'layerRangeValues' must be [{\"<layerId>\": {\"<range>\": <value> or [<min>, "
        "<max>]}}]"]


# ---- mapRangeValues per layer ------------------------------------------------------------

@pytest.fixture(scope="module")
def ranges_client(tmp_path_factory):
    """A service with two site layers: 0 has the range 'elevation', 2 the range 'floors'."""
    svc_dir = tmp_path_factory.mktemp("svc")
    demo = json.loads((PROJECT_ROOT / "services/Samples/Demo.json").read_text())
    base = next(lyr for lyr in demo["layers"] if lyr["id"] == 1)
    base = {k: v for k, v in base.items() if not k.startswith("parameter")}
    layers = [{**base, "id": 0, "name": "By elevation", "defaultVisibility": True,
               "rangeInfos": [{"name": "elevation", "field": "elevation"}]},
              {**base, "id": 2, "name": "By floors", "defaultVisibility": True,
               "rangeInfos": [{"name": "floors", "field": "floors"}]}]
    (svc_dir / "Ranges.json").write_text(json.dumps({"spatialReference": {"wkid": 4326},
                                                     "layers": layers}))
    app = create_app(Settings(service_dirs=(Path(svc_dir),), data_dir=PROJECT_ROOT / "data",
                              output_dir=tmp_path_factory.mktemp("out"),
                              tile_cache_dir=tmp_path_factory.mktemp("tiles")))
    return app.test_client()


RANGES = "/arcgis/rest/services/Ranges/MapServer/export"
BOTH = json.dumps([{"name": "elevation", "value": [0, 600]}, {"name": "floors",
                                                               "value": [4, 10]}])


@pytest.mark.parametrize(("layer", "sites"), [("show:0", "AB"), ("show:2", "CD"),
                                              ("show:0,2", "ABCD")])
def test_map_range_values_apply_to_the_layers_that_have_each_range(ranges_client, layer,
                                                                   sites):
    assert drawn(image(ranges_client, RANGES, layer, mapRangeValues=BOTH)) == sites


def test_map_range_values_only_a_name_no_layer_has_is_refused(ranges_client):
    r = ranges_client.get(RANGES, query_string={
        **SITES, "f": "json", "mapRangeValues": json.dumps(
            [{"name": "elevation", "value": 1}, {"name": "salinity", "value": 5}])})
    assert r.get_json() == {"error": {"code": 400,
                                      "message": "Invalid or missing input parameters.",
                                      "details": ["'mapRangeValues' no layer has a range "
                                                  "named 'salinity'"]}}
