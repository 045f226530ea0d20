"""Metatiles (mapserver/maps/metatiles.py): a 4 x 4 block of level-4 World tiles, labels on, is
one render; each label appears once and none is cut; a changed definition serves new tiles at
once while the old ones stay on disk.

"Each label appears once" is checked without trusting the renderer: a copy of World gives
every country its own label class (``where name = '…'``) with its own colour, so the pixels of
one colour are one country's label; dilated into words, each colour must form at most one
blob in the stitched block, and no blob may touch the block's outer edge (a cut label)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from mapserver.app import create_app
from mapserver.maps.export import draw_map, map_of
from mapserver.maps.metatiles import block_of, draw_block
from mapserver.settings import PROJECT_ROOT, Settings
from tests.conftest import decode

ROOT = "/arcgis/rest/services"
LEVEL, ROW0, COL0, N = 4, 4, 24, 4  # World 4326, level 4: lon 90..135 E, lat 45..0 N


def services_copy(tmp: Path, name: str, edit=None) -> Path:  # noqa: ANN001
    """A services folder holding World.json (edited by ``edit``) as ``name``."""
    doc = json.loads((PROJECT_ROOT / "services" / "World.json").read_text())
    if edit is not None:
        edit(doc)
    folder = tmp / "services"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(doc))
    return folder


def make_app(tmp: Path, folder: Path, cache: Path):  # noqa: ANN201
    return create_app(Settings(service_dirs=(folder,), data_dir=PROJECT_ROOT / "data",
                               output_dir=tmp / "output", tile_cache_dir=cache))


def stitched(client, service: str) -> np.ndarray:  # noqa: ANN001
    rows = []
    for r in range(ROW0, ROW0 + N):
        cols = []
        for c in range(COL0, COL0 + N):
            resp = client.get(f"{ROOT}/{service}/MapServer/tile/{LEVEL}/{r}/{c}")
            assert resp.status_code == 200 and resp.mimetype == "image/png", (r, c)
            cols.append(decode(resp.data))
        rows.append(np.concatenate(cols, axis=1))
    return np.concatenate(rows, axis=0)


def country_names(app) -> list[str]:  # noqa: ANN001
    table = app.extensions["mapserver"].catalog.service("World").layer(1).table
    return sorted({str(v) for v in table.columns["name"]})


def colour_of(i: int) -> list[int]:
    """Distinct, saturated label colours far from World's fills and outlines."""
    return [40 + (i * 67) % 200, 20 + (i * 151) % 60, 120 + (i * 37) % 136, 255]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """World with one label class per country (its own colour, no halo) and the same World
    without labels, as two services of one app."""
    tmp = tmp_path_factory.mktemp("metatiles")
    names = country_names(create_app(Settings(tile_cache_dir=tmp / "unused")))

    def per_country(doc: dict) -> None:
        base = doc["layers"][1]["drawingInfo"]["labelingInfo"][0]
        classes = []
        for i, name in enumerate(names):
            lc = json.loads(json.dumps(base))
            lc["where"] = "name = '" + name.replace("'", "''") + "'"
            lc["symbol"]["color"] = colour_of(i)
            # big and bold, so that glyph strokes have pixels of exactly the label colour
            lc["symbol"]["font"].update(size=14, weight="bold")
            lc["symbol"].pop("haloColor", None)
            lc["symbol"].pop("haloSize", None)
            classes.append(lc)
        doc["layers"][1]["drawingInfo"]["labelingInfo"] = classes

    def unlabelled(doc: dict) -> None:
        doc["layers"][1]["drawingInfo"].pop("labelingInfo")

    folder = services_copy(tmp, "Coloured", per_country)
    services_copy(tmp, "Plain", unlabelled)
    app = make_app(tmp, folder, tmp / "tiles")
    return app, names


