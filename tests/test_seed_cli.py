"""``mapserver seed`` / ``mapserver truncate`` (mapserver/cli/seed.py, maps/seeding.py): the
command as a user runs it (a subprocess, exit codes, stdout, the progress bar on stderr), the
files it leaves in the cache, and ``/tile`` answering from them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mapserver.app import create_app
from mapserver.settings import PROJECT_ROOT, Settings

WORLD = "/arcgis/rest/services/WorldMercator/MapServer"


def mapserver(cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MAPSERVER_TILE_CACHE": str(cache)}
    env.pop("MAPSERVER_SERVICES", None)
    return subprocess.run([sys.executable, "-m", "mapserver.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600, cwd="/")


def pngs(cache: Path) -> dict[Path, float]:
    return {p.relative_to(cache): p.stat().st_mtime_ns for p in cache.rglob("*.png")}


def app_on(cache: Path, tmp: Path):  # noqa: ANN201
    return create_app(Settings(tile_cache_dir=cache, output_dir=tmp / "output"))


def test_seed_then_tile_is_a_cache_hit_with_the_same_bytes(tmp_path):
    cache = tmp_path / "tiles"
    run = mapserver(cache, "seed", "WorldMercator", "--levels", "0-2")
    assert run.returncode == 0, run.stderr
    # 1 + 4 + 16 tiles; levels 0-2 are one metatile each (4 x 4 covers level 2)
    assert run.stdout.startswith("WorldMercator: 3 metatiles rendered, 0 already cached, "
                                 "21 tiles stored in ")
    assert "3/3 metatiles, 21 tiles" in run.stderr  # the progress bar
    files = pngs(cache)
    assert len(files) == 21 and all(p.parts[0] == "WorldMercator" for p in files)
    digest = {p.parts[1] for p in files}
    assert len(digest) == 1
    client = app_on(cache, tmp_path).test_client()
    for p in files:
        z, row, col = p.parts[2], p.parts[3], p.stem
        resp = client.get(f"{WORLD}/tile/{z}/{row}/{col}")
        assert resp.status_code == 200 and resp.data == (cache / p).read_bytes(), p
    assert pngs(cache) == files  # nothing rendered or rewritten: every answer was a hit
    # and what the server would have rendered itself is the same bytes
    fresh = app_on(tmp_path / "other", tmp_path).test_client().get(f"{WORLD}/tile/2/1/2")
    assert fresh.data == (cache / "WorldMercator" / digest.pop() / "2/1/2.png").read_bytes()


def test_an_interrupted_seed_resumes_with_only_the_rest(tmp_path):
    cache = tmp_path / "tiles"
    first = mapserver(cache, "seed", "WorldMercator", "--levels", "0-3", "--max-metatiles", "2",
                      "--quiet")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("WorldMercator: 2 metatiles rendered, 0 already cached, "
                                   "5 tiles stored")
    assert first.stderr == ""  # --quiet: no progress bar
    before = pngs(cache)
    rest = mapserver(cache, "seed", "WorldMercator", "--levels", "0-3", "--workers", "2",
                     "--quiet")
    assert rest.returncode == 0, rest.stderr
    # level 3 is 8 x 8 tiles = 4 metatiles, of which the northern row of tiles is in the
    # extent too (World reaches 83.6 N): 16 + 64 tiles were left
    assert rest.stdout.startswith("WorldMercator: 5 metatiles rendered, 2 already cached, "
                                  "80 tiles stored")
    after = pngs(cache)
    assert len(after) == 85
    assert {p: after[p] for p in before} == before  # the first run's tiles were not redone
    again = mapserver(cache, "seed", "WorldMercator", "--levels", "0-3", "--quiet")
    assert again.stdout.startswith("WorldMercator: 0 metatiles rendered, 7 already cached, "
                                   "0 tiles stored")
    assert pngs(cache) == after


def test_seed_inside_a_bbox_and_truncate(tmp_path):
    cache = tmp_path / "tiles"
    # Europe at level 5 (32 x 32 tiles, 8 x 8 metatiles): lon -10..30, lat 35..60
    # (a box starting with a minus sign is given as --bbox=…, as argparse requires)
    run = mapserver(cache, "seed", "WorldMercator", "--levels", "5", "--bbox=-10,35,30,60",
                    "--quiet")
    assert run.returncode == 0, run.stderr
    files = pngs(cache)
    cols = {int(p.stem) for p in files}
    rows = {int(p.parts[3]) for p in files}
    # the tiles of the metatiles touching the box: cols 12..19, rows 8..15
    assert cols == set(range(12, 20)) and rows == set(range(8, 16)) and len(files) == 64
    # the same box given in Web Mercator metres
    again = mapserver(cache, "seed", "WorldMercator", "--levels", "5",
                      "--bbox=-1113194,4163881,3339584,8399738,3857", "--quiet")
    assert "0 metatiles rendered, 4 already cached" in again.stdout
    mapserver(cache, "seed", "WorldMercator", "--levels", "0-1", "--quiet")
    assert len(pngs(cache)) == 64 + 5
    cut = mapserver(cache, "truncate", "WorldMercator", "--levels", "5")
    assert cut.returncode == 0 and cut.stdout.strip() == "WorldMercator: 64 tiles deleted"
    assert sorted(int(p.parts[2]) for p in pngs(cache)) == [0, 1, 1, 1, 1]
    everything = mapserver(cache, "truncate", "WorldMercator")
    assert everything.stdout.strip() == "WorldMercator: 5 tiles deleted"
    assert pngs(cache) == {}


@pytest.mark.parametrize("args,message", [
    (("seed", "Nowhere", "--levels", "0"), "mapserver: no service 'Nowhere' (services: "),
    (("seed", "Gapminder", "--levels", "0"),
     "mapserver: service 'Gapminder' has no tiling scheme"),
    (("seed", "WorldMercator", "--levels", "25"),
     "mapserver seed: Invalid levels: level 25 is not in the tiling scheme (levels 0-19)"),
    (("seed", "WorldMercator", "--levels", "3-1"), "mapserver seed: Invalid levels: '3-1': "
                                                   "the range is empty"),
    (("seed", "WorldMercator", "--levels", "0", "--bbox", "1,2,3"),
     "mapserver seed: Invalid bbox: bbox is xmin,ymin,xmax,ymax[,wkid]"),
    (("truncate", "WorldMercator", "--levels", "x"),
     "mapserver truncate: Invalid levels: 'x' is not a level or a range such as 0-4"),
])
def test_bad_arguments_exit_1_with_a_message_and_touch_nothing(tmp_path, args, message):
    cache = tmp_path / "tiles"
    run = mapserver(cache, *args)
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr.startswith(message), run.stderr
    assert not cache.exists() or pngs(cache) == {}


def test_the_geographic_world_seeds_its_own_scheme(tmp_path):
    """World is a 4326 cache: level 0 is two tiles (west, east) and level 1 eight."""
    cache = tmp_path / "tiles"
    run = mapserver(cache, "seed", "World", "--levels", "0-1", "--quiet",
                    "--services", str(PROJECT_ROOT / "services"))
    assert run.returncode == 0, run.stderr
    assert sorted("/".join(p.parts[2:]) for p in pngs(cache)) == [
        "0/0/0.png", "0/0/1.png", "1/0/0.png", "1/0/1.png", "1/0/2.png", "1/0/3.png",
        "1/1/0.png", "1/1/1.png", "1/1/2.png", "1/1/3.png"]


def test_truncate_leaves_a_folder_service_of_the_same_name_alone(tmp_path):
    """``World``'s tiles live under ``World/<digest>/``; a service ``World/Roads`` (a folder
    named like the service) keeps its ``World/Roads/<digest>/`` tiles when World is truncated,
    and so do files that are not tiles of any digest."""
    from mapserver.catalog.loader import load_catalog
    from mapserver.maps.seeding import truncate
    from mapserver.maps.tile_cache import TileCache
    from mapserver.maps.tiles import tile_prefix

    cache = tmp_path / "cache"
    world = load_catalog([PROJECT_ROOT / "services"], PROJECT_ROOT / "data").service("World")
    store = TileCache(str(cache))
    ours = f"{tile_prefix(world)}0/0/0.png"
    old = "World/0123456789abcdef/0/0/0.png"  # an older definition's tile: also World's
    theirs = "World/Roads/0123456789abcdef/0/0/0.png"
    for key in (ours, old, theirs, "World/README.txt"):
        store.put(key, b"x")
    assert truncate(world, cache) == 2
    assert store.get(ours) is None and store.get(old) is None
    assert store.get(theirs) == b"x" and store.get("World/README.txt") == b"x"
