"""``/arcgis/rest/info/healthCheck``: ``{"success": true}`` as ArcGIS Server answers, or HTTP
503 with what is unusable (the catalog has no service or lost a services folder; the batch
operation store, SQLite or PostgreSQL, cannot be read or written; the output store or the
tile cache, a folder or an S3 bucket, is unreachable or not writable). For load balancers and
container probes: no token needed, nothing rendered, no absolute paths or credentials in the
answer. A host whose shared stores are down is taken out of rotation by its balancer, while
requests that need no store keep working on it."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from flask import Blueprint, Response, current_app

from mapserver.rest.http import json_body, wrap_json

bp = Blueprint("health", __name__)


def _catalog_problems() -> list[str]:
    state = current_app.extensions["mapserver"]
    problems = []
    if not state.catalog.services:
        problems.append("catalog: no service is loaded")
    missing = [d for d in state.settings.service_dirs if not Path(d).is_dir()]
    if missing:
        problems.append(f"catalog: {len(missing)} services folder(s) no longer exist")
    return problems


def _blob_problems() -> list[str]:
    """The output store and the tile cache (each a folder or an object store)."""
    from mapserver.blobs import open_blobs

    state = current_app.extensions["mapserver"]
    problems = []
    out = state.outputs.store.problem()
    if out:
        problems.append(f"outputs: {out}")
    cache = open_blobs(state.settings.tile_cache_dir, state.settings.s3_endpoint).problem()
    if cache:
        problems.append(f"tile cache: {cache}")
    return problems


_pg_stores: dict[str, object] = {}


def _pg_problem(url: str) -> str | None:
    """The PostgreSQL store before any jobs request made the app's own (one per URL)."""
    from mapserver.jobs.store_pg import PgStore

    store = _pg_stores.get(url)
    if store is None:
        try:
            store = _pg_stores[url] = PgStore(url)
        except RuntimeError as exc:  # psycopg is not installed
            return f"operation store: {exc}"
    return store.problem()  # type: ignore[attr-defined]


def _store_problems() -> list[str]:
    settings = current_app.extensions["mapserver"].settings
    if not getattr(settings, "jobs_api", True):
        return []
    svc = current_app.extensions.get("mapserver_jobs")
    if svc is not None:
        config = svc.config
    else:
        from mapserver.jobs.config import JobConfig

        config = JobConfig.from_env()
    if config.db_url:
        store = svc.store if svc is not None else None
        problem = store.problem() if store is not None else _pg_problem(config.db_url)
        return [problem] if problem else []
    path = Path(config.db_path)
    if not path.exists():
        parent = next((p for p in path.parents if p.exists()), None)
        if svc is None and parent is not None and os.access(parent, os.W_OK):
            return []  # not created yet (no jobs request so far); it can be
        return ["operation store: the database is missing"]
    if not (os.access(path, os.R_OK | os.W_OK) and os.access(path.parent, os.W_OK)):
        return ["operation store: the database is not writable"]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=2)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            if svc is not None:
                conn.execute("SELECT 1 FROM operations LIMIT 1").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [f"operation store: {str(exc).split(':')[0][:80]}"]
    return []


@bp.route("/arcgis/rest/info/healthCheck", methods=["GET", "POST"])
@bp.route("/arcgis/rest/info/healthcheck", methods=["GET", "POST"])
def health_check() -> Response:
    problems = _catalog_problems() + _store_problems() + _blob_problems()
    if not problems:
        resp = wrap_json(json_body({"success": True}), None)
    else:
        resp = wrap_json(json_body({"success": False, "error": {
            "code": 503, "message": "Service Unavailable", "details": problems}}), None, 503)
    resp.headers["Cache-Control"] = "no-store"
    return resp
