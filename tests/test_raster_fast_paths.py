"""The raster fast paths (render/approx_warp.py, bench/README.md) against the exact paths.

- a reprojected nearest-neighbour raster is gathered along GDAL's own approximate transform
  (row segments, warp chunks) with one cv2.remap: it must match a plain
  ``rasterio.warp.reproject`` of the same grid on >= 99.5 % of the pixels, with no shift;
- an opaque raster is gathered straight onto the canvas: the same pixels as "over";
- "over" on whole uint32 pixels: the same bytes as the byte-wise arithmetic;
- JPEG from RGBX: the same bytes as from RGB;
- a datum transformation, a non-nearest resampling or a mask band take GDAL's exact path.

The sample rasters are the repository's Olinda Landsat scene (data/olinda/L7_ETMs.tif, UTM 25S,
with overviews) and DEM; the edge cases are small synthetic GeoTIFFs written by the fixtures
below, each named after its case.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject

from mapserver import datum
from mapserver.catalog.model import Layer, RasterStyle
from mapserver.encode.image import FORMATS, encode_raster
from mapserver.geo.grid import Grid
from mapserver.geo.sr import from_wkid
from mapserver.render import approx_warp
from mapserver.render.compose import DrawItem, _over_bytes, over, render_rgba
from mapserver.render.raster import colorize, render_raster
from mapserver.sources.rasters import RasterSource, rasterio_crs
from tests.conftest import decode

ROOT = Path(__file__).resolve().parents[1]
LANDSAT = ROOT / "data" / "olinda" / "L7_ETMs.tif"
MERCATOR, WGS84, NAD27, UTM25S = (from_wkid(w) for w in (3857, 4326, 4267, 31985))
RGB = RasterStyle(bands=(3, 2, 1), stretch_min=None, stretch_max=None)


def reference(src: RasterSource, grid: Grid, style: RasterStyle = RGB) -> np.ndarray:
    """A plain rasterio.warp.reproject of the same grid (same overview as the export picks),
    coloured by the layer's style: what the exact path draws."""
    level = src._overview_level(grid)
    nb = max(style.bands)
    kwargs = {} if level is None else {"overview_level": level}
    with rasterio.open(src.path, **kwargs) as ds:
        dest = np.zeros((nb + 1, grid.height, grid.width), dtype=src.dtype)
        reproject(rasterio.band(ds, list(range(1, nb + 1))), dest, src_nodata=src.nodata,
                  dst_transform=grid.transform, dst_crs=rasterio_crs(grid.sr),
                  resampling=Resampling.nearest, dst_alpha=nb + 1, num_threads=1)
    return colorize(dest[[b - 1 for b in style.bands]], dest[nb] > 0, style)


def fast(src: RasterSource, grid: Grid, style: RasterStyle = RGB) -> np.ndarray:
    out = approx_warp.warp_rgba(src, grid, style, colorize)
    assert out is not None, "the fast path declined this view"
    return out


def centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([rows.mean(), cols.mean()])


def assert_matches(ours: np.ndarray, ref: np.ndarray, at_least: float = 0.995) -> None:
    """>= 99.5 % equal RGBA pixels; the covered area, a bright feature and a dark feature in
    the same place (centroids within 0.05 px): no shift."""
    assert ours.shape == ref.shape
    equal = (ours == ref).all(axis=-1).mean()
    assert equal >= at_least, f"only {equal:.4%} of the pixels equal"
    assert (ours[..., 3] > 0).any()
    assert np.abs(centroid(ours[..., 3] > 0) - centroid(ref[..., 3] > 0)).max() < 0.05
    luma = ref[..., :3].astype(int).sum(axis=-1)
    covered = ref[..., 3] > 0
    for feature in (luma > np.percentile(luma[covered], 90),
                    (luma < np.percentile(luma[covered], 10)) & covered):
        ours_luma = ours[..., :3].astype(int).sum(axis=-1)
        mine = np.isin(ours_luma, np.unique(luma[feature])) & (ours[..., 3] > 0)
        # the same pixels, selected by value in both images
        assert np.abs(centroid(mine) - centroid(np.isin(luma, np.unique(luma[feature]))
                                                & covered)).max() < 0.05


@pytest.fixture(scope="module")
def landsat() -> RasterSource:
    return RasterSource.open(LANDSAT)


