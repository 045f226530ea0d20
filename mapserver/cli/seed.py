"""``mapserver seed SERVICE --levels 0-4 [--bbox …] [--workers N]`` and
``mapserver truncate SERVICE [--levels …]``: fill or empty the configured tile cache.

Seeding renders metatiles through the same code as ``/tile`` (``maps/seeding.py``), so the
server answers the seeded tiles from the cache byte for byte. It is resumable (metatiles
already complete under the current definition are skipped) and shows a progress bar on
stderr. Exit status: 0 done, 1 bad arguments (unknown service, level or bbox), 130 when
interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", metavar="SERVICE", help="service name, e.g. World or "
                   "Samples/Olinda")
    p.add_argument("--services", metavar="DIR", action="append",
                   help="services folder (repeatable; default MAPSERVER_SERVICES)")
    p.add_argument("--data", metavar="DIR", help="data folder (default MAPSERVER_DATA)")
    p.add_argument("--cache", metavar="LOCATION",
                   help="tile cache folder or s3://bucket/prefix (default MAPSERVER_TILE_CACHE)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seed", help="render a cached service's tiles into the tile cache",
                       description="Render the tiles of the given levels (inside --bbox) by "
                       "metatiles into the tile cache; resumable.")
    _common(p)
    p.add_argument("--levels", required=True, metavar="LEVELS",
                   help="levels: 0-4, 3 or 0,2,5-6")
    p.add_argument("--bbox", metavar="XMIN,YMIN,XMAX,YMAX[,WKID]",
                   help="only tiles inside this box (default wkid 4326); write --bbox=-10,35,30,60 "
                   "when it starts with a minus sign")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="render processes (default 1)")
    p.add_argument("--max-metatiles", type=int, default=None, metavar="N",
                   help="stop after rendering N metatiles (resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_seed)
    t = sub.add_parser("truncate", help="delete a service's tiles from the tile cache",
                       description="Delete cached tiles: every tile of the service (any "
                       "definition), or with --levels those levels of the current definition.")
    _common(t)
    t.add_argument("--levels", metavar="LEVELS", help="only these levels (current definition)")
    t.set_defaults(func=run_truncate)


def _load(args: argparse.Namespace):  # noqa: ANN202 - (settings, service, cache, data) or None
    """Load only the named service's definition (the server's own loader), not the catalog:
    seeding one service should not wait for every other service's data."""
    from mapserver.catalog import definitions
    from mapserver.catalog.loader import load_service
    from mapserver.errors import ServiceDefinitionError
    from mapserver.settings import Settings

    settings = Settings.from_env()
    dirs = [Path(d) for d in args.services] if args.services else list(settings.service_dirs)
    data = Path(args.data) if args.data else settings.data_dir
    found, _problems = definitions.scan(dirs)
    match = [f for f in found if f.name == args.service]  # the first file of a name wins
    if not match:
        names = sorted({f.name for f in found})
        print(f"mapserver: no service {args.service!r} (services: "
              f"{', '.join(names) or 'none'})", file=sys.stderr)
        return None
    try:
        service = load_service(match[0].path, match[0].name, data)
    except ServiceDefinitionError as exc:
        print(f"mapserver: {exc}", file=sys.stderr)
        return None
    if service.tiling is None:
        print(f"mapserver: service {service.name!r} has no tiling scheme", file=sys.stderr)
        return None
    cache = args.cache or str(settings.tile_cache_dir)
    return settings, service, cache, data


class Progress:
    """A one-line bar on stderr: metatiles done / total, tiles stored, tiles per second."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet, self.t0 = label, quiet, time.perf_counter()

    def __call__(self, done: int, total: int, tiles: int) -> None:
        if self.quiet:
            return
        width = 30
        filled = width * done // total if total else width
        rate = tiles / max(1e-9, time.perf_counter() - self.t0)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] "
                         f"{done}/{total} metatiles, {tiles} tiles, {rate:.1f} tiles/s")
        sys.stderr.flush()


def run_seed(args: argparse.Namespace) -> int:
    from mapserver.errors import MapServerError
    from mapserver.maps import seeding

    loaded = _load(args)
    if loaded is None:
        return 1
    settings, service, cache, data = loaded
    try:
        levels = seeding.parse_levels(args.levels, service.tiling)
        bbox = seeding.parse_bbox(args.bbox, service.tiling) if args.bbox else None
    except MapServerError as exc:
        print(f"mapserver seed: {exc.message}: {'; '.join(exc.details)}", file=sys.stderr)
        return 1
    bar = Progress(f"seed {service.name} {args.levels}", args.quiet)
    try:
        result = seeding.seed(service, cache, levels, bbox, settings.metatile,
                              settings.metatile_buffer, settings.png_compression,
                              max(1, args.workers), settings.s3_endpoint, data,
                              args.max_metatiles, bar)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to resume", file=sys.stderr)
        return 130
    if not args.quiet:
        sys.stderr.write("\n")
    print(f"{service.name}: {result.rendered} metatiles rendered, {result.skipped} already "
          f"cached, {result.tiles} tiles stored in {result.seconds:.1f} s "
          f"({result.tiles_per_second:.1f} tiles/s)")
    return 0


def run_truncate(args: argparse.Namespace) -> int:
    from mapserver.errors import MapServerError
    from mapserver.maps import seeding

    loaded = _load(args)
    if loaded is None:
        return 1
    settings, service, cache, data = loaded
    try:
        levels = seeding.parse_levels(args.levels, service.tiling) if args.levels else None
    except MapServerError as exc:
        print(f"mapserver truncate: {exc.message}: {'; '.join(exc.details)}", file=sys.stderr)
        return 1
    n = seeding.truncate(service, cache, levels, settings.s3_endpoint, data)
    print(f"{service.name}: {n} tiles deleted")
    return 0
