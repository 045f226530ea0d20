"""GDAL's WMS driver in AGS mode reads World through ``export`` with the right georeferencing.

GDAL cannot open a dynamic MapServer from its JSON, so users write the AGS service XML; GDAL
then requests ``export?f=image&bbox=…&bboxSR=4326&imageSR=4326&size=…&format=png&layers=…``
per block. ``gdal_translate`` of a window into a GeoTIFF must come out at the window's
geotransform with the countries' class colours where they are.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import rasterio

GDAL_TRANSLATE = shutil.which("gdal_translate")

AGS_XML = """<GDAL_WMS>
  <Service name="AGS">
    <ServerUrl>{url}/arcgis/rest/services/World/MapServer</ServerUrl>
    <BBoxOrder>xyXY</BBoxOrder>
    <SRS>EPSG:4326</SRS>
    <Transparent>false</Transparent>
    <Layers>show:1</Layers>
  </Service>
  <DataWindow>
    <UpperLeftX>-180</UpperLeftX><UpperLeftY>90</UpperLeftY>
    <LowerRightX>180</LowerRightX><LowerRightY>-90</LowerRightY>
    <SizeX>3600</SizeX><SizeY>1800</SizeY>
  </DataWindow>
  <BandsCount>3</BandsCount>
  <BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
</GDAL_WMS>
"""


def test_gdal_translate_of_an_ags_window_is_georeferenced_and_coloured(app_url, tmp_path):
    assert GDAL_TRANSLATE, "gdal-bin (gdal_translate) must be installed"
    xml = tmp_path / "world.xml"
    xml.write_text(AGS_XML.format(url=app_url))
    out = tmp_path / "china.tif"
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "GDAL_HTTP_TIMEOUT": "30", "CPL_DEBUG": "OFF"}
    proc = subprocess.run([GDAL_TRANSLATE, "-q", "-of", "GTiff", "-projwin", "70", "55", "130",
                           "15", str(xml), str(out)], capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    with rasterio.open(out) as ds:
        assert (ds.width, ds.height, ds.count) == (600, 400, 3)
        assert ds.crs.to_epsg() == 4326
        assert ds.transform.almost_equals(rasterio.Affine(0.1, 0, 70.0, 0, -0.1, 55.0))
        rgb = ds.read()

    def colour(lon: float, lat: float) -> tuple[int, ...]:
        r, c = ~ds.transform * (lon, lat)
        return tuple(int(v) for v in rgb[:, int(c), int(r)])

    assert colour(90.0, 33.0) == (189, 0, 38)  # China (Tibet): over 500 million
    assert colour(100.0, 52.0) == (240, 59, 32)  # Russia: 100 - 500 million
    assert colour(103.0, 46.5) == (255, 255, 178)  # Mongolia: 0 - 10 million
    assert colour(88.0, 17.0) == (255, 255, 255)  # Bay of Bengal: white, not transparent
    assert np.isin(rgb[0], [255, 189, 240]).mean() > 0.5
