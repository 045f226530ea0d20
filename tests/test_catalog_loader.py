"""Service definitions are validated once at load: a broken file is reported with its path
and the offending field and skipped, while the good services next to it are served."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from mapserver.app import create_app
from mapserver.settings import Settings
from tests.conftest import decode

SYMBOL = {"type": "esriSMS", "style": "esriSMSSquare", "color": [0, 0, 255, 255], "size": 12}


def _layer(**overrides) -> dict:
    layer = {"id": 0, "name": "Points", "type": "feature", "source": "./points.gpkg",
             "drawingInfo": {"renderer": {"type": "simple", "symbol": SYMBOL}}}
    layer.update(overrides)
    return layer


def _service(*layers: dict) -> dict:
    return {"serviceDescription": "synthetic", "spatialReference": {"wkid": 4326},
            "layers": list(layers)}


BROKEN = {
    "bad_json.json": ('{"layers": [', "(file)"),
    "unknown_renderer_field.json": (_service(_layer(drawingInfo={"renderer": {
        "type": "classBreaks", "field": "no_such_field",
        "classBreakInfos": [{"classMaxValue": 1, "symbol": SYMBOL}]}})),
        "layers[0].drawingInfo.renderer.field"),
    "missing_source_file.json": (_service(_layer(source="./does_not_exist.gpkg")),
                                 "layers[0].source"),
    "bad_colour.json": (_service(_layer(drawingInfo={"renderer": {
        "type": "simple", "symbol": {**SYMBOL, "color": [300, 0, 0, 255]}}})),
        "layers[0].drawingInfo.renderer.symbol.color"),
    "duplicate_layer_id.json": (_service(_layer(), _layer(name="Again")), "layers[1].id"),
    "bad_definition_expression.json": (_service(_layer(definitionExpression="nme = 'a'")),
                                       "layers[0].definitionExpression"),
}


@pytest.fixture(scope="module")
def services_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests' own folder: one good service over a 3-point GeoPackage, six broken ones."""
    root = tmp_path_factory.mktemp("services")
    pts = shapely.points([(0, 0), (10, 10), (-10, 5)])
    pyogrio.raw.write(root / "points.gpkg", shapely.to_wkb(pts), [np.array(["a", "b", "c"],
                      dtype=object)], ["name"], crs="EPSG:4326", geometry_type="Point",
                      driver="GPKG")
    (root / "Good.json").write_text(json.dumps(_service(_layer())))
    for name, (doc, _field) in BROKEN.items():
        (root / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def broken_app(services_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return create_app(Settings(service_dirs=(services_dir,), data_dir=services_dir,
                               output_dir=tmp_path_factory.mktemp("out")))


def test_good_service_is_served_next_to_broken_ones(broken_app):
    client = broken_app.test_client()
    body = client.get("/arcgis/rest/services", query_string={"f": "json"}).get_json()
    assert body["services"] == [{"name": "Good", "type": "MapServer"}]
    resp = client.get("/arcgis/rest/services/Good/MapServer/export", query_string={
        "bbox": "-20,-20,20,20", "size": "40,40", "format": "png32", "transparent": "true",
        "f": "image"})
    img = decode(resp.data)
    # the point at (10, 10) is a blue square around pixel (30, 10); the corner is empty
    assert tuple(img[10, 30]) == (0, 0, 255, 255)
    assert img[0, 0, 3] == 0


@pytest.mark.parametrize("filename", list(BROKEN))
def test_broken_definition_is_reported_with_file_and_field(broken_app, filename):
    problems = broken_app.extensions["mapserver"].catalog.problems
    mine = [p for p in problems if filename in p]
    assert len(mine) == 1, problems
    # "<path>: <field>: <problem>"
    path, field, problem = mine[0].split(": ", 2)
    assert path.endswith("/" + filename)
    assert field == BROKEN[filename][1]
    assert problem


def test_bad_definition_expression_names_the_unknown_field(broken_app):
    problems = broken_app.extensions["mapserver"].catalog.problems
    (mine,) = [p for p in problems if "bad_definition_expression" in p]
    assert mine.endswith("Unknown field 'nme' in where clause")


def test_broken_service_is_not_found_over_http(broken_app):
    body = broken_app.test_client().get("/arcgis/rest/services/bad_colour/MapServer",
                                        query_string={"f": "json"}).get_json()
    assert body["error"]["code"] == 404


def test_missing_services_folder_is_a_problem_not_a_crash(tmp_path):
    app = create_app(Settings(service_dirs=(tmp_path / "nope",), data_dir=tmp_path,
                              output_dir=tmp_path / "out"))
    assert any("nope" in p for p in app.extensions["mapserver"].catalog.problems)
    body = app.test_client().get("/arcgis/rest/services?f=json").get_json()
    assert body["services"] == []
