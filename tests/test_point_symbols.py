"""Point symbols land on their exact sub-pixel position with their exact size.

Convention: pixel (col, row) covers [col, col + 1) x [row, row + 1) of the grid's pixel space,
so a point mapping to (10.5, 20.5) is centred on pixel (10, 20). A disc of ``size`` points is
``size x dpi / 72`` pixels across. Measured on the rendered alpha: the alpha-weighted centroid
(each pixel weighted at its centre, col + 0.5) is the symbol's centre, the alpha sum its area.

Agg's marker stamping (``draw_markers``) rounds every position to a whole pixel and snaps
straight-edged markers, so markers came out 0 to 1 px right of and below their point.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine

from mapserver.catalog.model import Layer
from mapserver.geo.grid import Grid
from mapserver.geo.sr import from_wkid
from mapserver.render.compose import DrawItem, agg_rgba, render_rgba
from mapserver.render.style import MarkerSymbol, parse_renderer
from mapserver.render.vector import _draw_markers, new_axes
from mapserver.settings import PROJECT_ROOT
from mapserver.sources.features import OID_FIELD, FeatureTable, Field
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer"
RED = (0.8, 0.1, 0.1, 1.0)
# The sub-pixel positions under test sit MARGIN px in from the top-left corner, so that even
# the largest disc (15 pt at 600 dpi = 125 px) lies wholly inside the GRID_PX-square image.
MARGIN = 72.0
GRID_PX = 200


# --- measuring --------------------------------------------------------------------------------
def centroid_and_area(rgba: np.ndarray) -> tuple[float, float, float]:
    """(col, row) alpha-weighted centroid in pixel-space coordinates, and the alpha sum."""
    a = rgba[..., 3].astype(float) / 255.0
    total = a.sum()
    rows, cols = np.indices(a.shape)
    return (float((a * (cols + 0.5)).sum() / total), float((a * (rows + 0.5)).sum() / total),
            float(total))


def disc_area(size_pt: float, dpi: float) -> float:
    return math.pi * (size_pt * dpi / 72.0 / 2.0) ** 2


def assert_disc_at(rgba: np.ndarray, x: float, y: float, size_pt: float, dpi: float) -> None:
    cx, cy, area = centroid_and_area(rgba)
    assert (cx, cy) == (pytest.approx(x, abs=0.05), pytest.approx(y, abs=0.05))
    assert area == pytest.approx(disc_area(size_pt, dpi), rel=0.03)


# --- the edge cases ---------------------------------------------------------------------------
@pytest.fixture(params=[(10.5, 20.5), (10.25, 20.75), (31.0, 7.6)],
                ids=["pixel-centre", "quarter-pixels", "pixel-edge-column"])
def sub_pixel_point(request) -> tuple[float, float]:
    """A point between pixel centres: on one, a quarter pixel off each way, on a column edge."""
    x, y = request.param
    return x + MARGIN, y + MARGIN


@pytest.fixture(params=[96.0, 192.0, 600.0], ids=["screen-dpi", "double-dpi", "huge-dpi"])
def dpi(request) -> float:
    return request.param


@pytest.fixture(params=[6.0, 8.0, 15.0], ids=["6pt", "8pt", "15pt"])
def size_pt(request) -> float:
    return request.param


def pixel_grid(dpi: float) -> Grid:
    """A grid whose map coordinates are its pixel coordinates (y up in the map)."""
    return Grid(sr=from_wkid(3857), transform=Affine(1.0, 0.0, 0.0, 0.0, -1.0, 0.0),
                width=GRID_PX, height=GRID_PX, dpi=dpi)


def circle(size: float, **kw) -> MarkerSymbol:
    return MarkerSymbol(color=RED, size=size, style="esriSMSCircle", **kw)


# --- the drawing function itself -----------------------------------------------------------------
def test_disc_is_centred_on_the_sub_pixel_point_with_its_exact_area(sub_pixel_point, dpi,
                                                                    size_pt):
    grid = pixel_grid(dpi)
    fig, ax = new_axes(grid)
    _draw_markers(ax, np.array([sub_pixel_point]), circle(size_pt), grid, 1.0)
    assert_disc_at(agg_rgba(fig, grid), *sub_pixel_point, size_pt, dpi)


def test_square_keeps_its_exact_side_off_the_pixel_grid(sub_pixel_point, dpi):
    # 8 pt at 96 dpi = 10.67 px: snapped to pixel centres it became 10 or 11 px wide
    grid = pixel_grid(dpi)
    fig, ax = new_axes(grid)
    sym = MarkerSymbol(color=RED, size=8.0, style="esriSMSSquare")
    _draw_markers(ax, np.array([sub_pixel_point]), sym, grid, 1.0)
    cx, cy, area = centroid_and_area(agg_rgba(fig, grid))
    assert (cx, cy) == (pytest.approx(sub_pixel_point[0], abs=0.05),
                        pytest.approx(sub_pixel_point[1], abs=0.05))
    assert area == pytest.approx((8.0 * dpi / 72.0) ** 2, rel=0.01)


def test_many_discs_each_at_its_own_sub_pixel_point(dpi):
    # several points in one collection take the same exact path as a single one
    grid = pixel_grid(dpi)
    fig, ax = new_axes(grid)
    pts = np.array([[MARGIN + 10.5, MARGIN + 20.5], [GRID_PX - 40.25, GRID_PX - 30.75]])
    _draw_markers(ax, pts, circle(6.0), grid, 1.0)
    rgba = agg_rgba(fig, grid)
    rows, cols = np.indices(rgba.shape[:2]) + 0.5
    near = [np.hypot(cols - px, rows - py) for px, py in pts]
    for i, (px, py) in enumerate(pts):  # each disc measured on the pixels nearer its point
        own = rgba.copy()
        own[near[i] > near[1 - i]] = 0
        assert_disc_at(own, px, py, 6.0, dpi)


def test_offset_marker_moves_by_exactly_its_offset_in_points():
    grid = pixel_grid(192.0)
    fig, ax = new_axes(grid)
    x, y = MARGIN + 10.25, MARGIN + 20.75
    _draw_markers(ax, np.array([[x, y]]), circle(8.0, xoffset=3.0, yoffset=1.5), grid, 1.0)
    # 3 pt right, 1.5 pt up (rows grow downwards): 8 px and 4 px at 192 dpi
    assert_disc_at(agg_rgba(fig, grid), x + 8.0, y - 4.0, 8.0, 192.0)


# --- through the compositor, from map coordinates -----------------------------------------------
def point_layer(x: float, y: float, symbol: dict) -> Layer:
    sr = from_wkid(3857)
    table = FeatureTable(geometry=np.array([shapely.Point(x, y)]),
                         columns={OID_FIELD: np.array([1], dtype=np.int64)},
                         fields=[Field(OID_FIELD, "esriFieldTypeOID", OID_FIELD)], sr=sr,
                         geometry_type="esriGeometryPoint")
    renderer = parse_renderer({"type": "simple", "symbol": symbol}, "renderer", [OID_FIELD])
    return Layer(id=0, name="point", kind="feature", renderer=renderer, table=table)


@pytest.mark.parametrize("size_pt", [6.0, 15.0], ids=["6pt", "15pt"])
def test_rendered_point_feature_is_centred_on_its_sub_pixel_position(sub_pixel_point, dpi,
                                                                      size_pt):
    # a 200 px Web Mercator view 2 km across, the point placed at the pixel position under test
    grid = Grid.from_bbox((500000.0, 6000000.0, 502000.0, 6002000.0), GRID_PX, GRID_PX,
                          from_wkid(3857), dpi=dpi)
    mx, my = grid.from_pixels(*sub_pixel_point)
    layer = point_layer(mx, my, {"type": "esriSMS", "style": "esriSMSCircle",
                                 "color": [200, 30, 30, 255], "size": size_pt})
    rgba = render_rgba([DrawItem(layer, idx=np.arange(1), show_labels=False)], grid)
    assert_disc_at(rgba, *sub_pixel_point, size_pt, dpi)


# --- end to end: /export and /legend of the World service ---------------------------------------
@pytest.fixture(scope="module")
def isolated_city() -> tuple[float, float]:
    """A city with no other within 8 degrees, so a 10-degree view holds its marker alone."""
    _meta, _fids, wkb, _values = pyogrio.raw.read(PROJECT_ROOT / "data" / "world" / "cities.gpkg")
    pts = shapely.from_wkb(wkb)
    for i, p in enumerate(pts):
        if abs(p.y) > 60 or abs(p.x) > 170:
            continue
        d = shapely.distance(pts, p)
        d[i] = np.inf
        if d.min() > 8:
            return p.x, p.y
    raise AssertionError("no isolated city")


@pytest.mark.parametrize("dpi, size", [(96, "200,200"), (192, "400,400")],
                         ids=["screen-dpi", "double-dpi"])
def test_exported_city_marker_is_centred_on_the_city(client, isolated_city, dpi, size):
    x, y = isolated_city
    # a 10-degree view with the city a quarter pixel right and three quarters below a pixel
    # corner at 96 dpi (an eighth and three eighths of a pixel at 192 dpi)
    res = 10.0 / 200
    xmin, ymax = x - 100.25 * res, y + 100.75 * res
    big = {"type": "simple", "symbol": {"type": "esriSMS", "style": "esriSMSCircle",
                                        "color": [200, 30, 30, 255], "size": 15}}
    dyn = [{"id": 0, "source": {"type": "mapLayer", "mapLayerId": 0},
            "drawingInfo": {"renderer": big, "showLabels": False}}]
    meta = client.get(f"{WORLD}/export", query_string={
        "bbox": f"{xmin},{ymax - 10},{xmin + 10},{ymax}", "bboxSR": 4326, "imageSR": 4326,
        "size": size, "dpi": dpi, "format": "png32", "transparent": "true",
        "dynamicLayers": json.dumps(dyn), "f": "json"}).get_json()
    assert "href" in meta, meta
    rgba = decode(client.get(meta["href"]).data)
    e = meta["extent"]
    col = (x - e["xmin"]) / (e["xmax"] - e["xmin"]) * meta["width"]
    row = (e["ymax"] - y) / (e["ymax"] - e["ymin"]) * meta["height"]
    assert (col, row) == (pytest.approx(100.25 * dpi / 96), pytest.approx(100.75 * dpi / 96))
    assert_disc_at(rgba, col, row, 15.0, dpi)


@pytest.mark.parametrize("dpi", [96, 192], ids=["screen-dpi", "double-dpi"])
def test_legend_marker_is_centred_in_its_swatch(client, dpi):
    entry = client.get(f"{WORLD}/legend", query_string={"f": "json", "dpi": dpi}).get_json()[
        "layers"][0]["legend"][0]
    rgba = decode(base64.b64decode(entry["imageData"]))
    cx, cy, _area = centroid_and_area(rgba)
    assert (cx, cy) == (pytest.approx(entry["width"] / 2, abs=0.05),
                        pytest.approx(entry["height"] / 2, abs=0.05))
    alpha = rgba[..., 3].astype(int)
    assert np.abs(alpha - alpha[:, ::-1]).max() <= 2 and np.abs(alpha - alpha[::-1]).max() <= 2
