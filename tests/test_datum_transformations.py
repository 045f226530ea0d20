"""datumTransformations (mapserver/datum.py): which datum transformation takes data to imageSR.

Expected positions are computed here with pyproj from each EPSG transformation's own PROJ
pipeline (which takes latitude first), independently of datum.py's pipeline building:

- vectors, forward: the `Samples/Demo` layer 4 square (NAD27, 0.001 deg around 100 W 40 N)
  drawn into Web Mercator / WGS 84;
- vectors, reverse (the documented ArcGIS use: WGS 84 data, NAD27 map): the `World` service's
  Countries drawn into imageSR 4267, where the US-Canada border (a WGS 84 parallel, 49 N) and
  the Alaska-Yukon border (a WGS 84 meridian, 141 W) land where the reversed transformation
  puts them;
- rasters: a synthetic NAD27 GeoTIFF with a 3-pixel stripe warped into WGS 84;
- parsing: WKIDs (EPSG and Esri), {"wkt"} (WKT2 and Esri GEOGTRAN), composites, and the
  ArcGIS errors for what PROJ cannot do.
"""

from __future__ import annotations

import json

import numpy as np
import pyproj
import pytest
import rasterio
from pyproj.crs import CoordinateOperation
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import reproject

from mapserver import datum
from mapserver.errors import InvalidParameter
from mapserver.geo.grid import Grid
from mapserver.geo.sr import from_wkid
from mapserver.sources.rasters import RasterSource, rasterio_crs
from tests.conftest import decode

DEMO_EXPORT = "/arcgis/rest/services/Samples/Demo/MapServer/export"
WORLD_EXPORT = "/arcgis/rest/services/World/MapServer/export"
IMAGE = {"f": "image", "format": "png32", "transparent": "true"}
NAD27, WGS84, NAD83 = from_wkid(4267), from_wkid(4326), from_wkid(4269)
MERCATOR = from_wkid(3857)


def parse(value: object) -> tuple[datum.Requested, ...]:
    return datum.parse_datum_transformations(json.dumps(value))


def epsg(code: int, lon: float, lat: float, inverse: bool = False) -> tuple[float, float]:
    """(lon, lat) through EPSG transformation ``code`` (forward: its source datum to its
    target datum), using PROJ's pipeline for that one operation."""
    t = pyproj.Transformer.from_pipeline(CoordinateOperation.from_epsg(code).to_proj4())
    la, lo = t.transform(lat, lon, direction="INVERSE" if inverse else "FORWARD")
    return lo, la


def error(client, url: str, **params) -> dict:
    r = client.get(url, query_string={"bbox": "0,0,50,10", "size": "50,10", "f": "json",
                                      **params})
    assert r.status_code == 200
    return r.get_json()


def bad(*details: str) -> dict:
    return {"error": {"code": 400, "message": "Invalid or missing input parameters.",
                      "details": list(details)}}


# ---- choose(): the transformer, in both directions -----------------------------------------

def test_choose_runs_a_transformation_forward_and_reversed():
    for code in (1170, 1172):
        req = parse([code])
        forward = datum.choose(NAD27, WGS84, req)
        reverse = datum.choose(WGS84, NAD27, req)
        assert forward is not None and reverse is not None
        assert forward.transform(-110.0, 49.0) == pytest.approx(epsg(code, -110, 49), abs=1e-9)
        assert reverse.transform(-110.0, 49.0) == pytest.approx(
            epsg(code, -110, 49, inverse=True), abs=1e-9)
    a = datum.choose(WGS84, NAD27, parse([1170])).transform(-110.0, 49.0)
    b = datum.choose(WGS84, NAD27, parse([1172])).transform(-110.0, 49.0)
    assert abs(a[0] - b[0]) > 1e-4 and abs(a[1] - b[1]) > 1e-4  # about 12 m each way