def olinda_view(size: int, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0,
                rotation: float = 0.0) -> Grid:
    """A Web Mercator view of the Olinda scene (centre shifted by dx, dy scene widths)."""
    with rasterio.open(LANDSAT) as ds:
        left, bottom, right, top = ds.bounds
    from pyproj import Transformer
    t = Transformer.from_crs(31985, 3857, always_xy=True)
    x0, y0 = t.transform(left, bottom)
    x1, y1 = t.transform(right, top)
    w = (x1 - x0) * scale
    cx, cy = (x0 + x1) / 2 + dx * (x1 - x0), (y0 + y1) / 2 + dy * (y1 - y0)
    return Grid.from_bbox((cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2), size, size,
                          MERCATOR, rotation=rotation)


@pytest.mark.parametrize("case, grid", [
    ("inside, magnified", lambda: olinda_view(512, scale=0.4)),
    ("whole scene, odd size", lambda: olinda_view(333, scale=1.05)),
    ("zoomed out: an overview", lambda: olinda_view(128, scale=1.2)),
    ("crosses the raster's edge", lambda: olinda_view(400, scale=0.5, dx=0.4, dy=-0.3)),
    ("mostly outside: warp chunks", lambda: olinda_view(512, scale=2.5, dx=0.3)),
    ("rotated 30 degrees", lambda: olinda_view(300, scale=0.7, rotation=30.0)),
    ("rotated -75 degrees, edge", lambda: olinda_view(256, scale=0.6, dx=-0.4, rotation=-75)),
])
def test_reprojected_landsat_matches_a_rasterio_warp(landsat, case, grid):
    g = grid()
    assert_matches(fast(landsat, g), reference(landsat, g))


def test_the_bench_like_views_match_within_five_hundredths_of_a_percent(landsat):
    """GDAL's own row approximation and warp chunks are reproduced, not just approached: the
    difference left is float32 rounding next to pixel edges."""
    for g in (olinda_view(1024, scale=0.5), olinda_view(1024, scale=2.0, dx=0.2)):
        ours, ref = fast(landsat, g), reference(landsat, g)
        assert (ours == ref).all(axis=-1).mean() >= 0.9995


def test_export_of_a_reprojected_landsat_view_matches_a_rasterio_warp(app, landsat):
    """What a user sees: /export of the Olinda service in Web Mercator (its 2-98 % stretch)."""
    g = olinda_view(400, scale=0.6, dx=0.1)
    resp = app.test_client().get(
        "/arcgis/rest/services/Samples/Olinda/MapServer/export", query_string={
            "bbox": ",".join(repr(v) for v in g.extent), "bboxSR": 3857, "imageSR": 3857,
            "size": "400,400", "format": "png32", "transparent": "true", "layers": "show:0",
            "f": "image"})
    assert resp.mimetype == "image/png", resp.data[:200]
    service = app.extensions["mapserver"].catalog.service("Samples/Olinda")
    style = service.layer(0).raster_style
    assert style.stretch_min is not None  # the percent clip became a byte stretch
    assert_matches(decode(resp.data), reference(landsat, g, style))


# ---- synthetic edge cases --------------------------------------------------------------------

@pytest.fixture
def nodata_partial_bands(tmp_path) -> RasterSource:
    """3-band byte raster, nodata 0: a block where every band is 0 (nodata), a block where only
    two bands are 0 (data: GDAL's nodata is unified across the warped bands)."""
    rng = np.random.default_rng(3)
    data = rng.integers(1, 256, (3, 80, 90), dtype=np.uint8)
    data[:, 10:30, 20:50] = 0
    data[:2, 50:70, 40:80] = 0
    path = tmp_path / "nodata_partial_bands.tif"
    with rasterio.open(path, "w", driver="GTiff", width=90, height=80, count=3, dtype="uint8",
                       nodata=0, crs="EPSG:31985",
                       transform=from_origin(290000, 9120000, 30, 30)) as ds:
        ds.write(data)
    return RasterSource.open(path)


@pytest.fixture
def nodata_nan_float(tmp_path) -> RasterSource:
    """1-band float32 DEM with NaN nodata in a block, stretched 0..100."""
    yy, xx = np.mgrid[0:60, 0:70]
    data = (xx + yy).astype(np.float32)[None]
    data[:, 20:40, 30:50] = np.nan
    path = tmp_path / "nodata_nan_float.tif"
    with rasterio.open(path, "w", driver="GTiff", width=70, height=60, count=1,
                       dtype="float32", nodata=float("nan"), crs="EPSG:31985",
                       transform=from_origin(290000, 9120000, 30, 30)) as ds:
        ds.write(data)
    return RasterSource.open(path)


