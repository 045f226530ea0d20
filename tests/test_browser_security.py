"""Token security with real clients in Chromium, against a secured copy of World.

The app is served live with a users file (alice, role analysts) and two secured services:
``Secure/World`` (user alice) and ``Team`` (role analysts); CORS allows only the static page
server's origin for them. Tokens come from ``/arcgis/tokens/generateToken`` bound to that
origin (``client=referer``), so every request the browser makes must carry the page's
``Referer`` for the token to be accepted.

- esri-leaflet ``dynamicMapLayer`` with the ``token`` option draws the map (pixels checked);
  without one it fires ``authenticationrequired`` on the server's 499, the page fetches a
  token from generateToken itself (cross-origin POST) and ``authenticate(token)`` draws it.
- esri-leaflet ``featureLayer`` with the ``token`` option loads the Cities layer's features.
- The ArcGIS Maps SDK: a ``MapImageLayer`` on ``Secure/World`` with the token added by
  ``esriConfig.request.interceptors``, and one on ``Team`` with the token registered with
  ``IdentityManager.registerToken``; both load and draw, and every export carries the token
  (IdentityManager first asks for the service JSON without it, reads the 499 and retries with
  the registered token).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from test_browser_arcgis_sdk import OTHER_HOSTS
from test_browser_clients import WORLD_CLASSES, assert_world_colours, pixel_of, screenshot

from mapserver.app import create_app
from mapserver.security.users import hash_password
from mapserver.settings import PROJECT_ROOT, Settings

WORLD_DEF = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def secured_url(tmp_path_factory, static_url):
    from werkzeug.serving import make_server

    tmp = tmp_path_factory.mktemp("browser-secured")
    services = tmp / "services"
    (services / "Secure").mkdir(parents=True)
    (services / "Secure" / "World.json").write_text(json.dumps(
        {**WORLD_DEF, "access": {"users": ["alice"]}}))
    (services / "Team.json").write_text(json.dumps(
        {**WORLD_DEF, "access": {"roles": ["analysts"]}}))
    users = tmp / "users.json"
    users.write_text(json.dumps({"users": {"alice": {"password": hash_password(PASSWORD),
                                                     "roles": ["analysts"]}}}))
    app = create_app(Settings(service_dirs=(services,), data_dir=PROJECT_ROOT / "data",
                              output_dir=tmp / "output", tile_cache_dir=tmp / "tiles",
                              users_file=users, secret="browser-test-secret",
                              cors_origins=("*", static_url), jobs_api=False))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="secured-app", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        shutil.rmtree(tmp / "output", ignore_errors=True)


def generate_token(base: str, referer: str) -> str:
    data = urllib.parse.urlencode({"username": "alice", "password": PASSWORD, "f": "json",
                                   "client": "referer", "referer": referer,
                                   "expiration": "30"}).encode()
    with urllib.request.urlopen(f"{base}/arcgis/tokens/generateToken", data, timeout=30) as r:
        body = json.loads(r.read())
    assert "token" in body, body
    return body["token"]


def get_json(url: str, referer: str | None = None) -> dict:
    req = urllib.request.Request(url, headers={"Referer": referer} if referer else {})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_secured_service_refuses_anonymous_and_accepts_the_bound_token(secured_url, static_url):
    url = f"{secured_url}/arcgis/rest/services/Secure/World/MapServer?f=json"
    assert get_json(url)["error"]["code"] == 499
    token = generate_token(secured_url, static_url + "/pages/map.html")
    assert get_json(f"{url}&token={token}", referer=static_url + "/")["mapName"]
    assert get_json(f"{url}&token={token}")["error"]["code"] == 498  # no referer: refused


LEAFLET_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/leaflet/dist/leaflet.css">
<style>html, body {{ margin: 0; }} #map {{ width: 512px; height: 512px; background: none; }}</style>
<script src="/node_modules/leaflet/dist/leaflet.js"></script>
<script src="/node_modules/esri-leaflet/dist/esri-leaflet.js"></script>
</head><body><div id="map"></div>
<script>
  window.loaded = false; window.failure = null; window.authRequired = 0; window.features = -1;
  const base = {base};
  const map = L.map('map', {{zoomControl: false, attributionControl: false, fadeAnimation: false,
                             zoomAnimation: false, inertia: false}}).setView([20, 0], 1);
  window.pixelOf = (lon, lat) => {{ const p = map.latLngToContainerPoint([lat, lon]);
                                    return [p.x, p.y]; }};
  async function fetchToken() {{
    // what an app does on authenticationrequired: ask generateToken (cross-origin POST)
    const body = new URLSearchParams({{username: 'alice', password: {password}, f: 'json',
      client: 'referer', referer: location.origin}});
    const r = await fetch(base + '/arcgis/tokens/generateToken', {{method: 'POST', body}});
    return (await r.json()).token;
  }}
  const layer = {layer};
  layer.on('authenticationrequired', async e => {{
    window.authRequired++;
    try {{ e.authenticate(await fetchToken()); }} catch (err) {{ window.failure = String(err); }}
  }});
  layer.on('load', () => {{ window.loaded = true; }});
  layer.on('requesterror', e => {{ if (e.code !== 499 && e.code !== 498)
    window.failure = e.code + ' ' + e.message; }});
  layer.addTo(map);
</script></body></html>
"""


