"""Structured logs: one JSON object per line (``MAPSERVER_LOG_FORMAT=json``) carrying the
request id of the request being served.

Why JSON: log shippers (journald → Loki, Fluent Bit, CloudWatch) index fields, and a stack
trace stays one line (one record) instead of thirty. Why a request id: one id ties the access
line, any warning or error logged while the request ran, the client's own logs (it gets the
id back in ``X-Request-Id``) and an upstream proxy's logs (nginx can send its ``$request_id``).

The id lives in a context variable (Flask-free), set by the request middleware
(``observe/access.py``) for the duration of one request in its thread. With the text format
nothing about logging changes (Python's and gunicorn's defaults, as before).
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any, TextIO

import orjson

REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
request_id: ContextVar[str | None] = ContextVar("mapserver_request_id", default=None)
# LogRecord attributes that are not "extra" fields
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "request_id"}


def new_request_id(incoming: str | None) -> str:
    """The client's (or proxy's) ``X-Request-Id`` when it is sane: at most 64 characters of
    ``[A-Za-z0-9._-]`` (no newlines to forge log lines, nothing to bloat every log line);
    else a fresh random one."""
    if incoming and REQUEST_ID_RE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: ``time`` (UTC, ms), ``level``, ``logger``, ``message``,
    ``request_id`` (inside a request), ``exception`` (formatted traceback) and any ``extra``
    fields the caller passed."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            doc["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(doc, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (gunicorn redirects it; pytest's
    capture swaps it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def install(log_format: str) -> None:
    """With ``json``: the root logger writes JSON lines to stderr from INFO up, and gunicorn's
    own handlers (error log, and access log when ``MAPSERVER_ACCESSLOG`` is set) format their
    lines as JSON too. Idempotent (tests build many apps)."""
    if log_format != "json":
        return
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _StderrHandler):
            root.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    for name in ("gunicorn.error", "gunicorn.access"):
        for h in logging.getLogger(name).handlers:
            h.setFormatter(JsonFormatter())
