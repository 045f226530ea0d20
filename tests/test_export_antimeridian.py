"""Views across the antimeridian of a shifted projection, as the ArcGIS Maps SDK asks for them.

The SDK draws a wrap-around MapView by asking for images in a WKT SR whose Central_Meridian is
the view's centre (Web Mercator Auxiliary Sphere, or Plate Carrée in "Degrees" of 111319.491 m
for geographic maps). Countries stored in -180..180 cross that projection's antimeridian
(lon0 + 180) and must be cut there, not smeared across the image; a view wider than the world
shows world copies. The checks are per pixel: a pixel is drawn exactly when its centre,
inverse-projected to lon/lat, lies inside a country (pixels whose corners disagree, the
antialiased edge, are left out). Rasters reprojected into these SRs equal a rasterio warp of
the same grid.
"""

from __future__ import annotations

import json

import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import reproject

from mapserver.settings import PROJECT_ROOT
from tests.conftest import decode

GCS = ('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
       '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')
# the two SRs the SDK sends (its own WKT spelling), with the central meridian to fill in
MERCATOR = ('PROJCS["WGS_1984_Web_Mercator_Auxiliary_Sphere",' + GCS
            + ',PROJECTION["Mercator_Auxiliary_Sphere"],PARAMETER["False_Easting",0.0],'
            'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",{cm}],'
            'PARAMETER["Standard_Parallel_1",0.0],PARAMETER["Auxiliary_Sphere_Type",0.0],'
            'UNIT["Meter",1.0]]')
PLATE_CARREE = ('PROJCS["WGS_1984_Plate_Carree",' + GCS + ',PROJECTION["Plate_Carree"],'
                'PARAMETER["False_Easting",0.0],PARAMETER["False_Northing",0.0],'
                'PARAMETER["Central_Meridian",{cm}],UNIT["Degrees",111319.491]]')
HALF_WORLD = {"mercator": 20037508.342789244, "plate_carree": 180.0}
TOP = {"mercator": 15000000.0, "plate_carree": 80.0}  # y extent shown (~80° N/S)
EXPORT = "/arcgis/rest/services/World/MapServer/export"
FILL = [30, 90, 200, 255]
# countries only, one opaque fill, no outline and no labels: a pixel is land or empty
COUNTRIES = json.dumps([{
    "id": 1, "source": {"type": "mapLayer", "mapLayerId": 1},
    "drawingInfo": {"showLabels": False, "renderer": {"type": "simple", "symbol": {
        "type": "esriSFS", "style": "esriSFSSolid", "color": FILL}}}}])


@pytest.fixture(scope="module")
def land() -> shapely.Geometry:
    layer = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())["layers"][1]
    _meta, _fids, wkb, _fields = pyogrio.raw.read(PROJECT_ROOT / "data" / layer["source"],
                                                  layer=layer.get("sourceLayer"))
    geom = shapely.union_all(shapely.from_wkb(wkb))
    shapely.prepare(geom)
    return geom


def inside_land(land: shapely.Geometry, crs: pyproj.CRS, xs: np.ndarray, ys: np.ndarray
                ) -> np.ndarray:
    """Whether map points (in ``crs``) lie on land, their longitude wrapped as PROJ does."""
    lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        xs, ys, errcheck=False)
    lon = (np.asarray(lon) + 180.0) % 360.0 - 180.0
    return shapely.contains_xy(land, lon, np.asarray(lat))


def export(client, wkt: str, bbox: tuple[float, float, float, float], size: tuple[int, int],
           **extra: str) -> tuple[np.ndarray, dict]:
    sr = json.dumps({"wkt": wkt})
    meta = client.get(EXPORT, query_string={
        "bbox": ",".join(repr(v) for v in bbox), "bboxSR": sr, "imageSR": sr,
        "size": f"{size[0]},{size[1]}", "format": "png32", "transparent": "true",
        "dynamicLayers": COUNTRIES, "f": "json", **extra}).get_json()
    assert "href" in meta, meta
    return decode(client.get(meta["href"]).data), meta


