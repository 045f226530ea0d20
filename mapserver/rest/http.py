"""Small HTTP helpers shared by every view: parameters in, JSON / JSONP / HTML / bytes out.

This is the only place (with ``rest/errors.py``) that knows how ArcGIS wraps responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from flask import Request, Response, current_app, render_template

from mapserver.errors import InvalidParameter
from mapserver.params.common import Params

# ASCII only (re.ASCII: ``\w`` would take "ù"), an identifier path as ArcGIS allows; fullmatch,
# since "$" would also match before a trailing newline
CALLBACK_RE = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*", re.ASCII)


def request_params(request: Request, canonical: Iterable[str] = ()) -> Params:
    """Query string and form body merged; the query string wins on a clash (as Koop does)."""
    pairs = list(request.args.items(multi=True))
    if request.method == "POST":
        pairs.extend(request.form.items(multi=True))
    return Params(pairs, canonical)


def json_body(obj: Any, pretty: bool = False) -> str:
    if pretty:
        return json.dumps(obj, indent=2, allow_nan=False, default=_default)
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=_default)


def _default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_response(obj: Any, params: Params, f: str = "json") -> Response:
    """JSON, pretty JSON (``pjson``) or JSONP when ``callback`` is given."""
    callback = params.raw("callback")
    if callback is not None and not valid_callback(callback):
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'callback' must be a JavaScript identifier"])
    return wrap_json(json_body(_sanitize(obj), pretty=(f == "pjson")), callback)


def valid_callback(name: str) -> bool:
    return len(name) <= 128 and CALLBACK_RE.fullmatch(name) is not None


def wrap_json(text: str, callback: str | None, status: int = 200) -> Response:
    """JSON text as ``application/json``, or as JSONP ``callback(...)`` when one is given."""
    if callback:
        return Response(f"{callback}({text});", status=status,
                        mimetype="application/javascript")
    return Response(text, status=status, mimetype="application/json")


def _sanitize(obj: Any) -> Any:
    """Replace NaN/Infinity (not valid JSON) by null."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_sanitize(v) for v in obj]
    return obj


def html_response(template: str, status: int = 200, **context: Any) -> Response:
    ctx = {"root": current_app.config.get("APPLICATION_ROOT_URL", ""), **context}
    return Response(render_template(template, **ctx), status=status, mimetype="text/html")