def test_choose_takes_the_first_transformation_that_connects_the_pair():
    req = parse([1251, 1172, 1170])  # NAD83 to WGS 84 (2) does not connect NAD27 to WGS 84
    assert datum.choose(NAD27, WGS84, req).transform(-100.0, 40.0) == pytest.approx(
        epsg(1172, -100, 40), abs=1e-9)
    assert datum.choose(NAD27, WGS84, parse([1251])) is None
    assert datum.choose(WGS84, MERCATOR, parse([1172])) is None  # one datum: nothing to do
    assert datum.choose(NAD27, NAD27, parse([1172])) is None
    assert datum.choose(NAD27, WGS84, ()) is None


def test_choose_handles_projected_sources_and_targets():
    """NAD27 / UTM 14N -> Web Mercator: inverse UTM, the transformation, Web Mercator."""
    req = parse([1172])
    x, y = pyproj.Transformer.from_crs(4267, 26714, always_xy=True).transform(-100.0, 40.0)
    got = datum.choose(from_wkid(26714), MERCATOR, req).transform(x, y)
    lon, lat = epsg(1172, -100, 40)
    assert got == pytest.approx(
        pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat), abs=1e-4)
    back = datum.choose(MERCATOR, from_wkid(26714), req).transform(*got)
    assert back == pytest.approx((x, y), abs=1e-3)


def test_composite_is_used_in_the_direction_it_names_or_reversed():
    """NAD27 -> WGS 84 (1172) -> NAD83 (1251 reversed): the named direction is the only one
    in which the steps chain; for NAD83 -> NAD27 the whole chain runs backwards."""
    req = parse([{"geoTransforms": [{"wkid": 1172, "transformForward": True},
                                    {"wkid": 1251, "transformForward": False}]}])
    lon, lat = epsg(1251, *epsg(1172, -100, 40), inverse=True)
    there = datum.choose(NAD27, NAD83, req).transform(-100.0, 40.0)
    assert there == pytest.approx((lon, lat), abs=1e-9)
    assert datum.choose(NAD83, NAD27, req).transform(*there) == pytest.approx(
        (-100.0, 40.0), abs=1e-8)
    # an Esri step PROJ knows: WGS_1984_(ITRF00)_To_NAD_1983 (ESRI:108190)
    esri = parse([{"geoTransforms": [{"wkid": 1172, "transformForward": True},
                                     {"wkid": 108190, "transformForward": True}]}])
    other = datum.choose(NAD27, NAD83, esri).transform(-100.0, 40.0)
    assert abs(other[0] - there[0]) > 1e-6


# ---- vectors through /export: reverse direction (WGS 84 data, NAD27 map) -------------------

HALF = 0.01  # degrees: 800 px views of 0.02 deg, 2.5e-5 deg (2-3 m) per pixel
SIZE = 800


def world_in_nad27(client, lon: float, lat: float, transformations: object | None
                   ) -> np.ndarray:
    params = {**IMAGE, "bbox": f"{lon - HALF},{lat - HALF},{lon + HALF},{lat + HALF}",
              "bboxSR": "4267", "imageSR": "4267", "size": f"{SIZE},{SIZE}", "layers": "show:1"}
    if transformations is not None:
        params["datumTransformations"] = json.dumps(transformations)
    r = client.get(WORLD_EXPORT, query_string=params)
    assert r.mimetype == "image/png", r.data[:300]
    return decode(r.data)


def edge(line: np.ndarray) -> float:
    """Where the fill changes along a line of pixels, in pixels from its start: the pixels
    count by how much of the first end's colour they hold (green channel: Canada's yellow
    is about 200, the USA's red 59), so antialiased edges give a fraction."""
    g = line[:, 1].astype(float)
    first, last = g[:5].mean(), g[-5:].mean()
    assert abs(first - last) > 100
    return float(np.clip((g - last) / (first - last), 0, 1).sum())


def to_nad27(code: int, a: tuple[float, float], b: tuple[float, float], *, at_lon=None,
             at_lat=None) -> float:
    """The WGS 84 segment a-b taken to NAD27 by ``code`` reversed: its latitude at NAD27
    longitude ``at_lon``, or its longitude at NAD27 latitude ``at_lat``."""
    (x0, y0), (x1, y1) = epsg(code, *a, inverse=True), epsg(code, *b, inverse=True)
    if at_lon is not None:
        return y0 + (y1 - y0) * (at_lon - x0) / (x1 - x0)
    return x0 + (x1 - x0) * (at_lat - y0) / (y1 - y0)


