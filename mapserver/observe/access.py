"""Every request, measured once: request id, access line, request metrics (WSGI middleware).

Why WSGI rather than Flask hooks: it sees the response exactly as it leaves the app (after
every after-request hook: compression, 304s, CORS), its bytes as sent, and the time until the
body was fully handed to the server (an image streamed from disk included); and it runs for
requests that a before-request hook refused.

Per request:

- the request id (``observe/logs.py``): the client's ``X-Request-Id`` if sane, else a new
  one; set for log records of this request and echoed in the ``X-Request-Id`` header;
- one access line on the ``mapserver.access`` logger (INFO): method, path, query without
  secrets, status, bytes, duration_ms, route, request_id, and the ArcGIS error code when
  the body is an error (most are HTTP 200). Visible with ``MAPSERVER_LOG_FORMAT=json``;
- ``mapserver_http_requests_total{route,status}``, the latency histogram by route, and
  ``mapserver_arcgis_errors_total{route,code}`` (``observe/counters.py``) when metrics are on.

Nothing survives the request: the id is set when the app is called and cleared as soon as it
has answered, and all other state is in the WSGI environ of that request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

from mapserver.observe import counters
from mapserver.observe.caching import ERROR_MARK
from mapserver.observe.logs import new_request_id, request_id
from mapserver.observe.routes import route_of

access_log = logging.getLogger("mapserver.access")
SECRET_PARAMS = frozenset({"token", "password", "username", "api_key", "apikey", "key"})
MAX_LOGGED_QUERY = 1024
ENV_ID = "mapserver.request_id"


def safe_query(query: str) -> str:
    """The query string without credentials (``token``, ``password``, …), cut at 1 KB."""
    if not query:
        return ""
    pairs = parse_qsl(query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if k.lower() not in SECRET_PARAMS]
    text = urlencode(kept)
    return text if len(text) <= MAX_LOGGED_QUERY else text[:MAX_LOGGED_QUERY] + "…"


class ObservedApp:
    """WSGI middleware around the Flask app (installed by ``observe.install``)."""

    def __init__(self, app: Callable, metrics: bool) -> None:
        self.app = app
        self.metrics = metrics

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        start = time.perf_counter()
        rid = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        environ[ENV_ID] = rid
        request_id.set(rid)
        seen: dict[str, Any] = {"status": 500, "length": None}

        def _start_response(status: str, headers: list, exc_info: Any = None) -> Callable:
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-Id", rid))
            try:
                seen["status"] = int(status.split(" ", 1)[0])
            except ValueError:
                seen["status"] = 500
            for k, v in headers:
                if k.lower() == "content-length" and v.isdigit():
                    seen["length"] = int(v)
            return start_response(status, headers, exc_info)

        try:
            body = self.app(environ, _start_response)
        except BaseException:
            self._finish(environ, seen, 0, start)
            raise
        finally:
            # the app has answered (a streamed body aside): the id leaves this thread now, so
            # it cannot reach log lines of whatever the thread does next
            request_id.set(None)
        wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(wrapper, type) and isinstance(body, wrapper):
            # the server sends this file itself (sendfile): keep it unwrapped, count its length
            self._finish(environ, seen, seen["length"] or 0, start)
            return body
        return _Body(body, lambda sent: self._finish(environ, seen, sent, start))

    def _finish(self, environ: dict, seen: dict, sent: int, start: float) -> None:
        try:
            seconds = time.perf_counter() - start
            path = environ.get("PATH_INFO", "") or "/"
            route = route_of(path)
            status = seen["status"]
            error = environ.get(ERROR_MARK)
            if self.metrics:
                counters.count_request(route, status, seconds)
                if error is not None:
                    counters.count_error(route, error)
            if not access_log.isEnabledFor(logging.INFO):
                return  # no access line wanted: nothing more to build
            method = environ.get("REQUEST_METHOD", "")
            fields: dict[str, Any] = {
                "method": method, "path": path,
                "query": safe_query(environ.get("QUERY_STRING", "")),
                "status": status,
                "bytes": sent,
                "duration_ms": round(seconds * 1000, 2), "route": route,
                "request_id": environ.get(ENV_ID),
            }
            if error is not None:
                fields["arcgis_error"] = error
            access_log.info("%s %s %s %dB %.1fms", method, path, status, fields["bytes"],
                            fields["duration_ms"], extra=fields)
        except Exception:  # noqa: BLE001 - measuring must never break an answer
            logging.getLogger(__name__).exception("access measurement failed")


class _Body:
    """The response body, passed through chunk by chunk, counting bytes. The request's
    measurement ends when the body has been handed over entirely, or at ``close`` (WSGI
    servers call it once the body is sent or abandoned), whichever comes first."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self.body = body
        self.done = done
        self.sent = 0
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.sent += len(chunk)
            yield chunk
        self._finish()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.done(self.sent)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self._finish()
