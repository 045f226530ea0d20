"""The ArcGIS Maps SDK for JavaScript's ``FeatureLayer`` on the Countries layer, in Chromium.

A ``MapView`` (no basemap, so the view takes the layer's 4326) with one ``FeatureLayer`` on
``World/MapServer/1``: the SDK reads the layer JSON (``supportedQueryFormats`` with ``PBF``,
``currentVersion`` >= 10.81, which it requires of a MapServer before it asks for pbf, and
``supportsCoordinatesQuantization``), then fetches the features itself with ``f=pbf`` and
``quantizationParameters`` and draws them client-side with the layer's own class-breaks
renderer (``drawingInfo`` of the service JSON). Checked: the requests the SDK sent, the colour
of pixels well inside a few countries (the class of their ``pop_est``), and that a hit test,
``layer.queryFeatures`` and the popup at a point in Brazil give Brazil's attributes.

Offline as in ``test_browser_arcgis_sdk.py``: the SDK's ES modules come from ``node_modules``
through the import map, ``esriConfig.assetsPath`` is local and every request to a host other
than 127.0.0.1 is aborted, recorded and fails the test.
"""

from __future__ import annotations

import io
import json
import re
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pyogrio.raw
import pytest
import shapely
from PIL import Image

from mapserver.settings import PROJECT_ROOT

LAYER = "/arcgis/rest/services/World/MapServer/1"
WIDTH, HEIGHT = 800, 600
SPAN_DEG = 360.0  # the view shows the whole world across
BACKGROUND = (255, 255, 255)
TOLERANCE = 3  # per channel
MARGIN_PX = 6  # a checked point is at least this far from its country's outline
OTHER_HOSTS = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z][a-z0-9+.-]*://")
# country (iso_a3) -> a point well inside it (lon, lat)
INSIDE = {"BRA": (-50.0, -10.0), "CHN": (100.0, 33.0), "AUS": (134.0, -25.0),
          "CAN": (-100.0, 58.0), "KAZ": (67.0, 48.0), "DZA": (3.0, 28.0)}
BRAZIL = INSIDE["BRA"]

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/@arcgis/core/assets/esri/themes/light/main.css">
<style>html, body {{ margin: 0; background: rgb{background}; }}
#view {{ width: {width}px; height: {height}px; }}</style>
<script>window.process = {{env: {{NODE_ENV: 'production'}}}};</script>
<script type="importmap">{import_map}</script>
</head><body><div id="view"></div>
<script type="module">
  window.ready = false; window.failure = null;
  window.addEventListener('error', e => {{ window.failure = String(e.message); }});
  window.addEventListener('unhandledrejection', e => {{ window.failure = String(e.reason); }});
  try {{
    const {{default: esriConfig}} = await import('@arcgis/core/config.js');
    esriConfig.assetsPath = new URL('/node_modules/@arcgis/core/assets', location.href).href;
    esriConfig.request.useIdentity = false;
    const [{{default: Map}}, {{default: MapView}}, {{default: FeatureLayer}}, reactiveUtils,
           {{default: Point}}] = await Promise.all([
      import('@arcgis/core/Map.js'), import('@arcgis/core/views/MapView.js'),
      import('@arcgis/core/layers/FeatureLayer.js'),
      import('@arcgis/core/core/reactiveUtils.js'), import('@arcgis/core/geometry/Point.js')]);
    const layer = new FeatureLayer({{
      url: {layer_url}, outFields: ['*'], labelsVisible: false, popupEnabled: true,
      popupTemplate: {{title: 'Country: {{name}}',
                      content: 'ISO {{iso_a3}} in {{continent}}'}}}});
    const view = new MapView({{
      container: 'view', map: new Map({{layers: [layer]}}), center: [0, 0], scale: {scale},
      constraints: {{snapToZoom: false, rotationEnabled: false}}, ui: {{components: []}},
      attributionVisible: false}});
    await view.when();
    const layerView = await view.whenLayerView(layer);
    const settled = async () => {{
      for (let i = 0; i < 2; i++) await new Promise(r => requestAnimationFrame(r));
      await reactiveUtils.whenOnce(() => !view.updating && !layerView.updating);
    }};
    await settled();
    window.state = () => ({{wkid: view.spatialReference.wkid, extent: view.extent.toJSON(),
      resolution: view.resolution, width: view.width, height: view.height,
      renderer: layer.renderer && layer.renderer.type,
      capabilities: layer.capabilities && layer.capabilities.query}});
    window.toScreen = (lon, lat) => {{
      const p = view.toScreen(new Point({{x: lon, y: lat, spatialReference: {{wkid: 4326}}}}));
      return [p.x, p.y];
    }};
    window.hit = async (lon, lat) => {{
      const mapPoint = new Point({{x: lon, y: lat, spatialReference: {{wkid: 4326}}}});
      const hit = await view.hitTest(view.toScreen(mapPoint), {{include: [layer]}});
      const graphics = hit.results.filter(r => r.type === 'graphic').map(r => r.graphic);
      const oid = graphics.length ? graphics[0].getObjectId() : null;
      const byId = oid === null ? [] : (await layer.queryFeatures({{
        objectIds: [oid], outFields: ['*'], returnGeometry: false}})).features;
      const byPoint = (await layer.queryFeatures({{geometry: mapPoint,
        spatialRelationship: 'intersects', outFields: ['*'], returnGeometry: true}})).features;
      return {{hits: graphics.map(g => g.attributes), oid,
               byId: byId.map(f => f.attributes), byPoint: byPoint.map(f => f.attributes),
               byPointGeometry: byPoint.map(f => f.geometry && f.geometry.type),
               features: byPoint}};
    }};
    window.openPopup = async (lon, lat) => {{
      const r = await window.hit(lon, lat);
      const location = new Point({{x: lon, y: lat, spatialReference: {{wkid: 4326}}}});
      await view.openPopup({{location, features: r.features}});
      await reactiveUtils.whenOnce(() => view.popup && view.popup.visible);
      await settled();
      return {{title: view.popup.title, count: view.popup.features.length}};
    }};
    window.ready = true;
  }} catch (e) {{ window.failure = String(e && (e.stack || e.message) || e); }}
