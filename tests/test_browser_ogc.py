"""OpenLayers ``ImageWMS`` and ``WMTS`` (from the capabilities document) against the live
app, in Chromium (issue 12).

ImageWMS builds GetMap itself (1.3.0 in EPSG:4326 sends a lat,lon BBOX; 1.1.1 in Web
Mercator lon,lat); WMTS reads the capabilities with ``ol/format/WMTSCapabilities`` and
``optionsFromCapabilities`` and fetches RESTful tiles. The drawn pixels are read back and
checked against the World classes at known places, and Olinda's WMTS against the service's own
export of the same view (fixtures in tests/browser_support.py).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from pyproj import Transformer

SIZE = 512
WORLD = "/arcgis/rest/services/World/MapServer"
# the Web Mercator caches (World and Samples/Olinda are in their own SRs: 4326 and UTM)
WORLD_TILES = "/arcgis/rest/services/WorldMercator/MapServer"
OLINDA = "/arcgis/rest/services/Samples/OlindaMercator/MapServer"
# World's classBreaks colours on pop_est at deep interior points (as tests/test_tiles.py)
PLACES = {"China": ((90.0, 33.0), (189, 0, 38)), "Russia": ((100.0, 62.0), (240, 59, 32)),
          "Greenland": ((-42.0, 74.0), (255, 255, 178)),
          "Australia": ((134.0, -25.0), (254, 204, 92))}
OCEAN = (-140.0, 0.0)
TO_3857 = Transformer.from_crs(4326, 3857, always_xy=True)

HEAD = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/ol/ol.css">
<style>html, body {{ margin: 0; background: transparent; }}
#map {{ width: {size}px; height: {size}px; }}</style>
<script src="/node_modules/ol/dist/ol.js"></script>
</head><body><div id="map"></div>
<script>
  window.mapReady = false; window.failure = null; window.loaded = 0;
  window.viewExtent = () => map.getView().calculateExtent(map.getSize());
"""

IMAGE_WMS = HEAD + """
  const source = new ol.source.ImageWMS({{
    url: {url}, params: {{LAYERS: '1', VERSION: {version}}}, ratio: 1}});
  source.on('imageloadend', () => {{ window.loaded += 1; }});
  source.on('imageloaderror', () => {{ window.failure = 'imageloaderror'; }});
  const map = new ol.Map({{
    target: 'map', controls: [], interactions: [], pixelRatio: 1,
    layers: [new ol.layer.Image({{source}})],
    view: new ol.View({{projection: {projection}, center: {center}, resolution: {resolution},
                        showFullExtent: true}}),
  }});
  map.on('rendercomplete', () => {{ if (window.loaded) window.mapReady = true; }});
</script></body></html>
"""

WMTS = HEAD + """
  let map;
  fetch({caps}).then(r => r.text()).then(text => {{
    const caps = new ol.format.WMTSCapabilities().read(text);
    window.capsLayers = caps.Contents.Layer.map(l => l.Identifier);
    const options = ol.source.WMTS.optionsFromCapabilities(caps,
        {{layer: {layer}, matrixSet: {matrix_set}}});
    const source = new ol.source.WMTS(options);
    window.requestEncoding = options.requestEncoding;
    source.on('tileloadend', () => {{ window.loaded += 1; }});
    source.on('tileloaderror', () => {{ window.failure = 'tileloaderror'; }});
    map = new ol.Map({{
      target: 'map', controls: [], interactions: [], pixelRatio: 1,
      layers: [new ol.layer.Tile({{source}})],
      view: new ol.View({{center: {center}, zoom: {zoom}}}),
    }});
    map.on('rendercomplete', () => {{ if (window.loaded) window.mapReady = true; }});
  }}).catch(e => {{ window.failure = String(e); }});
</script></body></html>
"""


def load(page, browser_pages, name: str, html: str, watch: str) -> tuple[np.ndarray, list,
                                                                          list[str]]:
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url) if watch in req.url else None)
    page.goto(browser_pages.publish(name, html))
    page.wait_for_function("window.mapReady || window.failure !== null", timeout=40_000)
    assert page.evaluate("window.failure") is None
    assert page.errors == []
    shot = page.locator("#map").screenshot(omit_background=True)
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGBA"))
    assert pixels.shape == (SIZE, SIZE, 4)
    return pixels, page.evaluate("window.viewExtent()"), requests


def pixel(pixels: np.ndarray, extent: list, x: float, y: float) -> np.ndarray:
    minx, miny, maxx, maxy = extent
    col = int((x - minx) / (maxx - minx) * SIZE)
    row = int((maxy - y) / (maxy - miny) * SIZE)
    assert 0 <= col < SIZE and 0 <= row < SIZE, ((x, y), extent)
    return pixels[row, col].astype(int)