def view_of(src: RasterSource, size: int, scale: float, rotation: float = 0.0) -> Grid:
    from pyproj import Transformer
    t = Transformer.from_crs(31985, 3857, always_xy=True)
    left, bottom, right, top = src.bounds
    (x0, x1), (y0, y1) = t.transform([left, right], [bottom, top])
    w = (x1 - x0) * scale
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Grid.from_bbox((cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2), size, size,
                          MERCATOR, rotation=rotation)


def test_nodata_in_every_band_is_transparent_and_in_some_bands_is_data(nodata_partial_bands):
    src = nodata_partial_bands
    style = RasterStyle(bands=(1, 2, 3), stretch_min=None, stretch_max=None)
    for g in (view_of(src, 300, 1.2), view_of(src, 257, 0.8, rotation=20)):
        ours, ref = fast(src, g, style), reference(src, g, style)
        assert_matches(ours, ref)
        # the all-zero block is a hole, the two-zero block is drawn (its third band)
        assert ((ours[..., 3] == 0) & (ref[..., 3] > 0)).sum() <= 0.001 * ours[..., 3].size
        assert ((ours[..., 3] > 0) & (ours[..., 0] == 0) & (ours[..., 2] > 0)).any()


def test_nan_nodata_float_dem_with_stretch(nodata_nan_float):
    src = nodata_nan_float
    style = RasterStyle(bands=(1,), stretch_min=(0.0,), stretch_max=(100.0,))
    g = view_of(src, 240, 0.9, rotation=-10)
    ours, ref = fast(src, g, style), reference(src, g, style)
    assert (ours == ref).all(axis=-1).mean() >= 0.995
    assert ((ours[..., 3] == 0) == (ref[..., 3] == 0)).mean() >= 0.998


def test_a_view_that_misses_the_raster_is_empty(landsat):
    g = olinda_view(64, scale=0.2, dx=5.0)
    ours = fast(landsat, g)
    assert not ours[..., 3].any()
    assert (ours == reference(landsat, g)).all()


# ---- when the fast path must not answer ------------------------------------------------------

@pytest.fixture
def stripe_nad27(tmp_path) -> RasterSource:
    """40 x 40 NAD27 pixels; columns 18-20 are 255, the rest 0 (tests/test_datum_...)."""
    data = np.zeros((1, 40, 40), np.uint8)
    data[:, :, 18:21] = 255
    path = tmp_path / "stripe_nad27.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=1, dtype="uint8",
                       crs="EPSG:4267", transform=from_origin(-100.0002, 40.0002, 1e-5, 1e-5)
                       ) as ds:
        ds.write(data)
    return RasterSource.open(path)


def test_a_datum_transformation_takes_the_exact_path(stripe_nad27, monkeypatch):
    src = stripe_nad27
    style = RasterStyle(bands=(1,), stretch_min=None, stretch_max=None)
    layer = Layer(id=0, name="stripe", kind="raster", raster=src, raster_style=style)
    grid = Grid.from_bbox((-100.0006, 40.0002 - 40e-5, -100.0006 + 100e-5, 40.0002), 100, 40,
                          WGS84)
    requested = datum.parse_datum_transformations(json.dumps([1170]))
    op = datum.raster_operation(NAD27, WGS84, requested)
    assert op is not None
    data, valid = src.read(grid, (1,), operation=op)
    expected = colorize(data, valid, style)

    def refuse(*_a, **_k):
        raise AssertionError("the approximate path cannot honour a datum transformation")

    monkeypatch.setattr(approx_warp, "warp_rgba", refuse)
    assert np.array_equal(render_raster(layer, grid, requested), expected)
    # and without a datum transformation the fast path answers, like GDAL's default
    monkeypatch.undo()
    plain = approx_warp.warp_rgba(src, grid, style, colorize)
    assert plain is not None
    assert (plain == reference(src, grid, style)).all(axis=-1).mean() >= 0.995


def test_bilinear_and_mask_bands_are_left_to_gdal(landsat, tmp_path):
    g = olinda_view(64, scale=0.5)
    bilinear = RasterStyle(bands=(1,), stretch_min=None, stretch_max=None,
                           resampling="bilinear")
    assert approx_warp.warp_rgba(landsat, g, bilinear, colorize) is None
    path = tmp_path / "alpha_band.tif"
    with rasterio.open(path, "w", driver="GTiff", width=20, height=20, count=4, dtype="uint8",
                       crs="EPSG:31985", transform=from_origin(290000, 9120000, 30, 30),
                       photometric="RGB", alpha="YES") as ds:
        ds.write(np.full((4, 20, 20), 200, np.uint8))
    src = RasterSource.open(path)
    assert not src.all_valid and src.nodata is None
    assert approx_warp.warp_rgba(src, view_of(src, 32, 1.0), RGB, colorize) is None


