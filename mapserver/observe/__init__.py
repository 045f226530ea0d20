"""Observability and HTTP efficiency (issue 11): ``/metrics``, structured logs with a request
id and duration, gzip, ``Cache-Control``/``ETag`` with 304. ``install(app, settings)`` is
called once by ``create_app``."""

from __future__ import annotations

from flask import Flask

from mapserver.settings import Settings


def install(app: Flask, settings: Settings) -> None:
    """Not written yet (issue 11)."""
