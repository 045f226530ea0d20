"""Export parameters that change the view or the drawing: rotation, mapScale, WKT SRs, the
antimeridian and poles, clipping, spatialFilter, selectionDefinitions, dynamicLayers, f=kmz."""

from __future__ import annotations

import io
import json
import re
import zipfile

import numpy as np
import pyproj

from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
OLINDA = "/arcgis/rest/services/Samples/Olinda/MapServer/export"
DEMO = "/arcgis/rest/services/Samples/Demo/MapServer/export"
BASE = {"bbox": "-180,-90,180,90", "size": "360,180", "f": "image", "format": "png32",
        "transparent": "true", "layers": "show:1"}
BRAZIL = (100, 130)  # (row, col) at 1 px per degree: (90 - lat, lon + 180)
AUSTRALIA = (115, 314)
RED_CLASS = [240, 59, 32, 255]  # World countries, 100-500 million


def image(client, url: str, **params) -> np.ndarray:
    r = client.get(url, query_string={**BASE, **params})
    assert r.mimetype == "image/png", r.data[:300]
    return decode(r.data)


def error(client, url: str, **params) -> dict:
    return client.get(url, query_string={**BASE, "f": "json", **params}).get_json()


# --- rotation ---------------------------------------------------------------------------------
def test_rotation_turns_vectors_counter_clockwise(client):
    view = {"bbox": "-100,-50,0,50", "size": "200,200"}
    north_up = image(client, WORLD, **view)
    turned = image(client, WORLD, **view, rotation="90")
    # Brazil (-50, -10) is 20 px below the centre; turned 90 deg CCW it is 20 px right of it
    assert list(north_up[120, 100]) == RED_CLASS and north_up[100, 120][3] == 0
    assert list(turned[100, 120]) == RED_CLASS
    assert (np.rot90(north_up) == turned).all(axis=2).mean() > 0.97  # only antialiasing differs


def test_rotation_turns_rasters_by_the_grid_affine(client):
    view = {"bbox": "289000,9110000,295000,9116000", "size": "200,200", "layers": ""}
    north_up = image(client, OLINDA, **view)
    turned = image(client, OLINDA, **view, rotation="90")
    assert (north_up[..., 3] > 0).mean() > 0.5
    assert (np.rot90(north_up) == turned).all(axis=2).mean() > 0.99


# --- mapScale, WKT spatial references -----------------------------------------------------------
def test_map_scale_is_centred_on_the_bbox(client):
    body = client.get(WORLD, query_string={**BASE, "f": "json", "bbox": "-60,-20,-40,0",
                                           "mapScale": "50000000"}).get_json()
    assert round(body["scale"]) == 50000000
    ext = body["extent"]
    assert abs((ext["xmin"] + ext["xmax"]) / 2 + 50) < 1e-9
    assert abs((ext["ymin"] + ext["ymax"]) / 2 + 10) < 1e-9


def test_bbox_and_image_sr_as_wkt_match_their_wkids(client):
    wkt4326 = pyproj.CRS.from_epsg(4326).to_wkt("WKT1_ESRI")
    wkt3857 = pyproj.CRS.from_epsg(3857).to_wkt("WKT1_ESRI")
    by_id = image(client, WORLD, bbox="-100,-50,0,50", size="200,200", bboxSR="4326",
                  imageSR="3857")
    by_wkt = image(client, WORLD, bbox="-100,-50,0,50", size="200,200",
                   bboxSR=json.dumps({"wkt": wkt4326}), imageSR=json.dumps({"wkt": wkt3857}))
    assert (by_id == by_wkt).all(axis=2).mean() > 0.999


# --- antimeridian and poles ---------------------------------------------------------------------
def test_view_across_the_antimeridian_draws_both_sides_in_4326(client):
    img = image(client, WORLD, bbox="160,55,200,75", size="200,100")
    assert list(img[45, 125]) == RED_CLASS  # Chukotka at 185 E (-175): drawn from -175
    assert list(img[45, 25]) == RED_CLASS  # Kamchatka at 165 E


def test_view_across_the_antimeridian_draws_both_sides_in_3857(client):
    img = image(client, WORLD, bbox="160,55,200,75", bboxSR="4326", imageSR="3857",
                size="200,100")
    body = client.get(WORLD, query_string={**BASE, "bbox": "160,55,200,75", "bboxSR": "4326",
                                           "imageSR": "3857", "size": "200,100",
                                           "f": "json"}).get_json()
    ext = body["extent"]
    assert ext["xmax"] > 20037508.35 > ext["xmin"] > 0  # not wrapped into a whole-world view
    # east of 180 (column 100 and on) Chukotka is drawn, from the data at -175
    assert (img[:, 150:190, 3] == 255).mean() > 0.3
    assert (img[:, 0:40, 3] == 255).mean() > 0.3