@pytest.mark.parametrize("version,projection", [("1.3.0", "EPSG:4326"), ("1.1.1", "EPSG:3857")])
def test_openlayers_image_wms_draws_world(app_url, browser_pages, page, version, projection):
    geographic = projection == "EPSG:4326"
    center = [0, 0] if geographic else list(TO_3857.transform(0, 20))
    resolution = 360 / SIZE if geographic else 2 * 20037508.34 / SIZE
    html = IMAGE_WMS.format(size=SIZE, url=json.dumps(f"{app_url}{WORLD}/WMSServer"),
                            version=json.dumps(version), projection=json.dumps(projection),
                            center=json.dumps(center), resolution=resolution)
    pixels, extent, requests = load(page, browser_pages, f"wms-{version}.html", html,
                                    "/WMSServer")
    assert len(requests) == 1
    query = requests[0].split("?", 1)[1]
    if geographic:  # OpenLayers writes 1.3.0's EPSG:4326 bbox as lat,lon
        assert "CRS=EPSG%3A4326" in query
        minx, miny, maxx, maxy = extent
        bbox = next(p for p in query.split("&") if p.startswith("BBOX=")).split("=")[1]
        assert [float(v) for v in bbox.replace("%2C", ",").split(",")] == pytest.approx(
            [miny, minx, maxy, maxx])
    else:
        assert "SRS=EPSG%3A3857" in query
    for name, ((lon, lat), colour) in PLACES.items():
        x, y = (lon, lat) if geographic else TO_3857.transform(lon, lat)
        got = pixel(pixels, extent, x, y)
        assert np.abs(got - np.array((*colour, 255))).max() <= 3, (name, got.tolist())
    ocean = OCEAN if geographic else TO_3857.transform(*OCEAN)
    assert pixel(pixels, extent, *ocean)[3] == 0  # OpenLayers asks TRANSPARENT=true


def test_openlayers_wmts_from_capabilities_draws_world(app_url, browser_pages, page):
    html = WMTS.format(
        size=SIZE, caps=json.dumps(f"{app_url}{WORLD_TILES}/WMTS/1.0.0/WMTSCapabilities.xml"),
        layer=json.dumps("WorldMercator"), matrix_set=json.dumps("GoogleMapsCompatible"),
        center=json.dumps([0, 0]), zoom=1)
    pixels, extent, requests = load(page, browser_pages, "wmts-world.html", html, "/WMTS/tile/")
    assert page.evaluate("window.capsLayers") == ["WorldMercator"]
    assert page.evaluate("window.requestEncoding") == "REST"
    assert requests and all("/WMTS/tile/1.0.0/WorldMercator/default/GoogleMapsCompatible/1/" in u
                            for u in requests), requests
    for name, ((lon, lat), colour) in PLACES.items():
        got = pixel(pixels, extent, *TO_3857.transform(lon, lat))
        assert np.abs(got - np.array((*colour, 255))).max() <= 3, (name, got.tolist())
    assert pixel(pixels, extent, *TO_3857.transform(*OCEAN))[3] == 0


def test_openlayers_wmts_draws_olinda_where_the_export_does(app_url, browser_pages, page,
                                                             client):
    html = WMTS.format(
        size=SIZE, caps=json.dumps(f"{app_url}{OLINDA}/WMTS/1.0.0/WMTSCapabilities.xml"),
        layer=json.dumps("Samples_OlindaMercator"), matrix_set=json.dumps("default028mm"),
        center=json.dumps(list(TO_3857.transform(-34.874, -7.995))), zoom=13)
    pixels, extent, requests = load(page, browser_pages, "wmts-olinda.html", html,
                                    "/WMTS/tile/")
    assert all("/Samples_OlindaMercator/default/default028mm/13/" in u for u in requests), requests
    # the service's own export of the same Web Mercator view, pixel for pixel
    bbox = ",".join(repr(v) for v in extent)
    export = client.get(f"{OLINDA}/export?bbox={bbox}&bboxSR=3857&imageSR=3857"
                        f"&size={SIZE},{SIZE}&format=png32&transparent=true&f=image")
    expected = np.asarray(Image.open(io.BytesIO(export.data)).convert("RGBA")).astype(int)
    drawn = pixels.astype(int)
    inside = (expected[..., 3] == 255) & (drawn[..., 3] == 255)
    assert inside.mean() > 0.5  # the scene fills most of the view
    assert ((expected[..., 3] == 0) == (drawn[..., 3] == 0)).mean() > 0.99
    diff = np.abs(drawn - expected)[inside].max(axis=1)
    # tiles are drawn at the tile grid's pixel phase, the export at the view's: the nearest-
    # neighbour Landsat pixels may differ along their edges, but most agree ...
    assert np.median(diff) <= 3 and (diff <= 40).mean() > 0.9
    # ... and the drawing sits where the export does: any shift of a few pixels fits worse
    core = (slice(8, SIZE - 8), slice(8, SIZE - 8))

    def misfit(dy: int, dx: int) -> float:
        moved = np.roll(drawn, (dy, dx), axis=(0, 1))
        return float(np.abs(moved[core][..., :3] - expected[core][..., :3]).mean())

    here = misfit(0, 0)
    assert all(here < misfit(dy, dx) for dy, dx in ((2, 0), (-2, 0), (0, 2), (0, -2)))