def _leaflet(page, browser_pages, name: str, base: str, layer: str) -> list[str]:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.url.startswith(base) else None)
    html = LEAFLET_PAGE.format(base=json.dumps(base), password=json.dumps(PASSWORD),
                               layer=layer)
    page.goto(browser_pages.publish(name, html))
    page.wait_for_function("window.loaded || window.failure", timeout=30_000)
    assert page.evaluate("window.failure") is None and page.errors == []
    return requests


def test_esri_leaflet_dynamic_map_layer_with_token_option(secured_url, static_url,
                                                          browser_pages, page):
    token = generate_token(secured_url, static_url)
    url = f"{secured_url}/arcgis/rest/services/Secure/World/MapServer"
    layer = (f"L.esri.dynamicMapLayer({{url: {json.dumps(url)}, layers: [1], "
             f"token: {json.dumps(token)}}})")
    requests = _leaflet(page, browser_pages, "sec-el-token.html", secured_url, layer)
    exports = [u for u in requests if "/export" in u]
    assert exports and all(f"token={token}" in u for u in exports), exports
    assert page.evaluate("window.authRequired") == 0
    pixels = screenshot(page.locator("#map"))
    assert_world_colours(pixels, lambda lon, lat: pixel_of(page, lon, lat))


def test_esri_leaflet_authenticates_after_token_required(secured_url, browser_pages, page):
    url = f"{secured_url}/arcgis/rest/services/Secure/World/MapServer"
    layer = f"L.esri.dynamicMapLayer({{url: {json.dumps(url)}, layers: [1]}})"
    requests = _leaflet(page, browser_pages, "sec-el-auth.html", secured_url, layer)
    assert page.evaluate("window.authRequired") >= 1  # the 499 reached esri-leaflet
    assert any("generateToken" in u for u in requests)
    exports = [u for u in requests if "/export" in u]
    assert any("token=" not in u for u in exports) and "token=" in exports[-1], exports
    pixels = screenshot(page.locator("#map"))
    assert_world_colours(pixels, lambda lon, lat: pixel_of(page, lon, lat))


def test_esri_leaflet_feature_layer_with_token_option(secured_url, static_url, browser_pages,
                                                      page):
    token = generate_token(secured_url, static_url)
    url = f"{secured_url}/arcgis/rest/services/Secure/World/MapServer/0"
    layer = (f"L.esri.featureLayer({{url: {json.dumps(url)}, token: {json.dumps(token)}}})"
             ".on('load', function () { let n = 0; this.eachFeature(() => n++); "
             "window.features = n; })")
    requests = _leaflet(page, browser_pages, "sec-el-feature.html", secured_url, layer)
    page.wait_for_function("window.features >= 0", timeout=20_000)
    assert page.evaluate("window.features") > 10
    queries = [u for u in requests if "/query" in u]
    assert queries and all(f"token={token}" in u for u in queries), queries
    assert page.evaluate("window.authRequired") == 0