def check_pixels(img: np.ndarray, meta: dict, crs: pyproj.CRS, land: shapely.Geometry,
                 skip: np.ndarray | None = None) -> tuple[int, int]:
    """(pixels checked, pixels wrong): drawn exactly when the centre lies on land."""
    h, w = img.shape[:2]
    ext = meta["extent"]
    res = (ext["xmax"] - ext["xmin"]) / w
    cols, rows = np.meshgrid(np.arange(w + 1), np.arange(h + 1))
    cx, cy = ext["xmin"] + cols * res, ext["ymax"] - rows * res
    corner = inside_land(land, crs, cx.ravel(), cy.ravel()).reshape(h + 1, w + 1)
    agree_in = corner[:-1, :-1] & corner[1:, :-1] & corner[:-1, 1:] & corner[1:, 1:]
    agree_out = ~(corner[:-1, :-1] | corner[1:, :-1] | corner[:-1, 1:] | corner[1:, 1:])
    mx, my = ext["xmin"] + (cols[:-1, :-1] + 0.5) * res, ext["ymax"] - (rows[:-1, :-1] + 0.5) * res
    centre = inside_land(land, crs, mx.ravel(), my.ravel()).reshape(h, w)
    drawn = img[..., 3] > 127
    sure = (agree_in | agree_out) & (agree_in == centre)
    if skip is not None:
        sure &= ~skip
    return int(sure.sum()), int((drawn != centre)[sure].sum())


CASES = [(proj, cm, view) for proj in ("mercator", "plate_carree") for cm in (10, 175, -150)
         for view in ("across", "wider_than_world")]


@pytest.mark.parametrize(("proj", "cm", "view"), CASES)
def test_countries_are_cut_at_the_shifted_antimeridian(client, land, proj, cm, view):
    wkt = (MERCATOR if proj == "mercator" else PLATE_CARREE).format(cm=cm)
    half, top = HALF_WORLD[proj], TOP[proj]
    if view == "across":  # 0.6 worlds, centred so the projection's antimeridian is inside
        bbox = (0.55 * half, -top, 1.75 * half, top)
    else:  # 1.6 worlds: two copies side by side
        bbox = (-1.6 * half, -top, 1.6 * half, top)
    w = 480
    h = max(40, round(w * 2 * top / (bbox[2] - bbox[0])))
    img, meta = export(client, wkt, bbox, (w, h))
    crs = pyproj.CRS.from_wkt(wkt)
    checked, wrong = check_pixels(img, meta, crs, land)
    assert checked > 0.9 * w * h
    drawn = (img[..., 3] > 127).mean()
    assert 0.15 < drawn < 0.6, f"{drawn:.1%} drawn"  # land, not bands across the ocean
    assert wrong <= 0.002 * checked, f"{wrong} of {checked} pixels wrong"
    assert (img[..., :3][img[..., 3] == 255] == FILL[:3]).all()


def test_polygon_crossing_the_cut_keeps_both_halves(client, land):
    """Russia crosses the antimeridian of central meridian 10 (170° W): its Chukotka end
    east of 170° W stays with the rest of Russia at the right edge of the world, Alaska
    starts at the left edge; no band joins them across the map."""
    wkt = MERCATOR.format(cm=10)
    half = HALF_WORLD["mercator"]
    img, meta = export(client, wkt, (-half, -TOP["mercator"], half, TOP["mercator"]), (720, 540))
    crs = pyproj.CRS.from_wkt(wkt)
    checked, wrong = check_pixels(img, meta, crs, land)
    assert wrong <= 0.002 * checked
    # the Bering Strait straddles the cut: Chukotka (178° E and 174° W) at the right edge,
    # Alaska (165° W) at the left edge
    tr = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    for lon, lat, right in ((178.0, 66.0, True), (-174.0, 67.0, True), (-165.0, 65.5, False)):
        x, y = tr.transform(lon, lat)
        ext = meta["extent"]
        res = (ext["xmax"] - ext["xmin"]) / img.shape[1]
        col, row = int((x - ext["xmin"]) / res), int((ext["ymax"] - y) / res)
        assert img[row - 1:row + 2, col - 1:col + 2, 3].max() == 255, (lon, lat, x)
        assert (col > img.shape[1] * 0.9) if right else (col < img.shape[1] * 0.1)


