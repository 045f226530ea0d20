"""The Prometheus metrics of this process, and the functions the core calls to count.

Flask-free on purpose: the tile cache (``maps/tiles.py``) and the render loop
(``observe/timing.py``) count here without importing the web layer.

Under gunicorn the config sets ``PROMETHEUS_MULTIPROC_DIR`` in the master before the app is
imported (``observe/multiproc.py``), so prometheus_client writes every value to a per-process
file and a scrape from any worker adds up all workers. Without it (tests, ``flask run``) the
values live in this process's :data:`REGISTRY`.

Every label has a bounded set of values: routes from ``observe/routes.py``, HTTP status codes,
service names and layer ids from the catalog, ArcGIS error codes.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RENDER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("mapserver_http_requests", "HTTP requests answered, by route and status",
                   ("route", "status"), registry=REGISTRY)
LATENCY = Histogram("mapserver_http_request_duration_seconds",
                    "Time from the request reaching the app to its response, by route",
                    ("route",), buckets=LATENCY_BUCKETS, registry=REGISTRY)
ERRORS = Counter("mapserver_arcgis_errors",
                 "ArcGIS error bodies answered (most with HTTP 200), by route and error code",
                 ("route", "code"), registry=REGISTRY)
LAYER_RENDER = Histogram("mapserver_layer_render_seconds",
                         "Time drawing one layer onto one map image, by service and layer id",
                         ("service", "layer"), buckets=RENDER_BUCKETS, registry=REGISTRY)
TILE_CACHE = Counter("mapserver_tile_cache_requests",
                     "Tile requests answered from the tile cache (hit) or rendered (miss)",
                     ("service", "result"), registry=REGISTRY)


def count_request(route: str, status: int, seconds: float) -> None:
    REQUESTS.labels(route, str(status)).inc()
    LATENCY.labels(route).observe(seconds)


def count_error(route: str, code: int) -> None:
    ERRORS.labels(route, str(code)).inc()


def layer_rendered(service: str, layer_id: int, seconds: float) -> None:
    LAYER_RENDER.labels(service, str(layer_id)).observe(seconds)


def tile_cache(service: str, hit: bool) -> None:
    """One tile request: ``hit`` when the cache had it, else it is being rendered."""
    TILE_CACHE.labels(service, "hit" if hit else "miss").inc()
