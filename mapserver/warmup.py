"""Work done once in the gunicorn master before fork (preload_app), so that a worker's first
request costs about what a warm one does and the memory is shared copy-on-write (issue 13).

What is done here, and why only this:

* **GDAL's block cache** is capped (``GDAL_CACHEMAX``, default :data:`GDAL_CACHEMAX_MB` MB when
  the environment does not set it). GDAL's own default is 5 % of physical memory *per
  process*, so each worker's RSS would creep towards it as views visit new raster blocks.
* **malloc** keeps freed memory (``mallopt``: no trimming, big blocks from the heap rather than
  fresh ``mmap``s). An export allocates and frees several arrays of 1 to 16 MB; glibc served
  each from a new ``mmap`` and gave it back on free, so every request paid page faults to
  zero the same megabytes again (a third of the CPU of a 1024² three-layer export).
  Workers then hold their high-water mark instead of returning it: flat RSS, not smaller. One
  malloc arena (:data:`_ARENA_MAX`): each of a gthread worker's threads would otherwise get
  an arena of its own, each keeping its own high-water mark. Renders run one at a time per
  process anyway (``serving.render_slot``), so they never wait for the arena's lock. Two
  arenas held ~43 MB more per worker (309 against 265 MB over the bench's mix) at the same
  CPU per request (``bench/load.py rss`` and ``rate``, issue 13).
* **matplotlib's lazy state** (the Agg canvas, the font file a label uses, path and marker
  machinery) by drawing one small throwaway figure. Raster layers are not read here: GDAL
  handles and their block cache belong to the worker that opened them (sources/rasters.py
  reopens after fork), so reading in the master would only leave dead cache behind.
* **Polygon and line tables projected** into the layer's, the service's and the Web Mercator
  SR (the fast drawing route of ``geo/project.py``), shared by the workers copy-on-write.
* **The garbage collector** (``gc.freeze``, only in the gunicorn master): everything alive
  after start-up (catalog, feature tables, modules) moves to a permanent generation. Workers
  then never walk those objects in a collection (a full collection of the start-up heap cost
  milliseconds, several times a minute under load), and never write their GC headers, which
  would copy the shared pages into every worker.

pyproj objects are not built here: pyproj makes a per-thread copy of every CRS and
transformer on first use in a thread, so the master's copies would not be used by the
workers' request threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys
import time
from pathlib import Path

from mapserver.catalog.model import Catalog

log = logging.getLogger(__name__)

GDAL_CACHEMAX_MB = 64

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_ARENA_MAX = 1
_MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 128 * 1024 * 1024
_TOP_PAD = 16 * 1024 * 1024

_done: set[str] = set()


def warm(catalog: Catalog, data_dir: Path | None = None) -> None:
    """Prepare this process (the gunicorn master, or any process that builds the app) for
    serving ``catalog``. Idempotent per process; never raises (a failed warm-up only costs
    the first requests some time)."""
    for step in (cap_gdal_cache, keep_malloc_arenas, warm_matplotlib, import_lazy_modules):
        if step.__name__ in _done:
            continue
        _done.add(step.__name__)
        try:
            step()
        except Exception:  # noqa: BLE001 - warm-up is an optimisation, never a failure
            log.warning("warm-up step %s failed", step.__name__, exc_info=True)
    for name, run in (("project_tables", lambda: project_tables(catalog)),
                      ("digest_tiled_services", lambda: digest_tiled_services(catalog, data_dir))):
        try:
            run()
        except Exception:  # noqa: BLE001
            log.warning("warm-up step %s failed", name, exc_info=True)
    if in_gunicorn_master():
        freeze_heap()


def digest_tiled_services(catalog: Catalog, data_dir: Path | None) -> None:
    """The tile cache key digest of every cached service (it hashes the data files: up to
    64 MB each), so no worker's first tile request pays for it."""
    from mapserver.maps.service_digest import service_digest

    for service in catalog.services.values():
        if service.tiling is not None:
            service_digest(service, data_dir)


def project_tables(catalog: Catalog) -> None:
    """Every polygon and line table projected once into the map SRs requests most often ask
    for (the layer's own, its service's, Web Mercator): the fast drawing route
    (:func:`mapserver.geo.project.projected_rings`) then only applies the grid's affine."""
    from mapserver.geo.project import projected_rings
    from mapserver.geo.sr import from_wkid

    if catalog is None:
        return
    mercator = from_wkid(3857)
    for service in catalog.services.values():
        for layer in service.layers:
            table = layer.table
            if table is None or table.geometry_type not in ("esriGeometryPolygon",
                                                             "esriGeometryPolyline"):
                continue
            closed = table.geometry_type == "esriGeometryPolygon"
            for dst in dict.fromkeys((table.sr, service.sr, mercator)):
                projected_rings(table.geometry, table.sr, dst, closed, build=True)