def test_shifted_views_of_a_raster_match_a_rasterio_warp(client):
    """The Olinda Landsat layer (UTM 25S) into Web Mercator centred at 175° (Olinda, at
    35° W, lies at 150° east of the centre) equals rasterio's warp of the same grid."""
    path = PROJECT_ROOT / "data" / "olinda" / "L7_ETMs.tif"
    wkt = MERCATOR.format(cm=175)
    crs = pyproj.CRS.from_wkt(wkt)
    with rasterio.open(path) as ds:
        data, src_t, src_crs = ds.read([3, 2, 1]), ds.transform, ds.crs
        x0, y0 = pyproj.Transformer.from_crs(ds.crs, crs, always_xy=True).transform(
            *ds.xy(ds.height // 2, ds.width // 2))
    half = 4000.0
    sr = json.dumps({"wkt": wkt})
    meta = client.get("/arcgis/rest/services/Samples/Olinda/MapServer/export", query_string={
        "bbox": f"{x0 - half!r},{y0 - half!r},{x0 + half!r},{y0 + half!r}", "bboxSR": sr,
        "imageSR": sr, "size": "200,200", "format": "png32", "transparent": "true",
        "layers": "show:0", "f": "json"}).get_json()
    img = decode(client.get(meta["href"]).data)
    ext = meta["extent"]
    res = (ext["xmax"] - ext["xmin"]) / 200
    dst_t = Affine(res, 0, ext["xmin"], 0, -res, ext["ymax"])
    dest = np.zeros((3, 200, 200), dtype=data.dtype)
    alpha = np.zeros((1, 200, 200), dtype=np.uint8)
    for src, dst in ((data, dest), (np.full((1, *data.shape[1:]), 255, np.uint8), alpha)):
        reproject(src, dst, src_transform=src_t, src_crs=src_crs, dst_transform=dst_t,
                  dst_crs=rasterio.crs.CRS.from_proj4(crs.to_proj4()),
                  resampling=Resampling.nearest)
    inside = alpha[0] > 0
    assert inside.mean() > 0.9
    assert ((img[..., 3] > 0) == inside).mean() > 0.995
    # the stretch maps equal source values to equal colours: compare value classes
    src_key = dest.astype(np.int64).transpose(1, 2, 0)[inside]
    got = img[..., :3].astype(np.int64)[inside]
    pairs = {}
    mismatched = 0
    for s, g in zip(map(tuple, src_key), map(tuple, got), strict=True):
        if pairs.setdefault(s, g) != g:
            mismatched += 1
    assert mismatched <= 0.005 * len(src_key)


def test_a_normal_view_still_draws_in_one_pass(client, land):
    """Central meridian 0 (the plain Web Mercator WKT) keeps the fast path: no cut, same
    pixels as EPSG:3857."""
    wkt = MERCATOR.format(cm=0.0)
    bbox = (-15000000.0, -8000000.0, 15000000.0, 12000000.0)
    a, _ = export(client, wkt, bbox, (300, 200))
    sr = "3857"
    meta = client.get(EXPORT, query_string={
        "bbox": ",".join(repr(v) for v in bbox), "bboxSR": sr, "imageSR": sr,
        "size": "300,200", "format": "png32", "transparent": "true",
        "dynamicLayers": COUNTRIES, "f": "json"}).get_json()
    b = decode(client.get(meta["href"]).data)
    assert (a == b).all()


OTHER_PROJECTIONS = {
    # conic, central meridian 175: its antimeridian (5° W) runs through Europe and Africa
    "conic_cm175": ("+proj=lcc +lat_1=30 +lat_2=60 +lat_0=40 +lon_0=175 +datum=WGS84 +units=m "
                    "+no_defs", (-9e6, -6e6, 9e6, 9e6)),
    # azimuthal around the North Pole, central meridian -150: the pole is in the view
    "polar_azimuthal_cm-150": ("+proj=laea +lat_0=90 +lon_0=-150 +datum=WGS84 +units=m "
                               "+no_defs", (-7e6, -7e6, 7e6, 7e6)),
}


@pytest.mark.parametrize("name", sorted(OTHER_PROJECTIONS))
def test_conic_and_azimuthal_views_are_cut_too(client, land, name):
    proj, bbox = OTHER_PROJECTIONS[name]
    wkt = pyproj.CRS.from_proj4(proj).to_wkt()
    img, meta = export(client, wkt, bbox, (360, round(360 * (bbox[3] - bbox[1])
                                                      / (bbox[2] - bbox[0]))))
    crs = pyproj.CRS.from_wkt(wkt)
    # pixels outside the projection's world (the wedge a cone leaves open at its
    # antimeridian, where the inverse projection only wraps around) must stay empty
    h, w = img.shape[:2]
    ext = meta["extent"]
    res = (ext["xmax"] - ext["xmin"]) / w
    cols, rows = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    mx, my = ext["xmin"] + cols * res, ext["ymax"] - rows * res
    lon, lat = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(
        mx.ravel(), my.ravel(), errcheck=False)
    bx, by = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(
        lon, lat, errcheck=False)
    outside = ~(np.hypot(np.asarray(bx) - mx.ravel(), np.asarray(by) - my.ravel())
                < 0.01 * res).reshape(h, w)
    assert (img[..., 3][outside] == 0).all()
    inner = img.copy()
    inner[outside] = 0
    checked, wrong = check_pixels(inner, meta, crs, land, skip=outside)
    assert checked > 0.8 * (~outside).sum()
    assert wrong <= 0.002 * checked, f"{wrong} of {checked} pixels wrong"
