"""Every error becomes ArcGIS error JSON here, and only here.

HTTP 200 with ``{"error": {...}}`` for JSON (what ArcGIS clients expect), the same JSON with
``application/json`` for ``f=image`` (QGIS detects errors by that content type), an HTML page
for ``f=html``. Unexpected exceptions are logged and answered with code 500 in the same shape:
never a stack trace.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from mapserver.errors import MapServerError
from mapserver.rest.http import html_response, json_body, valid_callback, wrap_json

log = logging.getLogger(__name__)


def _requested_f() -> str:
    try:
        for key, value in list(request.args.items()) + (
                list(request.form.items()) if request.method == "POST" else []):
            if key.lower() == "f":
                return value.strip().lower()
    except Exception:  # a malformed body must not break error reporting
        return "json"
    # ArcGIS's default response format is html for every resource and operation; binary
    # endpoints (tiles, output files) and unknown paths answer JSON, which tile clients parse.
    path = request.path
    if path.startswith("/arcgis/rest/services") and "/tile/" not in path:
        return "html"
    return "json"


def error_response(err: MapServerError, http_status: int = 200) -> Response:
    f = _requested_f()
    body = err.to_json()
    if f == "html":
        return html_response("error.html", status=http_status, error=body["error"])
    callback = request.args.get("callback") or ""
    # an invalid callback is itself the error being reported: answer plain JSON then
    return wrap_json(json_body(body, pretty=(f == "pjson")),
                     callback if valid_callback(callback) else None, http_status)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(MapServerError)
    def _mapserver_error(err: MapServerError) -> Response:
        return error_response(err)

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException) -> Response:
        code = err.code or 500
        if code == 404:
            if not request.path.startswith("/arcgis/rest/"):
                # outside the REST API (unknown paths, /v1 typos, probes): a real HTTP 404
                return wrap_json(json_body({"error": {"code": 404, "message": "Not Found",
                                                      "details": []}}), None, 404)
            return error_response(MapServerError("Invalid URL", ["Invalid URL"], code=400))
        if code == 405:
            return error_response(MapServerError("Method not supported.",
                                                 [f"{request.method} is not supported here"],
                                                 code=405))
        if code == 413:
            return error_response(MapServerError("Request too large.",
                                                 ["The request body is too large"], code=413))
        return error_response(MapServerError(err.name, [err.description or err.name],
                                             code=code if code < 500 else 500))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> Response:
        log.exception("unexpected error on %s", request.path)
        return error_response(MapServerError("Unable to complete operation.",
                                             ["An internal error occurred; it has been logged."],
                                             code=500))