def test_views_reaching_the_poles(client):
    geo = image(client, WORLD, bbox="-180,60,180,90", size="360,30")
    assert (geo[..., 3] > 0).mean() > 0.2
    merc = image(client, WORLD, bbox="-180,-90,180,90", bboxSR="4326", imageSR="3857",
                 size="256,256")
    assert merc[-2, 128][3] == 255  # Antarctica reaches the bottom edge (85 S)


# --- clipping -----------------------------------------------------------------------------------
CLIP = {"geometryType": "esriGeometryEnvelope",
        "geometry": {"xmin": 100, "ymin": -50, "xmax": 160, "ymax": 0,
                     "spatialReference": {"wkid": 4326}}}


def test_clipping_masks_everything_outside(client):
    img = image(client, WORLD, clipping=json.dumps(CLIP))
    assert img[BRAZIL][3] == 0
    assert img[AUSTRALIA][3] == 255


def test_clipping_polygon_in_another_sr(client):
    t = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    ring = [list(t.transform(x, y)) for x, y in [(-80, -40), (-80, 10), (-30, 10), (-30, -40),
                                                 (-80, -40)]]
    clip = {"geometryType": "esriGeometryPolygon",
            "geometry": {"rings": [ring], "spatialReference": {"wkid": 102100}}}
    img = image(client, WORLD, clipping=json.dumps(clip))
    assert list(img[BRAZIL]) == RED_CLASS
    assert img[AUSTRALIA][3] == 0


def test_clipping_excluded_layers_are_not_clipped(client):
    img = image(client, WORLD, clipping=json.dumps({**CLIP, "excludedLayers": [1]}))
    assert img[BRAZIL][3] == 255


def test_clipping_with_a_point_is_refused(client):
    body = error(client, WORLD, clipping=json.dumps({"geometry": {"x": 1, "y": 2}}))
    assert body["error"]["details"] == ["'clipping' geometry must be a polygon or an envelope"]


# --- spatialFilter ------------------------------------------------------------------------------
def _filter(rel: str, geometry: dict, gtype: str, **extra) -> str:
    return json.dumps({"spatialRel": rel, "geometryType": gtype, "geometry": geometry, **extra})


def test_spatial_filter_intersects_envelope(client):
    f = _filter("esriSpatialRelIntersects", {"xmin": -55, "ymin": -15, "xmax": -45,
                                             "ymax": -5}, "esriGeometryEnvelope")
    img = image(client, WORLD, spatialFilter=f)
    assert list(img[BRAZIL]) == RED_CLASS and img[AUSTRALIA][3] == 0


def test_spatial_filter_within_point_keeps_the_country_holding_it(client):
    t = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
    x, y = t.transform(134, -25)
    f = _filter("esriSpatialRelWithin", {"x": x, "y": y, "spatialReference": {"wkid": 3857}},
                "esriGeometryPoint")
    img = image(client, WORLD, spatialFilter=f)
    assert img[AUSTRALIA][3] == 255 and img[BRAZIL][3] == 0


def test_spatial_filter_contains_polyline_and_relation(client):
    line = {"paths": [[[-60, -10], [-50, -12]]]}
    img = image(client, WORLD, spatialFilter=_filter("esriSpatialRelContains", line,
                                                     "esriGeometryPolyline"))
    assert img[BRAZIL][3] == 0  # a line contains no country
    img = image(client, WORLD, spatialFilter=_filter("esriSpatialRelRelation", line,
                                                     "esriGeometryPolyline",
                                                     relationParam="T********"))
    assert img[BRAZIL][3] == 255 and img[AUSTRALIA][3] == 0


def test_spatial_filter_envelope_intersects_multipoint(client):
    pts = {"points": [[134, -25], [-50, -10]]}
    img = image(client, WORLD, spatialFilter=_filter("esriSpatialRelEnvelopeIntersects", pts,
                                                     "esriGeometryMultipoint"))
    assert img[AUSTRALIA][3] == 255 and img[BRAZIL][3] == 255


def test_spatial_filter_bad_relation_is_refused(client):
    body = error(client, WORLD, spatialFilter=json.dumps(
        {"spatialRel": "esriSpatialRelNear", "geometry": {"x": 1, "y": 1}}))
    assert body["error"]["details"][0].startswith("'spatialFilter' spatialRel must be one of")


# --- selectionDefinitions -----------------------------------------------------------------------
def test_selection_fill_colour_and_default_outline(client):
    img = image(client, WORLD, selectionDefinitions=json.dumps(
        [{"layerId": 1, "objectIds": [30], "selectionFillColor": [0, 0, 255]}]))  # 30 = Brazil
    assert list(img[BRAZIL]) == [0, 0, 255, 255]
    assert list(img[AUSTRALIA]) != [0, 0, 255, 255]
    cyan = (img[..., 0] < 40) & (img[..., 1] > 200) & (img[..., 2] > 200)
    assert cyan[80:130, 100:150].sum() > 30  # Brazil's outline in the default selection colour


