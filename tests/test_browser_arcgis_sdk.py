"""The ArcGIS Maps SDK for JavaScript (``@arcgis/core``) against the live app, in Chromium.

A ``MapView`` with only a ``MapImageLayer`` on the sample World service and no basemap, so
nothing but the app and the local npm files is fetched. The SDK builds its own ``export``
requests; when the view crosses the antimeridian, or is wider than the whole world, it asks
for wrap-around images in a WKT spatial reference whose central meridian is moved to the
view's centre (``Central_Meridian`` 175 here), both ``bboxSR`` and ``imageSR``. A view wider
than the world gets one image one world wide, and the SDK draws the world only once, centred
(its ``WorldExtentClipRenderer`` clips everything to one world width), not repeated.

Two view spatial references: Web Mercator (``spatialReference: {wkid: 3857}``, what a
basemap would impose; the SDK then sends a shifted ``Mercator_Auxiliary_Sphere`` WKT) and
the SDK's own choice without a basemap, which is the layer's 4326 (it then sends a shifted
``Plate_Carree`` WKT). Three views each: centred at 0 and narrower than the world (no
wrap-around), centred at 175 and crossing the antimeridian, centred at 175 and wider than
360 degrees.

Only the Countries layer is drawn, as a flat opaque fill without outline or labels (the SDK
sends that as ``dynamicLayers``), so the screenshot can be checked pixel by pixel: every
sampled pixel at least ``MARGIN_PX`` from a country edge must be the fill where its map
point (longitude normalised into [-180, 180]) is on land in the Natural Earth countries the
service draws, and the page background where it is sea (and, in a view wider than the
world, beyond the one world drawn). Pixels off the map (past Web Mercator's 85.05 degrees or
the poles) are not checked. Fed the server's own non-wrapping exports stitched at 180 degrees,
these checks find no wrong pixel; the wrap-around views fail while the server smears
polygons that cross the shifted projection's antimeridian into bands.

Offline: the SDK's ES modules are imported straight from ``node_modules`` on the static
server through an import map (``arcgis_import_map`` in ``browser_support.py``),
``esriConfig.assetsPath`` points at the package's local ``assets`` (workers, t9n, CSS) and
every request to a host other than 127.0.0.1 is aborted, recorded and fails the test.

The SDK is loaded once (a module-scoped page with both views; ~1300 files, 10-20 s); each
test moves one view with ``goTo`` and waits until it has finished updating.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import pyogrio
import pytest
import shapely
import shapely.affinity
from PIL import Image
from pyproj import Transformer

from mapserver.settings import PROJECT_ROOT

SDK_VERSION = json.loads((Path(__file__).parent / "browser-package.json").read_text())[
    "dependencies"]["@arcgis/core"]
SERVICE = "World"
COUNTRIES_ID = 1
WIDTH, HEIGHT = 800, 600
FILL = (30, 110, 60)  # the countries' fill, opaque
BACKGROUND = (255, 255, 255)  # the page behind the view's transparent canvas
TOLERANCE = 3  # per channel
MARGIN_PX = 3  # sampled pixels closer than this to a country edge are not checked
STEP_PX = 5  # sample every STEP_PX-th pixel in both directions
MAX_MISMATCH = 0.002  # fraction of checked pixels allowed to be wrong (stray pixels)
HALF_WORLD_M = 20037508.342789244  # Web Mercator: the world is [-HALF_WORLD_M, +HALF_WORLD_M]^2
METERS_PER_DEGREE = 111319.49079327357  # what the SDK uses for scale in 4326
INCH_M = 0.0254
DPI = 96

# name -> (centre longitude, centre latitude, horizontal span in degrees at the equator)
VIEWS = {
    "centre-0": (0.0, 0.0, 300.0),  # -150..150: no antimeridian, no wrap-around
    "antimeridian": (175.0, 0.0, 200.0),  # 75..275: narrower than the world, crosses 180
    "wider-than-world": (175.0, 0.0, 600.0),  # -125..475: more than the whole world
}
# URLs of any host but the local servers (data: and blob: URLs are not requests to a host)
OTHER_HOSTS = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z][a-z0-9+.-]*://")
# the two views on the page -> their MapView's spatialReference (None: the SDK's own choice)
SPATIAL_REFERENCES = {"3857": {"wkid": 3857}, "layer-default": None}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<link rel="stylesheet" href="/node_modules/@arcgis/core/assets/esri/themes/light/main.css">
<style>html, body {{ margin: 0; background: rgb{background}; }}
.view {{ width: {width}px; height: {height}px; }}</style>
<script>
  // the npm build leaves process.env.NODE_ENV for a bundler to replace; there is none here
  window.process = {{env: {{NODE_ENV: 'production'}}}};
</script>
<script type="importmap">{import_map}</script>
</head><body>{divs}
<script type="module">
  window.ready = false; window.failure = null;
  window.addEventListener('error', e => {{ window.failure = String(e.message); }});
  window.addEventListener('unhandledrejection', e => {{ window.failure = String(e.reason); }});
  try {{
    // before any other SDK module: assets (workers, t9n, CSS images) from the local npm
    // package, not from the js.arcgis.com CDN default
    const {{default: esriConfig}} = await import('@arcgis/core/config.js');
    esriConfig.assetsPath = new URL('/node_modules/@arcgis/core/assets', location.href).href;
    esriConfig.request.useIdentity = false;
    const [{{default: Map}}, {{default: MapView}}, {{default: MapImageLayer}}, reactiveUtils,
           kernel] = await Promise.all([
      import('@arcgis/core/Map.js'), import('@arcgis/core/views/MapView.js'),
      import('@arcgis/core/layers/MapImageLayer.js'),
      import('@arcgis/core/core/reactiveUtils.js'), import('@arcgis/core/kernel.js')]);
    window.sdkVersion = kernel.fullVersion;
    const makeView = async (container, spatialReference) => {{
      const layer = new MapImageLayer({{
        url: {service_url},
        sublayers: [{{id: {countries_id}, visible: true, labelsVisible: false,
                     renderer: {{type: 'simple', symbol: {{type: 'simple-fill',
                       color: [{fill}, 1], outline: null}}}}}}],
      }});
      const options = {{
        container, map: new Map({{layers: [layer]}}), center: [0, 0], scale: 1e8,
        constraints: {{snapToZoom: false, rotationEnabled: false}}, ui: {{components: []}},
        attributionVisible: false,
      }};
      if (spatialReference) options.spatialReference = spatialReference;
      const view = new MapView(options);
      await view.when();
      const layerView = await view.whenLayerView(layer);
      const settled = async () => {{
        // two frames so that a pending update has started, then until nothing is loading
        for (let i = 0; i < 2; i++) await new Promise(r => requestAnimationFrame(r));
        await reactiveUtils.whenOnce(() => !view.updating && !layerView.updating);
      }};
      const state = () => ({{
        wkid: view.spatialReference.wkid ?? null, wkt: view.spatialReference.wkt ?? null,
        wrappable: view.spatialReference.isWrappable, extent: view.extent.toJSON(),
        resolution: view.resolution, scale: view.scale, width: view.width,
        height: view.height}});
      await settled();
      return {{view, state, moveTo: async (lon, lat, scale) => {{
        await view.goTo({{center: [lon, lat], scale}}, {{animate: false}});
        await settled();
        return state();
      }}}};
    }};
    const spatialReferences = {spatial_references};
    window.views = Object.fromEntries(await Promise.all(Object.entries(spatialReferences)
      .map(async ([name, sr]) => [name, await makeView('view-' + name, sr)])));
    window.ready = true;
  }} catch (e) {{ window.failure = String(e && (e.stack || e.message) || e); }}
</script></body></html>
"""


