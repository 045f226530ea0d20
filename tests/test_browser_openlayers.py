"""OpenLayers ``ImageArcGISRest`` against the live app, in Chromium (issue 2).

OpenLayers builds the export URL itself (lower-case ``f=image``/``bboxSR`` since 10.10,
upper-case before), asks for a Web Mercator image of exactly its viewport and draws it on a
canvas. The test reads the drawn pixels back and checks them against the World service's
own classBreaks renderer, computed independently here from ``services/World.json`` and the
countries GeoPackage, so it catches wrong parameter parsing, a shifted or stretched image,
wrong projection and wrong colours alike.
"""

from __future__ import annotations

import io
import json
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pyogrio
import pytest
import shapely
from PIL import Image
from pyproj import Transformer

from mapserver.settings import PROJECT_ROOT

SIZE = 512
SERVICE = "World"

# Deep interior points (lon, lat), far from borders at ~78 km per pixel; together they cover
# all five population classes.
INTERIORS = {
    "Greenland": (-42.0, 74.0),
    "Dem. Rep. Congo": (23.0, -2.0),
    "Brazil": (-52.0, -10.0),
    "Australia": (134.0, -25.0),
    "Russia": (100.0, 62.0),
    "China": (104.0, 35.0),
    "United States of America": (-100.0, 40.0),
}
OCEAN = (-140.0, 0.0)  # the Pacific

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/ol/ol.css">
<style>html, body {{ margin: 0; background: transparent; }}
#map {{ width: {size}px; height: {size}px; }}</style>
<script src="/node_modules/ol/dist/ol.js"></script>
</head><body><div id="map"></div>
<script>
  window.imageLoaded = false; window.mapReady = false; window.imageError = null;
  const source = new ol.source.ImageArcGISRest({{
    url: {service_url}, params: {{LAYERS: 'show:1'}}, ratio: 1}});
  source.on('imageloadend', () => {{ window.imageLoaded = true; }});
  source.on('imageloaderror', () => {{ window.imageError = 'imageloaderror'; }});
  const map = new ol.Map({{
    target: 'map', controls: [], interactions: [], pixelRatio: 1,
    layers: [new ol.layer.Image({{source}})],
    view: new ol.View({{center: ol.proj.fromLonLat([0, 20]), zoom: 1}}),
  }});
  map.on('rendercomplete', () => {{ if (window.imageLoaded) window.mapReady = true; }});
  window.olVersion = ol.util.VERSION;
  window.viewExtent = () => map.getView().calculateExtent(map.getSize());
</script></body></html>
"""


def _expected_colours() -> dict[str, tuple[int, ...]]:
    """Each interior point's colour per the service's classBreaks on ``pop_est``.

    ArcGIS semantics: class i holds (classMaxValue[i-1], classMaxValue[i]], the first class
    starting at ``minValue``.
    """
    definition = json.loads((PROJECT_ROOT / "services" / f"{SERVICE}.json").read_text())
    layer = next(lyr for lyr in definition["layers"] if lyr["name"] == "Countries")
    renderer = layer["drawingInfo"]["renderer"]
    assert renderer["type"] == "classBreaks" and renderer["field"] == "pop_est"
    _meta, _fids, wkb, (names, pops) = pyogrio.raw.read(
        str(PROJECT_ROOT / "data" / layer["source"]), columns=["name", "pop_est"])
    geoms = shapely.from_wkb(wkb)
    expected = {}
    for country, (lon, lat) in INTERIORS.items():
        hits = [i for i, g in enumerate(geoms) if g.contains(shapely.Point(lon, lat))]
        assert [names[i] for i in hits] == [country], f"({lon}, {lat}) is not only in {country}"
        pop = pops[hits[0]]
        lower = renderer["minValue"]
        for info in renderer["classBreakInfos"]:
            if lower <= pop <= info["classMaxValue"]:
                expected[country] = tuple(info["symbol"]["color"])
                break
            lower = info["classMaxValue"]
        else:
            pytest.fail(f"{country} pop_est {pop} is in no class")
    return expected


def test_openlayers_image_arcgis_rest_draws_world_classes(app_url, browser_pages, page):
    service_url = f"{app_url}/arcgis/rest/services/{SERVICE}/MapServer"
    exports: list[str] = []
    page.on("request", lambda req: exports.append(req.url) if "/export" in req.url else None)
    responses = []
    page.on("response", lambda resp: responses.append(resp) if "/export" in resp.url else None)

    page.goto(browser_pages.publish(
        "openlayers.html", PAGE.format(size=SIZE, service_url=json.dumps(service_url))))
    page.wait_for_function("window.mapReady || window.imageError !== null", timeout=30_000)
    assert page.evaluate("window.imageError") is None
    assert page.errors == []
    assert page.evaluate("window.olVersion").startswith("10.")

    # what OpenLayers sent: one export of exactly the viewport, parsed by the server as such
    assert len(exports) == 1, exports
    query = {k.lower(): v for k, v in parse_qsl(urlsplit(exports[0]).query)}
    assert query["f"].lower() == "image"
    assert query["bboxsr"] == "3857" and query["imagesr"] == "3857"
    assert query["size"] == f"{SIZE},{SIZE}"
    assert query["layers"] == "show:1"
    assert responses[0].status == 200
    assert responses[0].headers["content-type"] == "image/png"

    minx, miny, maxx, maxy = page.evaluate("window.viewExtent()")
    assert [float(v) for v in query["bbox"].split(",")] == pytest.approx(
        [minx, miny, maxx, maxy], rel=1e-9)

    shot = page.locator("#map").screenshot(omit_background=True)
    pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGBA"))
    assert pixels.shape == (SIZE, SIZE, 4)

    to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)

    def pixel_at(lon: float, lat: float) -> np.ndarray:
        x, y = to_mercator.transform(lon, lat)
        col = int((x - minx) / (maxx - minx) * SIZE)
        row = int((maxy - y) / (maxy - miny) * SIZE)
        return pixels[row, col].astype(int)

    for country, colour in _expected_colours().items():
        got = pixel_at(*INTERIORS[country])
        assert np.abs(got - np.array(colour)).max() <= 3, (country, got.tolist(), colour)
    assert pixel_at(*OCEAN)[3] == 0, "the ocean must stay transparent"
