"""The JSON Schema of service definitions: every sample passes it, it is closed everywhere
(unknown keys are refused with a "did you mean" hint naming the file and the field), the
server loads a definition against it, and it is served at a URL for editors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from mapserver.app import create_app
from mapserver.catalog.loader import load_catalog
from mapserver.catalog.schema import SCHEMA_PATH, SCHEMA_URL_PATH, schema_problems
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

SAMPLES = sorted((PROJECT_ROOT / "services").rglob("*.json"))
DATA = PROJECT_ROOT / "data"


def _schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text())


def test_schema_is_a_valid_draft_2020_12_schema():
    doc = _schema()
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$id"].endswith(SCHEMA_URL_PATH)


def test_every_object_in_the_schema_is_closed():
    """``additionalProperties: false`` wherever properties are listed (a typo never passes);
    the only exceptions are the dispatchers on ``type`` (symbol, renderer), whose every
    branch is closed, and their ``if`` tests."""
    open_ones = []

    def walk(node, where):
        if isinstance(node, dict):
            dispatcher = "allOf" in node and all("then" in b for b in node["allOf"])
            if "properties" in node and node.get("additionalProperties") is not False \
                    and not dispatcher and not where.endswith("/if"):
                open_ones.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}/{i}")

    walk(_schema(), "#")
    assert open_ones == []


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_sample_definition_passes_the_schema(path):
    doc = json.loads(path.read_text())
    assert schema_problems(doc) == []
    jsonschema.validate(doc, _schema())  # the plain library agrees


def test_samples_all_load_with_the_schema_on():
    catalog = load_catalog([PROJECT_ROOT / "services"], DATA)
    assert catalog.problems == ()
    assert sorted(catalog.services) == sorted(
        "/".join(p.relative_to(PROJECT_ROOT / "services").with_suffix("").parts)
        for p in SAMPLES)


@pytest.fixture(scope="module")
def typo_app(tmp_path_factory):
    """Olinda with "strech" (the issue's typo) next to an untouched copy of Demo."""
    root = tmp_path_factory.mktemp("services")
    doc = json.loads((PROJECT_ROOT / "services/Samples/Olinda.json").read_text())
    doc["layers"][1]["raster"]["strech"] = doc["layers"][1]["raster"].pop("stretch")
    (root / "Olinda.json").write_text(json.dumps(doc))
    shutil.copy(PROJECT_ROOT / "services/Samples/Demo.json", root / "Demo.json")
    return root, create_app(Settings(service_dirs=(root,), data_dir=DATA,
                                     output_dir=tmp_path_factory.mktemp("out"),
                                     tile_cache_dir=tmp_path_factory.mktemp("tiles")))


def test_a_typo_key_is_refused_with_a_hint_naming_file_and_field(typo_app):
    root, app = typo_app
    assert app.extensions["mapserver"].catalog.problems == (
        f"{root / 'Olinda.json'}: layers[1].raster.strech: unknown key; did you mean "
        "'stretch'?",)


def test_the_rejected_service_is_gone_and_the_others_serve(typo_app):
    _root, app = typo_app
    client = app.test_client()
    body = client.get("/arcgis/rest/services?f=json").get_json()
    assert body["services"] == [{"name": "Demo", "type": "MapServer"}]
    err = client.get("/arcgis/rest/services/Olinda/MapServer?f=json").get_json()
    assert err["error"]["code"] == 404
    # the good neighbour still draws
    meta = client.get("/arcgis/rest/services/Demo/MapServer?f=json").get_json()
    e = meta["fullExtent"]
    img = decode(client.get("/arcgis/rest/services/Demo/MapServer/export", query_string={
        "bbox": f"{e['xmin']},{e['ymin']},{e['xmax']},{e['ymax']}", "size": "200,200",
        "format": "png32", "transparent": "true", "f": "image"}).data)
    assert (img[..., 3] > 0).any()


def test_the_directory_shows_the_problem_without_absolute_paths(typo_app):
    root, app = typo_app
    html = app.test_client().get("/arcgis/rest/services").get_data(as_text=True)
    assert "Problems" in html
    assert (f"{root.name}/Olinda.json: layers[1].raster.strech: unknown key; did you mean "
            "&#39;stretch&#39;?") in html
    assert str(root) not in html


def _problems_of(doc: dict) -> list[tuple[str, str]]:
    return [(p.field, p.problem) for p in schema_problems(doc)]


LAYER = {"id": 0, "name": "Cities", "source": "world/cities.gpkg"}


@pytest.mark.parametrize(("doc", "expected"), [
    ({"layers": [{**LAYER, "drawingInfo": {"renderer": {"type": "simple", "symbol": {
        "type": "esriSMS", "colour": [1, 2, 3]}}}}]},
     ("layers[0].drawingInfo.renderer.symbol.colour", "unknown key; did you mean 'color'?")),
    ({"layers": [{**LAYER, "drawingInfo": {"renderer": {"type": "simple", "symbol": {
        "type": "esriSFS", "outline": {"widht": 1}}}}}]},
     ("layers[0].drawingInfo.renderer.symbol.outline.widht",
      "unknown key; did you mean 'width'?")),
    ({"layers": [{**LAYER, "drawingInfo": {"renderer": {
        "type": "classBreaks", "feild": "pop", "classBreakInfos": []}}}]},
     ("layers[0].drawingInfo.renderer.feild", "unknown key; did you mean 'field'?")),
    ({"layers": [LAYER], "tiling": {"level": 5}},
     ("tiling.level", "unknown key; did you mean 'levels'?")),
    ({"layers": [{**LAYER, "DisplayField": "name"}]},
     ("layers[0].DisplayField", "unknown key; did you mean 'displayField'?")),
    ({"layers": [LAYER], "zzz": 1},
     ("zzz", "unknown key (allowed here: $schema, access, copyrightText, description, "
             "fullExtent, initialExtent, layers, licenseInfo, mapName, maxImageHeight, "
             "maxImageWidth, maxRecordCount, referenceScale, serviceDescription, snippet, "
             "spatialReference, tags, tiling, title, versions, workspaces)")),
    ({"layers": [{**LAYER, "drawingInfo": {"renderer": {"type": "heatmap"}}}]},
     ("layers[0].drawingInfo.renderer.type",
      "'heatmap' is not one of simple, uniqueValue, classBreaks")),
    ({"layers": [LAYER], "title": 5}, ("title", "must be a string")),
    ({"layers": "all"}, ("layers", "must be a list")),
    ({}, ("layers", "is required")),
])
def test_schema_findings_name_the_deepest_field(doc, expected):
    assert _problems_of(doc)[0] == expected


def test_every_finding_of_a_file_is_listed():
    doc = {"layers": [{**LAYER, "sourceLayr": "x"}, {**LAYER, "id": 1, "nmae": "y"}],
           "mapname": "m"}
    assert _problems_of(doc) == [
        ("layers[0].sourceLayr", "unknown key; did you mean 'sourceLayer'?"),
        ("layers[1].nmae", "unknown key; did you mean 'name'?"),
        ("mapname", "unknown key; did you mean 'mapName'?")]


def test_a_schema_only_finding_rejects_a_file_the_old_loader_took(tmp_path):
    """``title`` is read leniently by itemInfo; a number there is now refused at load."""
    (tmp_path / "T.json").write_text(json.dumps({"layers": [LAYER], "title": 5}))
    catalog = load_catalog([tmp_path], DATA)
    assert catalog.services == {}
    assert catalog.problems == (f"{tmp_path / 'T.json'}: title: must be a string",)


def test_a_definition_may_name_the_schema_for_its_editor(tmp_path):
    (tmp_path / "S.json").write_text(json.dumps({
        "$schema": "http://127.0.0.1:8000" + SCHEMA_URL_PATH, "layers": [LAYER]}))
    catalog = load_catalog([tmp_path], DATA)
    assert catalog.problems == () and list(catalog.services) == ["S"]


def test_the_schema_is_served_cacheable_with_its_own_url_as_id(client):
    resp = client.get(SCHEMA_URL_PATH, base_url="http://maps.example:8080")
    assert resp.status_code == 200
    assert resp.mimetype == "application/schema+json"
    body = json.loads(resp.data)
    assert body["$id"] == "http://maps.example:8080" + SCHEMA_URL_PATH
    assert {k: v for k, v in body.items() if k != "$id"} == {
        k: v for k, v in _schema().items() if k != "$id"}
    assert "max-age=" in resp.headers["Cache-Control"]
    etag = resp.headers["ETag"]
    again = client.get(SCHEMA_URL_PATH, base_url="http://maps.example:8080",
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    # a hostile conditional header, then an ordinary request
    assert client.get(SCHEMA_URL_PATH, headers={"If-None-Match": '"' + "x" * 5000}
                      ).status_code == 200
    assert client.get(SCHEMA_URL_PATH).status_code == 200


def test_the_served_schema_validates_what_the_server_loads(client):
    served = json.loads(client.get(SCHEMA_URL_PATH).data)
    validator = jsonschema.Draft202012Validator(served)
    for path in SAMPLES:
        assert list(validator.iter_errors(json.loads(path.read_text()))) == []
    bad = json.loads((PROJECT_ROOT / "services/World.json").read_text())
    bad["layers"][0]["drawingInfo"]["strech"] = 1
    assert not validator.is_valid(bad)


def test_the_schema_ships_as_package_data():
    text = (PROJECT_ROOT / "pyproject.toml").read_text()
    assert '"catalog/*.json"' in text
    assert Path(SCHEMA_PATH).parent.name == "catalog"