@dataclass
class SdkPage:
    page: object
    requests: list[str] = field(default_factory=list)  # every request, in order
    outside: list[str] = field(default_factory=list)  # requests to other hosts (aborted)
    responses: dict[str, tuple[int, str]] = field(default_factory=dict)  # url -> status, type
    errors: list[str] = field(default_factory=list)  # uncaught page errors


@pytest.fixture(scope="module")
def sdk(chromium, app_url, browser_pages, arcgis_import_map):
    """One page with the SDK loaded (once: ~800 module files) and a MapView per spatial
    reference, stacked; each test moves one of them."""
    context = chromium.new_context(
        viewport={"width": WIDTH, "height": HEIGHT * len(SPATIAL_REFERENCES)},
        device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(30_000)
    sdk_page = SdkPage(page)

    def block(route):
        sdk_page.outside.append(route.request.url)
        route.abort()

    # On the context, so that the SDK's web workers are covered too. Only URLs of other
    # hosts are routed (a regex is matched in the browser; a Python predicate would take a
    # round trip to this process for each of the ~1300 module files); every request is also
    # recorded, and the test checks their hosts itself as well.
    context.route(OTHER_HOSTS, block)
    context.on("request", lambda req: sdk_page.requests.append(req.url))
    context.on("response", lambda resp: sdk_page.responses.__setitem__(
        resp.url, (resp.status, resp.headers.get("content-type", ""))))
    page.on("pageerror", lambda exc: sdk_page.errors.append(str(exc)))
    service_url = f"{app_url}/arcgis/rest/services/{SERVICE}/MapServer"
    divs = "".join(f'<div class="view" id="view-{name}"></div>' for name in SPATIAL_REFERENCES)
    html = PAGE.format(background=BACKGROUND, width=WIDTH, height=HEIGHT, divs=divs,
                       import_map=arcgis_import_map, service_url=json.dumps(service_url),
                       countries_id=COUNTRIES_ID, fill=", ".join(map(str, FILL)),
                       spatial_references=json.dumps(SPATIAL_REFERENCES))
    started = time.monotonic()
    page.goto(browser_pages.publish("arcgis-sdk.html", html))
    page.wait_for_function("window.ready || window.failure !== null", timeout=60_000)
    failure = page.evaluate("window.failure")
    if failure is not None:
        pytest.fail(f"the SDK page failed: {failure}; errors {sdk_page.errors}; "
                    f"requests elsewhere {sdk_page.outside}")
    print(f"SDK page ready in {time.monotonic() - started:.1f} s, "
          f"{len(sdk_page.requests)} requests")
    # the guard works: a request elsewhere is aborted (before any DNS look-up) and recorded
    probe = "https://arcgis-sdk-probe.invalid/x.json"
    assert page.evaluate("url => fetch(url).then(() => 'fetched', () => 'blocked')",
                         probe) == "blocked"
    assert sdk_page.outside == [probe]
    sdk_page.outside.clear()
    sdk_page.requests[:] = [u for u in sdk_page.requests if u != probe]
    try:
        yield sdk_page
    finally:
        context.close()


# --- the expected picture ------------------------------------------------------------------

@dataclass(frozen=True)
class WorldModel:
    """The countries in one view spatial reference's own coordinates (one world, x from
    -half_width to +half_width), prepared for point-in-land and distance-to-edge tests."""
    half_width: float
    ymax: float  # y beyond +-ymax is off the map
    land: shapely.Geometry
    edges: shapely.Geometry  # the country boundaries, repeated one world left and right


@cache
def world_model(projected: bool) -> WorldModel:
    definition = json.loads((PROJECT_ROOT / "services" / f"{SERVICE}.json").read_text())
    layer = next(lyr for lyr in definition["layers"] if lyr["id"] == COUNTRIES_ID)
    assert layer["name"] == "Countries" and definition["spatialReference"]["wkid"] == 4326
    _meta, _fids, wkb, _fields = pyogrio.raw.read(str(PROJECT_ROOT / "data" / layer["source"]),
                                                  columns=[])
    geoms = shapely.from_wkb(wkb)
    if projected:
        lat = math.degrees(math.atan(math.sinh(math.pi)))  # 85.0511...: y = HALF_WORLD_M
        to_mercator = Transformer.from_crs(4326, 3857, always_xy=True)
        geoms = shapely.clip_by_rect(geoms, -180.0, -lat, 180.0, lat)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(
            to_mercator.transform(xy[:, 0], xy[:, 1])))
        half_width = ymax = HALF_WORLD_M
    else:
        half_width, ymax = 180.0, 90.0
    geoms = shapely.make_valid(geoms)
    land = shapely.union_all(geoms)
    # every country's outline, borders between countries too (both sides are antialiased)
    edges = shapely.union_all(shapely.boundary(geoms))
    edges = shapely.union_all([shapely.affinity.translate(edges, xoff=dx)
                               for dx in (-2 * half_width, 0.0, 2 * half_width)])
    shapely.prepare(land)
    shapely.prepare(edges)
    return WorldModel(half_width, ymax, land, edges)