# ---- composition and encoding ----------------------------------------------------------------

def test_an_opaque_raster_gathered_onto_the_canvas_is_over(landsat):
    """render_rgba with a background: the raster written straight into the canvas equals the
    raster drawn alone and composed with "over"."""
    g = olinda_view(200, scale=1.3, dx=0.2, rotation=12)
    layer = Layer(id=0, name="landsat", kind="raster", raster=landsat, raster_style=RGB)
    background = (12, 34, 56, 255)
    composed = render_rgba([DrawItem(layer=layer)], g, background=background)
    canvas = np.empty((g.height, g.width, 4), np.uint8)
    canvas[...] = background
    alone = render_raster(layer, g)
    assert (alone[..., 3] == 0).any() and (alone[..., 3] == 255).any()
    assert np.array_equal(composed, over(canvas, alone))


@pytest.mark.parametrize("coverage", [0.02, 0.1, 0.5, 0.9])  # sparse (points) to dense
def test_over_on_uint32_pixels_is_the_byte_arithmetic(coverage):
    rng = np.random.default_rng(11)
    for _ in range(10):
        dst = rng.integers(0, 256, (37, 41, 4), dtype=np.uint8)
        src = rng.integers(0, 256, (37, 41, 4), dtype=np.uint8)
        m = rng.random(dst.shape[:2])
        dst[..., 3][m < 0.3] = 0
        dst[..., 3][m > 0.6] = 255
        m = rng.random(src.shape[:2])
        src[..., 3][m > coverage] = 0
        src[..., 3][m < coverage / 2] = 255
        assert np.array_equal(over(dst, src), _over_bytes(dst, src))


def test_a_same_crs_raster_copied_onto_the_canvas_is_over(landsat):
    """North-up in the raster's own SR (the exact numpy gather): the raster's rectangle is
    copied into the canvas, the rest keeps the layers below, as "over" gives."""
    left, bottom, right, top = landsat.bounds
    w = right - left
    g = Grid.from_bbox((left + 0.6 * w, bottom - 0.2 * w, left + 1.4 * w, bottom + 0.6 * w),
                       160, 160, UTM25S)
    layer = Layer(id=0, name="landsat", kind="raster", raster=landsat, raster_style=RGB)
    background = (250, 240, 230, 255)
    composed = render_rgba([DrawItem(layer=layer)], g, background=background)
    canvas = np.empty((g.height, g.width, 4), np.uint8)
    canvas[...] = background
    alone = render_raster(layer, g)
    assert (alone[..., 3] == 0).any() and (alone[..., 3] == 255).any()
    assert np.array_equal(composed, over(canvas, alone))


def test_jpeg_from_rgbx_is_the_same_file_as_from_rgb(landsat):
    rgba = fast(landsat, olinda_view(256, scale=0.5))
    rgba[..., 3] = 255
    ours = encode_raster(rgba, FORMATS["jpg"], False, 96.0)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba[..., :3]), "RGB").save(buf, "JPEG", quality=75,
                                                                     dpi=(96, 96))
    assert ours == buf.getvalue()


def test_a_view_around_a_pole_is_left_to_gdal(tmp_path):
    """GDAL samples a grid of points for its warp chunks when a pole is in the view; the fast
    path does not emulate that and declines, away from the pole it answers."""
    path = tmp_path / "pole_world_4326.tif"
    rng = np.random.default_rng(5)
    with rasterio.open(path, "w", driver="GTiff", width=72, height=36, count=3, dtype="uint8",
                       crs="EPSG:4326", transform=from_origin(-180, 90, 5, 5)) as ds:
        ds.write(rng.integers(0, 256, (3, 36, 72), dtype=np.uint8))
    src = RasterSource.open(path)
    style = RasterStyle(bands=(1, 2, 3), stretch_min=None, stretch_max=None)
    polar = from_wkid(3413)
    at_pole = Grid.from_bbox((-2e6, -2e6, 2e6, 2e6), 64, 64, polar)
    assert approx_warp.warp_rgba(src, at_pole, style, colorize) is None
    away = Grid.from_bbox((1.0e6, 1.0e6, 3.0e6, 3.0e6), 64, 64, polar)
    assert (fast(src, away, style) == reference(src, away, style)).all(axis=-1).mean() >= 0.995
