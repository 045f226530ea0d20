"""Tiles: tileInfo in the root JSON, tile/{level}/{row}/{col} through the export pipeline, 404s
outside the scheme, ETag / 304, and the on-disk cache shared by workers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pyproj import Transformer

from mapserver.catalog.loader import load_catalog
from mapserver.settings import PROJECT_ROOT
from mapserver.tiling import TilingError, parse_tiling
from tests.conftest import decode

# the Web Mercator caches: World itself is a 4326 service with the geographic scheme
WORLD = "/arcgis/rest/services/WorldMercator/MapServer"
WORLD_4326 = "/arcgis/rest/services/World/MapServer"
OLINDA = "/arcgis/rest/services/Samples/OlindaMercator/MapServer"
ORIGIN = 20037508.342787
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)
# World's classBreaks colours on pop_est, at deep interior points
CHINA = ((90.0, 33.0), (189, 0, 38))  # over 500 million (Tibet, no city markers)
RUSSIA = ((100.0, 62.0), (240, 59, 32))  # 100 - 500 million
GREENLAND = ((-42.0, 74.0), (255, 255, 178))  # 0 - 10 million


def tile_pixel(lon: float, lat: float, level: int) -> tuple[int, int, int, int]:
    """(row, col, y, x): the tile and the pixel inside it where (lon, lat) falls."""
    x, y = TO_3857.transform(lon, lat)
    res = 156543.03392800014 / 2 ** level
    px, py = (x + ORIGIN) / res, (ORIGIN - y) / res
    return int(py // 256), int(px // 256), int(py % 256), int(px % 256)


def test_root_json_of_a_tiled_service_advertises_the_standard_web_mercator_scheme(client):
    doc = client.get(WORLD + "?f=json").get_json()
    assert doc["singleFusedMapCache"] is True
    ti = doc["tileInfo"]
    assert (ti["rows"], ti["cols"], ti["dpi"], ti["format"], ti["compressionQuality"]) == \
        (256, 256, 96.0, "PNG32", 0)
    assert ti["origin"] == {"x": -20037508.342787, "y": 20037508.342787}
    assert ti["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    assert [lod["level"] for lod in ti["lods"]] == list(range(20))
    assert ti["lods"][0] == {"level": 0, "resolution": 156543.03392800014,
                             "scale": 591657527.591555}
    assert ti["lods"][5]["resolution"] == pytest.approx(156543.03392800014 / 32, rel=1e-15)
    assert ti["lods"][5]["scale"] == pytest.approx(591657527.591555 / 32, rel=1e-15)
    untiled = client.get("/arcgis/rest/services/Gapminder/MapServer?f=json").get_json()
    assert untiled["singleFusedMapCache"] is False and "tileInfo" not in untiled


@pytest.mark.parametrize("point", [CHINA, RUSSIA, GREENLAND], ids=["China", "Russia", "Greenland"])
def test_tile_pixels_show_the_class_colour_of_the_country_under_them(client, point):
    (lon, lat), colour = point
    row, col, y, x = tile_pixel(lon, lat, 3)
    resp = client.get(f"{WORLD}/tile/3/{row}/{col}")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    rgba = decode(resp.data)
    assert rgba.shape == (256, 256, 4)
    assert tuple(rgba[y, x]) == (*colour, 255)


def test_a_tile_is_pixel_identical_to_the_export_of_its_metatile(client):
    """A tile is cut from one render of its 4x4 metatile plus a 64 px buffer: an /export of
    that buffered block, cropped, gives the same pixels (World level 2 has no labels drawn
    near this block's edges, so the label window does not matter here)."""
    level, row, col = 2, 1, 2
    res = 156543.03392800014 / 2 ** level
    # the level-2 block is tiles 0..3 x 0..3 = the whole world: no buffer past its edges
    size = 4 * 256
    tile = decode(client.get(f"{WORLD}/tile/{level}/{row}/{col}").data)
    export = client.get(f"{WORLD}/export", query_string={
        "bbox": f"{-ORIGIN},{ORIGIN - size * res},{-ORIGIN + size * res},{ORIGIN}",
        "bboxSR": 3857, "imageSR": 3857, "size": f"{size},{size}", "format": "png32",
        "transparent": "true", "f": "image"})
    block = decode(export.data)
    np.testing.assert_array_equal(tile, block[row * 256:(row + 1) * 256,
                                              col * 256:(col + 1) * 256])
    # ocean off the Horn of Africa (lon 60, lat 10) stays transparent
    _, _, y, x = tile_pixel(60.0, 10.0, level)
    assert tile[y, x, 3] == 0


def test_raster_service_tiles_warp_the_landsat_scene_into_web_mercator(client):
    row, col, y, x = tile_pixel(-34.87, -8.02, 12)  # inside the Olinda scene
    rgba = decode(client.get(f"{OLINDA}/tile/12/{row}/{col}").data)
    assert rgba[y, x, 3] == 255 and rgba[y, x, :3].std() < 80  # opaque, natural colour
    assert rgba[..., 3].min() == 0 or rgba[..., 3].max() == 255


@pytest.mark.parametrize("path, detail", [
    (f"{WORLD}/tile/20/0/0", "Tile 20/0/0 is outside the tiling scheme or the service's "
                             "full extent"),
    (f"{WORLD}/tile/1/2/0", "Tile 1/2/0 is outside the tiling scheme or the service's "
                            "full extent"),
    (f"{WORLD}/tile/1/0/2", "Tile 1/0/2 is outside the tiling scheme or the service's "
                            "full extent"),
    (f"{OLINDA}/tile/5/0/0", "Tile 5/0/0 is outside the tiling scheme or the service's "
                             "full extent"),
    (f"{WORLD}/tile/1/-1/0", "level, row and col must be non-negative integers"),
    (f"{WORLD}/tile/x/0/0", "level, row and col must be non-negative integers"),
    ("/arcgis/rest/services/Gapminder/MapServer/tile/0/0/0",
     "Service Gapminder has no tiling scheme"),
])
def test_tiles_outside_the_scheme_or_the_extent_are_http_404(client, path, detail):
    resp = client.get(path)
    assert resp.status_code == 404 and resp.mimetype == "application/json"
    assert resp.get_json() == {"error": {"code": 404, "message": "Tile not found",
                                         "details": [detail]}}


def test_tiles_carry_an_etag_answer_304_and_are_cached_on_disk(client, app, settings):
    from mapserver.maps.service_digest import service_digest

    path = f"{WORLD}/tile/1/0/1"
    first = client.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and len(etag) == 34
    assert first.headers["Cache-Control"] == "public, max-age=3600"
    not_modified = client.get(path, headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.data == b""
    assert not_modified.headers["ETag"] == etag
    digest = service_digest(app.extensions["mapserver"].catalog.service("WorldMercator"))
    cached = settings.tile_cache_dir / "WorldMercator" / digest / "1" / "0" / "1.png"
    assert cached.read_bytes() == first.data
    assert not list(cached.parent.glob("*.tmp"))
    # the whole level-1 metatile (2 x 2 tiles) was stored by that one render
    assert sorted(p.name for p in cached.parent.parent.glob("*/*.png")) == \
        ["0.png", "0.png", "1.png", "1.png"]
    # the cache file is what is served: replace it and the response (and ETag) follow
    other = client.get(f"{WORLD}/tile/1/1/1").data
    cached.write_bytes(other)
    again = client.get(path)
    assert again.data == other and again.headers["ETag"] != etag


def test_parse_tiling_validates_every_field_with_its_path():
    with pytest.raises(TilingError, match=r"^tiling.format: must be one of"):
        parse_tiling({"format": "MIXED"})
    with pytest.raises(TilingError, match=r"^tiling.origin: is required for a scheme that"):
        parse_tiling({"spatialReference": {"wkid": 31985}})
    with pytest.raises(TilingError, match=r"^tiling.lods\[1\]: levels must increase"):
        parse_tiling({"lods": [{"level": 0, "resolution": 10}, {"level": 1, "resolution": 20}]})
    with pytest.raises(TilingError, match=r"^tiling.levels: must be at most 32"):
        parse_tiling({"levels": 40})
    with pytest.raises(TilingError, match=r"^tiling.rows: must be at least 1"):
        parse_tiling({"rows": 0})


def test_a_geographic_scheme_maps_row_and_col_from_its_own_origin():
    scheme = parse_tiling({"spatialReference": {"wkid": 4326}, "origin": {"x": -180, "y": 90},
                           "rows": 512, "cols": 512,
                           "lods": [{"level": 0, "resolution": 0.3515625},
                                    {"level": 1, "resolution": 0.17578125}]})
    # Esri's WGS 1984 scheme lists 147748796.52937502 for this resolution
    assert scheme.to_json()["lods"][0]["scale"] == pytest.approx(147748796.53, rel=1e-7)
    grid = scheme.tile_grid(1, 1, 3)
    assert grid.extent == pytest.approx((90.0, -90.0, 180.0, 0.0))
    assert scheme.tile_grid(2, 0, 0) is None


def test_a_service_with_a_bad_tiling_object_is_rejected_naming_the_field(tmp_path):
    doc = {"layers": [{"id": 0, "name": "Cities", "source": "world/cities.gpkg"}],
           "tiling": {"lods": "all"}}
    (tmp_path / "Bad.json").write_text(json.dumps(doc))
    catalog = load_catalog([tmp_path], PROJECT_ROOT / "data")
    assert catalog.services == {}
    assert catalog.problems == (f"{tmp_path / 'Bad.json'}: tiling.lods: must be a non-empty "
                                "list of {level, resolution}",)


def test_world_is_a_4326_service_with_the_standard_geographic_scheme(client):
    """ArcGIS caches are in the service's SR: World (4326) advertises the geographic scheme
    (origin -180, 90; 0.703125 degrees per pixel at level 0, as OGC WorldCRS84Quad), and its
    tiles are those boxes in degrees."""
    doc = client.get(WORLD_4326 + "?f=json").get_json()
    assert doc["spatialReference"]["wkid"] == 4326
    ti = doc["tileInfo"]
    assert ti["spatialReference"]["wkid"] == 4326
    assert ti["origin"] == {"x": -180.0, "y": 90.0}
    assert [lod["resolution"] for lod in ti["lods"][:3]] == [0.703125, 0.3515625, 0.17578125]
    # Esri's WGS 1984 scheme: 0.3515625 degrees per pixel is 1:147748796.53 at 96 dpi
    assert ti["lods"][1]["scale"] == pytest.approx(147748796.53, rel=1e-7)
    # level 0 is two tiles: west and east; China (90 E, 33 N) is in the east one
    assert client.get(f"{WORLD_4326}/tile/0/0/2").status_code == 404
    assert client.get(f"{WORLD_4326}/tile/0/1/0").status_code == 404
    east = decode(client.get(f"{WORLD_4326}/tile/0/0/1").data)
    (lon, lat), colour = CHINA
    x, y = int((lon - 0.0) / 0.703125), int((90.0 - lat) / 0.703125)
    assert tuple(east[y, x]) == (*colour, 255)


def test_a_tiling_scheme_in_another_sr_than_the_service_is_rejected(tmp_path):
    doc = {"layers": [{"id": 0, "name": "Cities", "source": "world/cities.gpkg"}],
           "spatialReference": {"wkid": 4326},
           "tiling": {"spatialReference": {"wkid": 102100}}}
    (tmp_path / "Mixed.json").write_text(json.dumps(doc))
    catalog = load_catalog([tmp_path], PROJECT_ROOT / "data")
    assert catalog.services == {}
    assert catalog.problems == (
        f"{tmp_path / 'Mixed.json'}: tiling.spatialReference: must be the service's spatial "
        "reference (wkid 4326), not wkid 3857: ArcGIS caches are in the service's SR, and tile "
        "clients rely on it (make a separate service for another SR)",)
    # a UTM service has no standard scheme: "tiling": {} asks for origin and lods
    doc = {"layers": [{"id": 0, "name": "Landsat", "type": "raster",
                       "source": "olinda/L7_ETMs.tif"}], "tiling": {}}
    (tmp_path / "Mixed.json").write_text(json.dumps(doc))
    problems = load_catalog([tmp_path], PROJECT_ROOT / "data").problems
    assert problems == (f"{tmp_path / 'Mixed.json'}: tiling.origin: is required for a scheme "
                        "that is neither Web Mercator nor WGS 84 geographic",)


def test_blank_tiles_blanktile_false_and_the_tilemap_agree(client):
    """Level 3 of the Web Mercator World: inside the extent but with nothing drawn (open
    ocean) is a transparent image with ``blank-tile: true``, a 404 with ``blankTile=false``;
    outside the extent (north of 83.6 N at level 5) is a 404 either way; the tilemap says 1
    exactly where ``blankTile=false`` answers an image."""
    z = 3
    tilemap = client.get(f"{WORLD}/tilemap/{z}/0/0/8/8")
    assert tilemap.status_code == 200 and tilemap.mimetype == "application/json"
    body = tilemap.get_json()
    assert body["adjusted"] is False
    assert body["location"] == {"left": 0, "top": 0, "width": 8, "height": 8}
    blank = 0
    for i, flag in enumerate(body["data"]):
        row, col = divmod(i, 8)
        default = client.get(f"{WORLD}/tile/{z}/{row}/{col}")
        strict = client.get(f"{WORLD}/tile/{z}/{row}/{col}?blankTile=false")
        assert flag == (1 if strict.status_code == 200 else 0), (row, col)
        assert default.status_code == 200 and default.mimetype == "image/png"
        if flag:
            assert strict.data == default.data and "blank-tile" not in default.headers
            assert decode(default.data)[..., 3].any()
        else:
            blank += 1
            assert strict.status_code == 404 and strict.get_json()["error"]["details"] == [
                f"Tile {z}/{row}/{col} has no data (blankTile=false)"]
            assert default.headers["blank-tile"] == "true"
            assert not decode(default.data)[..., 3].any()
    assert 0 < blank < 64 and sum(body["data"]) == 64 - blank
    # outside the extent: 404 with or without blankTile, and 0 in the tilemap
    assert client.get(f"{WORLD}/tile/5/0/3").status_code == 404
    assert client.get(f"{WORLD}/tile/5/0/3?blankTile=true").status_code == 404
    top = client.get(f"{WORLD}/tilemap/5/0/0/32/2").get_json()
    assert top["data"][:32] == [0] * 32 and 1 in top["data"][32:]


def test_hostile_tilemaps_then_an_ordinary_one(client):
    huge = client.get(f"{WORLD}/tilemap/19/0/0/999999999/999999999")
    assert huge.status_code == 200
    body = huge.get_json()
    assert body["adjusted"] is True and body["location"]["width"] == 32
    assert body["data"] == [0] * 32 * 32  # level 19's top-left corner is north of 83.6 N
    for path in ("tilemap/3/0/0/8", "tilemap/3/0/0/x/8", "tilemap/3/-1/0/8/8"):
        resp = client.get(f"{WORLD}/{path}?f=json")
        assert resp.status_code == 200 and resp.get_json()["error"]["code"] == 400, path
    assert client.get(f"{WORLD}/tilemap/25/0/0/2/2").get_json()["data"] == [0, 0, 0, 0]
    gap = client.get("/arcgis/rest/services/Gapminder/MapServer/tilemap/0/0/0/1/1")
    assert gap.status_code == 404
    assert client.get(f"{WORLD}/tilemap/0/0/0/1/1").get_json() == {
        "adjusted": False, "location": {"left": 0, "top": 0, "width": 1, "height": 1},
        "data": [1]}