def check_pixels(pixels: np.ndarray, state: dict, model: WorldModel) -> dict:
    """Compare sampled screen pixels with what belongs there; return the counts and the
    first mismatches (as lon, lat, what was expected and the colour found).

    A pixel's map point comes from the view's extent and resolution (pixel centres). Land
    wants the fill, sea the page background. A view wider than the world shows the world
    once, centred (the SDK clips its drawing to one world width around the view centre:
    ``WorldExtentClipRenderer``), so there pixels more than half a world from the centre
    want the background too ("beyond").
    """
    ext, res = state["extent"], state["resolution"]
    assert state["width"] == pixels.shape[1] and state["height"] == pixels.shape[0]
    assert ext["xmax"] - ext["xmin"] == pytest.approx(state["width"] * res, rel=1e-6)
    assert ext["ymax"] - ext["ymin"] == pytest.approx(state["height"] * res, rel=1e-6)
    margin = MARGIN_PX * res
    world = 2 * model.half_width
    rows, cols = np.mgrid[STEP_PX // 2:pixels.shape[0]:STEP_PX,
                          STEP_PX // 2:pixels.shape[1]:STEP_PX]
    rows, cols = rows.ravel(), cols.ravel()
    x = ext["xmin"] + (cols + 0.5) * res
    y = ext["ymax"] - (rows + 0.5) * res
    from_centre = np.abs(x - (ext["xmin"] + ext["xmax"]) / 2)
    if ext["xmax"] - ext["xmin"] > world:
        beyond = from_centre > world / 2 + margin
        keep = beyond | (from_centre < world / 2 - margin)
    else:
        beyond = np.zeros(x.shape, bool)
        keep = np.ones(x.shape, bool)
    keep &= np.abs(y) < model.ymax - margin  # on the map, not past the poles / 85.05 deg
    x = (x + model.half_width) % world - model.half_width  # longitude into [-180, 180)
    keep &= beyond | ~shapely.dwithin(model.edges, shapely.points(x, y), margin)
    rows, cols, x, y, beyond = rows[keep], cols[keep], x[keep], y[keep], beyond[keep]
    land = shapely.contains_xy(model.land, x, y) & ~beyond
    got = pixels[rows, cols].astype(int)
    want = np.where(land[:, None], np.array(FILL + (255,)), np.array(BACKGROUND + (255,)))
    wrong = np.abs(got - want).max(axis=1) > TOLERANCE
    if model.half_width == HALF_WORLD_M:
        lon, lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(x, y)
    else:
        lon, lat = x, y
    kind = np.where(beyond, "beyond", np.where(land, "land", "sea"))
    examples = [(round(float(lon[i]), 2), round(float(lat[i]), 2), str(kind[i]),
                 got[i].tolist()) for i in np.flatnonzero(wrong)[:8]]
    return {"checked": int(wrong.size), "land": int(land.sum()), "beyond": int(beyond.sum()),
            "wrong": int(wrong.sum()), "wrong_land": int((wrong & land).sum()),
            "wrong_sea": int((wrong & ~land & ~beyond).sum()),
            "wrong_beyond": int((wrong & beyond).sum()),
            "fraction": float(wrong.mean()) if wrong.size else 1.0, "examples": examples}


def screenshot_when_still(locator) -> np.ndarray:
    """The view's pixels once two consecutive screenshots agree (images fade in)."""
    previous = None
    for _ in range(20):
        shot = locator.screenshot(animations="disabled")
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("RGBA"))
        if previous is not None and np.array_equal(pixels, previous):
            return pixels
        previous = pixels
        locator.page.wait_for_timeout(150)
    pytest.fail("the view kept changing for 3 s after it stopped updating")