def cap_gdal_cache() -> None:
    """GDAL_CACHEMAX from the environment, else :data:`GDAL_CACHEMAX_MB`, applied now (GDAL
    reads the variable once, at its first cached block, which may already have happened while
    the catalog was loading)."""
    value = os.environ.setdefault("GDAL_CACHEMAX", str(GDAL_CACHEMAX_MB))
    nbytes = gdal_cache_bytes(value)
    if nbytes is None:
        return  # a percentage or an unusual unit: GDAL interprets it itself
    from rasterio.env import set_gdal_config

    set_gdal_config("GDAL_CACHEMAX", nbytes)


def gdal_cache_bytes(value: str) -> int | None:
    """GDAL's reading of a GDAL_CACHEMAX value in bytes: below 100 000 it is megabytes, else
    bytes; "64MB", "1GB" as written; None for a percentage or anything else."""
    v = value.strip().upper()
    units = {"GB": 1024 ** 3, "MB": 1024 ** 2, "KB": 1024}
    for suffix, k in units.items():
        if v.endswith(suffix) and v[:-2].strip().isdigit():
            return int(v[:-2]) * k
    if not v.isdigit():
        return None
    n = int(v)
    return n * 1024 * 1024 if n < 100000 else n


def keep_malloc_arenas() -> None:
    """glibc only: big allocations from the heap, freed memory kept (see the module text)."""
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if not name:
        return
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):  # musl
        return
    for param, value in ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD),
                         (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD),
                         (_M_ARENA_MAX, _ARENA_MAX)):
        if libc.mallopt(param, value) != 1:
            log.info("mallopt(%d, %d) refused", param, value)


