"""Earth Engine's own Python client (earthengine-api, unmodified) against the app on a local port.

The client reads our discovery document and algorithm list, builds its export requests (regions
as GeometryConstructors, crs via Projection / setDefaultProjection / reproject, video frames
through Collection.map), starts them with Task.start(), polls Task.status() and lists them with
Task.list(). The files it produced are then checked with rasterio and PyAV. Fake credentials;
every socket the client opens must go to 127.0.0.1 (no OAuth, no Google endpoint).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from pathlib import Path

import av
import ee  # noqa: E402  (a test dependency: missing it must fail, not skip)
import numpy as np
import pytest
import rasterio
from jobs_helpers import make_app
from PIL import Image

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
OLINDA_BOX = [-34.95, -8.05, -34.85, -7.95]
DEM_TRANSFORM = [20, 0, 288000, 0, -20, 9121000]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from google.oauth2.credentials import Credentials
    from werkzeug.serving import make_server

    tmp = tmp_path_factory.mktemp("ee")
    app, svc = make_app(tmp, drive_root=tmp / "drive", asset_root=tmp / "assets")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    seen: list[object] = []
    real_connect = socket.socket.connect

    def local_only(sock, address):  # the client may talk to this server and nothing else
        if sock.family == socket.AF_UNIX:  # the worker pool's forkserver, not the network
            return real_connect(sock, address)
        seen.append(address)
        if address[0] not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"the Earth Engine client tried to reach {address!r}")
        return real_connect(sock, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", local_only)
        ee.Initialize(credentials=Credentials(token="fake-token"), url=url, project="demo")
        yield {"url": url, "tmp": tmp, "app": app, "client": app.test_client(), "seen": seen,
               "buckets": tmp / "buckets"}
        ee.Reset()
    server.shutdown()
    svc.close()


def olinda_dem():
    return ee.Image("Samples/Olinda/1")


def gapminder():
    return ee.ImageCollection("Gapminder").filterDate("1952-01-01", "1973-01-01")


def specs(env) -> dict:
    region = ee.Geometry.Rectangle(OLINDA_BOX, None, False)
    dem = olinda_dem()
    return {
        "img_rsc": lambda: ee.batch.Export.image.toCloudStorage(
            dem, description="img_rsc", bucket="eebucket", fileNamePrefix="ee/img_rsc",
            region=region, scale=60, crs="EPSG:31985", maxPixels=1e9, priority=500),
        "img_ctd": lambda: ee.batch.Export.image.toCloudStorage(
            dem, description="img ctd (exact grid)", bucket="eebucket",
            fileNamePrefix="ee/img_ctd", crs="EPSG:31985", crsTransform=DEM_TRANSFORM,
            dimensions="520x300"),
        "img_gto": lambda: ee.batch.Export.image.toCloudStorage(
            dem, description="img_gto", bucket="eebucket", fileNamePrefix="ee/img_gto",
            crs="EPSG:31985", crsTransform=DEM_TRANSFORM, dimensions="520x300", shardSize=128,
            fileDimensions=256, skipEmptyTiles=True,
            formatOptions={"cloudOptimized": True, "noData": -9999,
                           "metadataKeys": ["system:id"]}),
        "map_full": lambda: ee.batch.Export.map.toCloudStorage(
            ee.Image("World"), description="map_full", bucket="eebucket",
            path="ee/map_full/", fileFormat="png", region=[[-30, 40], [-30, -10], [60, -10],
                                                           [60, 40], [-30, 40]],
            minZoom=1, maxZoom=3, skipEmptyTiles=True, mapsApiKey="KEY", priority=300),
        "map_scale": lambda: ee.batch.Export.map.toCloudStorage(
            ee.Image("World"), description="map_scale", bucket="eebucket",
            path="ee/map_scale", fileFormat="jpg", scale=40000, writePublicTiles=False),
        "vid_default": lambda: ee.batch.Export.video.toCloudStorage(
            gapminder(), description="vid_default", bucket="eebucket",
            fileNamePrefix="ee/vid_default", framesPerSecond=2),
        "vid_4326": lambda: ee.batch.Export.video.toCloudStorage(
            gapminder(), description="vid_4326", bucket="eebucket",
            fileNamePrefix="ee/vid_4326", framesPerSecond=3, dimensions=480, crs="EPSG:4326",
            region=ee.Geometry.Rectangle([-180, -60, 180, 80]), maxFrames=50, maxPixels=1e7),
        "img_asset": lambda: ee.batch.Export.image.toAsset(
            dem, description="img_asset", assetId="projects/demo/assets/olinda_dem",
            pyramidingPolicy={".default": "sample"}),
        "img_drive": lambda: ee.batch.Export.image.toDrive(
            dem.visualize(min=0, max=90, palette=["006147", "e8d77d", "9e0000"]),
            description="img_drive", folder="ee-exports", region=region, scale=90),
    }


@pytest.fixture(scope="module")
def tasks(env):
    """Every export started at once through Task.start(), so they share the worker pool."""
    started = {}
    for name, make in specs(env).items():
        task = make()
        task.start()
        started[name] = task
    return started


def finish(task, timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while True:
        status = task.status()
        if status["state"] in TERMINAL or time.monotonic() > end:
            break
        time.sleep(0.2)
    assert status["state"] == "COMPLETED", status
    return status


def test_client_initialises_from_our_discovery_document(env):
    doc = env["client"].get("/$discovery/rest?version=v1&prettyPrint=false").get_json()
    assert doc["rootUrl"] == "http://localhost/"
    methods = {f"{r}.{m}" for r, res in doc["resources"]["projects"]["resources"].items()
               for m in res["methods"]}
    assert methods == {"image.export", "map.export", "video.export", "operations.get",
                       "operations.list", "operations.cancel", "operations.wait",
                       "operations.delete", "algorithms.list"}
    algs = env["client"].get("/v1/projects/demo/algorithms").get_json()["algorithms"]
    from mapserver.jobs.expression import ALGORITHMS

    assert {a["name"][11:] for a in algs} == set(ALGORITHMS)
    visualize = next(a for a in algs if a["name"] == "algorithms/Image.visualize")
    assert [x["argumentName"] for x in visualize["arguments"]][:2] == ["image", "bands"]
    # the client is initialised (module fixture) and only ever talked to this server
    assert env["seen"] and all(a[0] == "127.0.0.1" for a in env["seen"])
    assert hasattr(ee.Image("World"), "visualize")  # methods built from our algorithm list
    bad = env["client"].get("/$discovery/rest?version=v9")
    assert bad.status_code == 404 and bad.get_json()["error"]["status"] == "NOT_FOUND"


def test_image_region_scale_crs(env, tasks):
    status = finish(tasks["img_rsc"])
    assert status["priority"] == 500 and status["batch_eecu_usage_seconds"] > 0
    with rasterio.open(env["buckets"] / "eebucket/ee/img_rsc.tif") as ds:
        assert ds.crs.to_epsg() == 31985
        t = ds.transform
        assert (t.a, t.e) == (60.0, -60.0) and t.c % 60 == 0 and t.f % 60 == 0
        # the region's projected bounds, widened to whole 60 m pixels
        assert (ds.width, ds.height) in ((185, 185), (186, 186), (185, 186), (186, 185))
        assert ds.read(1).max() > 0


def test_image_crs_transform_dimensions_is_exact(env, tasks):
    finish(tasks["img_ctd"])
    # a freeform description; the file name comes from fileNamePrefix
    with rasterio.open(env["buckets"] / "eebucket/ee/img_ctd.tif") as ds:
        assert ds.crs.to_epsg() == 31985 and (ds.width, ds.height) == (520, 300)
        assert tuple(ds.transform)[:6] == (20.0, 0.0, 288000.0, 0.0, -20.0, 9121000.0)


def test_image_shards_file_dimensions_and_format_options(env, tasks):
    finish(tasks["img_gto"])
    root = env["buckets"] / "eebucket/ee"
    names = sorted(p.name for p in root.glob("img_gto*"))
    assert "img_gto.vrt" in names and "img_gto-0000000000-0000000000.tif" in names
    with rasterio.open(root / "img_gto.vrt") as vrt:
        assert (vrt.width, vrt.height) == (520, 300) and vrt.nodata == -9999
        assert tuple(vrt.transform)[:6] == (20.0, 0.0, 288000.0, 0.0, -20.0, 9121000.0)
    with rasterio.open(root / "img_gto-0000000000-0000000000.tif") as part:
        assert (part.width, part.height) == (256, 256) and part.nodata == -9999
        assert part.tags()["system_id"] == "Samples/Olinda/1"
        assert part.overviews(1) or part.profile.get("tiled")  # cloud-optimized layout


def test_map_region_zooms_skip_empty_and_trailing_slash(env, tasks):
    status = finish(tasks["map_full"])
    root = env["buckets"] / "eebucket/ee/map_full"  # the trailing '/' names the folder itself
    tiles = sorted(str(p.relative_to(root)) for p in root.glob("*/*/*"))
    zooms = {int(t.split("/")[0]) for t in tiles}
    assert zooms == {1, 2, 3} and (root / "index.html").exists()
    img = Image.open(io.BytesIO((root / tiles[0]).read_bytes()))
    assert img.format == "PNG" and img.size == (256, 256)
    for t in tiles:  # skipEmptyTiles: nothing fully transparent was written
        assert np.asarray(Image.open(root / t).convert("RGBA"))[..., 3].any()
    op = ee.data.getOperation(status["name"])
    assert any("mapsApiKey" in n["detail"] for n in op["metadata"]["notifications"])


def test_map_scale_jpeg(env, tasks):
    finish(tasks["map_scale"])
    root = env["buckets"] / "eebucket/ee/map_scale"
    tiles = sorted(p.relative_to(root).as_posix() for p in root.glob("*/*/*"))
    # 40000 m/px: the first zoom at least that fine is 2 (39135.8 m/px); 1 + 4 + 16 tiles
    assert len(tiles) == 21 and "2/3/3" in tiles
    assert (root / "2/3/3").read_bytes()[:3] == b"\xff\xd8\xff"


def _video(path: Path) -> tuple[int, float, int, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = sum(1 for _ in c.decode(s))
        return frames, float(s.average_rate), s.codec_context.width, s.codec_context.height


def test_video_default_projection_sr_org_6627(env, tasks):
    finish(tasks["vid_default"])
    frames, rate, w, h = _video(env["buckets"] / "eebucket/ee/vid_default.mp4")
    assert frames == 5 and rate == 2.0  # 1952 … 1972, every 5 years
    assert max(w, h) in (1024, 1025) and w > h  # Web Mercator world, 1024 px on the long side


def test_video_region_dimensions_crs_fps(env, tasks):
    finish(tasks["vid_4326"])
    frames, rate, w, h = _video(env["buckets"] / "eebucket/ee/vid_4326.mp4")
    assert frames == 5 and rate == 3.0
    assert (w, h) == (480, 188)  # 360 x 140 degrees at 480 px on the long side (187 -> even)


def test_image_to_asset_becomes_a_map_service_layer(env, tasks):
    status = finish(tasks["img_asset"])
    assert status["destination_uris"][1].endswith("/arcgis/rest/services/Assets/demo/MapServer")
    client = env["client"]
    catalog = client.get("/arcgis/rest/services/Assets?f=json").get_json()
    assert {"name": "Assets/demo", "type": "MapServer"} in catalog["services"]
    layers = client.get("/arcgis/rest/services/Assets/demo/MapServer/layers?f=json").get_json()
    layer = next(lyr for lyr in layers["layers"]
                 if lyr["name"] == "projects/demo/assets/olinda_dem")
    png = client.get("/arcgis/rest/services/Assets/demo/MapServer/export", query_string={
        "bbox": "288000,9115000,298000,9121000", "bboxSR": "31985", "size": "200,120",
        "layers": f"show:{layer['id']}", "format": "png32", "transparent": "true",
        "f": "image"})
    rgba = np.asarray(Image.open(io.BytesIO(png.data)).convert("RGBA"))
    assert png.mimetype == "image/png" and rgba[..., 3].any()
    tif = Path(status["destination_uris"][0][len("file://"):])
    with rasterio.open(tif) as ds:
        assert ds.overviews(1) and ds.crs is not None
    # the asset is an image the client can load and export again
    again = ee.batch.Export.image.toCloudStorage(
        ee.Image("projects/demo/assets/olinda_dem"), description="from_asset",
        bucket="eebucket", fileNamePrefix="ee/from_asset", dimensions=64)
    again.start()
    finish(again)
    with rasterio.open(env["buckets"] / "eebucket/ee/from_asset.tif") as ds:
        assert max(ds.width, ds.height) == 64
    # the same asset id again without overwrite: the client gets our message
    dup = ee.batch.Export.image.toAsset(olinda_dem(), description="dup",
                                        assetId="projects/demo/assets/olinda_dem")
    with pytest.raises(ee.EEException, match="Cannot overwrite asset"):
        dup.start()


def test_image_to_drive_visualized(env, tasks):
    finish(tasks["img_drive"])
    path = env["tmp"] / "drive/ee-exports/img_drive.tif"
    with rasterio.open(path) as ds:
        # no crs: the DEM's own projection (its file's BOUNDCRS WKT), at the requested scale
        assert ds.count == 4 and ds.dtypes[0] == "uint8" and ds.crs.is_projected
        assert ds.transform.a == 90.0
        rgba = ds.read()
    assert rgba[3].any() and (rgba[:3, rgba[3] > 0].max(axis=1) > 0).any()


def test_task_list_operations_cancel_and_errors(env, tasks):
    for task in tasks.values():
        finish(task)
    listed = {t.id: t for t in ee.batch.Task.list()}
    for task in tasks.values():
        assert listed[task.id].state == "COMPLETED"
    ops = ee.data.listOperations()
    assert {o["metadata"]["description"] for o in ops} >= {"img_rsc", "img ctd (exact grid)"}
    op = ee.data.getOperation(tasks["img_rsc"].operation_name)
    assert op["done"] and op["metadata"]["state"] == "SUCCEEDED"
    # Task.cancel and cancelOperation on queued work
    big = ee.batch.Export.map.toCloudStorage(ee.Image("World"), description="big",
                                             bucket="eebucket", path="ee/big", maxZoom=7)
    big.start()
    big.cancel()
    other = ee.batch.Export.map.toCloudStorage(ee.Image("World"), description="big2",
                                               bucket="eebucket", path="ee/big2", maxZoom=7)
    other.start()
    ee.data.cancelOperation(other.operation_name)
    for t in (big, other):
        end = time.monotonic() + 60
        while t.status()["state"] not in TERMINAL and time.monotonic() < end:
            time.sleep(0.2)
        assert t.status()["state"] == "CANCELLED"
    assert not (env["buckets"] / "eebucket/ee/big").exists()
    # errors reach the client as EEException with our message
    with pytest.raises(ee.EEException, match="band 'nope' not found"):
        ee.batch.Export.image.toCloudStorage(olinda_dem().select(["nope"]), bucket="eebucket",
                                             description="bad").start()
    with pytest.raises(ee.EEException, match="no map service, raster layer or asset"):
        ee.batch.Export.image.toCloudStorage(ee.Image("Nope/Nothing"), bucket="eebucket",
                                             description="bad2").start()
