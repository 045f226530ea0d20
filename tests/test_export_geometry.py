"""The view an export draws: the ArcGIS aspect rule, the scale formula, spatial references.

Expected numbers are written out from the formulas in the reference (section 3.2/3.3):
keep the bbox centre, square pixels, enlarge the short side; scale = resolution x metres per
unit x dpi x 39.37, with 111194.87428468118 m per degree for geographic references.
"""

from __future__ import annotations

import pytest
from pyproj import Transformer

WORLD = "/arcgis/rest/services/World/MapServer/export"
OLINDA = "/arcgis/rest/services/Samples/Olinda/MapServer/export"
HALF = 20037508.342789244
M_PER_DEG = 111194.87428468118


def export_json(client, url: str = WORLD, **params) -> dict:
    """The export JSON; World draws only its cities here (the view maths is what counts)."""
    if url == WORLD:
        params.setdefault("layers", "show:0")
    body = client.get(url, query_string={**params, "f": "json"}).get_json()
    assert "error" not in body, body
    return body


def extent(body: dict) -> tuple[float, float, float, float]:
    e = body["extent"]
    return e["xmin"], e["ymin"], e["xmax"], e["ymax"]


def test_web_mercator_level_0_scale_is_the_standard_lod_0_value(client):
    body = export_json(client, bbox=f"{-HALF},{-HALF},{HALF},{HALF}", bboxSR=3857,
                       imageSR=3857, size="256,256", dpi=96)
    assert body["scale"] == pytest.approx(591657527.591555, rel=1e-6)
    assert extent(body) == pytest.approx((-HALF, -HALF, HALF, HALF), rel=1e-12)
    assert body["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}


def test_web_mercator_level_3_halves_three_times(client):
    q = HALF / 8
    body = export_json(client, bbox=f"{-q},{-q},{q},{q}", bboxSR=102100, imageSR=102100,
                       size="256,256")
    assert body["scale"] == pytest.approx(591657527.591555 / 8, rel=1e-6)


def test_geographic_scale_uses_111194_87_metres_per_degree(client):
    body = export_json(client, bbox="-180,-90,180,90", bboxSR=4326, size="512,256", dpi=96)
    res = 360 / 512
    assert body["scale"] == pytest.approx(res * M_PER_DEG * 96 * 39.37, rel=1e-9)
    assert body["scale"] == pytest.approx(295497593.05875, rel=1e-6)  # Esri WGS84 level 0
    assert body["extent"]["spatialReference"] == {"wkid": 4326, "latestWkid": 4326}


def test_scale_is_proportional_to_dpi_for_the_same_pixels(client):
    a = export_json(client, bbox="-10,-10,10,10", size="200,200", dpi=96)
    b = export_json(client, bbox="-10,-10,10,10", size="200,200", dpi=300)
    assert b["scale"] / a["scale"] == pytest.approx(300 / 96, rel=1e-12)


def test_projected_scale_uses_the_linear_unit(client):
    body = export_json(client, OLINDA, bbox="290000,9112000,296000,9118000", size="600,600")
    assert body["scale"] == pytest.approx(10.0 * 1.0 * 96 * 39.37, rel=1e-9)
    assert body["extent"]["spatialReference"] == {"wkid": 31985, "latestWkid": 31985}


def test_wide_bbox_in_square_image_enlarges_height_about_the_centre(client):
    body = export_json(client, bbox="-10,0,10,10", size="400,400")
    # res = max(20/400, 10/400) = 0.05; height 400 px * 0.05 = 20 around y = 5
    assert extent(body) == pytest.approx((-10, -5, 10, 15), abs=1e-9)
    assert (body["width"], body["height"]) == (400, 400)


def test_tall_bbox_in_wide_image_enlarges_width_about_the_centre(client):
    body = export_json(client, bbox="0,0,10,20", size="400,200")
    # res = max(10/400, 20/200) = 0.1; width 400 px * 0.1 = 40 around x = 5
    assert extent(body) == pytest.approx((-15, 0, 25, 20), abs=1e-9)
    assert body["scale"] == pytest.approx(0.1 * M_PER_DEG * 96 * 39.37, rel=1e-9)


def test_matching_aspect_keeps_the_bbox_exactly(client):
    body = export_json(client, bbox="-30.5,-20.25,29.5,24.75", size="800,600")
    assert extent(body) == pytest.approx((-30.5, -20.25, 29.5, 24.75), abs=1e-9)


def test_swapped_bbox_corners_are_normalised(client):
    body = export_json(client, bbox="10,10,-10,-10", size="100,100")
    assert extent(body) == pytest.approx((-10, -10, 10, 10), abs=1e-9)


def test_bbox_in_geographic_with_image_in_web_mercator_projects_the_bbox(client):
    body = export_json(client, bbox="-20,-10,20,30", bboxSR=4326, imageSR=3857,
                       size="400,400")
    t = Transformer.from_crs(4326, 3857, always_xy=True)
    x0, y0 = t.transform(-20, -10)
    x1, y1 = t.transform(20, 30)
    res = max((x1 - x0) / 400, (y1 - y0) / 400)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert extent(body) == pytest.approx((cx - 200 * res, cy - 200 * res, cx + 200 * res,
                                          cy + 200 * res), rel=1e-6)
    assert body["scale"] == pytest.approx(res * 96 * 39.37, rel=1e-6)


def test_bbox_without_bboxsr_is_in_the_map_sr_even_with_imagesr(client):
    with_sr = export_json(client, bbox="-20,-10,20,30", bboxSR=4326, imageSR=3857,
                          size="400,400")
    without = export_json(client, bbox="-20,-10,20,30", imageSR=3857, size="400,400")
    assert extent(without) == pytest.approx(extent(with_sr), rel=1e-9)


@pytest.mark.parametrize("sr", ["102100", "102113", "900913", "3857", '{"wkid":102100}',
                                '{"wkid":102100,"latestWkid":3857}', '{"latestWkid":3857}',
                                "EPSG:3857"])
def test_web_mercator_aliases_are_reported_as_102100_3857(client, sr):
    body = export_json(client, bbox=f"{-HALF},{-HALF},{HALF},{HALF}", bboxSR=sr, imageSR=sr,
                       size="256,256")
    assert body["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    assert body["scale"] == pytest.approx(591657527.591555, rel=1e-6)


def test_imagesr_as_wkt_json_is_accepted(client):
    wkt = Transformer.from_crs(4326, 32633).target_crs.to_wkt()
    body = export_json(client, bbox="10,40,20,50", bboxSR=4326,
                       imageSR='{"wkt":' + __import__("json").dumps(wkt) + "}", size="300,300")
    assert body["extent"]["spatialReference"]["wkid"] == 32633
    xmin, ymin, xmax, ymax = extent(body)
    assert xmin < 500000 < xmax  # UTM 33N: false easting 500 km on 15 E, the bbox centre
    assert (xmin + xmax) / 2 == pytest.approx(500000, abs=5000)
    assert 4.4e6 < ymin < ymax < 5.6e6


def test_map_scale_centres_on_the_bbox_centre(client):
    body = export_json(client, bbox="0,0,20,10", size="400,300", mapScale=5e6)
    res = 5e6 / (96 * 39.37 * M_PER_DEG)
    assert extent(body) == pytest.approx((10 - 200 * res, 5 - 150 * res, 10 + 200 * res,
                                          5 + 150 * res), rel=1e-9)
    assert body["scale"] == pytest.approx(5e6, rel=1e-9)


def test_default_size_is_400_by_400(client):
    body = export_json(client, bbox="-10,-10,10,10")
    assert (body["width"], body["height"]) == (400, 400)