</script></body></html>
"""


@dataclass
class SdkPage:
    page: object
    requests: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    responses: dict[str, tuple[int, str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def sdk(chromium, app_url, browser_pages, arcgis_import_map):
    context = chromium.new_context(viewport={"width": WIDTH, "height": HEIGHT},
                                   device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    sdk_page = SdkPage(page)

    def block(route):
        sdk_page.outside.append(route.request.url)
        route.abort()

    context.route(OTHER_HOSTS, block)  # on the context: the SDK's workers are covered too
    context.on("request", lambda req: sdk_page.requests.append(req.url))
    context.on("response", lambda resp: sdk_page.responses.__setitem__(
        resp.url, (resp.status, resp.headers.get("content-type", ""))))
    page.on("pageerror", lambda exc: sdk_page.errors.append(str(exc)))
    # scale for SPAN_DEG degrees across WIDTH px at 96 dpi (the SDK's 111319.49 m per degree)
    scale = SPAN_DEG * 111319.49079327357 / WIDTH * 96 / 0.0254
    html = PAGE.format(background=BACKGROUND, width=WIDTH, height=HEIGHT,
                       import_map=arcgis_import_map, layer_url=json.dumps(app_url + LAYER),
                       scale=scale)
    started = time.monotonic()
    page.goto(browser_pages.publish("arcgis-feature-layer.html", html))
    page.wait_for_function("window.ready || window.failure !== null", timeout=90_000)
    failure = page.evaluate("window.failure")
    if failure is not None:
        pytest.fail(f"the SDK page failed: {failure}; errors {sdk_page.errors}; "
                    f"requests elsewhere {sdk_page.outside}")
    print(f"FeatureLayer page ready in {time.monotonic() - started:.1f} s, "
          f"{len(sdk_page.requests)} requests")
    try:
        yield sdk_page
    finally:
        context.close()


def queries(sdk: SdkPage) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(u).query)) for u in sdk.requests
            if urlsplit(u).path == LAYER + "/query"]


def check_offline(sdk: SdkPage) -> None:
    assert sdk.outside == [], f"requests left 127.0.0.1: {sdk.outside[:5]}"
    assert [u for u in sdk.requests if OTHER_HOSTS.match(u)] == []
    assert sdk.errors == [] and sdk.page.evaluate("window.failure") is None, sdk.errors


def class_colour(renderer: dict, value: float) -> tuple[int, int, int]:
    assert renderer["type"] == "classBreaks"
    for info in renderer["classBreakInfos"]:
        if value <= info["classMaxValue"]:
            return tuple(info["symbol"]["color"][:3])
    raise AssertionError(f"{value} in no class of {renderer}")


def screenshot_when_still(locator) -> np.ndarray:
    previous = None
    for _ in range(20):
        pixels = np.asarray(Image.open(io.BytesIO(locator.screenshot(animations="disabled")))
                            .convert("RGB"))
        if previous is not None and np.array_equal(pixels, previous):
            return pixels
        previous = pixels
        locator.page.wait_for_timeout(150)
    pytest.fail("the view kept changing for 3 s after it stopped updating")


# the SDK's pbf parsers (rest/query/operations/pbf*FeatureSet.js) restart every part from the
# grid origin: multi-part countries (China, Australia, Russia...) check that pbf.py does too
def test_feature_layer_fetches_pbf_and_draws_the_layer_renderer(sdk, client, tmp_path):
    page = sdk.page
    check_offline(sdk)
    state = page.evaluate("window.state()")
    print("view", {k: state[k] for k in ("wkid", "extent", "resolution", "renderer")})
    assert state["wkid"] == 4326 and state["renderer"] == "class-breaks"
    assert state["capabilities"]["supportsFormatPBF"] is True, state["capabilities"]
    assert state["capabilities"]["supportsQuantization"] is True, state["capabilities"]

    # what the SDK asked for: features as pbf, quantized to a tile pixel
    sent = queries(sdk)
    assert sent, f"the SDK sent no query: {sdk.requests[-20:]}"
    for params in sent:
        print("query", params)
    feature_queries = [q for q in sent if q.get("returnGeometry", "true") == "true"
                       and "quantizationParameters" in q]
    assert feature_queries, sent
    for params in sent:
        assert params["f"] == "pbf", params
    for params in feature_queries:
        qp = json.loads(params["quantizationParameters"])
        assert qp["mode"] == "view" and qp["originPosition"] == "upperLeft", qp
        # the SDK fetches in tiles of its own LOD scheme: one tile pixel, at most a view pixel
        assert 0 < qp["tolerance"] <= state["resolution"] * (1 + 1e-6), qp
        assert params["resultType"] == "tile" and params["outSR"] == "4326", params
        tile = json.loads(params["geometry"])
        assert {k: qp["extent"][k] for k in tile} == tile, (tile, qp["extent"])
    for url, (status, content_type) in sdk.responses.items():
        if urlsplit(url).path == LAYER + "/query":
            assert status == 200 and content_type == "application/x-protobuf", (url, status)

    # the picture: each country's interior has the colour of its pop_est class
    layer_json = client.get(LAYER, query_string={"f": "json"}).get_json()
    renderer = layer_json["drawingInfo"]["renderer"]
    assert layer_json["drawingInfo"].get("transparency", 0) == 0
    body = client.get(LAYER + "/query", query_string={
        "f": "json", "where": "iso_a3 IN ({})".format(",".join(f"'{c}'" for c in INSIDE)),
        "outFields": "iso_a3,pop_est", "returnGeometry": "false"}).get_json()
    pop = {f["attributes"]["iso_a3"]: f["attributes"]["pop_est"] for f in body["features"]}
    assert set(pop) == set(INSIDE)
    meta, _fids, wkb, data = pyogrio.raw.read(str(PROJECT_ROOT / "data/world/countries.gpkg"),
                                              columns=["iso_a3"])
    outline = dict(zip(data[0], shapely.from_wkb(wkb), strict=True))
    pixels = screenshot_when_still(page.locator("#view"))
    assert pixels.shape == (HEIGHT, WIDTH, 3)
    Image.fromarray(pixels).save(tmp_path / "view.png")
    wrong = {}
    for iso, (lon, lat) in INSIDE.items():
        point = shapely.Point(lon, lat)
        assert outline[iso].contains(point)
        assert outline[iso].boundary.distance(point) > MARGIN_PX * state["resolution"], iso
        x, y = page.evaluate("([lon, lat]) => window.toScreen(lon, lat)", [lon, lat])
        got = tuple(int(v) for v in pixels[int(y), int(x)])
        want = class_colour(renderer, pop[iso])
        print(f"{iso} at ({lon}, {lat}) -> px ({x:.0f}, {y:.0f}): {got}, want {want}")
        if max(abs(a - b) for a, b in zip(got, want, strict=True)) > TOLERANCE:
            wrong[iso] = (got, want)
    assert wrong == {}, f"{wrong}; screenshot {tmp_path / 'view.png'}"
    # and the sea (mid-Pacific, mid-Atlantic) is the page background
    for lon, lat in ((-150.0, 0.0), (-30.0, 20.0)):
        x, y = page.evaluate("([lon, lat]) => window.toScreen(lon, lat)", [lon, lat])
        assert tuple(int(v) for v in pixels[int(y), int(x)]) == BACKGROUND
    check_offline(sdk)


def test_feature_layer_hit_test_query_and_popup_give_brazil(sdk):
    page = sdk.page
    first = len(sdk.requests)
    result = page.evaluate("([lon, lat]) => window.hit(lon, lat).then(r => "
                           "({...r, features: undefined}))", list(BRAZIL))
    print("hit", {k: result[k] for k in ("oid", "byId", "byPointGeometry")})
    assert result["oid"] is not None
    assert [a["name"] for a in result["byId"]] == ["Brazil"]
    assert result["byId"][0]["iso_a3"] == "BRA"
    assert [a["name"] for a in result["byPoint"]] == ["Brazil"]
    assert result["byPointGeometry"] == ["polygon"]
    assert all(h.get("OBJECTID") in (None, result["oid"]) for h in result["hits"])
    new = [dict(parse_qsl(urlsplit(u).query)) for u in sdk.requests[first:]
           if urlsplit(u).path == LAYER + "/query"]
    print("queries", new)
    assert new and all(q["f"] == "pbf" for q in new), new

    popup = page.evaluate("([lon, lat]) => window.openPopup(lon, lat)", list(BRAZIL))
    print("popup", popup)
    assert popup["count"] == 1
    page.wait_for_function("document.querySelector('.esri-popup') && "
                           "document.querySelector('.esri-popup').innerText"
                           ".includes('ISO BRA')", timeout=20_000)
    text = page.evaluate("document.querySelector('.esri-popup').innerText")
    print("popup text", repr(text))
    assert "Country: Brazil" in text and "ISO BRA in South America" in text
    check_offline(sdk)
