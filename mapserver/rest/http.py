"""Small HTTP helpers shared by every view: parameters in, JSON / JSONP / HTML / bytes out.

This is the only place (with ``rest/errors.py``) that knows how ArcGIS wraps responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import orjson
from flask import Flask, Request, Response, current_app, render_template

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


# orjson options of every JSON answer: numpy scalars and arrays written natively (NaN and
# Infinity, Python's or numpy's, become null, as ArcGIS writes them), non-string keys
# stringified as the stdlib did ({1: x} -> {"1": x}), insertion order kept
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(obj: Any, pretty: bool = False, sort_keys: bool = False) -> bytes:
    """``obj`` as UTF-8 JSON (``pretty``: two-space indent, for ``f=pjson``).

    Why orjson: a 433 KB World query spent two thirds of its time in the stdlib encoder and a
    recursive NaN sanitiser; orjson writes NaN/Infinity as null itself. Integers past 64 bits
    (orjson's range) fall back to the stdlib encoder, so no answer changes shape."""
    option = JSON_OPTIONS | (orjson.OPT_INDENT_2 if pretty else 0) | (
        orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(obj, default=_default, option=option)
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc) and "Integer exceeds" not in str(exc):
            raise
        return _stdlib_json(obj, pretty, sort_keys).encode()


def json_body(obj: Any, pretty: bool = False) -> bytes:
    """The JSON text of an answer (compact, or pretty for ``f=pjson``), as bytes."""
    return json_bytes(obj, pretty)


def _default(o: Any) -> Any:
    """What orjson does not write itself: numpy arrays it cannot take (non-contiguous, object
    dtype) and numpy scalars of other kinds."""
    import numpy as np

    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.bool_):
        return bool(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _stdlib_json(obj: Any, pretty: bool, sort_keys: bool) -> str:
    """The stdlib encoder, for the rare value orjson refuses (an integer past 64 bits)."""
    clean = _sanitize(obj)
    if pretty:
        return json.dumps(clean, indent=2, allow_nan=False, default=_default,
                          sort_keys=sort_keys, ensure_ascii=False)
    return json.dumps(clean, separators=(",", ":"), allow_nan=False, default=_default,
                      sort_keys=sort_keys, ensure_ascii=False)


def json_response(obj: Any, params: Params, f: str = "json") -> Response:
    """JSON, pretty JSON (``pjson``) or JSONP when ``callback`` is given."""
    callback = params.raw("callback")
    if callback is not None and not valid_callback(callback):
        raise InvalidParameter("Invalid or missing input parameters.",
                               ["'callback' must be a JavaScript identifier"])
    return wrap_json(json_body(obj, pretty=(f == "pjson")), callback)


def valid_callback(name: str) -> bool:
    return len(name) <= 128 and CALLBACK_RE.fullmatch(name) is not None


def wrap_json(text: str | bytes, callback: str | None, status: int = 200) -> Response:
    """JSON text as ``application/json``, or as JSONP ``callback(...)`` when one is given."""
    body = text.encode() if isinstance(text, str) else text
    if callback:
        return Response(b"".join((callback.encode(), b"(", body, b");")), status=status,
                        mimetype="application/javascript")
    return Response(body, status=status, mimetype="application/json")


def _sanitize(obj: Any) -> Any:
    """Replace NaN/Infinity (not valid JSON) by null, numpy values by Python ones (the stdlib
    fallback only: orjson does both itself)."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_sanitize(v) for v in obj]
    if type(obj).__module__ == "numpy":
        return _sanitize(_default(obj))
    return obj


def html_response(template: str, status: int = 200, **context: Any) -> Response:
    ctx = {"root": current_app.config.get("APPLICATION_ROOT_URL", ""), **context}
    return Response(render_template(template, **ctx), status=status, mimetype="text/html")


def install_json_provider(app: Flask) -> None:
    """``jsonify`` (the ``/v1`` batch API) through orjson as well, on top of whatever provider
    the app has (``rest/limits.py`` parses request bodies within the JSON limits: kept).
    Flask's own output is kept: sorted keys, a final newline; values orjson cannot write
    (``Decimal``, ``__html__`` objects) still go through Flask's encoder."""
    base = type(app.json)

    class OrjsonProvider(base):  # type: ignore[valid-type, misc]
        def response(self, *args: Any, **kwargs: Any) -> Response:
            obj = self._prepare_response_obj(args, kwargs)
            if self.compact is False or (self.compact is None and self._app.debug):
                return super().response(*args, **kwargs)
            try:
                body = json_bytes(obj, sort_keys=self.sort_keys) + b"\n"
            except TypeError:
                return super().response(*args, **kwargs)
            return self._app.response_class(body, mimetype=self.mimetype)

    OrjsonProvider.__name__ = OrjsonProvider.__qualname__ = f"Orjson{base.__name__}"
    app.json = OrjsonProvider(app)