def test_stitched_tiles_are_the_metatile_pixel_for_pixel_labels_included(client, app):
    """The 16 /tile answers of a level-4 block, stitched, are exactly one render of the block
    (its grid with the 64 px buffer, cut off), labels and all."""
    service = app.extensions["mapserver"].catalog.service("World")
    scheme = service.tiling
    block = block_of(scheme, LEVEL, ROW0 + 1, COL0 + 2)  # any tile of the block names it
    assert (block.row0, block.col0, block.rows, block.cols) == (ROW0, COL0, N, N)
    m = map_of(service)
    metatile = draw_block(scheme, block, lambda grid: draw_map(m, grid, None))
    assert metatile.shape == (N * 256, N * 256, 4)
    tiles = stitched(client, "World")
    np.testing.assert_array_equal(tiles, metatile)
    # labels are on at this scale: dark grey text (40, 40, 40) on the light fills
    assert ((tiles[..., :3] < 100).all(axis=-1) & (tiles[..., 3] == 255)).sum() > 300


def test_each_label_appears_once_and_none_is_cut(labelled):
    app, names = labelled
    client = app.test_client()
    coloured = stitched(client, "Coloured")
    plain = stitched(client, "Plain")
    background = {tuple(p) for p in np.unique(plain.reshape(-1, 4), axis=0)}
    seen, crossing = 0, 0
    for i, _name in enumerate(names):
        colour = tuple(colour_of(i))
        if colour in background:  # not told apart from the map itself: not counted
            continue
        exact = (coloured == np.array(colour, np.uint8)).all(axis=-1)
        if not exact.any():
            continue
        # a label: its letters' cores dilated together, across the space between words (a
        # 14 pt label is ~19 px high; two copies of one label would be far apart)
        blobs, count = ndimage.label(ndimage.binary_dilation(exact, iterations=10))
        assert count == 1, (names[i], count)
        seen += 1
        ys, xs = np.nonzero(exact)
        # never cut by the block's (the metatile's) edge: the label's glyphs keep clear of it
        assert ys.min() > 1 and xs.min() > 1, names[i]
        assert ys.max() < N * 256 - 2 and xs.max() < N * 256 - 2, names[i]
        # a label that spans a tile edge inside the block is drawn whole across it
        if any(ys.min() < k * 256 <= ys.max() for k in range(1, N)) or \
                any(xs.min() < k * 256 <= xs.max() for k in range(1, N)):
            crossing += 1
    assert seen >= 8  # China, Mongolia, Myanmar, Thailand, Vietnam, Laos, ... are labelled
    assert crossing >= 1  # and at least one of them straddles a tile edge, uncut
    # the labels changed nothing else: off the labels both renders are the same map
    differs = (coloured != plain).any(axis=-1)
    assert differs.mean() < 0.05


def test_a_changed_definition_serves_new_tiles_at_once_old_ones_stay_on_disk(tmp_path):
    cache = tmp_path / "tiles"
    folder = services_copy(tmp_path, "World")
    url = f"{ROOT}/World/MapServer/tile/{LEVEL}/{ROW0}/{COL0 + 1}"
    before = make_app(tmp_path, folder, cache).test_client().get(url)
    assert before.status_code == 200
    old_files = sorted(p.relative_to(cache) for p in cache.rglob("*.png"))
    assert len(old_files) == N * N  # the whole metatile was stored by one request
    # China's class ("over 500 million") becomes pure blue; the app is rebuilt (a reload)
    breaks = json.loads((folder / "World.json").read_text())
    breaks["layers"][1]["drawingInfo"]["renderer"]["classBreakInfos"][-1]["symbol"][
        "color"] = [0, 0, 255, 255]
    (folder / "World.json").write_text(json.dumps(breaks))
    after = make_app(tmp_path, folder, cache).test_client().get(url)
    assert after.status_code == 200 and after.data != before.data
    assert after.headers["ETag"] != before.headers["ETag"]
    # a pixel of China (105 E, 35 N): tile col 25 spans lon 101.25..112.5, row 4 lat 45..33.75
    x, y = int((105.0 - 101.25) / 0.0439453125), int((45.0 - 35.0) / 0.0439453125)
    assert tuple(decode(before.data)[y, x]) == (189, 0, 38, 255)
    assert tuple(decode(after.data)[y, x]) == (0, 0, 255, 255)
    # the old tiles are still on disk, under the old definition's digest
    files = sorted(p.relative_to(cache) for p in cache.rglob("*.png"))
    assert set(old_files) < set(files)
    assert len({p.parts[1] for p in files}) == 2  # World/<digest>/...: two digests


