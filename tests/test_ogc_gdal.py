"""GDAL's WMS and WMTS drivers against the live app (GDAL CLI, as tests/test_gdal_ags.py).

``gdalinfo WMS:<capabilities URL>`` lists every layer as a subdataset; ``gdal_translate`` of a
``WMS:`` GetMap URL (1.3.0, EPSG:4326: GDAL sends the bbox as lat,lon itself), of WMS service
descriptions (1.1.1 lon,lat; 1.3.0 with ``BBoxOrder`` yxYX) and of the WMTS capabilities must
come out georeferenced with the World classes' colours where they are.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile

import rasterio

GDALINFO = shutil.which("gdalinfo")
GDAL_TRANSLATE = shutil.which("gdal_translate")
WORLD = "/arcgis/rest/services/World/MapServer"
WORLD_TILES = "/arcgis/rest/services/WorldMercator/MapServer"
ENV = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
       "GDAL_HTTP_TIMEOUT": "30", "CPL_DEBUG": "OFF", "GDAL_DEFAULT_WMS_CACHE_PATH": ""}
WMS_XML = """<GDAL_WMS>
  <Service name="WMS">
    <Version>{version}</Version>
    <ServerUrl>{url}{path}/WMSServer?</ServerUrl>
    <{crs_tag}>EPSG:4326</{crs_tag}>
    <BBoxOrder>{order}</BBoxOrder>
    <ImageFormat>image/png</ImageFormat>
    <Layers>1</Layers>
    <Transparent>FALSE</Transparent>
  </Service>
  <DataWindow>
    <UpperLeftX>-180</UpperLeftX><UpperLeftY>90</UpperLeftY>
    <LowerRightX>180</LowerRightX><LowerRightY>-90</LowerRightY>
    <SizeX>3600</SizeX><SizeY>1800</SizeY>
  </DataWindow>
  <BandsCount>3</BandsCount>
  <BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
  <Cache><Path>{cache}</Path></Cache>
</GDAL_WMS>
"""


def run(*args: str, timeout: int = 90) -> str:
    # in a scratch folder: GDAL's WMS/WMTS drivers write their block cache under the working
    # directory when no cache path is set
    with tempfile.TemporaryDirectory(prefix="gdal-") as scratch:
        proc = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout,
                              cwd=scratch)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_gdalinfo_lists_the_wms_layers(app_url):
    assert GDALINFO, "gdal-bin must be installed"
    for version in ("1.1.1", "1.3.0"):
        out = run(GDALINFO, f"WMS:{app_url}{WORLD}/WMSServer?SERVICE=WMS&VERSION={version}"
                            "&REQUEST=GetCapabilities")
        names = re.findall(r"SUBDATASET_\d+_NAME=(.*)", out)
        descs = re.findall(r"SUBDATASET_\d+_DESC=(.*)", out)
        assert descs == ["Cities", "Countries"], out
        assert "LAYERS=1" in names[1] and f"VERSION={version}" in names[1]


def test_gdal_translate_through_wms_1_3_0_and_1_1_1(app_url, tmp_path):
    assert GDAL_TRANSLATE, "gdal-bin must be installed"
    for version, crs_tag, order in (("1.3.0", "CRS", "yxYX"), ("1.1.1", "SRS", "xyXY")):
        xml = tmp_path / f"world-{version}.xml"
        xml.write_text(WMS_XML.format(url=app_url, path=WORLD, version=version,
                                      crs_tag=crs_tag, order=order,
                                      cache=tmp_path / f"cache-{version}"))
        out = tmp_path / f"china-{version}.tif"
        run(GDAL_TRANSLATE, "-q", "-of", "GTiff", "-projwin", "70", "55", "130", "15",
            str(xml), str(out))
        with rasterio.open(out) as ds:
            assert (ds.width, ds.height, ds.count) == (600, 400, 3)
            assert ds.crs.to_epsg() == 4326
            assert ds.transform.almost_equals(rasterio.Affine(0.1, 0, 70.0, 0, -0.1, 55.0))
            rgb = ds.read()

        def colour(lon: float, lat: float) -> tuple[int, ...]:
            row, col = ds.index(lon, lat)  # noqa: B023 - ds of this iteration
            return tuple(int(v) for v in rgb[:, row, col])  # noqa: B023

        assert colour(90.0, 33.0) == (189, 0, 38), version  # China
        assert colour(100.0, 52.0) == (240, 59, 32), version  # Russia
        assert colour(103.0, 46.5) == (255, 255, 178), version  # Mongolia
        assert colour(88.0, 17.0) == (255, 255, 255), version  # Bay of Bengal


def test_gdal_translate_of_a_wms_getmap_url(app_url, tmp_path):
    """The ``WMS:`` URL form: GDAL reads VERSION=1.3.0 + CRS=EPSG:4326 and swaps the axes."""
    out = tmp_path / "url.tif"
    run(GDAL_TRANSLATE, "-q", "-of", "GTiff", "-outsize", "720", "360",
        f"WMS:{app_url}{WORLD}/WMSServer?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetMap&LAYERS=1"
        "&CRS=EPSG:4326&BBOX=-90,-180,90,180&FORMAT=image/png", str(out))
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 4326 and (ds.width, ds.height) == (720, 360)
        assert ds.transform.almost_equals(rasterio.Affine(0.5, 0, -180.0, 0, -0.5, 90.0))
        rgb = ds.read()
        for (lon, lat), colour in (((90.0, 33.0), (189, 0, 38)), ((100.0, 62.0), (240, 59, 32)),
                                   ((-42.0, 74.0), (255, 255, 178))):
            row, col = ds.index(lon, lat)
            assert tuple(int(v) for v in rgb[:3, row, col]) == colour


def test_gdal_wmts_driver_reads_the_tiles(app_url, tmp_path):
    # the Web Mercator cache (World itself is a 4326 service with the geographic scheme)
    url = f"WMTS:{app_url}{WORLD_TILES}/WMTS/1.0.0/WMTSCapabilities.xml"
    info = run(GDALINFO, url)
    assert "Size is" in info and "3857" in info
    out = tmp_path / "wmts.tif"
    # level 3 (19567.88 m/px) around China, in Web Mercator
    run(GDAL_TRANSLATE, "-q", "-of", "GTiff", "-oo", "TILEMATRIXSET=default028mm",
        "-oo", "ZOOM_LEVEL=3", "-projwin", "7800000", "9500000", "14500000", "1700000", url,
        str(out))
    with rasterio.open(out) as ds:
        assert ds.crs.to_epsg() == 3857
        assert abs(ds.transform.a - 156543.03392800014 / 8) < 1e-6
        data = ds.read()
        from pyproj import Transformer

        tr = Transformer.from_crs(4326, 3857, always_xy=True)

        def colour(lon: float, lat: float) -> tuple[int, ...]:
            row, col = ds.index(*tr.transform(lon, lat))
            return tuple(int(v) for v in data[:3, row, col])

        assert colour(90.0, 33.0) == (189, 0, 38)  # China
        assert colour(100.0, 62.0) == (240, 59, 32)  # Russia
