"""The gunicorn worker class: gthread with ArcGIS JSON error pages and a request-line cap
above gunicorn's 8190 bytes (``worker_class = "mapserver.gunicorn_worker.ThreadWorker"`` in
gunicorn.conf.py; see :mod:`mapserver.serving`)."""

from __future__ import annotations

import time

from gunicorn import util
from gunicorn.http import message
from gunicorn.workers.gthread import ThreadWorker as _GThreadWorker

from mapserver import conn_shares
from mapserver.serving import REQUEST_LINE_SLACK, error_json
from mapserver.settings import Settings


def json_write_error(sock, status_int: int, reason: str, mesg: str) -> None:  # noqa: ANN001
    """gunicorn's ``util.write_error`` with the ArcGIS error body instead of an HTML page. A
    request line over the cap is 414 as in gunicorn ≥ 27; older versions send 400 for it."""
    if status_int == 400 and (mesg or "").startswith("Request Line is too large"):
        status_int, reason = 414, "URI Too Long"
    detail = (mesg or reason)[:300]
    if status_int == 414:
        detail = ("The request line is too long for this server. Send long parameters "
                  "(dynamicLayers, WKT spatial references, geometries) with POST.")
    body = error_json(status_int, reason, [detail])
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            "Content-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    util.write_nonblock(sock, head + body)


class ThreadWorker(_GThreadWorker):
    """gthread, plus: request lines up to ``MAPSERVER_MAX_URL_LENGTH`` (+ method and version)
    instead of gunicorn's hard 8190, JSON instead of HTML for gunicorn's own errors, and
    keep-alive connections spread over the workers (:meth:`accept`)."""

    def init_process(self) -> None:
        limit = Settings.from_env().max_url_length + REQUEST_LINE_SLACK
        if hasattr(message, "MAX_REQUEST_LINE"):
            # gunicorn clamps limit_request_line to MAX_REQUEST_LINE (8190) unless it is 0,
            # which means unlimited (lines read for ever): lift the clamp to our limit instead
            message.MAX_REQUEST_LINE = max(message.MAX_REQUEST_LINE, limit)
            self.cfg.set("limit_request_line", limit)
        else:  # other gunicorn versions: unlimited here; the app still answers 414 itself
            self.cfg.set("limit_request_line", 0)
        util.write_error = json_write_error
        super().init_process()

    def run(self) -> None:
        self._slot = conn_shares.slot_of(self.age)
        conn_shares.publish(self._slot, self.nr_conns)
        super().run()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gunicorn's loop step (gunicorn ≥ 24), with this worker's connection count published
        first: it catches what changed between steps without a hook of its own (connections
        that never sent a request, closed by gunicorn ≥ 27's ``murder_pending``). Accepts,
        finished requests and expired keep-alives publish themselves (below)."""
        conn_shares.publish(self._slot, self.nr_conns)
        super().wait_for_and_dispatch_events(timeout)

    def accept(self, *args) -> None:  # noqa: ANN002 - (listener), or (server, listener) < 24
        """A worker holding more connections than the least loaded one lets that one take a
        new connection first (:func:`conn_shares.accept_delay`, at most 10 ms; then it
        accepts anyway: gunicorn treats EAGAIN, another worker having taken it, as nothing
        to do)."""
        delay = conn_shares.accept_delay(self._slot, self.nr_conns)
        if delay:
            time.sleep(delay)
        super().accept(*args)
        conn_shares.publish(self._slot, self.nr_conns)

    def finish_request(self, *args) -> None:  # noqa: ANN002 - (conn, fs), or (fs) < 24
        super().finish_request(*args)
        conn_shares.publish(self._slot, self.nr_conns)

    def murder_keepalived(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().murder_keepalived(*args, **kwargs)
        conn_shares.publish(self._slot, self.nr_conns)

    def handle_request(self, req, conn):  # noqa: ANN001, ANN201 - gunicorn's signature
        """A worker holding more than its fair share of the workers' connections answers
        with ``Connection: close``: the client reconnects, and the less loaded workers take
        the new connection (:mod:`mapserver.conn_shares`)."""
        if conn_shares.should_release(self._slot, self.nr_conns):
            req.must_close = True
        return super().handle_request(req, conn)
