"""Symbology (issue 12): visual variables, picture symbols, label expressions (VBScript and
Arcade), label placement and per-class ``where``, raster stretches from statistics and
algorithmic colour ramps, ``referenceScale``, selectable text and ``clipping`` in vector
output. Each in service definitions (validated at load) and in ``dynamicLayers``.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess

import numpy as np
import pyogrio.raw
import pytest
import shapely
from PIL import Image

from mapserver.app import create_app
from mapserver.geo.grid import Grid
from mapserver.render.color import ramp_colors
from mapserver.render.labels import LabelExpressionError, compile_label
from mapserver.render.vector import label_specs
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

WORLD = "/arcgis/rest/services/World/MapServer/export"
COUNTRIES = str(PROJECT_ROOT / "data" / "world" / "countries.gpkg")
DEM = str(PROJECT_ROOT / "data" / "olinda" / "olinda_dem_utm25s.tif")


def _png(arr: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


GREEN = np.zeros((8, 8, 4), np.uint8)
GREEN[...] = (0, 200, 0, 255)
CHECKER = np.zeros((8, 8, 4), np.uint8)
CHECKER[...] = (255, 0, 255, 255)
CHECKER[:4, :4] = CHECKER[4:, 4:] = (0, 0, 0, 255)

RAMP = {"type": "colorInfo", "field": "pop_est",
        "stops": [{"value": 0, "color": [255, 255, 0, 255]},
                  {"value": 1e9, "color": [255, 0, 0, 255]}]}
SQUARE = {"type": "esriSMS", "style": "esriSMSSquare", "color": [255, 0, 0, 255], "size": 12}
TRIANGLE = {"type": "esriSMS", "style": "esriSMSTriangle", "color": [255, 0, 0, 255],
            "size": 20}
CLEAR_SMS = {"type": "esriSMS", "style": "esriSMSCircle", "color": [0, 0, 0, 0], "size": 1}
TEXT = {"type": "esriTS", "color": [0, 0, 0, 255], "font": {"size": 10}}


def _service(*layers: dict, **extra) -> dict:
    return {"serviceDescription": "symbology tests", "spatialReference": {"wkid": 4326},
            "layers": list(layers), **extra}


def _points(**drawing) -> dict:
    return {"id": 0, "name": "Points", "type": "feature", "source": "./points.gpkg",
            "drawingInfo": drawing}


def _countries(**drawing) -> dict:
    return {"id": 0, "name": "Countries", "type": "feature", "source": COUNTRIES,
            "drawingInfo": drawing}


def _dem(raster: dict) -> dict:
    return {"id": 0, "name": "DEM", "type": "raster", "source": DEM, "raster": raster}


GOOD = {
    "Ramp": _service(_countries(renderer={
        "type": "simple", "symbol": {"type": "esriSFS", "color": [0, 0, 255, 255]},
        "visualVariables": [RAMP]})),
    "Sizes": _service(_points(renderer={
        "type": "simple", "symbol": SQUARE,
        "visualVariables": [{"type": "sizeInfo", "field": "pop", "minDataValue": 0,
                             "maxDataValue": 100, "minSize": 4, "maxSize": 20}]})),
    "Turned": _service(_points(renderer={
        "type": "simple", "symbol": TRIANGLE,
        "visualVariables": [{"type": "rotationInfo", "field": "heading",
                             "rotationType": "geographic"}]})),
    "Faded": _service(_points(renderer={
        "type": "simple", "symbol": SQUARE,
        "visualVariables": [{"type": "opacityInfo", "field": "pop",
                             "stops": [{"value": 0, "opacity": 0.2},
                                       {"value": 100, "opacity": 1.0}]}]})),
    "Pictures": _service(_points(renderer={
        "type": "simple", "symbol": {"type": "esriPMS", "imageData": _png(GREEN),
                                     "contentType": "image/png", "width": 12,
                                     "height": 12}})),
    "Placed": _service(_points(renderer={"type": "simple", "symbol": CLEAR_SMS},
                               labelingInfo=[{
                                   "labelExpression": "[name]", "symbol": TEXT,
                                   "labelPlacement":
                                       "esriServerPointLabelPlacementAboveCenter"}])),
    "Lines": _service({"id": 0, "name": "Lines", "type": "feature", "source": "./lines.gpkg",
                       "drawingInfo": {
                           "renderer": {"type": "simple", "symbol": {
                               "type": "esriSLS", "color": [0, 0, 0, 255], "width": 1}},
                           "labelingInfo": [{
                               "labelExpression": "[name]", "symbol": TEXT,
                               "labelPlacement": "esriServerLinePlacementAboveAlong"}]}}),
    "Scaled": _service(_points(renderer={"type": "simple", "symbol": SQUARE}),
                       referenceScale=100_000_000),
    "Unscaled": _service(_points(renderer={"type": "simple", "symbol": SQUARE},
                                 scaleSymbols=False), referenceScale=100_000_000),
    "Labels": _service(_countries(
        renderer={"type": "simple", "symbol": {"type": "esriSFS", "color": [230, 230, 230,
                                                                           255]}},
        labelingInfo=[{"labelExpression": '[name] & " (" & [iso_a3] & ")"', "symbol": TEXT,
                       "where": "pop_est > 1000000000"},
                      {"labelExpressionInfo": {"expression": "Upper($feature.name)"},
                       "symbol": TEXT, "where": "pop_est < 1000000000"}])),
    "StdDev": _service(_dem({"bands": [1], "stretch": {"type": "standardDeviation",
                                                       "numberOfStandardDeviations": 2},
                             "colorRamp": {"type": "algorithmic",
                                           "algorithm": "esriCIELabAlgorithm",
                                           "fromColor": [0, 0, 255, 255],
                                           "toColor": [255, 255, 0, 255]}})),
    "MinMaxStats": _service(_dem({"bands": [1], "stretch": {"type": "minMax"},
                                  "colorRamp": {"type": "algorithmic",
                                                "algorithm": "esriHSVAlgorithm",
                                                "fromColor": [0, 0, 255, 255],
                                                "toColor": [255, 0, 0, 255]}})),
    "DeclaredStats": _service(_dem({"bands": [1], "stretch": {
        "type": "minMax", "statistics": [[10, 60, 30, 5]]},
        "colorRamp": {"type": "algorithmic", "algorithm": "esriLabLChAlgorithm",
                      "fromColor": [255, 255, 255, 255], "toColor": [0, 100, 0, 255]}})),
}

BROKEN = {
    "bad_label_field": (_service(_points(renderer={"type": "simple", "symbol": SQUARE},
                                         labelingInfo=[{"labelExpression": "[nope] & [name]"}])),
                        "layers[0].drawingInfo.labelingInfo[0].labelExpression"),
    "bad_arcade": (_service(_points(renderer={"type": "simple", "symbol": SQUARE},
                                    labelingInfo=[{"labelExpressionInfo": {
                                        "expression": "Eval($feature.name)"}}])),
                   "layers[0].drawingInfo.labelingInfo[0].labelExpressionInfo.expression"),
    "bad_label_where": (_service(_points(renderer={"type": "simple", "symbol": SQUARE},
                                         labelingInfo=[{"labelExpression": "[name]",
                                                        "where": "nope > 1"}])),
                        "layers[0].drawingInfo.labelingInfo[0].where"),
    "bad_placement": (_service(_points(renderer={"type": "simple", "symbol": SQUARE},
                                       labelingInfo=[{
                                           "labelExpression": "[name]", "labelPlacement":
                                           "esriServerPolygonPlacementAlwaysHorizontal"}])),
                      "layers[0].drawingInfo.labelingInfo[0].labelPlacement"),
    "bad_vv_field": (_service(_points(renderer={
        "type": "simple", "symbol": SQUARE,
        "visualVariables": [{"type": "sizeInfo", "field": "nope", "minDataValue": 0,
                             "maxDataValue": 1, "minSize": 1, "maxSize": 2}]})),
        "layers[0].drawingInfo.renderer.visualVariables[0].field"),
    "bad_vv_stops": (_service(_points(renderer={
        "type": "simple", "symbol": SQUARE,
        "visualVariables": [{"type": "colorInfo", "field": "pop",
                             "stops": [{"value": 5, "color": [0, 0, 0]},
                                       {"value": 1, "color": [9, 9, 9]}]}]})),
        "layers[0].drawingInfo.renderer.visualVariables[0].stops"),
    "bad_picture": (_service(_points(renderer={"type": "simple", "symbol": {
        "type": "esriPMS", "imageData": "bm90IGFuIGltYWdl", "contentType": "image/png"}})),
        "layers[0].drawingInfo.renderer.symbol.imageData"),
    "picture_url": (_service(_points(renderer={"type": "simple", "symbol": {
        "type": "esriPMS", "url": "http://example.com/x.png"}})),
        "layers[0].drawingInfo.renderer.symbol.imageData"),
    "bad_algorithm": (_service(_dem({"bands": [1], "stretch": {"type": "minMax"},
                                     "colorRamp": {"type": "algorithmic", "algorithm": "x",
                                                   "fromColor": [0, 0, 0],
                                                   "toColor": [9, 9, 9]}})),
                      "layers[0].raster.colorRamp.algorithm"),
    "bad_stddev": (_service(_dem({"bands": [1], "stretch": {
        "type": "standardDeviation", "numberOfStandardDeviations": -1}})),
        "layers[0].raster.stretch.numberOfStandardDeviations"),
}


@pytest.fixture(scope="module")
def sym_app(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("symbology")
    pts = shapely.points([(-10, 0), (0, 0), (10, 0)])
    pyogrio.raw.write(root / "points.gpkg", shapely.to_wkb(pts),
                      [np.array(["Ay", "Be", "Cy"], dtype=object),
                       np.array([0.0, 50.0, 100.0]), np.array([0.0, 90.0, 180.0])],
                      ["name", "pop", "heading"], crs="EPSG:4326", geometry_type="Point",
                      driver="GPKG")
    lines = shapely.linestrings([[(-15, 5), (15, 5)], [(-15, -15), (5, 5)]])
    pyogrio.raw.write(root / "lines.gpkg", shapely.to_wkb(lines),
                      [np.array(["Flat", "Slope"], dtype=object)], ["name"], crs="EPSG:4326",
                      geometry_type="LineString", driver="GPKG")
    for name, doc in GOOD.items():
        (root / f"{name}.json").write_text(json.dumps(doc))
    for name, (doc, _field) in BROKEN.items():
        (root / f"{name}.json").write_text(json.dumps(doc))
    return create_app(Settings(service_dirs=(root,), data_dir=root,
                               output_dir=tmp_path_factory.mktemp("out")))


def _export(client, url: str, **params):
    base = {"bbox": "-20,-10,20,10", "size": "400,200", "format": "png32",
            "transparent": "true", "f": "image"}
    return client.get(url, query_string={**base, **params})


def _img(client, url: str, **params) -> np.ndarray:
    r = _export(client, url, **params)
    assert r.mimetype == "image/png", r.data[:400]
    return decode(r.data)


def _svc(name: str) -> str:
    return f"/arcgis/rest/services/{name}/MapServer/export"


def _pop(name: str) -> float:
    meta, _f, _w, values = pyogrio.raw.read(COUNTRIES, columns=["name", "pop_est"])
    names = list(values[0])
    return float(values[1][names.index(name)])


def _ramp_at(pop: float) -> np.ndarray:
    t = min(1.0, pop / 1e9)
    return np.array([255, 255 * (1 - t), 0])


# --- loading --------------------------------------------------------------------------------
def test_good_services_load(sym_app):
    catalog = sym_app.extensions["mapserver"].catalog
    for name in GOOD:
        assert catalog.service(name) is not None, (name, catalog.problems)


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_symbology_is_reported_with_file_and_field(sym_app, name):
    problems = sym_app.extensions["mapserver"].catalog.problems
    mine = [p for p in problems if f"/{name}.json" in p]
    assert len(mine) == 1, problems
    _path, field, problem = mine[0].split(": ", 2)
    assert field == BROKEN[name][1]
    assert problem


# --- visual variables -----------------------------------------------------------------------
WORLD_VIEW = {"bbox": "-180,-60,180,85", "size": "720,290"}


def _lonlat(img: np.ndarray, lon: float, lat: float) -> np.ndarray:
    return img[int((85 - lat) * 2), int((lon + 180) * 2)]


@pytest.mark.parametrize("source", ["service", "dynamicLayers"])
def test_color_info_ramps_pop_est(client, sym_app, source):
    if source == "service":
        img = _img(sym_app.test_client(), _svc("Ramp"), **WORLD_VIEW)
    else:
        dl = [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1}, "drawingInfo": {
            "renderer": {"type": "simple", "symbol": {"type": "esriSFS",
                                                      "color": [0, 0, 255, 255]},
                         "visualVariables": [RAMP]}}}]
        img = _img(client, WORLD, dynamicLayers=json.dumps(dl), **WORLD_VIEW)
    china, iceland = _lonlat(img, 105, 35), _lonlat(img, -18.5, 64.9)
    usa = _lonlat(img, -100, 40)
    assert not np.array_equal(china, iceland)
    for px, name in ((china, "China"), (iceland, "Iceland"),
                     (usa, "United States of America")):
        assert px[3] == 255
        assert np.abs(px[:3].astype(float) - _ramp_at(_pop(name))).max() <= 2, (name, px)


def test_size_info_sizes_markers_by_value(sym_app):
    img = _img(sym_app.test_client(), _svc("Sizes"))
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 3] > 200)
    widths = [int(red[100, x - 20:x + 20].sum()) for x in (100, 200, 300)]
    # 4, 12 and 20 pt at 96 dpi: 5.3, 16 and 26.7 px
    assert abs(widths[0] - 5.3) <= 1.5 and abs(widths[1] - 16) <= 1.5
    assert abs(widths[2] - 26.7) <= 1.5, widths


def test_rotation_info_turns_markers_geographically(sym_app):
    img = _img(sym_app.test_client(), _svc("Turned"))
    ink = img[..., 3] > 128

    def halves(x: int) -> tuple[int, int, int, int]:
        box = ink[85:116, x - 15:x + 16]
        return (int(box[:15].sum()), int(box[16:].sum()), int(box[:, :15].sum()),
                int(box[:, 16:].sum()))

    up, down, left, right = halves(100)  # heading 0: apex north, base below
    assert down > up
    up, down, left, right = halves(200)  # 90: apex east (clockwise), base left
    assert left > right
    up, down, left, right = halves(300)  # 180: apex south
    assert up > down


def test_opacity_info_fades_markers(sym_app):
    img = _img(sym_app.test_client(), _svc("Faded"))
    assert abs(int(img[100, 100, 3]) - 51) <= 2  # opacity 0.2
    assert abs(int(img[100, 200, 3]) - 153) <= 2  # 0.6
    assert img[100, 300, 3] == 255


# --- picture symbols ------------------------------------------------------------------------
@pytest.mark.parametrize("stamped", [False, True])
def test_picture_marker_draws_the_picture_at_the_point(sym_app, monkeypatch, stamped):
    if stamped:  # the path for many pictures: one stamped image instead of one per point
        monkeypatch.setattr("mapserver.render.vector.PICTURES_ONE_BY_ONE", 0)
    img = _img(sym_app.test_client(), _svc("Pictures"))
    for x in (100, 200, 300):
        assert tuple(img[100, x]) == (0, 200, 0, 255)
        # 12 pt = 16 px square: inside at +-7, empty at +-10
        assert tuple(img[93, x - 7]) == (0, 200, 0, 255)
        assert img[100, x + 10, 3] == 0 and img[89, x, 3] == 0


def test_picture_fill_tiles_the_picture_in_the_polygon(client):
    pfs = {"type": "simple", "symbol": {"type": "esriPFS", "imageData": _png(CHECKER),
                                        "contentType": "image/png", "width": 6, "height": 6}}
    dl = [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1},
           "drawingInfo": {"renderer": pfs, "showLabels": False}}]
    img = _img(client, WORLD, dynamicLayers=json.dumps(dl), bbox="95,25,125,40",
               size="400,200")
    patch = img[100:164, 100:164, :3].astype(int)  # Sichuan
    magenta = (patch[..., 0] > 200) & (patch[..., 1] < 60) & (patch[..., 2] > 200)
    black = patch.sum(axis=-1) < 60
    assert magenta.mean() > 0.3 and black.mean() > 0.3
    # 6 pt tiles = 8 px at 96 dpi: the pattern repeats every 8 px, squares of 4 px
    row = magenta[10]
    assert np.array_equal(row[:-8], row[8:])
    assert np.array_equal(row[:-4], ~row[4:])
    # outside the land (the East China Sea, 123 E 30 N) stays empty
    assert img[133, 373, 3] == 0


def test_picture_symbols_in_the_legend(sym_app):
    body = sym_app.test_client().get("/arcgis/rest/services/Pictures/MapServer/legend",
                                     query_string={"f": "json"}).get_json()
    swatch = decode(base64.b64decode(body["layers"][0]["legend"][0]["imageData"]))
    h, w = swatch.shape[:2]
    assert tuple(swatch[h // 2, w // 2]) == (0, 200, 0, 255)


# --- label expressions, placement, where ------------------------------------------------------
def test_label_expression_languages():
    names = ["name", "iso_a3", "pop_est"]
    row = {"name": "China", "iso_a3": "CHN", "pop_est": 1397715000.0}
    cases = [
        ('[name] & " (" & [iso_a3] & ")"', "vbscript", "China (CHN)"),
        ("UCase([NAME]) & vbNewLine & [pop_est]", "vbscript", "CHINA\n1397715000"),
        ('$feature.name + " " + $feature["iso_a3"]', "arcade", "China CHN"),
        ("Lower($feature.name)", "arcade", "china"),
        ('Text(Round($feature.pop_est / 1000000, 1), "#,###.0") + "M"', "arcade",
         "1,397.7M"),
        ('IIf($feature.pop_est > 1e9, "big", "small")', "arcade", "big"),
        ("return 'a' + 1 + 2;", "arcade", "a12"),
        ("1 + 2", "arcade", "3"),
    ]
    for text, lang, want in cases:
        assert compile_label(text, lang, names).text_for(row) == want, text
    for bad in ("__import__('os')", "$feature.nope", "Upper(", "[name]; 1", "$feature.__class__"):
        with pytest.raises(LabelExpressionError):
            compile_label(bad, "arcade", names)


def _label_layer(app, service: str):
    svc = app.extensions["mapserver"].catalog.service(service)
    return svc, svc.layers[0]


def test_label_where_and_expressions_in_a_service(sym_app):
    svc, layer = _label_layer(sym_app, "Labels")
    grid = Grid.from_bbox((60, 0, 140, 60), 800, 600, svc.sr)
    specs = label_specs(layer, np.arange(layer.table.n), grid)
    texts = {s.text for s in specs}
    assert {"China (CHN)", "India (IND)"} <= texts  # the VBScript class, where pop > 1e9
    assert "MONGOLIA" in texts and "Mongolia (MNG)" not in texts  # the Arcade class
    assert "CHINA" not in texts


def test_label_expressions_render_the_text(sym_app):
    """The label drawn on the map is the expression's text: the export's label pixels match
    a render of the expected string through the same label code."""
    import dataclasses

    from mapserver.render.compose import scratch_axes
    from mapserver.render.vector import LabelSpec, draw_labels

    svc, layer = _label_layer(sym_app, "Labels")
    grid = Grid.from_bbox((95, 25, 115, 40), 400, 300, svc.sr)
    (china,) = [s for s in label_specs(layer, np.arange(layer.table.n), grid)
                if s.text.startswith("China")]
    img = _img(sym_app.test_client(), _svc("Labels"), bbox="95,25,115,40", size="400,300")
    with scratch_axes(grid) as (ax, render):
        draw_labels(ax, [dataclasses.replace(china, text="China (CHN)")], grid)
        want = render()
    with scratch_axes(grid) as (ax, render):
        draw_labels(ax, [LabelSpec(china.x, china.y, "China", china.label)], grid)
        other = render()
    def overlap(a: np.ndarray, b: np.ndarray) -> float:
        return (a & b).sum() / (a | b).sum()

    ink = want[..., 3] > 100
    drawn = (img[..., :3].astype(int).sum(axis=-1) < 500) & (np.abs(
        np.arange(img.shape[0])[:, None] - china.y) < 20)  # the label's rows only
    assert ink.sum() > 50
    assert overlap(drawn, ink) > 0.8
    # the single-field text does not match
    assert overlap(drawn, other[..., 3] > 100) < 0.6


def test_dynamic_layers_label_expression(client):
    dl = [{"id": 1, "source": {"type": "mapLayer", "mapLayerId": 1}, "drawingInfo": {
        "labelingInfo": [{"labelExpressionInfo": {
            "expression": '$feature.name + " / " + $feature.iso_a3'}, "symbol": TEXT}]}}]
    r = _export(client, WORLD, dynamicLayers=json.dumps(dl), bbox="90,20,120,45",
                size="800,600", format="svg")
    assert r.mimetype == "image/svg+xml"
    assert b"China / CHN" in r.data
    bad = [{**dl[0], "drawingInfo": {"labelingInfo": [{"labelExpression": "[nope]"}]}}]
    body = _export(client, WORLD, dynamicLayers=json.dumps(bad), f="json").get_json()
    assert body["error"]["code"] == 400
    assert "labelExpression" in json.dumps(body) and "nope" in json.dumps(body)


def test_point_label_placement_above_center(sym_app):
    svc, layer = _label_layer(sym_app, "Placed")
    grid = Grid.from_bbox((-20, -10, 20, 10), 400, 200, svc.sr)
    specs = {s.text: s for s in label_specs(layer, np.arange(layer.table.n), grid)}
    assert specs["Be"].va == "bottom" and specs["Be"].ha == "center"
    assert specs["Be"].y < 100 and abs(specs["Be"].x - 200) < 0.5
    img = _img(sym_app.test_client(), _svc("Placed"))
    rows, cols = np.nonzero(img[..., 3] > 128)
    near = np.abs(cols - 200) < 30
    assert near.any()
    assert rows[near].max() < 100  # all of the label's ink is above its point
    assert abs(cols[near].mean() - 200) < 4  # and centred on it


def test_line_label_placement_along(sym_app):
    svc, layer = _label_layer(sym_app, "Lines")
    grid = Grid.from_bbox((-20, -20, 20, 20), 400, 400, svc.sr)
    specs = {s.text: s for s in label_specs(layer, np.arange(layer.table.n), grid)}
    flat, slope = specs["Flat"], specs["Slope"]
    assert flat.rotation == pytest.approx(0, abs=0.5)
    assert flat.y < 150 and flat.va == "bottom"  # line at row 150; label above it
    assert slope.rotation == pytest.approx(45, abs=0.5)


# --- vector output --------------------------------------------------------------------------
VIEW = {"bbox": "90,20,120,45", "size": "800,600"}


def test_pdf_labels_are_text(client, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.fail("pdftotext (poppler-utils) is needed; .ci/run installs it")
    r = _export(client, WORLD, format="pdf", **VIEW)
    assert r.mimetype == "application/pdf"
    (tmp_path / "map.pdf").write_bytes(r.data)
    text = subprocess.run(["pdftotext", str(tmp_path / "map.pdf"), "-"], capture_output=True,
                          text=True, check=True).stdout
    for name in ("China", "Mongolia", "Myanmar"):
        assert name in text


def test_svg_labels_are_text_elements(client):
    r = _export(client, WORLD, format="svg", **VIEW)
    body = r.data.decode()
    assert body.count("<text") >= 5
    assert ">China<" in body or "China</text>" in body


def test_vector_output_does_not_change_global_font_settings(client):
    import matplotlib

    before = (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["pdf.fonttype"])
    _export(client, WORLD, format="svg", **VIEW)
    assert (matplotlib.rcParams["svg.fonttype"], matplotlib.rcParams["pdf.fonttype"]) == before


CLIP = {"geometryType": "esriGeometryEnvelope",
        "geometry": {"xmin": 100, "ymin": 25, "xmax": 110, "ymax": 40,
                     "spatialReference": {"wkid": 4326}}}


def test_clipping_in_pdf_and_svg(client, tmp_path):
    r = _export(client, WORLD, format="pdf", clipping=json.dumps(CLIP), transparent="false",
                **VIEW)
    assert r.mimetype == "application/pdf", r.data[:300]
    (tmp_path / "c.pdf").write_bytes(r.data)
    subprocess.run(["pdftoppm", "-png", "-r", "96", "-singlefile", str(tmp_path / "c.pdf"),
                    str(tmp_path / "c")], check=True)
    img = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).astype(int)
    # the clip box spans columns 267-533 and rows 120-480 of 800 x 600
    assert img[300, 400].sum() < 600  # China, inside: drawn
    assert img[300, 150].sum() == 765 and img[540, 400].sum() == 765  # outside: white
    svg = _export(client, WORLD, format="svg", clipping=json.dumps(CLIP), **VIEW).data
    assert b"clip-path" in svg and b"<text" in svg


# --- rasters: stretches from statistics, algorithmic ramps ------------------------------------
def test_algorithmic_ramps_run_between_their_colours():
    for algorithm in ("esriHSVAlgorithm", "esriCIELabAlgorithm", "esriLabLChAlgorithm"):
        c = ramp_colors((0, 0, 1, 1), (1, 1, 0, 1), algorithm, 5)
        assert np.allclose(c[0], (0, 0, 1, 1), atol=1e-6)
        assert np.allclose(c[-1], (1, 1, 0, 1), atol=1e-6)
    hsv = ramp_colors((1, 0, 0, 1), (0, 0, 1, 1), "esriHSVAlgorithm", 3)
    assert np.allclose(hsv[1], (1, 0, 1, 1))  # red to blue via magenta (the short way)
    lab = ramp_colors((0, 0, 0, 1), (1, 1, 1, 1), "esriCIELabAlgorithm", 3)
    assert np.allclose(lab[1, :3], lab[1, 0], atol=1e-3) and 0.4 < lab[1, 0] < 0.5


def _dem_values() -> np.ndarray:
    import rasterio

    with rasterio.open(DEM) as ds:
        f = max(1, int(np.ceil(max(ds.width, ds.height) / 1024)))
        data = ds.read(1, out_shape=(max(1, ds.height // f), max(1, ds.width // f)),
                       masked=True)
    v = data.compressed().astype(float)
    return v[np.isfinite(v)]


def test_raster_stretches_from_statistics(sym_app):
    catalog = sym_app.extensions["mapserver"].catalog
    v = _dem_values()
    std = catalog.service("StdDev").layers[0].raster_style
    assert std.stretch_min[0] == pytest.approx(max(v.min(), v.mean() - 2 * v.std()))
    assert std.stretch_max[0] == pytest.approx(min(v.max(), v.mean() + 2 * v.std()))
    assert tuple(std.colormap[0]) == (0, 0, 255, 255)
    assert tuple(std.colormap[255]) == (255, 255, 0, 255)
    mm = catalog.service("MinMaxStats").layers[0].raster_style
    assert (mm.stretch_min[0], mm.stretch_max[0]) == (pytest.approx(v.min()),
                                                       pytest.approx(v.max()))
    declared = catalog.service("DeclaredStats").layers[0].raster_style
    assert (declared.stretch_min, declared.stretch_max) == ((10.0,), (60.0,))
    # the export draws through the ramp: every opaque pixel is a ramp colour
    svc = catalog.service("StdDev")
    b = svc.full_extent
    img = _img(sym_app.test_client(), _svc("StdDev"), bbox=",".join(map(str, b)),
               bboxSR=json.dumps(svc.sr.to_json()), size="200,200")
    opaque = img[img[..., 3] == 255][:, :3].astype(int)
    assert len(opaque) > 1000
    ramp = std.colormap[:, :3].astype(int)
    dist = np.abs(opaque[::37, None, :] - ramp[None, :, :]).sum(axis=-1).min(axis=1)
    assert dist.max() <= 3
    assert len(np.unique(opaque[:, 2])) > 20  # a ramp, not one colour


# --- referenceScale -------------------------------------------------------------------------
def test_reference_scale_scales_symbols(sym_app):
    client = sym_app.test_client()
    scale = client.get(_svc("Scaled"), query_string={
        "bbox": "-20,-10,20,10", "size": "400,200", "f": "json"}).get_json()["scale"]
    ratio = 100_000_000 / scale

    def width(name: str) -> int:
        img = _img(client, _svc(name))
        return int((img[100, 150:250, 3] > 128).sum())

    assert width("Unscaled") == pytest.approx(16, abs=1)
    assert width("Scaled") == pytest.approx(16 * ratio, abs=1.5)
    assert ratio > 1.2 or ratio < 0.8  # the test view makes a visible difference
    layer_json = client.get("/arcgis/rest/services/Scaled/MapServer/0",
                            query_string={"f": "json"}).get_json()
    assert layer_json["referenceScale"] == 100_000_000


def test_dynamic_layers_scale_symbols_false(sym_app):
    client = sym_app.test_client()
    dl = [{"id": 0, "source": {"type": "mapLayer", "mapLayerId": 0},
           "drawingInfo": {"scaleSymbols": False}}]
    img = _img(client, _svc("Scaled"), dynamicLayers=json.dumps(dl))
    assert int((img[100, 150:250, 3] > 128).sum()) == pytest.approx(16, abs=1)

