"""Vector export (issue 2): countries in their class-breaks colour, in EPSG:4326 and 3857,
symbol sizes that follow dpi, and transparent versus white backgrounds.

Interior points come from the source data (shapely ``point_on_surface``) and are placed on
the image with the extent the export JSON returns, as a client would.
"""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import Transformer

from mapserver.settings import PROJECT_ROOT
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
MERC = Transformer.from_crs(4326, 3857, always_xy=True)


def _read(path: str) -> dict[str, tuple[shapely.Geometry, dict]]:
    meta, _fids, wkb, values = pyogrio.raw.read(PROJECT_ROOT / "data" / path)
    fields = list(meta["fields"])
    geoms = shapely.from_wkb(wkb)
    return {str(values[fields.index("name")][i]):
            (geoms[i], {f: values[j][i] for j, f in enumerate(fields)})
            for i in range(len(geoms))}


@pytest.fixture(scope="module")
def countries() -> dict[str, tuple[shapely.Geometry, dict]]:
    return _read("world/countries.gpkg")


@pytest.fixture(scope="module")
def cities() -> dict[str, tuple[shapely.Geometry, dict]]:
    return _read("world/cities.gpkg")


def export(client, **params) -> tuple[np.ndarray, dict]:
    """Export with f=json, fetch the href, return (RGBA pixels, the JSON)."""
    meta = client.get(WORLD, query_string={**params, "f": "json"}).get_json()
    assert "href" in meta, meta
    return decode(client.get(meta["href"]).data), meta


def to_pixel(meta: dict, x: float, y: float) -> tuple[int, int]:
    e = meta["extent"]
    col = (x - e["xmin"]) / (e["xmax"] - e["xmin"]) * meta["width"]
    row = (e["ymax"] - y) / (e["ymax"] - e["ymin"]) * meta["height"]
    return int(col), int(row)


def interior(geom: shapely.Geometry) -> shapely.Point:
    """A point well inside the largest part (away from borders and antialiased edges)."""
    parts = list(getattr(geom, "geoms", [geom]))
    largest = max(parts, key=lambda g: g.area)
    return shapely.point_on_surface(largest.buffer(-0.5 if largest.area > 10 else 0))


COLOURS = [("Brazil", (240, 59, 32)),      # 211 M: "100 - 500 million"
           ("China", (189, 0, 38)),        # 1.4 G: "over 500 million"
           ("Canada", (254, 204, 92)),     # 37.6 M: "10 - 50 million"
           ("Chad", (254, 204, 92)),       # 15.9 M: "10 - 50 million"
           ("Australia", (254, 204, 92))]  # 25.4 M: "10 - 50 million"


@pytest.mark.parametrize("name, colour", COLOURS, ids=[c[0] for c in COLOURS])
def test_country_renders_in_its_class_colour_in_wgs84(client, countries, name, colour):
    img, meta = export(client, bbox="-180,-90,180,90", bboxSR=4326, imageSR=4326,
                       size="720,360", layers="show:1", format="png32")
    p = interior(countries[name][0])
    col, row = to_pixel(meta, p.x, p.y)
    assert tuple(img[row, col]) == (*colour, 255)


@pytest.mark.parametrize("name, colour", COLOURS[:3], ids=[c[0] for c in COLOURS[:3]])
def test_country_renders_in_its_class_colour_in_web_mercator(client, countries, name, colour):
    img, meta = export(client, bbox="-180,-70,180,75", bboxSR=4326, imageSR=3857,
                       size="600,500", layers="show:1", format="png32")
    assert meta["extent"]["spatialReference"] == {"wkid": 102100, "latestWkid": 3857}
    p = interior(countries[name][0])
    col, row = to_pixel(meta, *MERC.transform(p.x, p.y))
    assert tuple(img[row, col]) == (*colour, 255)


def test_brazil_class_comes_from_pop_est(countries):
    assert 100e6 < countries["Brazil"][1]["pop_est"] < 500e6


def _isolated_city(cities: dict) -> tuple[str, shapely.Point]:
    """A city at least 8 degrees from any other, so its marker stands alone."""
    names = list(cities)
    pts = shapely.points([(cities[n][0].x, cities[n][0].y) for n in names])
    for i, n in enumerate(names):
        p = cities[n][0]
        if abs(p.y) > 60 or abs(p.x) > 170:
            continue
        d = shapely.distance(pts, p)
        d[i] = np.inf
        if d.min() > 8:
            return n, p
    raise AssertionError("no isolated city")


