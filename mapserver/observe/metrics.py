"""``GET /metrics``: Prometheus text format (prometheus_client), when ``MAPSERVER_METRICS`` is
on (the default). Not token-protected, like ``/arcgis/rest/info/healthCheck``: it holds
counts and timings, never parameters or names beyond services and layers; switch it off, or
keep it off the public site in nginx, where that matters.

What it holds (``observe/counters.py``): requests by route and status, latency histograms by
route, ArcGIS error bodies by route and code, render time by service and layer, tile cache
hits and misses by service, and, read from the operation store at scrape time, the batch
operations by state (``mapserver_operations{state}``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from mapserver.observe import counters, multiproc

bp = Blueprint("metrics", __name__)
log = logging.getLogger(__name__)
STATES = ("PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "FAILED", "CANCELLED")


class OperationsCollector(Collector):
    """``mapserver_operations{state}``: the batch operations in the store, counted when
    scraped (the store is shared by every worker, so no worker needs to keep a gauge). Cheap
    (one indexed ``GROUP BY``) and failure-safe: a store that cannot be read gives no sample
    and a warning, never a failed scrape."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        svc = self.app.extensions.get("mapserver_jobs")
        if svc is None:
            return
        counts = operation_counts(svc)
        if counts is None:
            return
        family = GaugeMetricFamily("mapserver_operations",
                                   "Batch operations in the operation store, by state",
                                   labels=("state",))
        for state in sorted(set(STATES) | set(counts)):
            family.add_metric((state,), counts.get(state, 0))
        yield family


def operation_counts(svc: object) -> dict[str, int] | None:
    store = getattr(svc, "store", None)
    try:
        counter = getattr(store, "count_by_state", None)
        if callable(counter):
            return {str(k): int(v) for k, v in counter().items()}
        # SQLite (jobs/store.py: sqlite3.Row) or PostgreSQL (jobs/store_pg.py: dict rows)
        rows = store.conn().execute("SELECT state, count(*) AS n FROM operations "
                                    "WHERE deleted=0 GROUP BY state").fetchall()
        return {str(r["state"]): int(r["n"]) for r in rows}
    except Exception as exc:  # noqa: BLE001 - a broken store must not break the scrape
        log.warning("metrics: operation store not readable: %s", str(exc)[:200])
        return None


def exposition(app: Flask) -> bytes:
    """This process's metrics, or every worker's in multiprocess mode, plus operations."""
    if multiproc.active():
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, os.environ[multiproc.ENV])
        text = generate_latest(registry)
    else:
        text = generate_latest(counters.REGISTRY)
    extra = CollectorRegistry()
    extra.register(OperationsCollector(app))
    return text + generate_latest(extra)


@bp.route("/metrics", methods=["GET"])
def metrics() -> Response:
    resp = Response(exposition(current_app._get_current_object()),  # type: ignore[attr-defined]
                    mimetype=CONTENT_TYPE_LATEST.split(";")[0])
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    resp.headers["Cache-Control"] = "no-store"
    return resp


def install(app: Flask) -> None:
    app.register_blueprint(bp)