def test_selection_of_a_raster_layer_is_refused(client):
    body = client.get(OLINDA, query_string={"bbox": "289000,9110000,295000,9116000",
                                            "f": "json", "selectionDefinitions": json.dumps(
                                                [{"layerId": 0, "objectIds": [1]}])}).get_json()
    assert body["error"]["details"] == ["'selectionDefinitions': layer 0 is not a feature layer"]


# --- dynamicLayers ------------------------------------------------------------------------------
def test_dynamic_map_layer_renderer_definition_and_transparency(client):
    dyn = [{"id": 101, "source": {"type": "mapLayer", "mapLayerId": 1},
            "definitionExpression": "name <> 'Australia'",
            "drawingInfo": {"transparency": 50, "showLabels": False, "renderer": {
                "type": "simple", "symbol": {"type": "esriSFS", "style": "esriSFSSolid",
                                             "color": [0, 0, 255, 255]}}}}]
    img = image(client, WORLD, dynamicLayers=json.dumps(dyn), layers="")
    assert list(img[BRAZIL]) == [0, 0, 255, 128]
    assert img[AUSTRALIA][3] == 0


def test_dynamic_layers_order_first_on_top(client):
    blue = {"type": "simple", "symbol": {"type": "esriSFS", "color": [0, 0, 255, 255]}}
    green = {"type": "simple", "symbol": {"type": "esriSFS", "color": [0, 255, 0, 255]}}
    dyn = [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1},
            "drawingInfo": {"renderer": green}},
           {"id": 2, "source": {"type": "mapLayer", "mapLayerId": 1},
            "drawingInfo": {"renderer": blue}}]
    assert list(image(client, WORLD, dynamicLayers=json.dumps(dyn))[BRAZIL]) == [0, 255, 0, 255]


def test_dynamic_data_layer_from_a_registered_workspace(client):
    dyn = [{"id": 7, "source": {"type": "dataLayer", "dataSource": {
        "type": "table", "workspaceId": "worldData", "dataSourceName": "cities.gpkg"}},
        "drawingInfo": {"renderer": {"type": "simple", "symbol": {
            "type": "esriSMS", "style": "esriSMSSquare", "color": [255, 0, 255, 255],
            "size": 6}}}}]
    img = image(client, DEMO, dynamicLayers=json.dumps(dyn))
    assert list(img[106, 132]) == [255, 0, 255, 255]  # Brasilia (-47.9, -15.8)


def test_dynamic_data_layer_cannot_leave_its_workspace(client):
    for name in ("../world/cities.gpkg", "/etc/passwd", "missing.gpkg"):
        dyn = [{"id": 7, "source": {"type": "dataLayer", "dataSource": {
            "workspaceId": "worldData", "dataSourceName": name}}}]
        body = error(client, DEMO, dynamicLayers=json.dumps(dyn))
        assert body["error"]["code"] == 400
        assert "/etc" not in json.dumps(body) or name == "/etc/passwd"
    dyn = [{"id": 7, "source": {"type": "dataLayer", "dataSource": {
        "workspaceId": "elsewhere", "dataSourceName": "x.shp"}}}]
    assert error(client, DEMO, dynamicLayers=json.dumps(dyn))["error"]["details"] == [
        "'dynamicLayers' [0] workspaceId 'elsewhere' is not registered with this service "
        "(registered: olindaRasters, worldData)"]


def test_service_advertises_dynamic_layers_clipping_spatial_filter(client):
    root = client.get("/arcgis/rest/services/World/MapServer?f=json").get_json()
    assert root["supportsDynamicLayers"] is True
    assert root["supportsClipping"] is True and root["supportsSpatialFilter"] is True


# --- f=kmz --------------------------------------------------------------------------------------
def test_kmz_ground_overlay_in_4326(client):
    r = client.get(WORLD, query_string={"bbox": "-100,-50,0,50", "size": "200,200",
                                        "format": "png", "f": "kmz", "rotation": "30"})
    assert r.mimetype == "application/vnd.google-earth.kmz"
    zf = zipfile.ZipFile(io.BytesIO(r.data))
    kml = zf.read("doc.kml").decode()
    box = {k: float(re.search(f"<{k}>([^<]+)</{k}>", kml).group(1))
           for k in ("north", "south", "east", "west", "rotation")}
    assert box == {"north": 50.0, "south": -50.0, "east": 0.0, "west": -100.0,
                   "rotation": 30.0}
    png = decode(zf.read("files/map.png"))
    assert png.shape[:2] == (200, 200)