def test_world_into_nad27_moves_the_us_canada_border_as_proj_predicts(client):
    """The 49th parallel (a WGS 84 parallel in the data) drawn in NAD27: its row follows the
    requested transformation, applied from the map's datum back to the data's."""
    lon, lat = -108.5, 49.0  # on the segment 110.05 W - 107.05 W of the border
    top, res, col = lat + HALF, 2 * HALF / SIZE, 100
    col_lon = lon - HALF + (col + 0.5) * res
    rows = {}
    images = {}
    for code in (1170, 1172):
        images[code] = img = world_in_nad27(client, lon, lat, [code])
        rows[code] = edge(img[:, col])  # Canada (north) first
        border = to_nad27(code, (lon - 0.02, 49.0), (lon + 0.02, 49.0), at_lon=col_lon)
        assert abs(rows[code] - (top - border) / res) <= 1.0
    assert not np.array_equal(images[1170], images[1172])
    predicted = (to_nad27(1172, (lon - 0.02, 49.0), (lon + 0.02, 49.0), at_lon=col_lon)
                 - to_nad27(1170, (lon - 0.02, 49.0), (lon + 0.02, 49.0), at_lon=col_lon)) / res
    assert abs(predicted) > 4  # 1170 puts the border about 4.5 px further south
    assert abs((rows[1170] - rows[1172]) - predicted) <= 0.5


def test_world_into_nad27_moves_the_alaska_yukon_border_as_proj_predicts(client):
    """The 141st meridian (as the data draws it, a WGS 84 segment) drawn in NAD27."""
    a, b = (-140.99778, 60.30639), (-140.9925, 66.00003)  # the border's vertices
    lon, lat = -140.995, 63.0
    left, top, res, row = lon - HALF, lat + HALF, 2 * HALF / SIZE, 100
    row_lat = top - (row + 0.5) * res
    cols = {}
    for code in (1170, 1172):
        img = world_in_nad27(client, lon, lat, [code])
        cols[code] = edge(img[row])  # the USA (west) first
        assert abs(cols[code] - (to_nad27(code, a, b, at_lat=row_lat) - left) / res) <= 1.0
    predicted = (to_nad27(1172, a, b, at_lat=row_lat)
                 - to_nad27(1170, a, b, at_lat=row_lat)) / res
    assert abs(predicted) > 12  # about 13 px
    assert abs((cols[1172] - cols[1170]) - predicted) <= 0.5


# ---- vectors through /export: forward direction (NAD27 data) ---------------------------------

NAD27_VIEW = {**IMAGE, "bbox": "-11132149,4865742,-11131749,4866142", "bboxSR": "3857",
              "imageSR": "3857", "size": "400,400", "layers": "show:4"}


def nad27_square_centre(client, transformations: object | None, **params
                        ) -> tuple[float, float]:
    """Centre (col, row) of the drawn NAD27 square; in NAD27_VIEW pixels are 1 Web Mercator
    metre."""
    params = {**NAD27_VIEW, **params}
    if transformations is not None:
        params["datumTransformations"] = json.dumps(transformations)
    r = client.get(DEMO_EXPORT, query_string=params)
    assert r.mimetype == "image/png", r.data[:300]
    rows, cols = np.nonzero(decode(r.data)[..., 3] > 127)
    return (cols.min() + cols.max() + 1) / 2, (rows.min() + rows.max() + 1) / 2


def expected_mercator(code: int) -> tuple[float, float]:
    """100 W 40 N (NAD27) through EPSG transformation ``code``, then to Web Mercator."""
    lon, lat = epsg(code, -100.0, 40.0)
    return pyproj.Transformer.from_crs(4326, 3857, always_xy=True).transform(lon, lat)