def export_params(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def sr_wkt(value: str) -> str:
    """The WKT of an ``imageSR``/``bboxSR`` parameter ('' for a plain wkid)."""
    parsed = json.loads(value)
    return parsed.get("wkt", "") if isinstance(parsed, dict) else ""


# --- the test ------------------------------------------------------------------------------

@pytest.mark.parametrize("view_name", list(VIEWS))
@pytest.mark.parametrize("sr_name", list(SPATIAL_REFERENCES))
def test_arcgis_sdk_map_image_layer_draws_countries_where_land_is(
        sdk, sr_name, view_name, tmp_path):
    page = sdk.page
    assert page.evaluate("window.failure") is None, page.evaluate("window.failure")
    assert page.evaluate("window.sdkVersion") == SDK_VERSION

    lon, lat, span = VIEWS[view_name]
    scale = span * METERS_PER_DEGREE / WIDTH * DPI / INCH_M
    first = len(sdk.requests)
    state = page.evaluate("([name, lon, lat, scale]) => window.views[name].moveTo(lon, lat, "
                          "scale)", [sr_name, lon, lat, scale])
    pixels = screenshot_when_still(page.locator(f"#view-{sr_name}"))
    requests = sdk.requests[first:]
    exports = [u for u in requests if urlsplit(u).path.endswith("/export")]

    # offline, and no errors
    assert sdk.outside == [], f"requests left 127.0.0.1: {sdk.outside[:5]}"
    elsewhere = [u for u in sdk.requests if OTHER_HOSTS.match(u)]
    assert elsewhere == [], f"requests left 127.0.0.1: {elsewhere[:5]}"
    assert sdk.errors == [] and page.evaluate("window.failure") is None, sdk.errors

    # the view is where it was sent, in the spatial reference expected
    if sr_name == "3857":
        assert state["wkid"] in (3857, 102100)
        degrees_per_unit = 1 / METERS_PER_DEGREE
    else:  # without a basemap the SDK adopts the layer's spatial reference
        assert state["wkid"] == 4326
        degrees_per_unit = 1.0
    view_span = state["width"] * state["resolution"] * degrees_per_unit
    assert view_span == pytest.approx(span, rel=1e-3)
    assert state["wrappable"] is True

    # what the SDK sent: image exports of the countries alone, flat fill, no labels
    print(f"\n{sr_name} {view_name}: view {state}")
    for url in exports:
        print("export", url)
    assert exports, f"the SDK sent no export request: {requests}"
    for url in exports:
        params = export_params(url)
        assert params["f"] == "image" and params["transparent"] == "true"
        dynamic = json.loads(params["dynamicLayers"])
        assert [d["source"]["mapLayerId"] for d in dynamic] == [COUNTRIES_ID]
        assert dynamic[0]["drawingInfo"]["showLabels"] is False
        assert dynamic[0]["drawingInfo"]["renderer"]["symbol"]["color"] == [*FILL, 255]
        status, content_type = sdk.responses.get(url, (None, ""))
        assert status == 200 and content_type.startswith("image/png"), (url, status)
    wkts = [sr_wkt(export_params(u)["imageSR"]) for u in exports]
    if view_name == "centre-0":
        assert not any(wkts), f"no wrap-around expected centred at 0: {wkts}"
    else:  # wrap-around: the image in a WKT with the view's centre as central meridian
        assert all(f'PARAMETER["Central_Meridian",{lon:g}]' in w for w in wkts), wkts
        assert [sr_wkt(export_params(u)["bboxSR"]) for u in exports] == wkts

    # the picture: the fill on land, the page background at sea
    result = check_pixels(pixels, state, world_model(sr_name == "3857"))
    print(f"{sr_name} {view_name}: {result}")
    assert result["checked"] > 2000 and 0 < result["land"] < result["checked"], result
    if result["fraction"] > MAX_MISMATCH:
        Image.fromarray(pixels).save(tmp_path / "view.png")
    assert result["fraction"] <= MAX_MISMATCH, (
        f"{result['wrong']} of {result['checked']} sampled pixels "
        f"({100 * result['fraction']:.1f}%) drawn wrong: {result['wrong_land']} land pixels "
        f"not filled, {result['wrong_sea']} sea and {result['wrong_beyond']} beyond-the-world "
        f"pixels not empty; e.g. {result['examples']}; "
        f"screenshot {tmp_path / 'view.png'}")
