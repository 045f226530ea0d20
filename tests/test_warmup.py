"""``mapserver/warmup.py`` (issue 13): what the gunicorn master prepares before fork.

Each check runs in a fresh interpreter (the settings are process-wide): GDAL's block cache is
capped (64 MB, or the environment's GDAL_CACHEMAX), freed big arrays are reused without page
faults, the heap is frozen for the GC in a gunicorn master only, the polygon tables are projected
for the fast drawing route; and a real gunicorn (preloaded master, forked workers) serves the
same export bytes as the app in process.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mapserver.settings import PROJECT_ROOT
from mapserver.warmup import gdal_cache_bytes
from tests.serve_support import free_port, get, server_env, start, stop, wait_healthy

MB = 1024 * 1024


def run_py(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (the repository's services); its last stdout line
    is JSON."""
    base = server_env(Path("/nonexistent"))
    base.pop("GDAL_CACHEMAX", None)
    base.update(env)
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=base,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


APP = """
import json, gc
from mapserver.settings import PROJECT_ROOT, Settings
from mapserver.app import create_app
import tempfile
tmp = tempfile.mkdtemp()
app = create_app(Settings(service_dirs=(PROJECT_ROOT / "services",),
                          data_dir=PROJECT_ROOT / "data", output_dir=tmp, tile_cache_dir=tmp))
"""


@pytest.mark.parametrize(("value", "expected"), [
    ("64", 64 * MB), ("99999", 99999 * MB), ("200000000", 200000000), ("64MB", 64 * MB),
    ("1GB", 1024 * MB), (" 32 ", 32 * MB), ("5%", None), ("lots", None)])
def test_gdal_cachemax_is_read_as_gdal_reads_it(value: str, expected: int | None) -> None:
    assert gdal_cache_bytes(value) == expected


def test_gdal_block_cache_is_capped_by_default_and_by_the_environment() -> None:
    code = APP + """
from rasterio.env import get_gdal_config
import os
print(json.dumps({"cache": get_gdal_config("GDAL_CACHEMAX"), "env": os.environ["GDAL_CACHEMAX"]}))
"""
    assert run_py(code) == {"cache": 64 * MB, "env": "64"}
    assert run_py(code, GDAL_CACHEMAX="32")["cache"] == 32 * MB


def test_freed_big_arrays_are_reused_without_page_faults() -> None:
    """An export's allocation pattern (1024² RGBA layers, a float plane, a copy, a 2048²
    canvas; freed in another order), repeated: after warm-up the memory is reused (no page
    faults at all), where glibc's defaults give it back and fault thousands of pages in again
    every time."""
    code = """
import json, resource
import numpy as np
if WARM:
    from mapserver.warmup import keep_malloc_arenas
    keep_malloc_arenas()
def export_like():
    a = np.empty((1024, 1024, 4), np.uint8); a[:] = 1
    b = np.empty((1024, 1024, 4), np.uint8); b[:] = 2
    c = np.empty((1024, 1024), np.float32); c[:] = 3
    d = a.copy(); e = np.empty(300000, np.uint8); e[:] = 1
    del a, c
    f = np.empty((2048, 2048, 4), np.uint8); f[:] = 1
    return b, d, e, f
export_like()
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    export_like()
print(json.dumps({"faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / 10}))
"""
    plain = run_py(code.replace("WARM", "False"))["faults"]
    warm = run_py(code.replace("WARM", "True"))["faults"]
    assert plain > 1000
    assert warm < 50


def test_heap_frozen_in_a_gunicorn_master_only() -> None:
    code = APP + """
print(json.dumps({"frozen": gc.get_freeze_count()}))
"""
    assert run_py(code)["frozen"] == 0
    master = "import gunicorn.arbiter\n" + code
    assert run_py(master)["frozen"] > 10000
    assert run_py(master, MAPSERVER_GC_FREEZE="off")["frozen"] == 0


def test_polygon_tables_are_projected_before_the_first_request() -> None:
    code = APP + """
from mapserver.geo.project import projected_rings
from mapserver.geo.sr import from_wkid
service = app.extensions["mapserver"].catalog.service("World")
out = {}
for layer in service.layers:
    t = layer.table
    if t is not None and t.geometry_type == "esriGeometryPolygon":
        for wkid in (4326, 3857, 102100):
            # without build=True: only what warm() already built is returned
            r = projected_rings(t.geometry, t.sr, from_wkid(wkid), True)
            out[f"{layer.id}:{wkid}"] = None if r is None else len(r.start) - 1 == t.n
print(json.dumps(out))
"""
    out = run_py(code)
    assert out and all(v is True for v in out.values()), out


def test_gunicorn_serves_the_same_bytes_as_the_app_in_process(tmp_path: Path, client) -> None:
    """Preloaded master (warm-up, frozen heap, projected tables), forked workers: the export
    of a polygon layer in 4326 and 3857 is the in-process app's, byte for byte, first request
    and later ones."""
    port = free_port()
    env = server_env(tmp_path, MAPSERVER_BIND=f"127.0.0.1:{port}", MAPSERVER_WORKERS="1",
                     MAPSERVER_SERVICES=str(PROJECT_ROOT / "services"),
                     MAPSERVER_DATA=str(PROJECT_ROOT / "data"), MAPSERVER_JOBS_API="off")
    (tmp_path / "output").mkdir()
    (tmp_path / "tiles").mkdir()
    log = tmp_path / "gunicorn.log"
    proc = start([sys.executable, "-m", "gunicorn", "-c", str(PROJECT_ROOT / "gunicorn.conf.py"),
                  "--chdir", str(PROJECT_ROOT), "wsgi:app"], PROJECT_ROOT, env, log)
    try:
        wait_healthy(port, proc, log)
        for q in ("bbox=-180,-90,180,90&size=400,200",
                  "bbox=-20037508,-20037508,20037508,20037508&bboxSR=3857&imageSR=3857"
                  "&size=300,300"):
            target = (f"/arcgis/rest/services/World/MapServer/export?{q}&f=image"
                      "&format=png32&transparent=true")
            expected = client.get(target).data
            for _ in range(3):
                status, headers, body = get(port, target)
                assert status == 200 and headers["content-type"] == "image/png"
                assert body == expected
    finally:
        stop(proc)


