"""Real web map clients against the live app, in Chromium: esri-leaflet ``dynamicMapLayer``
(export f=json then href, identify on click), esri-leaflet ``tiledMapLayer`` and OpenLayers
``TileArcGISRest`` on the tiled World service, and the project's own viewer page (pan, zoom,
layer toggle, time slider). Pixels are read back from screenshots and checked against the
World renderer's class colours at deep country interiors."""

from __future__ import annotations

import io
import json

import numpy as np
from PIL import Image

WORLD_CLASSES = {  # (lon, lat): classBreaks colour on pop_est
    "China": ((90.0, 33.0), (189, 0, 38)),
    "Russia": ((100.0, 62.0), (240, 59, 32)),
    "Brazil": ((-52.0, -10.0), (240, 59, 32)),
    "Greenland": ((-42.0, 74.0), (255, 255, 178)),
    "Australia": ((134.0, -25.0), (254, 204, 92)),
}
OCEAN = (-140.0, 0.0)

LEAFLET_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/leaflet/dist/leaflet.css">
<style>html, body {{ margin: 0; }} #map {{ width: 512px; height: 512px; background: none; }}</style>
<script src="/node_modules/leaflet/dist/leaflet.js"></script>
<script src="/node_modules/esri-leaflet/dist/esri-leaflet.js"></script>
</head><body><div id="map"></div>
<script>
  window.loaded = false; window.failure = null; window.identified = null;
  const map = L.map('map', {{zoomControl: false, attributionControl: false, fadeAnimation: false,
                             zoomAnimation: false, inertia: false}}).setView([20, 0], 1);
  const layer = {layer};
  layer.on('load', () => {{ window.loaded = true; }});
  layer.on('requesterror', e => {{ window.failure = String(e.message); }});
  layer.addTo(map);
  window.pixelOf = (lon, lat) => {{ const p = map.latLngToContainerPoint([lat, lon]);
                                    return [p.x, p.y]; }};
</script></body></html>
"""


def screenshot(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot(omit_background=True)))
                      .convert("RGBA")).astype(int)


def pixel_of(page, lon: float, lat: float) -> tuple[float, float]:
    """The client's own lon/lat -> container pixel (``window.pixelOf`` on each page)."""
    return page.evaluate("([lon, lat]) => window.pixelOf(lon, lat)", [lon, lat])


def assert_world_colours(pixels: np.ndarray, pixel_of) -> None:
    for country, ((lon, lat), colour) in WORLD_CLASSES.items():
        x, y = pixel_of(lon, lat)
        got = pixels[int(y), int(x)]
        assert np.abs(got[:3] - np.array(colour)).max() <= 3 and got[3] == 255, \
            (country, got.tolist(), colour)


def test_esri_leaflet_dynamic_map_layer_draws_world_and_identifies_on_click(
        app_url, browser_pages, page):
    url = f"{app_url}/arcgis/rest/services/World/MapServer"
    exports: list[str] = []
    page.on("request", lambda r: exports.append(r.url) if "/export" in r.url else None)
    layer = (f"L.esri.dynamicMapLayer({{url: {json.dumps(url)}, layers: [1]}})"
             ".bindPopup((err, fc) => { window.identified = err ? String(err.message) : fc; "
             "return 'x'; })")
    page.goto(browser_pages.publish("el-dynamic.html", LEAFLET_PAGE.format(layer=layer)))
    page.wait_for_function("window.loaded || window.failure", timeout=30_000)
    assert page.evaluate("window.failure") is None and page.errors == []
    assert "f=json" in exports[0] and "layers=show%3A1" in exports[0]
    pixels = screenshot(page.locator("#map"))
    assert_world_colours(pixels, lambda lon, lat: pixel_of(page, lon, lat))
    x, y = pixel_of(page, *OCEAN)
    assert pixels[int(y), int(x), 3] == 0
    # identify: a click on China opens the popup with what the server identified there
    x, y = pixel_of(page, 90.0, 33.0)
    page.mouse.click(x, y)
    page.wait_for_function("window.identified !== null", timeout=20_000)
    found = page.evaluate("window.identified")
    assert isinstance(found, dict), found
    names = [f["properties"].get("name") for f in found["features"]]
    assert names[0] == "China" and found["features"][0]["layerId"] == 1


def test_esri_leaflet_tiled_map_layer_draws_world_tiles(app_url, browser_pages, page):
    # esri-leaflet maps cache levels only for a Web Mercator service: the WorldMercator cache
    url = f"{app_url}/arcgis/rest/services/WorldMercator/MapServer"
    tiles: list[str] = []
    page.on("request", lambda r: tiles.append(r.url) if "/tile/" in r.url else None)
    layer = f"L.esri.tiledMapLayer({{url: {json.dumps(url)}}})"
    page.goto(browser_pages.publish("el-tiled.html", LEAFLET_PAGE.format(layer=layer)))
    page.wait_for_function("window.loaded || window.failure", timeout=30_000)
    assert page.evaluate("window.failure") is None and page.errors == []
    assert tiles and all("/MapServer/tile/1/" in t for t in tiles)
    pixels = screenshot(page.locator("#map"))
    # tiles draw both layers (default visibility): points avoided by choosing interiors
    assert_world_colours(pixels, lambda lon, lat: pixel_of(page, lon, lat))


