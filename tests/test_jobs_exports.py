"""image:export, map:export and video:export end to end: pixels, georeferencing, tile sets."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import rasterio
from jobs_helpers import call, gcs, load, make_app, pixel_grid, wait_done
from PIL import Image

from mapserver.jobs.imagery import export_tile_grid

OLINDA_GRID = pixel_grid("EPSG:31985", 289000, 9120000, 50, 120, 100)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jobs")
    app, svc = make_app(tmp)
    yield app.test_client(), tmp / "buckets"
    svc.close()


def rgba(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def test_image_geotiff_matches_export_pixel_for_pixel(env):
    client, buckets = env
    body = {"expression": load("Samples/Olinda"), "description": "olinda",
            "grid": OLINDA_GRID, "fileExportOptions": gcs("exports", "olinda/rgb", "GEO_TIFF")}
    op = client.post("/v1/projects/demo/image:export", json=body).get_json()
    assert op["metadata"]["state"] == "PENDING" and op["metadata"]["type"] == "EXPORT_IMAGE"
    op = wait_done(client, op["name"])
    assert op["metadata"]["state"] == "SUCCEEDED", op
    assert op["metadata"]["progress"] == 1.0 and op["metadata"]["stages"][0]["totalWorkUnits"] == 1
    path = buckets / "exports" / "olinda" / "rgb.tif"
    assert op["metadata"]["destinationUris"] == [
        path.resolve().as_uri(), "http://localhost/v1/exports/exports/olinda/rgb.tif"]
    with rasterio.open(path) as ds:
        assert tuple(ds.transform)[:6] == (50.0, 0.0, 289000.0, 0.0, -50.0, 9120000.0)
        assert ds.crs.to_epsg() == 31985 and (ds.width, ds.height, ds.count) == (120, 100, 4)
        tif = ds.read().transpose(1, 2, 0)
    ref = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/export", query_string={
        "bbox": "289000,9115000,295000,9120000", "size": "120,100", "format": "png32",
        "transparent": "true", "f": "image"})
    expected = rgba(ref.data)
    assert expected[..., 3].any() and (tif == expected).all()
    served = client.get("/v1/exports/exports/olinda/rgb.tif")
    assert served.mimetype == "image/tiff" and served.data == path.read_bytes()


def test_raster_layer_values_with_nodata_and_split_vrt(env):
    client, buckets = env
    grid = pixel_grid("EPSG:31985", 288000, 9121000, 20, 520, 300)
    body = {"expression": load("Samples/Olinda/1"), "description": "dem",
            "grid": grid, "maxPixels": {"value": "200000"},
            "fileExportOptions": gcs("exports", "dem", "GEO_TIFF", geoTiffOptions={
                "tileDimensions": {"width": 256, "height": 256}, "noData": {"floatValue": -9999},
                "cloudOptimized": True})}
    op = wait_done(client, client.post("/v1beta/projects/demo/image:export",
                                       json=body).get_json()["name"])
    assert op["metadata"]["state"] == "SUCCEEDED", op
    names = sorted(p.name for p in (buckets / "exports").glob("dem*"))
    assert names == ["dem-0000000000-0000000000.tif", "dem-0000000000-0000000256.tif",
                     "dem-0000000000-0000000512.tif", "dem-0000000256-0000000000.tif",
                     "dem-0000000256-0000000256.tif", "dem-0000000256-0000000512.tif", "dem.vrt"]
    with rasterio.open(buckets / "exports" / "dem.vrt") as vrt:
        assert (vrt.width, vrt.height) == (520, 300) and vrt.nodata == -9999
        assert tuple(vrt.transform)[:6] == (20.0, 0.0, 288000.0, 0.0, -20.0, 9121000.0)
        mosaic = vrt.read(1)
    with rasterio.open(buckets / "exports" / "dem-0000000256-0000000512.tif") as part:
        assert (part.width, part.height) == (8, 44) and part.nodata == -9999
        assert part.transform.c == 288000 + 512 * 20 and part.transform.f == 9121000 - 256 * 20
    # the raw DEM warped onto the same grid, straight from rasterio
    from mapserver.geo.grid import Grid
    from mapserver.jobs.expression import ImageSpec
    from mapserver.jobs.wire import parse_grid

    catalog = client.application.extensions["mapserver"].catalog
    g: Grid = parse_grid(grid, ImageSpec("Samples/Olinda", 1), catalog)
    data, valid = catalog.service("Samples/Olinda").layer(1).raster.read(g, (1,))
    assert (mosaic[valid] == data[0][valid]).all() and (mosaic[~valid] == -9999).all()
    assert valid.any() and (~valid).any()


def test_map_export_tile_set_skip_empty_and_viewer(env):
    client, buckets = env
    geom = {"type": "Polygon", "coordinates": [[[-30, -10], [60, -10], [60, 40], [-30, 40],
                                                [-30, -10]]]}
    expr = {"result": "1", "values": {
        "0": load("World")["values"]["0"],
        "1": call("Image.clip", input={"valueReference": "0"}, geometry={"constantValue": geom})}}
    body = {"expression": expr, "description": "world-tiles",
            "tileOptions": {"startZoom": 0, "endZoom": 2, "skipEmpty": True},
            "tileExportOptions": gcs("tiles", "world/", "PNG")}
    op = wait_done(client, client.post("/v1alpha/projects/demo/map:export",
                                       json=body).get_json()["name"])
    assert op["metadata"]["state"] == "SUCCEEDED" and op["metadata"]["type"] == "EXPORT_TILES"
    root = buckets / "tiles" / "world"  # a tile path names the folder; its '/' is optional
    tiles = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    # z/x/y. The clip box's south-west part (lon -30..0, lat -10..0) is open ocean, so tiles
    # 1/0/1 and 2/1/2 are fully transparent and skipped.
    assert tiles == ["0/0/0", "1/0/0", "1/1/0", "1/1/1", "2/1/1", "2/2/1", "2/2/2",
                     "index.html"]
    world = client.application.extensions["mapserver"].catalog.service("World")
    for t in tiles[:-1]:
        z, x, y = map(int, t.split("/"))
        grid = export_tile_grid(world, z, x, y)
        # tiles are cut from metatiles as /tile cuts them (maps/metatiles.py): the
        # reference is the Web Mercator World service's tile (the same map, the same blocks)
        ref = client.get(f"/arcgis/rest/services/WorldMercator/MapServer/tile/{z}/{y}/{x}")
        got = rgba((root / t).read_bytes())
        # the clip keeps only pixels whose centre is inside the rectangle
        from mapserver.jobs.imagery import clip_mask

        expected = rgba(ref.data).copy()
        expected[~clip_mask(geom, grid)] = 0
        assert (got[got[..., 3] > 0] == expected[got[..., 3] > 0]).all(), t
        assert ((got[..., 3] == 0) == (expected[..., 3] == 0)).all(), t
    html = (root / "index.html").read_text()
    assert "<script src" not in html and "http" not in html.split("<script>")[1]
    assert op["metadata"]["destinationUris"][1:] == [
        "http://localhost/v1/exports/tiles/world/index.html",
        "http://localhost/v1/exports/tiles/world/{z}/{x}/{y}"]
    assert client.get("/v1/exports/tiles/world/2/2/1").mimetype == "image/png"


def test_video_export_one_frame_per_year(env):
    client, buckets = env
    expr = {"result": "1", "values": {
        "0": {"functionInvocationValue": {"functionName": "ImageCollection.load",
                                          "arguments": {"id": {"constantValue": "Gapminder"}}}},
        "1": call("ImageCollection.filterDate", collection={"valueReference": "0"},
                  start={"constantValue": "1952-01-01"}, end={"constantValue": "1973-01-01"})}}
    body = {"expression": expr, "description": "lifeexp",
            "grid": pixel_grid("EPSG:4326", -180, 90, 3.75, 96, 48),
            "videoOptions": {"framesPerSecond": 2, "maxFrames": {"value": 10}},
            "fileExportOptions": gcs("videos", "gap", "MP4")}
    op = wait_done(client, client.post("/v1/projects/demo/video:export",
                                       json=body).get_json()["name"])
    assert op["metadata"]["state"] == "SUCCEEDED", op
    with av.open(str(buckets / "videos" / "gap.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        rate = c.streams.video[0].average_rate
    assert len(frames) == 5 and frames[0].shape == (48, 96, 3) and rate == 2
    # 1952 and 1972 colour the countries differently (life expectancy rose)
    assert np.abs(frames[0].astype(int) - frames[4].astype(int)).mean() > 1.0


def test_video_frame_limit_is_checked_at_submit(env):
    client, _ = env
    expr = {"result": "0", "values": {"0": {"functionInvocationValue": {
        "functionName": "ImageCollection.load", "arguments": {"id": {"constantValue":
                                                                      "Gapminder"}}}}}}
    r = client.post("/v1/projects/demo/video:export", json={
        "expression": expr, "videoOptions": {"maxFrames": 3},
        "fileExportOptions": gcs("videos", "x", "MP4")})
    assert r.status_code == 400 and r.get_json() == {"error": {
        "code": 400, "status": "INVALID_ARGUMENT",
        "message": "Too many frames: the collection has 12 images (maxFrames: 3)."}}


def test_unknown_bucket_paths_cannot_escape(env):
    client, buckets = env
    r = client.post("/v1/projects/demo/image:export", json={
        "expression": load("Samples/Olinda"), "grid": OLINDA_GRID,
        "fileExportOptions": gcs("exports", "../outside")})
    assert r.status_code == 400 and "Invalid filenamePrefix '../outside'" in \
        r.get_json()["error"]["message"]
    assert client.get("/v1/exports/exports/../jobs.sqlite").status_code == 404
    assert not Path(buckets / "outside.tif").exists()