def test_datum_transformation_moves_the_feature_by_the_expected_metres(client):
    a = nad27_square_centre(client, [1172])  # NAD27 to WGS 84 (3): -10, 158, 187 m
    b = nad27_square_centre(client, [{"wkid": 1176}])  # NAD27 to WGS 84 (7)
    (ax, ay), (bx, by) = expected_mercator(1172), expected_mercator(1176)
    assert abs((b[0] - a[0]) - (bx - ax)) <= 1.0  # about +11.6 px east
    assert abs((b[1] - a[1]) - (ay - by)) <= 1.0  # about +33.4 px south (rows grow down)
    assert abs(bx - ax) > 10 and abs(by - ay) > 30
    # where it lands: the view's left edge is x = -11132149, one pixel per metre
    assert abs(a[0] - (ax + 11132149)) <= 1.0
    assert abs(a[1] - (4866142 - ay)) <= 1.0
    # the same transformation as WKT2, and as a composite of that one step
    wkt = CoordinateOperation.from_epsg(1176).to_wkt()
    assert nad27_square_centre(client, [{"wkt": wkt}]) == b
    assert nad27_square_centre(client, [{"geoTransforms": [
        {"wkid": 1176, "transformForward": True}]}]) == b
    # named backwards (WGS 84 -> NAD27), it is still the transformation for this pair
    assert nad27_square_centre(client, [{"geoTransforms": [
        {"wkid": 1176, "transformForward": False}]}]) == b


def test_forward_into_a_geographic_image(client):
    """The square into imageSR 4326 at 1e-5 deg per pixel: 1170 and 1172 differ by what the
    two transformations predict."""
    view = {"bbox": "-100.0015,39.999,-99.9995,40.001", "bboxSR": "4326", "imageSR": "4326",
            "size": "200,200"}
    centres = {code: nad27_square_centre(client, [code], **view) for code in (1170, 1172)}
    for code, (col, row) in centres.items():
        lon, lat = epsg(code, -100.0, 40.0)
        assert abs(col - (lon + 100.0015) / 1e-5) <= 1.0
        assert abs(row - (40.001 - lat) / 1e-5) <= 1.0


def test_esri_geogtran_wkt_is_applied_like_the_epsg_transformation(client):
    """Esri's GEOGTRAN for NAD27 to WGS 84 (3) (Geocentric_Translation -10, 158, 187)."""
    geogtran = ('GEOGTRAN["NAD_1927_To_WGS_1984_3",' + pyproj.CRS(4267).to_wkt("WKT1_ESRI")
                + "," + pyproj.CRS(4326).to_wkt("WKT1_ESRI")
                + ',METHOD["Geocentric_Translation"],PARAMETER["X_Axis_Translation",-10.0],'
                'PARAMETER["Y_Axis_Translation",158.0],PARAMETER["Z_Axis_Translation",187.0]]')
    assert nad27_square_centre(client, [{"wkt": geogtran}]) == nad27_square_centre(
        client, [1172])
    req = parse([{"wkt": geogtran}])
    assert datum.choose(WGS84, NAD27, req).transform(-110.0, 49.0) == pytest.approx(
        epsg(1172, -110, 49, inverse=True), abs=1e-9)


def test_esri_geogtran_with_rotations_matches_epsg():
    """Esri's published GEOGTRAN for MGI_To_ETRS_1989_4 (Coordinate_Frame) and EPSG:1024."""
    mgi = ('GEOGCS["GCS_MGI",DATUM["D_MGI",SPHEROID["Bessel_1841",6377397.155,299.1528128]],'
           'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')
    etrs = ('GEOGCS["GCS_ETRS_1989",DATUM["D_ETRS_1989",SPHEROID["GRS_1980",6378137.0,'
            '298.257222101]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')
    geogtran = (f'GEOGTRAN["MGI_To_ETRS_1989_4",{mgi},{etrs},METHOD["Coordinate_Frame"],'
                'PARAMETER["X_Axis_Translation",601.705],PARAMETER["Y_Axis_Translation",84.263],'
                'PARAMETER["Z_Axis_Translation",485.227],PARAMETER["X_Axis_Rotation",-4.7354],'
                'PARAMETER["Y_Axis_Rotation",-1.3145],PARAMETER["Z_Axis_Rotation",-5.393],'
                'PARAMETER["Scale_Difference",-2.3887],OPERATIONACCURACY[1.0]]')
    t = datum.choose(from_wkid(4312), from_wkid(4258), parse([{"wkt": geogtran}]))
    assert t.transform(15.0, 47.0) == pytest.approx(epsg(1024, 15, 47), abs=1e-9)


