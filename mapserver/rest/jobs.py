"""Earth Engine–style batch export endpoints: ``/v1[alpha|beta]/projects/{p}/…:export``,
``…/operations``, ``…/algorithms`` and the discovery document ``/$discovery/rest``. Thin: parse
JSON, call :class:`JobService`, return Google-shaped bodies."""

from __future__ import annotations

import dataclasses
import re

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from mapserver.errors import MapServerError
from mapserver.jobs.config import JobConfig
from mapserver.jobs.destinations import bucket
from mapserver.jobs.discovery import document
from mapserver.jobs.errors import ApiError
from mapserver.jobs.expression import ALGORITHMS
from mapserver.jobs.service import JobService
from mapserver.serving import wait_slot, wait_slots

bp = Blueprint("jobs", __name__)
VERSIONS = ("v1", "v1alpha", "v1beta")


def install(app: Flask, config: JobConfig | None = None) -> JobService:
    """Create (once) the app's JobService; tests pass their own config."""
    svc = app.extensions.get("mapserver_jobs")
    if svc is None:
        state = app.extensions["mapserver"]
        key = (tuple(str(p) for p in state.settings.service_dirs), str(state.settings.data_dir))
        cache = getattr(state.settings, "tile_cache_dir", None)
        svc = JobService(config or JobConfig.from_env(), state.catalog, key,
                         str(cache) if cache else None)
        app.extensions["mapserver_jobs"] = svc
    return svc


def jobs() -> JobService:
    return install(current_app)


@bp.before_app_request
def _published_assets() -> None:
    """Exported assets become services without a restart: when the asset root changed, every
    view sees the catalog with the new ``Assets/<project>`` layers (a stat per request)."""
    svc = current_app.extensions.get("mapserver_jobs")
    if svc is None or svc.config.asset_root is None:
        return
    state = current_app.extensions["mapserver"]
    catalog = svc.catalog
    if state.catalog is not catalog:
        current_app.extensions["mapserver"] = dataclasses.replace(state, catalog=catalog)


@bp.errorhandler(MapServerError)
def _error(exc: MapServerError) -> Response:
    if not isinstance(exc, ApiError):
        exc = ApiError("INVALID_ARGUMENT", " ".join([exc.message, *exc.details]))
    resp = jsonify(exc.to_json())
    resp.status_code = exc.code
    return resp


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("INVALID_ARGUMENT", "The request body must be a JSON object")
    return body


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ApiError("NOT_FOUND", f"Unknown API version '{version[:20]}'")


@bp.route("/<version>/projects/<project>/<verb>", methods=["POST"])
def export(version: str, project: str, verb: str) -> Response:
    _check_version(version)
    kind = {"image:export": "image", "map:export": "map", "video:export": "video"}.get(verb)
    if kind is None:
        raise ApiError("NOT_FOUND", f"Unknown method '{verb[:40]}'")
    return jsonify(jobs().submit(project, kind, _body(), request.host_url))


@bp.route("/$discovery/rest", methods=["GET"])
def discovery() -> Response:
    """The discovery document of the API we serve, built from our routes (rootUrl: this
    request's host), so Earth Engine's own client initialises against this server."""
    version = request.args.get("version", "v1")
    _check_version(version)
    return jsonify(document(request.host_url, version, current_app.url_map))


@bp.route("/<version>/projects/<project>/algorithms", methods=["GET"])
def algorithms(version: str, project: str) -> Response:
    """``projects.algorithms.list``: the functions the evaluator implements, from its table."""
    _check_version(version)
    return jsonify({"algorithms": [alg.to_json() for alg in ALGORITHMS.values()]})


@bp.route("/<version>/projects/<project>/operations", methods=["GET"])
def list_operations(version: str, project: str) -> Response:
    _check_version(version)
    return jsonify(jobs().list(project, request.args.get("filter"), request.args.get("pageSize"),
                               request.args.get("pageToken")))


@bp.route("/<version>/projects/<project>/operations/<path:op>", methods=["GET", "POST", "DELETE"])
def operation(version: str, project: str, op: str) -> Response:
    _check_version(version)
    op_id, _, method = op.partition(":")
    svc = jobs()
    if request.method == "GET" and not method:
        return jsonify(svc.get(project, op_id))
    if request.method == "DELETE" and not method:
        return jsonify(svc.delete(project, op_id))
    if request.method == "POST" and method == "cancel":
        return jsonify(svc.cancel(project, op_id))
    if request.method == "POST" and method == "wait":
        body = request.get_json(silent=True) or {}
        timeout = body.get("timeout") if isinstance(body, dict) else None
        # A wait blocks a thread, never a render: at most wait_slots waits block per process;
        # the others return the current state at once, as the API allows ("the server may
        # return early"), so f=json and renders are never starved (mapserver/serving.py).
        settings = current_app.extensions["mapserver"].settings
        with wait_slot(wait_slots(settings)) as may_block:
            if not may_block and re.fullmatch(r"\s*\d+(\.\d+)?s\s*", str(timeout or "0s")):
                timeout = "0s"
            return jsonify(svc.wait(project, op_id, timeout))
    raise ApiError("NOT_FOUND", f"Unknown operation method '{method[:40]}'")


@bp.route("/v1/exports/<name>/<path:key>", methods=["GET"])
def download(name: str, key: str) -> Response:
    """Serve committed outputs (local or S3 buckets) over HTTP."""
    found = bucket(jobs().config, name).open(key)
    if found is None:
        raise ApiError("NOT_FOUND", f"No object '{key[:200]}' in bucket '{name[:63]}'")
    data, ctype = found
    return Response(data, mimetype=ctype)
