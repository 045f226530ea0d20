"""Legend: one swatch per renderer class, drawn by the map's own symbol code, sized by
``size`` and ``dpi``; raster layers as RGB band entries or a High/Low ramp."""

from __future__ import annotations

import base64
import hashlib
import json

import numpy as np
import pytest

from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/legend"
OLINDA = "/arcgis/rest/services/Samples/Olinda/MapServer/legend"
COUNTRY_CLASSES = [("0 - 10 million", "10000000", (255, 255, 178)),
                   ("10 - 50 million", "50000000", (254, 204, 92)),
                   ("50 - 100 million", "100000000", (253, 141, 60)),
                   ("100 - 500 million", "500000000", (240, 59, 32)),
                   ("over 500 million", "2000000000", (189, 0, 38))]


def swatch(entry: dict) -> np.ndarray:
    data = base64.b64decode(entry["imageData"])
    assert entry["url"] == hashlib.md5(data).hexdigest()
    assert entry["contentType"] == "image/png"
    rgba = decode(data)
    assert rgba.shape == (entry["height"], entry["width"], 4)
    return rgba


def test_polygon_classes_are_20px_patches_in_the_class_colour_with_the_outline(client):
    doc = client.get(WORLD, query_string={"f": "json"}).get_json()
    assert [(lyr["layerId"], lyr["layerName"], lyr["layerType"]) for lyr in doc["layers"]] == \
        [(0, "Cities", "Feature Layer"), (1, "Countries", "Feature Layer")]
    countries = doc["layers"][1]
    assert (countries["minScale"], countries["maxScale"]) == (0, 0)
    entries = countries["legend"]
    assert [(e["label"], e["values"]) for e in entries] == \
        [(label, [value]) for label, value, _ in COUNTRY_CLASSES]
    for entry, (_, _, colour) in zip(entries, COUNTRY_CLASSES, strict=True):
        rgba = swatch(entry)
        assert (entry["width"], entry["height"]) == (20, 20)
        assert tuple(rgba[10, 10]) == (*colour, 255)
        assert rgba[0, 0, 3] == 0  # inset: the corner stays transparent
        edge = rgba[1, 10]  # the 0.5 pt grey (110) outline, antialiased over the fill
        grey = np.array([110, 110, 110])
        assert edge[3] > 0
        assert np.abs(edge[:3] - grey).sum() < np.abs(np.array(colour) - grey).sum() / 2


def test_a_marker_symbol_is_centred_with_its_white_outline(client):
    entry = client.get(WORLD, query_string={"f": "json"}).get_json()["layers"][0]["legend"][0]
    assert (entry["label"], entry["values"], entry["width"], entry["height"]) == \
        ("City", [], 20, 20)
    rgba = swatch(entry)
    assert tuple(rgba[10, 10]) == (200, 30, 30, 255)
    # 6 pt circle = 8 px across: inside at +-3 px, clear at +-6 px
    assert tuple(rgba[10, 13, :3]) != (200, 30, 30) or rgba[10, 13, 3] == 255
    assert rgba[10, 16, 3] == 0 and rgba[4, 10, 3] == 0
    ring = rgba[10, 14]  # the white outline
    assert ring[3] > 0 and ring[:3].min() > 200


def test_size_sets_the_patch_and_dpi_scales_image_and_symbol_together(client):
    small = client.get(WORLD, query_string={"f": "json", "size": "30,12"}).get_json()
    patch = small["layers"][1]["legend"][0]
    assert (patch["width"], patch["height"]) == (30, 12)
    assert tuple(swatch(patch)[6, 15]) == (255, 255, 178, 255)
    hi = client.get(WORLD, query_string={"f": "json", "dpi": "192"}).get_json()
    patch, marker = hi["layers"][1]["legend"][0], hi["layers"][0]["legend"][0]
    assert (patch["width"], patch["height"]) == (40, 40)
    assert (marker["width"], marker["height"]) == (40, 40)
    rgba = swatch(marker)
    # at 192 dpi the 6 pt marker is 16 px across (red to 7 px from the centre, then 2 px of
    # white outline). The centre of the 40 px swatch is x = y = 20.0, the corner between pixels
    # 19 and 20 (pixel c spans [c, c + 1)), so the disc is symmetric about it: pixels 14 and 25
    # (5 to 6 px either side) are red, pixels 7 and 32 (12 to 13 px out) are clear.
    assert tuple(rgba[20, 25]) == tuple(rgba[20, 14]) == (200, 30, 30, 255)
    assert tuple(rgba[25, 20]) == tuple(rgba[14, 20]) == (200, 30, 30, 255)
    assert rgba[20, 32, 3] == 0 and rgba[20, 7, 3] == 0