# ---- what is refused, and why ------------------------------------------------------------------

@pytest.mark.parametrize(("value", "detail"), [
    ([999999], "has an unknown transformation wkid 999999 (no transformation has that code "
               "in PROJ's EPSG or ESRI registry)"),
    # the composite of ArcGIS's export documentation: Esri code 108889 is not in PROJ
    ([{"geoTransforms": [{"wkid": 108889, "transformForward": True},
                         {"wkid": 1251, "transformForward": False}]}],
     "has an unknown transformation wkid 108889 (no transformation has that code in PROJ's "
     "EPSG or ESRI registry)"),
    ([1241], "wkid 1241 (NAD27 to NAD83 (1)) needs the grid file(s) conus.las, conus.los, "
             "which are not installed on this server"),
    ([16031], "wkid 16031 (UTM zone 31N) is a conversion, not a datum transformation"),
    ([{"geoTransforms": [{"wkid": 1172, "transformForward": True},
                         {"wkid": 1251, "transformForward": True}]}],
     "geoTransforms do not connect: step 2 (NAD83 to WGS 84 (2), forward) starts in NAD83, "
     "but step 1 ends in WGS 84"),
    ([{"geoTransforms": [{"wkid": 1172, "transformForward": "yes"}]}],
     "transformForward must be true or false"),
    ([{"wkt": 'GEOGTRAN["x"]'}],
     "wkt is not a GEOGTRAN this server can read (GEOGTRAN needs a name, two GEOGCS and a "
     "METHOD)"),
    ([{"wkt": "COORDINATEOPERATION[nonsense"}],
     "wkt is not a coordinate operation PROJ can read (expected WKT2 COORDINATEOPERATION or "
     "Esri GEOGTRAN)"),
])
def test_what_proj_cannot_do_is_an_arcgis_error(client, value, detail):
    body = error(client, DEMO_EXPORT, datumTransformations=json.dumps(value))
    assert body == bad(f"'datumTransformations' {detail}")


def test_grid_based_geogtran_is_refused_naming_the_method():
    nad27, nad83 = pyproj.CRS(4267).to_wkt("WKT1_ESRI"), pyproj.CRS(4269).to_wkt("WKT1_ESRI")
    geogtran = (f'GEOGTRAN["NAD_1927_To_NAD_1983_NADCON",{nad27},{nad83},METHOD["NADCON"],'
                'PARAMETER["Dataset_conus",0.0]]')
    with pytest.raises(InvalidParameter) as exc:
        parse([{"wkt": geogtran}])
    assert exc.value.details == [
        "'datumTransformations' wkt uses the method NADCON, which this server cannot apply "
        "(supported: Geocentric_Translation, Position_Vector, Coordinate_Frame, Molodensky, "
        "Molodensky_Abridged)"]


def test_requested_is_hashable_and_esri_codes_are_accepted():
    req = parse([1172, {"wkid": 108190}, {"geoTransforms": [
        {"wkid": 108190, "transformForward": False}]}])
    assert hash(req) == hash(parse([1172, {"wkid": 108190}, {"geoTransforms": [
        {"wkid": 108190, "transformForward": False}]}]))
    assert req[1].steps == (("ESRI:108190", True),)
    assert req[2].steps == (("ESRI:108190", False),)


# ---- rasters: RasterSource.read(operation=...) ------------------------------------------------

RES = 1e-5  # degrees per pixel, about 0.85 m east-west at 40 N
STRIPE_LON = -100.0002 + 19.5 * RES  # centre of source columns 18..20