def test_concurrent_requests_for_one_metatile_agree_and_leave_whole_files(tmp_path):
    """Eight threads ask for the 16 tiles of one metatile at once (a map client's burst): the
    answers equal those of a fresh sequential render, and the cache holds whole files only."""
    from concurrent.futures import ThreadPoolExecutor

    folder = services_copy(tmp_path, "World")
    urls = [f"{ROOT}/World/MapServer/tile/{LEVEL}/{r}/{c}"
            for r in range(ROW0, ROW0 + N) for c in range(COL0, COL0 + N)]
    app = make_app(tmp_path, folder, tmp_path / "burst")

    def fetch(url: str) -> bytes:
        resp = app.test_client().get(url)
        assert resp.status_code == 200
        return resp.data

    with ThreadPoolExecutor(8) as pool:
        burst = list(pool.map(fetch, urls * 2))
    calm = make_app(tmp_path, folder, tmp_path / "calm").test_client()
    expected = [calm.get(u).data for u in urls]
    assert burst == expected * 2
    files = list((tmp_path / "burst").rglob("*"))
    assert sorted(p.suffix for p in files if p.is_file()) == [".png"] * N * N


def test_metatiles_at_the_edge_of_the_extent_have_fewer_tiles(app, client):
    """World in Web Mercator reaches 83.6 N: level 5's top row of tiles is outside the extent,
    so the metatiles of the top are 3 tiles high (rows 1..3) and still one render."""
    service = app.extensions["mapserver"].catalog.service("WorldMercator")
    scheme = service.tiling
    block = block_of(scheme, 5, 2, 1)
    assert (block.row0, block.col0, block.rows, block.cols) == (1, 0, 3, 4)
    assert client.get(f"{ROOT}/WorldMercator/MapServer/tile/5/0/1").status_code == 404
    m = map_of(service)
    metatile = draw_block(scheme, block, lambda grid: draw_map(m, grid, None))
    assert metatile.shape == (3 * 256, 4 * 256, 4)
    rows = [np.concatenate([decode(client.get(f"{ROOT}/WorldMercator/MapServer/tile/5/{r}/{c}")
                                   .data) for c in range(4)], axis=1) for r in range(1, 4)]
    np.testing.assert_array_equal(np.concatenate(rows, axis=0), metatile)
    # level 0 and 1 are smaller than a metatile: one tile, two by two
    assert block_of(scheme, 0, 0, 0).rows == 1 and block_of(scheme, 1, 1, 1).cols == 2


@pytest.mark.parametrize("fmt,mime,mode", [("JPEG", "image/jpeg", "RGB"),
                                           ("PNG8", "image/png", "P")])
def test_jpeg_and_png8_tiles_are_encoded_tile_by_tile(tmp_path, fmt, mime, mode):
    import io

    from PIL import Image

    def edit(doc: dict) -> None:
        doc["tiling"] = {"format": fmt}

    folder = services_copy(tmp_path, "World", edit)
    client = make_app(tmp_path, folder, tmp_path / "tiles").test_client()
    land = client.get(f"{ROOT}/World/MapServer/tile/{LEVEL}/{ROW0}/{COL0 + 1}")  # China
    assert land.status_code == 200 and land.mimetype == mime
    img = Image.open(io.BytesIO(land.data))
    assert img.mode == mode and img.size == (256, 256)
    # open ocean (level 4, lon 157.5..168.75 W, lat 0..11.25 S) is a blank tile: white for
    # JPEG (no alpha), transparent for PNG8, and a 404 with blankTile=false
    url = f"{ROOT}/World/MapServer/tile/{LEVEL}/8/1"
    ocean = client.get(url)
    assert ocean.status_code == 200 and ocean.headers["blank-tile"] == "true"
    rgba = np.asarray(Image.open(io.BytesIO(ocean.data)).convert("RGBA"))
    if fmt == "JPEG":
        assert (rgba == 255).all()
    else:
        assert not rgba[..., 3].any()
    assert client.get(url + "?blankTile=false").status_code == 404
