"""Tile seeding throughput: ``mapserver seed`` at 1 and 2 workers next to ``gdal2tiles.py``.

    python bench/seed_bench.py [--levels-world 0-5] [--levels-raster 10-16]

Seeds, each into a fresh cache folder:

* ``WorldMercator`` (vector, labels) levels 0-5 with ``mapserver seed --workers 1|2``;
* ``Samples/OlindaMercator`` (the Landsat scene, bands 3,2,1 stretched) at the levels where
  the 10 km scene has pixels (10-16 by default: levels 0-5 are one tile each), with
  ``mapserver seed`` and with Debian's ``gdal2tiles.py --processes 1|2`` (``/usr/bin/python3``,
  package ``python3-gdal``/``gdal-bin``) on an 8-bit RGB copy of the same bands, the same levels,
  XYZ numbering, PNG, nearest neighbour.

Reports tiles written and tiles/s on the wall clock of the whole command (process start and
catalog load included), and for ``mapserver seed`` also the rate it prints itself (rendering
only). Both tools are given the same levels; gdal2tiles writes the tiles covering the raster
only, while ``mapserver seed`` writes every tile of the metatiles that touch the service's
extent (the counts are shown). Numbers depend on the machine and its load: state both.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GDAL2TILES = shutil.which("gdal2tiles.py") or "/usr/bin/gdal2tiles.py"


def run(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, out.stdout


def count_png(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.png"))


def mapserver_seed(service: str, levels: str, workers: int, tmp: Path) -> dict:
    cache = tmp / f"cache-{service.replace('/', '_')}-{workers}"
    env = {**os.environ, "MAPSERVER_TILE_CACHE": str(cache)}
    wall, out = run([sys.executable, "-m", "mapserver.cli", "seed", service, "--levels", levels,
                     "--workers", str(workers), "--quiet"], env)
    own = re.search(r"\(([\d.]+) tiles/s\)", out)
    tiles = count_png(cache)
    return {"tool": f"mapserver seed --workers {workers}", "service": service,
            "levels": levels, "tiles": tiles, "wall": wall, "rate": tiles / wall,
            "own": float(own.group(1)) if own else None}


def rgb_copy(tmp: Path) -> Path:
    """Bands 3,2,1 of the Landsat scene stretched to 8 bits (outside the timing)."""
    out = tmp / "olinda_rgb.tif"
    subprocess.run(["gdal_translate", "-q", "-b", "3", "-b", "2", "-b", "1", "-scale",
                    str(ROOT / "data" / "olinda" / "L7_ETMs.tif"), str(out)], check=True)
    return out


def gdal2tiles(src: Path, levels: str, processes: int, tmp: Path) -> dict:
    out = tmp / f"g2t-{processes}"
    wall, _ = run(["/usr/bin/python3", GDAL2TILES, "-q", "--xyz", "-w", "none", "-r", "near",
                   "-z", levels, f"--processes={processes}", str(src), str(out)])
    tiles = count_png(out)
    return {"tool": f"gdal2tiles.py --processes {processes}", "service": "L7_ETMs.tif (3,2,1)",
            "levels": levels, "tiles": tiles, "wall": wall, "rate": tiles / wall, "own": None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels-world", default="0-5")
    ap.add_argument("--levels-raster", default="10-16")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="seed-bench-") as d:
        tmp = Path(d)
        for workers in (1, 2):
            rows.append(mapserver_seed("WorldMercator", args.levels_world, workers, tmp))
        for workers in (1, 2):
            rows.append(mapserver_seed("Samples/OlindaMercator", args.levels_raster, workers,
                                       tmp))
        src = rgb_copy(tmp)
        for processes in (1, 2):
            rows.append(gdal2tiles(src, args.levels_raster, processes, tmp))
    print("| tool | data | levels | tiles | wall s | tiles/s (wall) | tiles/s (rendering) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        own = f"{r['own']:.1f}" if r["own"] is not None else "–"
        print(f"| {r['tool']} | {r['service']} | {r['levels']} | {r['tiles']} | "
              f"{r['wall']:.1f} | {r['rate']:.1f} | {own} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
