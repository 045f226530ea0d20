"""``mapserver validate``: the server's own loader on the console. A file that validates is a
file the server serves, and a file it rejects fails here with the same message (both
directions, on every sample and on a set of broken files)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from mapserver.app import create_app
from mapserver.catalog.loader import load_catalog
from mapserver.cli import main
from mapserver.settings import PROJECT_ROOT, Settings

SAMPLES = sorted((PROJECT_ROOT / "services").rglob("*.json"))
SYMBOL = {"type": "esriSMS", "style": "esriSMSSquare", "color": [0, 0, 255, 255], "size": 12}


def _layer(**overrides) -> dict:
    return {"id": 0, "name": "Points", "type": "feature", "source": "./points.gpkg",
            "drawingInfo": {"renderer": {"type": "simple", "symbol": SYMBOL}}, **overrides}


def _service(*layers: dict, **extra) -> dict:
    return {"spatialReference": {"wkid": 4326}, "layers": list(layers), **extra}


# file -> (definition, the line validate prints and the server reports)
BROKEN = {
    "typo_key.json": (_service(_layer(displayFeild="name")),
                      "layers[0].displayFeild: unknown key; did you mean 'displayField'?"),
    "wrong_type.json": (_service(_layer(), maxImageWidth="big"),
                        "maxImageWidth: must be an integer"),
    "schema_type.json": (_service(_layer(), tags="maps"), "tags: must be a list"),
    "missing_data.json": (_service(_layer(source="./nowhere.gpkg")),
                          "layers[0].source: file not found: {root}/nowhere.gpkg"),
    "bad_sr.json": (_service(_layer(), spatialReference={"wkid": 999999}),
                    "spatialReference: Unknown spatial reference wkid 999999"),
    "bad_renderer_field.json": (_service(_layer(drawingInfo={"renderer": {
        "type": "classBreaks", "field": "no_such_field",
        "classBreakInfos": [{"classMaxValue": 1, "symbol": SYMBOL}]}})),
        "layers[0].drawingInfo.renderer.field: unknown field 'no_such_field'"),
    "not_json.json": ('{"layers": [', "(file): is not valid JSON: Expecting value at line 1"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defs")
    pts = shapely.points([(0, 0), (10, 10), (-10, 5)])
    pyogrio.raw.write(root / "points.gpkg", shapely.to_wkb(pts),
                      [np.array(["a", "b", "c"], dtype=object)], ["name"], crs="EPSG:4326",
                      geometry_type="Point", driver="GPKG")
    (root / "Good.json").write_text(json.dumps(_service(_layer())))
    for name, (doc, _line) in BROKEN.items():
        (root / name).write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def _run(capsys, *args: str) -> tuple[int, list[str], str]:
    status = main(["validate", *args])
    out, err = capsys.readouterr()
    return status, out.splitlines(), err


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_each_sample_validates_and_loads(capsys, path):
    status, out, _err = _run(capsys, str(path), "--data", str(PROJECT_ROOT / "data"))
    assert status == 0
    assert out[-1].startswith("ok: 1 definition(s) valid (1 service(s), ")
    # and the other direction: the server's catalog of a folder with just this file
    catalog = load_catalog([path.parent], PROJECT_ROOT / "data")
    assert path.stem in {n.rsplit("/", 1)[-1] for n in catalog.services}


def test_default_is_the_configured_services_folders(capsys, monkeypatch):
    monkeypatch.delenv("MAPSERVER_SERVICES", raising=False)
    monkeypatch.delenv("MAPSERVER_DATA", raising=False)
    status, out, _err = _run(capsys)
    catalog = load_catalog([PROJECT_ROOT / "services"], PROJECT_ROOT / "data")
    layers = sum(len(s.layers) for s in catalog.services.values())
    assert (status, out) == (0, [f"ok: {len(SAMPLES)} definition(s) valid ({len(SAMPLES)} "
                                 f"service(s), {layers} layer(s))"])


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_file_fails_with_file_and_field(capsys, folder, name):
    status, out, err = _run(capsys, str(folder / name), "--data", str(folder))
    expected = f"{folder / name}: " + BROKEN[name][1].format(root=folder)
    assert status == 1
    assert out[0].startswith(expected), out
    assert err.strip() == "1 of 1 definition(s) invalid"


def test_validate_and_the_server_agree_on_a_folder(capsys, folder, tmp_path):
    status, out, err = _run(capsys, str(folder), "--data", str(folder))
    assert status == 1
    assert err.strip() == f"{len(BROKEN)} of {len(BROKEN) + 1} definition(s) invalid"
    app = create_app(Settings(service_dirs=(folder,), data_dir=folder, output_dir=tmp_path))
    catalog = app.extensions["mapserver"].catalog
    assert list(catalog.services) == ["Good"]
    # one line per broken file here, and the server's problem for that file is the same line
    assert sorted(out) == sorted(catalog.problems)


def test_every_schema_finding_of_a_file_is_printed(capsys, tmp_path):
    shutil.copy(PROJECT_ROOT / "services/World.json", tmp_path / "World.json")
    doc = json.loads((tmp_path / "World.json").read_text())
    doc["layers"][0]["defaultVisiblity"] = True
    doc["layers"][1]["drawingInfo"]["renderer"]["defaultLable"] = "x"
    (tmp_path / "World.json").write_text(json.dumps(doc))
    status, out, _err = _run(capsys, str(tmp_path / "World.json"),
                             "--data", str(PROJECT_ROOT / "data"))
    assert status == 1
    assert out == [
        f"{tmp_path / 'World.json'}: layers[0].defaultVisiblity: unknown key; did you mean "
        "'defaultVisibility'?",
        f"{tmp_path / 'World.json'}: layers[1].drawingInfo.renderer.defaultLable: unknown key; "
        "did you mean 'defaultLabel'?"]


def test_a_missing_path_is_a_finding(capsys, tmp_path):
    status, out, _err = _run(capsys, str(tmp_path / "nope.json"))
    assert (status, out) == (1, [f"{tmp_path / 'nope.json'}: (file): does not exist"])


def test_the_command_exit_status(folder):
    """The real command line (``python -m mapserver.cli``, what the console script runs)."""
    bad = subprocess.run([sys.executable, "-m", "mapserver.cli", "validate",
                          str(folder / "typo_key.json"), "--data", str(folder)],
                         capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert bad.returncode == 1
    assert bad.stdout == (f"{folder / 'typo_key.json'}: layers[0].displayFeild: unknown key; "
                          "did you mean 'displayField'?\n")
    good = subprocess.run([sys.executable, "-m", "mapserver.cli", "validate",
                           str(folder / "Good.json"), "--data", str(folder)],
                          capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert good.returncode == 0
    assert good.stdout == "ok: 1 definition(s) valid (1 service(s), 1 layer(s))\n"
