"""gunicorn's own error pages as ArcGIS JSON (mapserver/gunicorn_worker.py), whatever the
gunicorn version: the live answers are in test_serving_live.py (against the installed one)."""

from __future__ import annotations

import json
import socket

from mapserver.gunicorn_worker import json_write_error


def written(status: int, reason: str, mesg: str) -> tuple[bytes, dict]:
    a, b = socket.socketpair()
    with a, b:
        json_write_error(a, status, reason, mesg)
        a.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := b.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, json.loads(body)


def test_a_request_line_over_the_cap_is_414_also_where_gunicorn_says_400():
    """gunicorn < 27 reports its LimitRequestLine as 400 Bad Request; 27 as 414."""
    for status, reason in ((400, "Bad Request"), (414, "URI Too Long")):
        head, body = written(status, reason, "Request Line is too large (24576 > 16448)")
        assert head.startswith(b"HTTP/1.1 414 URI Too Long\r\n"), head
        assert b"Content-Type: application/json" in head
        assert body["error"]["code"] == 414
        assert "POST" in body["error"]["details"][0]


def test_other_errors_keep_their_status():
    head, body = written(400, "Bad Request", "Invalid HTTP Version: 'HTTP/9.9'")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert body["error"]["code"] == 400
    assert body["error"]["details"] == ["Invalid HTTP Version: 'HTTP/9.9'"]