def warm_matplotlib() -> None:
    """One small figure with a filled path, a marker collection and a label, rendered by Agg:
    loads what matplotlib initialises on first use (the font file, Agg, path machinery)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure
    from matplotlib.path import Path

    fig = Figure(figsize=(0.5, 0.5), dpi=96)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    square = Path(np.array([[2.0, 2], [30, 2], [30, 30], [2, 30], [2, 2]]),
                  [Path.MOVETO, Path.LINETO, Path.LINETO, Path.LINETO, Path.CLOSEPOLY])
    ax.add_collection(PathCollection([square], facecolors=[(1, 0, 0, 1)],
                                     edgecolors=[(0, 0, 0, 1)], linewidths=1.0),
                      autolim=False)
    ax.text(4, 4, "warm", fontsize=6)
    ax.set_xlim(0, 48)
    ax.set_ylim(48, 0)
    FigureCanvasAgg(fig).draw()


def import_lazy_modules() -> None:
    """Modules a first request would import: Pillow's image plugins (JPEG, GIF, BMP, PPM,
    PNG: ``Image.preinit``) and the IDNA codec werkzeug reaches for when it builds URLs."""
    import encodings.idna  # noqa: F401

    from PIL import Image

    Image.preinit()


def in_gunicorn_master() -> bool:
    """Whether this is a gunicorn master loading the app before fork (``preload_app``)."""
    arbiter = sys.modules.get("gunicorn.arbiter")
    return arbiter is not None and os.environ.get("MAPSERVER_GC_FREEZE", "on").lower() not in (
        "off", "0", "false", "no")


def freeze_heap() -> None:
    """Collect once, then move every surviving object to the permanent generation."""
    gc.collect()
    gc.freeze()


def warm_worker(worker) -> None:  # noqa: ANN001 - a gunicorn worker
    """In each gunicorn worker after fork, before it accepts requests (``post_worker_init``):
    one small map of every service, in its SR and in Web Mercator, drawn once in each of the
    worker's request threads. What a first request would otherwise build is per process or
    per thread and so cannot come from the master: raster datasets (reopened after fork),
    pyproj's and GDAL's per-thread PROJ objects (a datum-shifting transformer such as SIRGAS
    2000 UTM to Web Mercator takes ~50 ms to build in a new thread), the 256² figure of the
    pool. Errors are logged, never raised: warm-up only saves time. ``MAPSERVER_WARM_WORKERS=off``
    skips it."""
    import threading

    from mapserver.serving import render_slot

    if os.environ.get("MAPSERVER_WARM_WORKERS", "on").strip().lower() in ("off", "0", "false",
                                                                         "no"):
        return
    try:
        catalog = worker.wsgi.extensions["mapserver"].catalog
    except (AttributeError, KeyError):
        return
    try:
        _open_rasters(catalog)
    except Exception:  # noqa: BLE001 - warm-up only saves time
        log.warning("worker warm-up could not open the rasters", exc_info=True)
    pool = getattr(worker, "tpool", None)
    threads = max(1, int(getattr(worker.cfg, "threads", 1) or 1))
    if pool is None or threads == 1:
        with render_slot():
            _draw_services(catalog)
        return
    # every task waits for the others, so each runs on a thread of its own (the pool starts a
    # new thread for a task while none is idle)
    barrier = threading.Barrier(threads, timeout=30)

    def task() -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        # one at a time, as requests draw: GDAL dataset handles are per process and not safe
        # to read from two threads at once (concurrent warm-up draws could leave a worker
        # serving wrong raster pixels); each thread still builds its own PROJ objects
        with render_slot():
            _draw_services(catalog)

    for future in [pool.submit(task) for _ in range(threads)]:
        try:
            future.result(timeout=120)
        except Exception:  # noqa: BLE001
            log.warning("worker warm-up failed", exc_info=True)
    _keep_tile_figures()


def _open_rasters(catalog: Catalog) -> None:
    """Every raster's dataset handles in this process (full resolution and each overview
    level: a request opens the level that fits its grid). Within ``WARM_SECONDS``; what is
    left opens on first use. The source blocks themselves are decoded by the first request
    that reads them (GDAL's block cache is per process and cannot come from the master)."""
    deadline = time.monotonic() + WARM_SECONDS
    seen: set[str] = set()
    for service in catalog.services.values():
        for layer in service.layers:
            src = layer.raster
            if src is None or src.path in seen:
                continue
            if time.monotonic() > deadline:
                return
            seen.add(src.path)
            try:
                src.open_handles()
            except Exception:  # noqa: BLE001 - a raster that cannot open fails its requests
                log.info("raster %s not opened at warm-up", src.path, exc_info=True)


def _keep_tile_figures() -> None:
    """Fill the figure pool (render/compose.py): the two tile sizes (256² and 512² at 96 dpi)
    and, up to ``SCRATCH_SIZES``, small spare figures. Once the pool is full, a request of
    another size resizes the least recently used figure (~2 ms) instead of building one
    (~16 ms): the spares go first, the tile sizes stay."""
    from mapserver.geo.grid import Grid
    from mapserver.geo.sr import from_wkid
    from mapserver.render.compose import SCRATCH_SIZES, scratch_axes

    spares = [64 * (k + 1) for k in range(max(0, SCRATCH_SIZES - 2))]
    for size in (*spares, 512, WARM_SIZE):  # the last one drawn is the last one taken
        try:
            with scratch_axes(Grid.from_bbox((0, 0, 1, 1), size, size, from_wkid(4326))) as (
                    _ax, render):
                render()
        except Exception:  # noqa: BLE001
            log.info("figure %d² not kept", size, exc_info=True)


WARM_SIZE = 256
WARM_SECONDS = 5.0  # per request thread, at worker boot


def _draw_services(catalog: Catalog) -> None:
    """Warm-up draws are not requests: kept out of the render-time metrics."""
    from mapserver.observe.timing import unrecorded

    with unrecorded():
        _draw_all(catalog)


def _draw_all(catalog: Catalog) -> None:
    from mapserver.encode.image import FORMATS
    from mapserver.geo.grid import Grid
    from mapserver.geo.project import project_bounds
    from mapserver.geo.sr import from_wkid
    from mapserver.maps.export import map_of, render_map
    from mapserver.render.raster import render_raster

    mercator = from_wkid(3857)
    deadline = time.monotonic() + WARM_SECONDS
    for service in catalog.services.values():
        if time.monotonic() > deadline:  # a large catalogue: the rest warms on first use
            break
        try:
            m = map_of(service)
            # the middle eighth of the full extent: every layer that shows there is read and
            # drawn, but only a few source blocks (a whole-extent view would decode overviews)
            x0, y0, x1, y1 = service.full_extent
            cx, cy, dx, dy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 16, (y1 - y0) / 16
            for sr in dict.fromkeys((service.sr, mercator)):
                box = project_bounds((cx - dx, cy - dy, cx + dx, cy + dy), service.sr, sr)
                if box is None:
                    continue
                grid = Grid.from_bbox(box, WARM_SIZE, WARM_SIZE, sr)
                render_map(m, grid, FORMATS["png32"], True)
                # each raster where it has data (its dataset opened in this process, the
                # transformations from its SR built in this thread)
                for layer in service.layers:
                    src = layer.raster
                    if src is None:
                        continue
                    # (names of its own: the service's centre above is needed for the next SR)
                    rx0, ry0, rx1, ry1 = src.bounds
                    rcx, rcy = (rx0 + rx1) / 2, (ry0 + ry1) / 2
                    rdx, rdy = (rx1 - rx0) / 16, (ry1 - ry0) / 16
                    rbox = project_bounds((rcx - rdx, rcy - rdy, rcx + rdx, rcy + rdy),
                                          src.sr, sr)
                    if rbox is not None:
                        render_raster(layer, Grid.from_bbox(rbox, WARM_SIZE, WARM_SIZE, sr))
        except Exception:  # noqa: BLE001 - a service that cannot be drawn small is skipped
            log.info("warm-up of service %s skipped", service.name, exc_info=True)
