"""Raster export (issue 2): the Olinda Landsat layer reproduces its source pixels after the
declared percentClip 2-98 stretch, natively and reprojected to Web Mercator.

The expected images are computed here independently of the server (rasterio + numpy), so a
wrong stretch, a half-pixel shift or a wrong warp shows up as pixel differences.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject, transform_bounds

from mapserver.settings import PROJECT_ROOT
from tests.conftest import decode

L7 = PROJECT_ROOT / "data" / "olinda" / "L7_ETMs.tif"
EXPORT = "/arcgis/rest/services/Samples/Olinda/MapServer/export"
BANDS = [3, 2, 1]


@pytest.fixture(scope="module")
def source() -> dict:
    with rasterio.open(L7) as ds:
        data = ds.read(BANDS)
        return {"data": data, "transform": ds.transform, "crs": ds.crs,
                "bounds": tuple(ds.bounds), "width": ds.width, "height": ds.height,
                "nodata": ds.nodata}


@pytest.fixture(scope="module")
def clip(source: dict) -> tuple[np.ndarray, np.ndarray]:
    """The 2nd and 98th percentile of every band over all valid pixels."""
    lo, hi = [], []
    for band in source["data"]:
        vals = band.astype(float).ravel()
        if source["nodata"] is not None:
            vals = vals[vals != source["nodata"]]
        a, z = np.percentile(vals, [2, 98])
        lo.append(a)
        hi.append(z)
    return np.array(lo), np.array(hi)


def stretch(data: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Linear stretch of each band from [lo, hi] to 0..255, rounded and clipped."""
    v = (data.astype(float) - lo[:, None, None]) * (255.0 / (hi - lo)[:, None, None])
    return np.clip(np.round(v), 0, 255).astype(np.uint8)


def test_native_export_reproduces_stretched_source_pixels(client, source, clip):
    xmin, ymin, xmax, ymax = source["bounds"]
    w, h = source["width"], source["height"]
    resp = client.get(EXPORT, query_string={
        "bbox": f"{xmin!r},{ymin!r},{xmax!r},{ymax!r}", "bboxSR": 31985, "imageSR": 31985,
        "size": f"{w},{h}", "format": "png32", "layers": "show:0", "f": "image"})
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    img = decode(resp.data)
    assert img.shape == (h, w, 4)
    expected = stretch(source["data"], *clip).transpose(1, 2, 0)
    assert (img[..., 3] == 255).all()
    diff = np.abs(img[..., :3].astype(int) - expected.astype(int))
    assert diff.max() == 0, f"{(diff > 0).mean():.4%} of pixels differ, max by {diff.max()}"


def test_export_reprojected_to_web_mercator_matches_rasterio_warp(client, source, clip):
    w, h = 300, 300
    bbox = transform_bounds(source["crs"], "EPSG:3857", *source["bounds"])
    resp = client.get(EXPORT, query_string={
        "bbox": ",".join(repr(v) for v in bbox), "bboxSR": 3857, "imageSR": 3857,
        "size": f"{w},{h}", "format": "png32", "transparent": "true", "layers": "show:0",
        "f": "json"})
    meta = resp.get_json()
    assert meta["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    assert (meta["width"], meta["height"]) == (w, h)
    img = decode(client.get(meta["href"]).data)
    assert img.shape == (h, w, 4)

    ext = meta["extent"]
    res = (ext["xmax"] - ext["xmin"]) / w
    dst_transform = Affine(res, 0, ext["xmin"], 0, -res, ext["ymax"])
    dest = np.zeros((3, h, w), dtype=np.uint8)
    alpha = np.zeros((h, w), dtype=np.uint8)
    reproject(source["data"], dest, src_transform=source["transform"], src_crs=source["crs"],
              dst_transform=dst_transform, dst_crs="EPSG:3857", resampling=Resampling.nearest)
    reproject(np.full((1, source["height"], source["width"]), 255, np.uint8), alpha[None],
              src_transform=source["transform"], src_crs=source["crs"],
              dst_transform=dst_transform, dst_crs="EPSG:3857",
              resampling=Resampling.nearest)
    expected = stretch(dest, *clip).transpose(1, 2, 0)
    inside = alpha > 0

    # the footprint is the same (edges may differ by one pixel)
    assert abs(int((img[..., 3] > 0).sum()) - int(inside.sum())) < 0.01 * inside.sum()
    both = inside & (img[..., 3] == 255)
    assert both.sum() > 0.5 * w * h
    diff = np.abs(img[..., :3].astype(int) - expected.astype(int)).max(axis=2)[both]
    assert (diff == 0).mean() > 0.99, f"only {(diff == 0).mean():.2%} identical"
    assert np.median(diff) == 0
    # outside the raster (the UTM grid is turned and squeezed in Web Mercator) the
    # transparent background shows through
    outside = ~inside
    assert outside.any()
    assert (img[..., 3][outside] == 0).mean() > 0.99


def test_percent_clip_stretch_of_loaded_layer_equals_independent_percentiles(app, clip):
    layer = app.extensions["mapserver"].catalog.service("Samples/Olinda").layer(0)
    assert layer.raster_style.stretch_min == pytest.approx(tuple(clip[0]))
    assert layer.raster_style.stretch_max == pytest.approx(tuple(clip[1]))