SDK_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/@arcgis/core/assets/esri/themes/light/main.css">
<style>html, body {{ margin: 0; background: rgb(255, 255, 255); }}
.view {{ width: 600px; height: 400px; }}</style>
<script>window.process = {{env: {{NODE_ENV: 'production'}}}};</script>
<script type="importmap">{import_map}</script>
</head><body><div class="view" id="view-interceptor"></div><div class="view" id="view-identity">
</div>
<script type="module">
  window.ready = false; window.failure = null;
  window.addEventListener('unhandledrejection', e => {{ window.failure = String(e.reason); }});
  try {{
    const {{default: esriConfig}} = await import('@arcgis/core/config.js');
    esriConfig.assetsPath = new URL('/node_modules/@arcgis/core/assets', location.href).href;
    const secure = {secure_url}, team = {team_url}, token = {token};
    // 1. an interceptor adds the token to every request to Secure/World
    esriConfig.request.interceptors.push({{urls: secure, before(params) {{
      params.requestOptions.query = params.requestOptions.query || {{}};
      params.requestOptions.query.token = token;
    }}}});
    const [{{default: Map}}, {{default: MapView}}, {{default: MapImageLayer}}, reactiveUtils,
           {{default: IdentityManager}}] = await Promise.all([
      import('@arcgis/core/Map.js'), import('@arcgis/core/views/MapView.js'),
      import('@arcgis/core/layers/MapImageLayer.js'),
      import('@arcgis/core/core/reactiveUtils.js'),
      import('@arcgis/core/identity/IdentityManager.js')]);
    // 2. IdentityManager knows the token for the whole server (used for Team)
    IdentityManager.registerToken({{server: {services_url}, token, userId: 'alice',
                                   expires: Date.now() + 30 * 60 * 1000, ssl: false}});
    const makeView = async (container, url) => {{
      const layer = new MapImageLayer({{url, sublayers: [{{id: 1, visible: true}}]}});
      const view = new MapView({{container, map: new Map({{layers: [layer]}}),
        center: [20, 10], scale: 2e8, spatialReference: {{wkid: 4326}},
        constraints: {{snapToZoom: false, rotationEnabled: false}}, ui: {{components: []}},
        attributionVisible: false}});
      await view.when();
      const layerView = await view.whenLayerView(layer);
      for (let i = 0; i < 2; i++) await new Promise(r => requestAnimationFrame(r));
      await reactiveUtils.whenOnce(() => !view.updating && !layerView.updating);
      return {{view, layer}};
    }};
    window.views = {{interceptor: await makeView('view-interceptor', secure),
                     identity: await makeView('view-identity', team)}};
    window.pixelOf = (name, lon, lat) => {{
      const p = window.views[name].view.toScreen({{x: lon, y: lat,
                                                   spatialReference: {{wkid: 4326}}}});
      return [p.x, p.y];
    }};
    window.ready = true;
  }} catch (e) {{ window.failure = String(e && (e.stack || e.message) || e); }}
</script></body></html>
"""


def test_arcgis_sdk_interceptor_and_identity_manager_tokens(
        secured_url, static_url, chromium, browser_pages, arcgis_import_map):
    token = generate_token(secured_url, static_url)
    services = f"{secured_url}/arcgis/rest/services"
    secure, team = f"{services}/Secure/World/MapServer", f"{services}/Team/MapServer"
    context = chromium.new_context(viewport={"width": 600, "height": 800},
                                   device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    requests: list[str] = []
    responses: dict[str, dict] = {}
    outside: list[str] = []
    errors: list[str] = []

    def block(route):
        outside.append(route.request.url)
        route.abort()

    context.route(OTHER_HOSTS, block)
    context.on("request", lambda r: requests.append(r.url) if r.url.startswith(services)
               else None)

    def record(resp) -> None:
        if resp.url.startswith(services) and "json" in resp.headers.get("content-type", ""):
            try:
                responses[resp.url] = resp.json()
            except Exception:  # noqa: BLE001 - a body that is not JSON is simply not recorded
                pass

    context.on("response", record)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        html = SDK_PAGE.format(import_map=arcgis_import_map, secure_url=json.dumps(secure),
                               team_url=json.dumps(team), token=json.dumps(token),
                               services_url=json.dumps(services))
        started = time.monotonic()
        page.goto(browser_pages.publish("sec-sdk.html", html))
        page.wait_for_function("window.ready || window.failure !== null", timeout=90_000)
        failure = page.evaluate("window.failure")
        assert failure is None, (failure, errors, [(u, r) for u, r in responses.items()
                                                   if "error" in r][:3])
        print(f"SDK page with two secured views ready in {time.monotonic() - started:.1f} s")
        assert outside == [] and errors == []
        for name, url in (("interceptor", secure), ("identity", team)):
            mine = [u for u in requests if u.startswith(url)]
            exports = [u for u in mine if "/export" in u]
            assert exports, (name, mine)
            assert all(f"token={token}" in u for u in exports), exports
            # what the server refused: only token-less requests, with 499 (IdentityManager
            # asks once without the token, reads the 499, then sends the registered token)
            errored = {u: r["error"] for u, r in responses.items()
                       if u.startswith(url) and isinstance(r, dict) and "error" in r}
            assert all("token=" not in u and e["code"] == 499 for u, e in errored.items()), \
                errored
            if name == "interceptor":
                assert all(f"token={token}" in u for u in mine) and errored == {}, mine
            assert page.evaluate(f"window.views.{name}.layer.loadStatus") == "loaded"
            pixels = screenshot(page.locator(f"#view-{name}"))
            checked = 0
            for country, ((lon, lat), colour) in WORLD_CLASSES.items():
                x, y = page.evaluate("([n, lon, lat]) => window.pixelOf(n, lon, lat)",
                                     [name, lon, lat])
                if not (0 <= x < pixels.shape[1] and 0 <= y < pixels.shape[0]):
                    continue
                checked += 1
                got = pixels[int(y), int(x)]
                assert np.abs(got[:3] - np.array(colour)).max() <= 3, (name, country,
                                                                       got.tolist())
            assert checked >= 4, name
    finally:
        context.close()

