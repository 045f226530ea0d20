"""Work done once in the gunicorn master before fork (preload_app), so that a worker's first
request costs no more than a warm one and the memory is shared copy-on-write (issue 13)."""

from __future__ import annotations

from mapserver.catalog.model import Catalog


def warm(catalog: Catalog) -> None:
    """Not written yet (issue 13)."""