@pytest.fixture()
def stripe(tmp_path) -> RasterSource:
    """40 x 40 NAD27 pixels from 100.0002 W 40.0002 N; columns 18-20 are 255, the rest 0."""
    data = np.zeros((1, 40, 40), np.uint8)
    data[:, :, 18:21] = 255
    path = tmp_path / "stripe_nad27.tif"
    with rasterio.open(path, "w", driver="GTiff", width=40, height=40, count=1, dtype="uint8",
                       crs="EPSG:4267", transform=from_origin(-100.0002, 40.0002, RES, RES)) as ds:
        ds.write(data)
    return RasterSource.open(path)


def wgs84_grid() -> Grid:
    """100 x 40 WGS 84 pixels of RES from 100.0006 W 40.0002 N."""
    return Grid.from_bbox((-100.0006, 40.0002 - 40 * RES, -100.0006 + 100 * RES, 40.0002),
                          100, 40, WGS84)


def stripe_centre(data: np.ndarray, row: int = 20) -> float:
    cols = np.flatnonzero(data[0, row] == 255)
    assert len(cols) == 3 and cols[-1] - cols[0] == 2
    return (cols[0] + cols[-1] + 1) / 2


def plain_reproject(src: RasterSource, grid: Grid, **kwargs) -> np.ndarray:
    dest = np.zeros((1, grid.height, grid.width), np.uint8)
    with rasterio.open(src.path) as ds:
        reproject(rasterio.band(ds, 1), dest, dst_transform=grid.transform,
                  dst_crs=rasterio_crs(grid.sr), resampling=Resampling.nearest, num_threads=1,
                  **kwargs)
    return dest


def test_raster_operation_moves_the_pixels_as_proj_predicts(stripe):
    grid = wgs84_grid()
    centres = {}
    for code in (1170, 1172):
        op = datum.raster_operation(NAD27, WGS84, parse([code]))
        assert op is not None
        data, valid = stripe.read(grid, (1,), operation=op)
        assert valid[20].any()
        # where EPSG's pipeline puts the stripe centre, in pixels of the grid
        lon, _lat = epsg(code, STRIPE_LON, 40.0)
        predicted = (lon - grid.bounds[0]) / RES
        centres[code] = stripe_centre(data)
        assert abs(centres[code] - predicted) <= 0.5 + 1e-6
        # the same as GDAL's warper given the same COORDINATE_OPERATION
        assert np.array_equal(data, plain_reproject(stripe, grid, COORDINATE_OPERATION=op))
    expected = (epsg(1170, STRIPE_LON, 40)[0] - epsg(1172, STRIPE_LON, 40)[0]) / RES
    assert abs((centres[1170] - centres[1172]) - expected) <= 1.0
    assert abs(expected) > 10  # 1170 puts it about 11 px further east


def test_raster_without_operation_is_gdals_default(stripe):
    grid = wgs84_grid()
    data, _valid = stripe.read(grid, (1,))
    assert np.array_equal(data, plain_reproject(stripe, grid))
    assert datum.raster_operation(NAD27, WGS84, parse([1251])) is None  # does not connect
    assert datum.raster_operation(NAD27, NAD27, parse([1172])) is None


def test_raster_operation_bypasses_the_same_crs_fast_path(stripe):
    """A NAD27 grid over a NAD27 raster takes the numpy gather unless an operation is given
    (here a plain 0.0001 deg eastward shift; NAD27's axis order is latitude, longitude)."""
    grid = Grid.from_bbox((-100.0006, 40.0002 - 40 * RES, -100.0006 + 100 * RES, 40.0002),
                          100, 40, NAD27)
    plain, _ = stripe.read(grid, (1,))
    assert stripe_centre(plain) == pytest.approx((STRIPE_LON - grid.bounds[0]) / RES)
    shifted, _ = stripe.read(grid, (1,), operation="+proj=affine +yoff=0.0001")
    assert stripe_centre(shifted) == pytest.approx(stripe_centre(plain) + 10)