def test_a_marker_larger_than_the_patch_gets_a_larger_image(client):
    entry = client.get(WORLD, query_string={"f": "json", "size": "6,6"}).get_json()[
        "layers"][0]["legend"][0]
    assert (entry["width"], entry["height"]) == (11, 11)
    assert tuple(swatch(entry)[5, 5]) == (200, 30, 30, 255)


def test_raster_layers_list_rgb_bands_and_the_elevation_ramp(client):
    doc = client.get(OLINDA, query_string={"f": "json"}).get_json()
    landsat, dem = doc["layers"]
    assert (landsat["layerName"], landsat["layerType"]) == ("Landsat 7 (true colour)",
                                                            "Raster Layer")
    assert [e["label"] for e in landsat["legend"]] == ["Red: Band_3", "Green: Band_2",
                                                       "Blue: Band_1"]
    assert [tuple(swatch(e)[10, 10]) for e in landsat["legend"]] == \
        [(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)]
    assert [e["label"] for e in dem["legend"]] == ["High : 90", "Low : 0"]
    high, low = (swatch(e) for e in dem["legend"])
    # the layer's own ramp: 90 m is the last stop (158, 0, 0), 0 m the first (0, 97, 71)
    assert np.abs(high[0, 10, :3].astype(int) - (158, 0, 0)).max() <= 8
    assert np.abs(low[-1, 10, :3].astype(int) - (0, 97, 71)).max() <= 8


@pytest.mark.parametrize("query, detail", [
    ({"size": "a"}, "'size' needs 2 comma-separated numbers"),
    ({"size": "0,20"}, "'size' must be two integers from 1 to 512"),
    ({"dpi": "0"}, "'dpi' must be between 1 and 2400"),
    ({"size": "500,500", "dpi": "1000"}, "'size' x 'dpi' gives a swatch over 2048 pixels"),
])
def test_bad_size_or_dpi_is_an_arcgis_error(client, query, detail):
    resp = client.get(WORLD, query_string={"f": "json", **query})
    assert resp.status_code == 200
    assert resp.get_json() == {"error": {"code": 400,
                                         "message": "Invalid or missing input parameters.",
                                         "details": [detail]}}


def test_legend_html_and_pjson(client):
    page = client.get(WORLD).get_data(as_text=True)
    assert "<h3>Countries (1)</h3>" in page
    assert page.count('src="data:image/png;base64,') == 6
    assert "<td>over 500 million</td>" in page
    pretty = client.get(WORLD, query_string={"f": "pjson"}).get_data(as_text=True)
    assert pretty.startswith('{\n  "layers": [')


def test_legend_entry_url_serves_its_swatch(client):
    """Clients resolve ``url`` against ``…/MapServer/{layerId}/images/``."""
    body = client.get("/arcgis/rest/services/World/MapServer/legend?f=json").get_json()
    countries = next(lyr for lyr in body["layers"] if lyr["layerId"] == 1)
    entry = countries["legend"][0]
    resp = client.get(f"/arcgis/rest/services/World/MapServer/1/images/{entry['url']}")
    assert resp.mimetype == "image/png"
    assert base64.b64encode(resp.data).decode("ascii") == entry["imageData"]
    missing = client.get("/arcgis/rest/services/World/MapServer/1/images/nope?f=json")
    assert missing.get_json()["error"]["code"] == 404


def test_legend_follows_dynamic_layers(client):
    """dynamicLayers re-orders layers and swaps renderers in the legend as in export."""
    dyn = json.dumps([{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1},
                       "drawingInfo": {"renderer": {"type": "simple", "label": "All countries",
                                                    "symbol": {"type": "esriSFS",
                                                               "style": "esriSFSSolid",
                                                               "color": [0, 0, 255, 255]}}}}])
    body = client.get("/arcgis/rest/services/World/MapServer/legend",
                      query_string={"f": "json", "dynamicLayers": dyn}).get_json()
    assert [lyr["layerId"] for lyr in body["layers"]] == [1]
    (entry,) = body["layers"][0]["legend"]
    assert entry["label"] == "All countries"
    rgba = decode(base64.b64decode(entry["imageData"]))
    assert tuple(rgba[10, 10]) == (0, 0, 255, 255)
