"""How requests are served: gunicorn gthread workers, renders one at a time per process,
bounded ``:wait`` calls, long request lines, JSON error pages (README "Serving").

Why: with sync workers a ``POST …/operations/{id}:wait`` or a slow client holds the whole
worker, so two of them starve ``GET …/MapServer?f=json`` on a 2-worker server. With gthread
workers each request is a thread; I/O-bound requests (metadata, tokens, health, the jobs API,
output files, ``:wait``) run beside a render. Renders themselves stay one at a time per
process (:func:`render_slot`): GDAL dataset handles and pyproj transformers are cached per
process and are not safe to share between threads, and rendering is CPU-bound under the GIL
anyway. ``:wait`` may block only while fewer than ``wait_slots`` waits are in flight in this
process; beyond that it returns the operation's current state at once, which the
long-running operations API allows ("the server may return early").

Long GETs: ArcGIS clients send GETs with WKT SRs and ``dynamicLayers`` up to ~2000
characters and longer before switching to POST. gunicorn caps request lines at 8190 bytes
unless told 0 ("unlimited"); :mod:`mapserver.gunicorn_worker` raises gunicorn's cap to
``max_url_length`` (plus the method and version) and :func:`wrap_wsgi` answers a longer
request target with the ArcGIS error body and HTTP 414 under any WSGI server. gunicorn's own
error pages (bad request lines, oversized headers) become the same JSON shape.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator

from mapserver.settings import Settings

log = logging.getLogger(__name__)

_render_lock = threading.RLock()  # re-entrant: an operation may call another
_wait_lock = threading.Lock()
_waits = 0
REQUEST_LINE_SLACK = 64  # method, spaces, "HTTP/1.1"


@contextlib.contextmanager
def render_slot() -> Iterator[None]:
    """Hold this process's render slot (CPU-bound operations run one at a time)."""
    with _render_lock:
        yield


@contextlib.contextmanager
def wait_slot(slots: int) -> Iterator[bool]:
    """``True`` when this ``:wait`` may block (fewer than ``slots`` waits in flight here)."""
    global _waits
    with _wait_lock:
        allowed = _waits < slots
        if allowed:
            _waits += 1
    try:
        yield allowed
    finally:
        if allowed:
            with _wait_lock:
                _waits -= 1


def wait_slots(settings: Settings) -> int:
    return settings.wait_slots if settings.wait_slots is not None else settings.threads // 2


def error_json(code: int, message: str, details: list[str]) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}},
                      separators=(",", ":")).encode()


class UrlLengthGuard:
    """WSGI middleware: a request target longer than ``limit`` bytes gets HTTP 414 with the
    ArcGIS error body before anything parses it."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Callable):
        target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if target is None:
            query = environ.get("QUERY_STRING", "")
            target = environ.get("PATH_INFO", "") + ("?" + query if query else "")
        size = len(target.encode("latin-1", "replace"))
        if size > self.limit:
            body = error_json(414, "Request-URI Too Long", [
                f"The request URL is {size} bytes; this server accepts up to {self.limit}. "
                "Send long parameters (dynamicLayers, WKT spatial references, geometries) "
                "with POST."])
            start_response("414 URI Too Long", [("Content-Type", "application/json"),
                                               ("Content-Length", str(len(body))),
                                               ("Access-Control-Allow-Origin", "*")])
            return [body]
        return self.app(environ, start_response)


def wrap_wsgi(wsgi_app: Callable, settings: Settings) -> Callable:
    """The app's WSGI callable behind the URL-length guard (and ProxyFix when proxied)."""
    app = wsgi_app
    if settings.proxies:
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = settings.proxies
        app = ProxyFix(app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=0)
    return UrlLengthGuard(app, settings.max_url_length)
