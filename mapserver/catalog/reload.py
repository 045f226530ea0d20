"""Hot reload of service definitions (issue 11): not written yet."""

from __future__ import annotations

from flask import Flask

from mapserver.settings import Settings


def install(app: Flask, settings: Settings) -> None:
    """Not written yet (issue 11)."""