OL_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/ol/ol.css">
<style>html, body {{ margin: 0; }} #map {{ width: 512px; height: 512px; }}</style>
<script src="/node_modules/ol/dist/ol.js"></script>
</head><body><div id="map"></div>
<script>
  window.pending = 0; window.failure = null; window.ready = false;
  const source = new ol.source.TileArcGISRest({{url: {url}, params: {{LAYERS: 'show:1'}}}});
  source.on('tileloadstart', () => {{ window.pending++; }});
  source.on('tileloadend', () => {{ window.pending--; }});
  source.on('tileloaderror', () => {{ window.failure = 'tileloaderror'; }});
  const map = new ol.Map({{target: 'map', controls: [], interactions: [], pixelRatio: 1,
    layers: [new ol.layer.Tile({{source}})],
    view: new ol.View({{center: ol.proj.fromLonLat([0, 20]), zoom: 1}})}});
  map.on('rendercomplete', () => {{ window.ready = window.pending === 0; }});
  window.pixelOf = (lon, lat) => map.getPixelFromCoordinate(ol.proj.fromLonLat([lon, lat]));
</script></body></html>
"""


def test_openlayers_tile_arcgis_rest_draws_world_tile_by_tile(app_url, browser_pages, page):
    url = f"{app_url}/arcgis/rest/services/World/MapServer"
    exports: list[str] = []
    page.on("request", lambda r: exports.append(r.url) if "/export" in r.url else None)
    page.goto(browser_pages.publish("ol-tiled.html", OL_PAGE.format(url=json.dumps(url))))
    page.wait_for_function("window.ready || window.failure", timeout=30_000)
    assert page.evaluate("window.failure") is None and page.errors == []
    assert len(exports) >= 4 and all("size=256%2C256" in e or "size=256,256" in e
                                     for e in exports)
    pixels = screenshot(page.locator("#map"))
    assert_world_colours(pixels, lambda lon, lat: pixel_of(page, lon, lat))


def _viewer(page, app_url: str, service: str) -> None:
    page.set_viewport_size({"width": 1200, "height": 800})
    page.goto(f"{app_url}/arcgis/rest/services/{service}/MapServer/viewer")
    page.wait_for_function("window.mapViewer && window.mapViewer.loaded >= 1", timeout=30_000)


def _wait_loaded(page, n: int) -> None:
    page.wait_for_function(f"window.mapViewer.loaded >= {n} && !window.mapViewer.busy",
                           timeout=30_000)


def _viewer_pixel(page, pixels: np.ndarray, lon: float, lat: float) -> np.ndarray:
    st = page.evaluate("({cx: mapViewer.cx, cy: mapViewer.cy, res: mapViewer.res})")
    h, w = pixels.shape[:2]
    x = (lon - st["cx"]) / st["res"] + w / 2
    y = (st["cy"] - lat) / st["res"] + h / 2
    return pixels[int(y), int(x)]


def test_viewer_pans_zooms_toggles_layers_and_shows_the_legend(app_url, page):
    _viewer(page, app_url, "World")
    assert page.errors == []
    image = page.locator("#map-image")
    before = screenshot(image)
    assert tuple(_viewer_pixel(page, before, 90.0, 33.0)[:3]) == (189, 0, 38)
    assert page.locator("#legend img").count() == 6
    assert page.locator("#layer-list input[type=checkbox]:checked").count() == 2

    # drag 100 px right: the map moves with the pointer, then a new export fills the view
    page.mouse.move(300, 300)
    page.mouse.down()
    page.mouse.move(400, 300, steps=5)
    page.mouse.up()
    _wait_loaded(page, 2)
    after = screenshot(image)
    same = (np.abs(after[:, 100:] - before[:, :-100]).max(axis=2) <= 3).mean()
    assert same > 0.97, same

    # zoom in with the button: half the resolution, the export extent halves too
    res = page.evaluate("mapViewer.res")
    page.click("#zoom-in")
    _wait_loaded(page, 3)
    assert page.evaluate("mapViewer.res") == res / 2
    ext = page.evaluate("mapViewer.lastExport.extent")
    assert ext["xmax"] - ext["xmin"] == 800 * res / 2
    # the wheel zooms out again about the cursor
    page.mouse.move(400, 300)
    page.mouse.wheel(0, 100)
    _wait_loaded(page, 4)
    assert page.evaluate("mapViewer.res") == res

    # switch Countries off: China's interior is no longer drawn
    zoomed = screenshot(image)
    assert tuple(_viewer_pixel(page, zoomed, 90.0, 33.0)[:3]) == (189, 0, 38)
    page.locator("#layer-list input[data-layer-id='1']").uncheck()
    _wait_loaded(page, 5)
    assert page.evaluate("mapViewer.lastParams.layers") == "show:0"
    off = screenshot(image)  # the map's white background shows through
    assert tuple(_viewer_pixel(page, off, 90.0, 33.0)) == (255, 255, 255, 255)


def test_viewer_time_slider_redraws_gapminder_for_the_chosen_year(app_url, page):
    _viewer(page, app_url, "Gapminder")
    assert page.locator("#time-panel").is_visible()
    assert page.locator("#time-label").inner_text() == "1952-01-01"
    image = page.locator("#map-image")
    # China's life expectancy: 44 years in 1952 (under 50, red), 73 in 2007 (65+, green)
    assert tuple(_viewer_pixel(page, screenshot(image), 90.0, 33.0)[:3]) == (215, 48, 39)
    slider = page.locator("#time-slider")
    assert slider.get_attribute("max") == "11"
    slider.fill("11")
    _wait_loaded(page, 2)
    assert page.locator("#time-label").inner_text() == "2007-01-01"
    assert tuple(_viewer_pixel(page, screenshot(image), 90.0, 33.0)[:3]) == (26, 152, 80)