def _marker_diameter(img: np.ndarray, col: int, row: int, r: int) -> float:
    """Equivalent diameter of the opaque blob around (col, row): sqrt(4 * area / pi)."""
    win = img[max(row - r, 0):row + r, max(col - r, 0):col + r, 3].astype(float) / 255.0
    return float(np.sqrt(4.0 * win.sum() / np.pi))


def test_doubling_dpi_doubles_the_city_marker_diameter(client, cities):
    _name, p = _isolated_city(cities)
    bbox = f"{p.x - 5},{p.y - 5},{p.x + 5},{p.y + 5}"
    common = {"bbox": bbox, "bboxSR": 4326, "imageSR": 4326, "layers": "show:0",
              "format": "png32", "transparent": "true"}
    img96, m96 = export(client, size="200,200", dpi=96, **common)
    img192, m192 = export(client, size="400,400", dpi=192, **common)
    assert m96["extent"] == m192["extent"]
    assert m192["scale"] == pytest.approx(m96["scale"])  # same ground per inch
    d96 = _marker_diameter(img96, *to_pixel(m96, p.x, p.y), 20)
    d192 = _marker_diameter(img192, *to_pixel(m192, p.x, p.y), 40)
    # 6 pt marker + 0.75 pt outline = 6.75 pt = 9 px at 96 dpi, 18 px at 192 dpi
    assert d96 == pytest.approx(9.0, abs=1.5)
    assert d192 / d96 == pytest.approx(2.0, rel=0.08)


def test_doubling_dpi_doubles_the_country_outline_width(client):
    # the Chad-Sudan border runs north-south through rows 10-40 % of this view, between two
    # countries of the same class colour, with no label nearby
    common = {"bbox": "20,10,26,16", "bboxSR": 4326, "imageSR": 4326, "layers": "show:1",
              "format": "png32"}
    fill = np.array([254, 204, 92], dtype=float)
    line = np.array([110, 110, 110], dtype=float) - fill
    widths = []
    for size, dpi in (("300,300", 96), ("600,600", 192)):
        img, _meta = export(client, size=size, dpi=dpi, **common)
        h = img.shape[0]
        band = img[int(0.1 * h):int(0.4 * h), :, :3].astype(float) - fill
        ink = np.clip(band @ line / (line @ line), 0, 1)  # 1 = outline colour, 0 = fill
        widths.append(float(np.median(ink.sum(axis=1))))
    # 0.5 pt = 0.67 px at 96 dpi, 1.33 px at 192 dpi (antialiased coverage summed per row)
    # (rows cut the slanted border obliquely, so a row sees a little more than the width)
    assert 0.5 < widths[0] < 1.4
    assert widths[1] / widths[0] == pytest.approx(2.0, rel=0.15)


def test_transparent_background_is_alpha_zero_over_the_ocean(client):
    img, meta = export(client, bbox="-180,-90,180,90", bboxSR=4326, size="360,180",
                       format="png32", transparent="true")
    col, row = to_pixel(meta, -140.0, -30.0)  # South Pacific
    assert img[row, col, 3] == 0


def test_opaque_background_is_white_over_the_ocean(client):
    for fmt in ("png32", "png", "jpg"):
        img, meta = export(client, bbox="-180,-90,180,90", bboxSR=4326, size="360,180",
                           format=fmt, transparent="false")
        col, row = to_pixel(meta, -140.0, -30.0)
        assert tuple(img[row, col]) == (255, 255, 255, 255), fmt


def test_transparent_paletted_png_keeps_the_ocean_clear(client, countries):
    img, meta = export(client, bbox="-180,-90,180,90", bboxSR=4326, size="360,180",
                       format="png8", transparent="true", layers="show:1")
    col, row = to_pixel(meta, -140.0, -30.0)
    assert img[row, col, 3] == 0
    p = interior(countries["Brazil"][0])
    col, row = to_pixel(meta, p.x, p.y)
    assert tuple(img[row, col]) == (240, 59, 32, 255)
