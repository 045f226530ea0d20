"""The export's fast paths (bench/README.md) give the same pixels as the general ones they skip.

- same-CRS nearest rasters are gathered with numpy instead of GDAL's warper;
- "over" selects opaque/empty pixels and does arithmetic only on partly transparent ones;
- PNG is written with row filter None and zlib-ng instead of Pillow's encoder;
- a view at exactly an overview's resolution reads that overview.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject

from mapserver.encode.image import FORMATS, encode_raster, png_bytes
from mapserver.geo.grid import Grid
from mapserver.geo.sr import from_wkid
from mapserver.render.compose import _over_arith, over
from mapserver.sources.rasters import RasterSource

ORIGIN = (500000.0, 9000000.0)  # UTM 25S metres, 10 m pixels


@pytest.fixture
def rgb_utm_with_overviews(tmp_path):
    """A 64 x 64 RGB byte raster (distinct value per pixel) with 2x and 4x overviews."""
    path = tmp_path / "rgb_utm_with_overviews.tif"
    rng = np.random.default_rng(7)
    data = rng.integers(0, 256, (3, 64, 64), dtype=np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint8",
                       crs="EPSG:31985", transform=from_origin(*ORIGIN, 10, 10)) as ds:
        ds.write(data)
        ds.build_overviews([2, 4], Resampling.average)
    return str(path), data


def _warped(path: str, grid: Grid, level: int | None) -> np.ndarray:
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(path, **kwargs) as ds:
        dest = np.zeros((4, grid.height, grid.width), dtype=np.uint8)
        reproject(rasterio.band(ds, [1, 2, 3]), dest, dst_transform=grid.transform,
                  dst_crs=ds.crs, resampling=Resampling.nearest, dst_alpha=4, num_threads=1)
    return dest


@pytest.mark.parametrize("bbox, size", [
    ((500000.0, 8999360.0, 500640.0, 9000000.0), 64),   # native: one output pixel per source
    ((500100.0, 8999500.0, 500400.0, 8999800.0), 97),   # zoomed in, odd size, inside
    ((499800.0, 8999300.0, 500900.0, 9000400.0), 50),   # zoomed out past every edge
    ((500003.0, 8999403.0, 500323.0, 8999723.0), 128),  # half-pixel magnification, offset
    ((500070.0, 8999500.0, 500390.0, 8999820.0), 32),   # one to one, whole pixels inside
    ((499900.0, 8999800.0, 500220.0, 9000120.0), 32),   # one to one across the top-left edge
    ((500480.0, 8999200.0, 500800.0, 8999520.0), 32),   # one to one across the bottom right
])
def test_same_crs_gather_matches_gdal_warper(rgb_utm_with_overviews, bbox, size):
    path, _ = rgb_utm_with_overviews
    src = RasterSource.open(path)
    grid = Grid.from_bbox(bbox, size, size, from_wkid(31985))
    data, valid = src.read(grid, (1, 2, 3))
    warped = _warped(path, grid, src._overview_level(grid))
    assert np.array_equal(valid, warped[3] > 0)
    assert np.array_equal(np.where(valid, data, 0), np.where(valid, warped[:3], 0))


def test_gather_keeps_requested_band_order(rgb_utm_with_overviews):
    path, data = rgb_utm_with_overviews
    grid = Grid.from_bbox((500000.0, 8999360.0, 500640.0, 9000000.0), 64, 64, from_wkid(31985))
    out, valid = RasterSource.open(path).read(grid, (3, 2, 1))
    assert valid.all()
    assert np.array_equal(out, data[::-1])


def test_one_to_one_window_read_straight_into_another_dtype(rgb_utm_with_overviews):
    """The window read straight into the answer (grid pixels = raster pixels) only when the
    dtypes agree; asked for float32, the same values come back as float32."""
    path, data = rgb_utm_with_overviews
    grid = Grid.from_bbox((500100.0, 8999460.0, 500420.0, 8999780.0), 32, 32, from_wkid(31985))
    out, valid = RasterSource.open(path).read(grid, (2, 1), out_dtype="float32")
    assert out.dtype == np.float32 and valid.all()
    assert np.array_equal(out, data[[1, 0], 22:54, 10:42].astype(np.float32))


def test_view_at_exactly_an_overview_resolution_uses_that_overview():
    """Web Mercator zoom 13 pixels; a 512 px view of 16 x that size computes as 15.99999..."""
    res = 19.109257071294063
    src = RasterSource(path="zoom13_cog.tif", sr=from_wkid(3857),
                       transform=(res, 0.0, 978393.96205, 0.0, -res, 5987771.047748),
                       width=8192, height=8192, count=3, dtype="uint8", nodata=None,
                       overview_factors=(2, 4, 8, 16),
                       bounds=(978393.96205, 5831228.01382, 1134936.995978, 5987771.047748))
    grid = Grid.from_bbox(src.bounds, 512, 512, from_wkid(3857))
    assert src._overview_level(grid) == 3  # the 16x overview, not the 8x one
    grid = Grid.from_bbox(src.bounds, 1024, 1024, from_wkid(3857))
    assert src._overview_level(grid) == 2


def test_over_select_path_equals_alpha_arithmetic():
    rng = np.random.default_rng(3)
    src = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    dst = rng.integers(0, 256, (40, 30, 4), dtype=np.uint8)
    for arr in (src, dst):  # a third each of empty, opaque and partly transparent pixels
        m = rng.random((40, 30))
        arr[m < 0.33, 3] = 0
        arr[m > 0.66, 3] = 255
    assert np.array_equal(over(dst, src), _over_arith(dst, src))


def test_over_opaque_layer_hides_what_is_below():
    dst = np.zeros((4, 4, 4), dtype=np.uint8)
    src = np.full((4, 4, 4), (10, 20, 30, 255), dtype=np.uint8)
    assert over(dst, src)[2, 2].tolist() == [10, 20, 30, 255]


def test_nothing_over_nothing_is_transparent_black():
    dst = np.full((2, 2, 4), (9, 9, 9, 0), dtype=np.uint8)
    src = np.full((2, 2, 4), (7, 7, 7, 0), dtype=np.uint8)
    src[0, 0] = (200, 0, 0, 128)
    out = over(dst, src)
    assert out[1, 1].tolist() == [0, 0, 0, 0]
    assert out[0, 0].tolist() == [200, 0, 0, 128]


@pytest.mark.parametrize("channels, mode", [(4, "RGBA"), (3, "RGB")])
def test_png_writer_round_trips_pixels_and_dpi(channels, mode):
    px = np.random.default_rng(5).integers(0, 256, (37, 53, channels), dtype=np.uint8)
    im = Image.open(io.BytesIO(png_bytes(px, 2, 96)))
    assert im.mode == mode and im.size == (53, 37)
    assert round(im.info["dpi"][0]) == 96
    assert np.array_equal(np.asarray(im), px)


def _photo_and_flat(size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Imagery (smooth gradients plus sensor noise: compressible, yet few pixels equal their
    neighbour), and a flat map: two fills, a transparent margin and a 1 px line."""
    y, x = np.mgrid[0:size, 0:size]
    noise = np.random.default_rng(3).integers(0, 12, (size, size, 3))
    photo = np.empty((size, size, 4), dtype=np.uint8)
    photo[..., :3] = (np.stack([x, y, (x + y) // 2], axis=-1) + noise).clip(0, 255)
    photo[..., 3] = 255
    flat = np.zeros((size, size, 4), dtype=np.uint8)
    flat[20:100, 10:150] = (240, 235, 220, 255)
    flat[100:150, 30:90] = (200, 30, 30, 255)
    flat[60, :] = (128, 128, 128, 255)
    return photo, flat


@pytest.mark.parametrize("level", [0, 1, 2, 6, 9])
def test_png_deflater_choice_is_lossless_at_every_level(level):
    """Imagery goes to libdeflate, maps with runs to zlib-ng (encode/image.deflated): both
    decode to the very pixels, with the same header and dpi."""
    for px in _photo_and_flat():
        im = Image.open(io.BytesIO(png_bytes(px, level, 96)))
        assert im.mode == "RGBA" and round(im.info["dpi"][0]) == 96
        assert np.array_equal(np.asarray(im), px)


def test_png_deflater_is_libdeflate_for_imagery_and_zlib_ng_for_runs(monkeypatch):
    import deflate

    from mapserver.encode import image

    photo, flat = _photo_and_flat()
    used = []
    real = deflate.zlib_compress
    monkeypatch.setattr(image.deflate, "zlib_compress",
                        lambda data, level: used.append(("libdeflate", level)) or real(data,
                                                                                       level))
    png_bytes(photo, 2, 96)
    png_bytes(flat, 2, 96)
    png_bytes(photo, 6, 96)
    assert used == [("libdeflate", 1), ("libdeflate", 5)]  # the flat map took zlib-ng
    # and the imagery about as small as zlib-ng's at the asked level (bench images: within
    # 1 %; this synthetic one: 2.8 % bigger), and really compressed
    from zlib_ng import zlib_ng
    raw = np.concatenate([np.zeros((160, 1), np.uint8), photo.reshape(160, -1)], axis=1)
    ours, zlib_ng_alone = len(png_bytes(photo, 2, 96)), len(zlib_ng.compress(raw.tobytes(), 2))
    assert ours <= 1.05 * zlib_ng_alone and ours < 0.8 * raw.size


def test_png24_opaque_is_rgb_and_png32_keeps_alpha():
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[...] = (12, 34, 56, 255)
    rgba[0, 0, 3] = 100
    im32 = Image.open(io.BytesIO(encode_raster(rgba, FORMATS["png32"], True, 96)))
    assert im32.getpixel((0, 0)) == (12, 34, 56, 100)
    rgba[0, 0, 3] = 255
    im24 = Image.open(io.BytesIO(encode_raster(rgba, FORMATS["png24"], False, 96)))
    assert im24.mode == "RGB" and im24.getpixel((5, 5)) == (12, 34, 56)