def test_worker_warm_up_draws_one_thread_at_a_time(monkeypatch) -> None:
    """``warm_worker`` draws in each of a gthread worker's request threads, but never two at
    once: GDAL dataset handles are per process and not safe to read from two threads at the
    same time (concurrent warm-up reads left a worker serving wrong raster pixels)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor
    from types import SimpleNamespace

    from mapserver import warmup

    active, most, threads_seen = [0], [0], set()
    guard = threading.Lock()

    def draw(_catalog) -> None:  # noqa: ANN001
        with guard:
            active[0] += 1
            most[0] = max(most[0], active[0])
            threads_seen.add(threading.get_ident())
        time.sleep(0.05)  # long enough for an overlap to show
        with guard:
            active[0] -= 1

    monkeypatch.setattr(warmup, "_draw_all", draw)
    monkeypatch.setattr(warmup, "_keep_tile_figures", lambda: None)
    monkeypatch.setenv("MAPSERVER_WARM_WORKERS", "on")
    with ThreadPoolExecutor(max_workers=4) as pool:
        worker = SimpleNamespace(
            wsgi=SimpleNamespace(extensions={"mapserver": SimpleNamespace(catalog=object())}),
            tpool=pool, cfg=SimpleNamespace(threads=4))
        warmup.warm_worker(worker)
    assert len(threads_seen) == 4  # every request thread drew
    assert most[0] == 1  # one at a time


def test_worker_warm_up_opens_every_raster_at_every_overview_level() -> None:
    """A request opens the dataset level that fits its grid; each worker opens them all at
    boot, so no first request pays for an open (~40 ms for a large COG's first)."""
    out = run_py(APP + """
from mapserver import warmup
from mapserver.sources import rasters
rasters._handles.clear()
warmup._open_rasters(app.extensions["mapserver"].catalog)
want = set()
for s in app.extensions["mapserver"].catalog.services.values():
    for layer in s.layers:
        if layer.raster is not None:
            src = layer.raster
            want |= {(src.path, lv) for lv in (None, *range(len(src.overview_factors)))}
print(json.dumps({"want": sorted(map(str, want)), "have": sorted(map(str, rasters._handles))}))
""")
    assert out["want"] == out["have"]
    assert any("L7_ETMs.tif', 3)" in h for h in out["have"])  # Olinda's 16x overview


def test_worker_warm_up_draws_every_raster_in_the_service_sr_and_web_mercator(
        client, monkeypatch) -> None:
    """Each raster is drawn where it has data in both SRs, so the first request in either
    finds its transformations built (a variable clash once sent every SR after the first to
    the wrong place: the first Web Mercator request of Olinda paid ~60 ms)."""
    from mapserver import warmup
    from mapserver.render import raster as raster_mod

    catalog = client.application.extensions["mapserver"].catalog
    drawn = []
    real = raster_mod.render_raster

    def spy(layer, grid, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        out = real(layer, grid, *args, **kwargs)
        if out is not None and out[..., 3].any():
            drawn.append((layer.raster.path, grid.sr.key))
        return out

    monkeypatch.setattr(raster_mod, "render_raster", spy)
    monkeypatch.setattr(warmup, "WARM_SECONDS", 60.0)
    warmup._draw_all(catalog)
    for service in catalog.services.values():
        for layer in service.layers:
            if layer.raster is not None:
                for key in {service.sr.key, "EPSG:3857"}:
                    assert (layer.raster.path, key) in drawn, (service.name, layer.id, key)


def test_requests_for_many_other_srs_do_not_evict_the_warmed_rings() -> None:
    """A stream of requests in odd map SRs (each twice, so each builds its rings) fills the
    kept sets; the sets warm() built for the common views stay, so ordinary requests keep the
    fast route."""
    import numpy as np
    import shapely

    from mapserver.geo import project
    from mapserver.geo.sr import from_wkid

    geometry = np.array([shapely.box(i, 0, i + 1, 1) for i in range(5)], dtype=object)
    wgs84, mercator = from_wkid(4326), from_wkid(3857)
    warmed = project.projected_rings(geometry, wgs84, mercator, True, build=True)
    assert warmed is not None
    for zone in range(1, project.RINGS_KEPT + 10):  # UTM zones north, then south
        odd = from_wkid(32600 + zone if zone <= 60 else 32700 + zone - 60)
        project.projected_rings(geometry, wgs84, odd, True)
        project.projected_rings(geometry, wgs84, odd, True)
    assert len(project._rings) <= project.RINGS_KEPT
    assert project.projected_rings(geometry, wgs84, mercator, True) is warmed


def test_tile_cache_digests_are_computed_before_fork() -> None:
    """create_app's warm() digests every cached service (hashing its data files), so a
    worker's first tile request does not."""
    from mapserver.app import create_app
    from mapserver.maps import service_digest
    from mapserver.settings import Settings

    app = create_app(Settings())
    tiled = [s for s in app.extensions["mapserver"].catalog.services.values()
             if s.tiling is not None]
    assert tiled
    with service_digest._memo_lock:
        memo = dict(service_digest._memo)
    for service in tiled:
        assert memo.get(id(service), (None,))[0] is service
        assert memo[id(service)][1] == service_digest.compute_digest(
            service, Settings().data_dir)
