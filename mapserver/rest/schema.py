"""``/mapserver/schema/service.json``: the JSON Schema of service definitions, for editors.

An editor pointed at this URL (VS Code ``json.schemas``, or ``"$schema"`` in the file)
validates a definition while it is typed, against the same schema the server loads it with.
The ``$id`` says where it was fetched from, so relative references resolve on this server.
"""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, request

from mapserver.catalog.schema import SCHEMA_URL_PATH, schema
from mapserver.rest.http import json_bytes

bp = Blueprint("schema", __name__)


@bp.route(SCHEMA_URL_PATH, methods=["GET", "HEAD"])
def service_schema() -> Response:
    doc = {**schema(), "$id": request.url_root.rstrip("/") + SCHEMA_URL_PATH}
    body = json_bytes(doc, pretty=True)  # orjson, as every JSON answer (rest/http.py)
    resp = Response(body, mimetype="application/schema+json")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    resp.set_etag(hashlib.sha256(body).hexdigest()[:32])
    return resp.make_conditional(request)
