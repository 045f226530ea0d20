"""Observability and HTTP efficiency (issue 11): ``/metrics``, structured logs with a request
id and duration, gzip, ``Cache-Control``/``ETag`` with 304. ``install(app, settings)`` is
called once by ``create_app``.

Modules: ``access`` (per-request middleware: id, access line, request metrics), ``logs``
(JSON lines), ``caching`` (ETag/Cache-Control/304, gzip), ``metrics`` (``/metrics``),
``counters`` and ``timing`` (Flask-free, called by the core), ``multiproc`` (gunicorn hooks),
``routes`` (the bounded route label).

This package's ``__init__`` imports no Flask, so the core may import ``observe.counters`` and
``observe.timing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from mapserver.settings import Settings


def install(app: Flask, settings: Settings) -> None:
    from mapserver.observe import access, caching, logs, metrics
    from mapserver.rest.http import install_json_provider

    logs.install(settings.log_format)
    install_json_provider(app)
    caching.install(app)
    if settings.metrics:
        metrics.install(app)
    app.wsgi_app = access.ObservedApp(app.wsgi_app, settings.metrics)  # type: ignore[method-assign]
