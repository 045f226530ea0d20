"""``mapserver serve`` (README "Install"): the real command, run from other directories, against
the same pixels and JSON as the clone's app; its one-line refusals; its settings equal to what
``gunicorn -c gunicorn.conf.py wsgi:app`` runs with from the clone."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from serve_support import (
    EXPORT,
    colours,
    free_port,
    get,
    png_pixels,
    server_env,
    start,
    stop,
    wait_healthy,
)

from mapserver.settings import PROJECT_ROOT, Settings

MAPSERVER = [sys.executable, "-m", "mapserver.cli"]  # the console script's own entry point
OLINDA = ("/arcgis/rest/services/Samples/Olinda/MapServer/export?bbox=288000,9115000,298400,"
          "9121000&size=208,120&f=image&format=png")


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(MAPSERVER + args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_help_lists_the_commands_and_serve_options(tmp_path: Path) -> None:
    top = run(["--help"], tmp_path, server_env(tmp_path))
    assert top.returncode == 0 and top.stderr == ""
    assert top.stdout.startswith("usage: mapserver [-h] COMMAND ...")
    for command in ("serve", "validate", "init", "seed", "jobs"):
        assert re.search(rf"^    {command}\b", top.stdout, re.M), top.stdout
    serve = run(["serve", "--help"], tmp_path, server_env(tmp_path))
    assert serve.returncode == 0
    for option in ("--services DIR", "--data DIR", "--bind HOST:PORT", "--workers N",
                   "--threads N", "--access-log FILE", "--log-level", "--pid FILE",
                   "--print-config", "MAPSERVER_SERVICES", "MAPSERVER_ACCESSLOG"):
        assert option in serve.stdout, option


@pytest.mark.parametrize("case", ["option", "setting", "data"])
def test_a_missing_folder_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    nowhere = tmp_path / "nowhere"
    env = server_env(tmp_path)
    args = ["serve", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"]
    if case == "option":
        args += ["--services", "nowhere"]  # relative to the working directory
        expected = f"no services folder at {nowhere} (from --services)"
    elif case == "setting":
        env["MAPSERVER_SERVICES"] = str(nowhere)
        expected = f"no services folder at {nowhere} (from MAPSERVER_SERVICES)"
    else:
        args += ["--services", str(PROJECT_ROOT / "services"), "--data", str(nowhere)]
        expected = f"no data folder at {nowhere}"
    done = run(args, tmp_path, env)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"mapserver serve: {expected}\n"


def test_bad_option_values_are_usage_errors(tmp_path: Path) -> None:
    done = run(["serve", "--workers", "0"], tmp_path, server_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines()[-1] == ("mapserver serve: error: argument --workers: must "
                                            "be a whole number of at least 1, not '0'")


def test_default_folders_are_the_current_directorys_else_the_clones(tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert Settings().service_dirs == (PROJECT_ROOT / "services",)
    assert Settings().data_dir == PROJECT_ROOT / "data"
    (tmp_path / "services").mkdir()
    assert Settings().service_dirs == (tmp_path / "services",)
    assert Settings().data_dir == PROJECT_ROOT / "data"
    (tmp_path / "data").mkdir()
    assert Settings().data_dir == tmp_path / "data"
    assert Settings.from_env({"MAPSERVER_SERVICES": "/a" + ":" + "/b"}).service_dirs == (
        Path("/a"), Path("/b"))


def test_print_config_is_what_gunicorn_runs_from_the_clone(tmp_path: Path) -> None:
    """Same settings and hooks through ``mapserver serve`` (from anywhere) as through
    ``gunicorn -c gunicorn.conf.py wsgi:app`` from the clone (the bench's command)."""
    env = server_env(tmp_path, MAPSERVER_SERVICES=str(PROJECT_ROOT / "services"),
                     MAPSERVER_DATA=str(PROJECT_ROOT / "data"))
    ours = run(["serve", "--print-config"], tmp_path, env)
    assert ours.returncode == 0, ours.stderr
    theirs = subprocess.run([sys.executable, "-m", "gunicorn", "--print-config", "-c",
                             "gunicorn.conf.py", "wsgi:app"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert theirs.returncode == 0, theirs.stderr[-3000:]

    def settings(text: str) -> dict[str, str]:
        pairs = (line.split(" = ", 1) for line in text.splitlines() if " = " in line)
        return {k.strip(): v for k, v in pairs if not k.startswith("MAPSERVER_")}

    a, b = settings(ours.stdout), settings(theirs.stdout)
    differ = {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    # where it runs from, gunicorn's own flags, and the name gunicorn makes of "wsgi:app"
    assert differ == {"chdir", "config", "print_config", "default_proc_name"}
    assert a["worker_class"] == "mapserver.gunicorn_worker.ThreadWorker"
    assert a["preload_app"] == "True" and a["post_worker_init"] == "<post_worker_init()>"
    assert a["accesslog"] == "None" and a["bind"] == "['127.0.0.1:8000']"

    flags = run(["serve", "--print-config", "--bind", "0.0.0.0:9000", "--bind", "[::1]:9001",
                 "--workers", "3", "--threads", "7", "--access-log", "-", "--log-level",
                 "warning", "--services", str(PROJECT_ROOT / "services")], tmp_path,
                server_env(tmp_path))
    assert flags.returncode == 0, flags.stderr
    c = settings(flags.stdout)
    assert (c["bind"], c["workers"], c["threads"], c["worker_connections"], c["accesslog"],
            c["loglevel"]) == ("['0.0.0.0:9000', '[::1]:9001']", "3", "7", "112", "-",
                               "warning")
    assert f"MAPSERVER_SERVICES         = {PROJECT_ROOT / 'services'}" in flags.stdout
    assert f"MAPSERVER_DATA             = {PROJECT_ROOT / 'data'}" in flags.stdout
    assert "MAPSERVER_BIND             = 0.0.0.0:9000" in flags.stdout
    assert "MAPSERVER_ACCESSLOG        = -" in flags.stdout


def test_serve_the_sample_services_from_another_directory(tmp_path: Path, client) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port, log = free_port(), tmp_path / "server.log"
    proc = start(MAPSERVER + ["serve", "--services", str(PROJECT_ROOT / "services"), "--data",
                              str(PROJECT_ROOT / "data"), "--bind", f"127.0.0.1:{port}",
                              "--workers", "1", "--threads", "2"],
                 elsewhere, server_env(tmp_path), log)
    try:
        wait_healthy(port, proc, log)
        status, _h, body = get(port, "/arcgis/rest/services?f=json")
        assert status == 200
        assert json.loads(body) == client.get("/arcgis/rest/services?f=json").get_json()
        for target in (EXPORT, OLINDA):  # vectors, and a raster found through --data
            status, headers, body = get(port, target)
            assert (status, headers["content-type"]) == (200, "image/png"), body[:300]
            pixels = png_pixels(body)
            assert colours(pixels) > 1
            assert (pixels == png_pixels(client.get(target).data)).all()
    finally:
        assert stop(proc) == 0
    # no access log unless asked for
    assert "GET /arcgis/rest/services" not in log.read_text()


def test_serve_defaults_to_the_working_directorys_folders_with_an_access_log(
        tmp_path: Path, client) -> None:
    site = tmp_path / "site"
    (site / "services").mkdir(parents=True)
    (site / "data").mkdir()
    shutil.copy(PROJECT_ROOT / "services" / "World.json", site / "services" / "World.json")
    shutil.copytree(PROJECT_ROOT / "data" / "world", site / "data" / "world")
    port, log = free_port(), tmp_path / "server.log"
    proc = start(MAPSERVER + ["serve", "--bind", f"127.0.0.1:{port}", "--workers", "1",
                              "--access-log", "-"], site, server_env(tmp_path), log)
    try:
        wait_healthy(port, proc, log)
        status, _h, body = get(port, "/arcgis/rest/services?f=json")
        assert status == 200
        assert [s["name"] for s in json.loads(body)["services"]] == ["World"]
        assert json.loads(body)["folders"] == []
        status, _h, body = get(port, EXPORT)
        assert status == 200
        assert (png_pixels(body) == png_pixels(client.get(EXPORT).data)).all()
        status, _h, body = get(port, "/arcgis/rest/services/Samples/Olinda/MapServer?f=json")
        assert json.loads(body)["error"]["code"] == 404
    finally:
        assert stop(proc) == 0
    lines = log.read_text().splitlines()
    assert (f"mapserver serve: services {(site / 'services').resolve()}; "
            f"data {(site / 'data').resolve()}") in lines
    exports = [ln for ln in lines if f'"GET {EXPORT} HTTP/1.1" 200 ' in ln]
    assert len(exports) == 1, "\n".join(lines[-30:])
