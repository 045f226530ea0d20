"""Seeding and truncating a service's tile cache (``mapserver seed`` / ``mapserver truncate``).

Seeding walks the metatiles (``maps/metatiles.py``) of the chosen levels, optionally inside a
box, and stores every tile of each through the same ``store_block`` that ``/tile`` uses on a
miss, under the same keys (``<service>/<digest>/…``), so a seeded tile is byte for byte what
``/tile`` would have rendered. It is resumable: a metatile whose tiles are all in the cache under
the current digest is skipped, so an interrupted run picks up where it stopped, and a run after
a definition change renders everything again (new digest). With ``workers`` > 1 the metatiles
are rendered by forked processes (each puts its own tiles; puts are atomic).
"""

from __future__ import annotations

import multiprocessing
import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mapserver.catalog.model import Service
from mapserver.errors import InvalidParameter
from mapserver.geo.project import project_bounds
from mapserver.geo.sr import parse_sr
from mapserver.maps.metatiles import DEFAULT_BUFFER, DEFAULT_METATILE, Block, blocks_in
from mapserver.maps.service_digest import DIGEST_CHARS
from mapserver.maps.tile_cache import TileCache
from mapserver.maps.tiles import store_block, tile_key, tile_prefix
from mapserver.tiling import TilingScheme


@dataclass(frozen=True)
class SeedResult:
    metatiles: int  # metatiles in the plan
    rendered: int  # metatiles rendered by this run
    skipped: int  # metatiles already complete in the cache
    tiles: int  # tiles stored by this run
    seconds: float

    @property
    def tiles_per_second(self) -> float:
        return self.tiles / self.seconds if self.seconds > 0 else 0.0


def parse_levels(text: str, scheme: TilingScheme) -> list[int]:
    """``0-4``, ``3`` or ``0,2,5-6`` → the scheme's levels among them (an unknown level is an
    error, naming the scheme's range)."""
    known = [lod.level for lod in scheme.lods]
    out: set[int] = set()
    for item in text.split(","):
        item = item.strip()
        lo, sep, hi = item.partition("-")
        try:
            a, b = int(lo), int(hi) if sep else int(lo)
        except ValueError:
            raise InvalidParameter("Invalid levels", [f"'{item}' is not a level or a range "
                                                      "such as 0-4"]) from None
        if a > b:
            raise InvalidParameter("Invalid levels", [f"'{item}': the range is empty"])
        for level in range(a, b + 1):
            if level not in known:
                raise InvalidParameter("Invalid levels", [
                    f"level {level} is not in the tiling scheme (levels {known[0]}-{known[-1]})"])
            out.add(level)
    return sorted(out)


def parse_bbox(text: str, scheme: TilingScheme) -> tuple[float, float, float, float]:
    """``xmin,ymin,xmax,ymax[,wkid]`` (default wkid 4326: longitude, latitude) → the box in the
    scheme's SR."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (4, 5):
        raise InvalidParameter("Invalid bbox", ["bbox is xmin,ymin,xmax,ymax[,wkid]"])
    try:
        box = tuple(float(p) for p in parts[:4])
    except ValueError:
        raise InvalidParameter("Invalid bbox", ["bbox coordinates must be numbers"]) from None
    if not (box[0] < box[2] and box[1] < box[3]):
        raise InvalidParameter("Invalid bbox", ["bbox needs xmin < xmax and ymin < ymax"])
    sr = parse_sr(parts[4] if len(parts) == 5 else "4326")
    out = project_bounds(box, sr, scheme.sr)  # type: ignore[arg-type]
    if out is None:
        raise InvalidParameter("Invalid bbox", ["bbox does not project into the tiling "
                                                "scheme's spatial reference"])
    return out


def plan(scheme: TilingScheme, levels: Iterable[int], bbox: tuple | None = None,
         metatile: int = DEFAULT_METATILE, buffer: int = DEFAULT_BUFFER) -> list[Block]:
    """The metatiles to seed, level by level."""
    return [b for level in levels for b in blocks_in(scheme, level, metatile, buffer, bbox)]


def block_done(service: Service, cache: TileCache, block: Block,
               data_dir: Path | None = None) -> bool:
    """Every tile of the metatile (those inside the coverage) is in the cache."""
    scheme = service.tiling
    assert scheme is not None
    return all(cache.get(tile_key(service, block.level, r, c, data_dir)) is not None
               for r, c in block.tiles() if scheme.tile_grid(block.level, r, c) is not None)


# --- worker processes (forked: the loaded service is inherited, never pickled) ----------------
_worker: dict = {}


def _init_worker(service: Service, location: str, s3_endpoint: str | None,
                 png_compression: int, data_dir: Path | None) -> None:
    _worker.update(service=service, cache=TileCache(location, s3_endpoint),
                   png=png_compression, data_dir=data_dir)


def _seed_block(block: Block) -> int:
    return len(store_block(_worker["service"], block, _worker["cache"], _worker["png"],
                           _worker["data_dir"]))


def seed(service: Service, cache_location: str | Path, levels: Iterable[int],
         bbox: tuple | None = None, metatile: int = DEFAULT_METATILE,
         buffer: int = DEFAULT_BUFFER, png_compression: int = 2, workers: int = 1,
         s3_endpoint: str | None = None, data_dir: Path | None = None,
         limit: int | None = None,
         progress: Callable[[int, int, int], None] | None = None) -> SeedResult:
    """Seed the cache at ``cache_location`` (a folder or ``s3://…``). ``limit``: render at
    most that many metatiles (then stop, as an interrupted run would). ``progress(done, total,
    tiles)`` is called after each metatile."""
    t0 = time.perf_counter()
    scheme = service.tiling
    if scheme is None:
        raise InvalidParameter("Not a cached service",
                               [f"Service {service.name} has no tiling scheme"])
    cache = TileCache(str(cache_location), s3_endpoint)
    blocks = plan(scheme, levels, bbox, metatile, buffer)
    todo = [b for b in blocks if not block_done(service, cache, b, data_dir)]
    skipped = len(blocks) - len(todo)
    if limit is not None:
        todo = todo[:max(0, limit)]
    tiles = done = 0
    if progress:
        progress(skipped, len(blocks), 0)
    if workers <= 1 or len(todo) <= 1:
        for block in todo:
            tiles += len(store_block(service, block, cache, png_compression, data_dir))
            done += 1
            if progress:
                progress(skipped + done, len(blocks), tiles)
    else:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(service, str(cache_location), s3_endpoint,
                                           png_compression, data_dir)) as pool:
            for n in pool.map(_seed_block, todo, chunksize=1):
                tiles += n
                done += 1
                if progress:
                    progress(skipped + done, len(blocks), tiles)
    return SeedResult(len(blocks), done, skipped, tiles, time.perf_counter() - t0)


_DIGEST = re.compile(f"[0-9a-f]{{{DIGEST_CHARS}}}")


def truncate(service: Service, cache_location: str | Path, levels: Iterable[int] | None = None,
             s3_endpoint: str | None = None, data_dir: Path | None = None) -> int:
    """Delete cached tiles: with ``levels``, those levels of the current definition; without,
    every tile of the service under any digest (old definitions too). How many went."""
    cache = TileCache(str(cache_location), s3_endpoint)
    if levels is None:
        # only "<service>/<digest>/…": a service "World" must not take the tiles of a
        # service "World/Roads" in a folder of the same name with it
        digests = {key.split("/")[len(service.name.split("/"))]
                   for key, _ in cache.store.keys(service.name)}
        return sum(cache.truncate(f"{service.name}/{d}/") for d in sorted(digests)
                   if _DIGEST.fullmatch(d))
    prefix = tile_prefix(service, data_dir)
    return sum(cache.truncate(f"{prefix}{level}/") for level in levels)
