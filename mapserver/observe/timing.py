"""Render time by layer, measured in the render loop (Flask-free: the core imports it).

``draw_map`` (``maps/export.py``) opens :func:`layer_timing` with the service's name; the
compositing loop (``render/compose.py``) wraps each layer's draw in :func:`layer_timer`. The
service travels in a context variable so the loop, which only sees layers, need not be handed
it; outside a ``layer_timing`` block (legend swatches, direct calls) nothing is recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from mapserver.observe.counters import layer_rendered

_service: ContextVar[str | None] = ContextVar("mapserver_render_service", default=None)
_quiet: ContextVar[bool] = ContextVar("mapserver_render_quiet", default=False)


@contextlib.contextmanager
def unrecorded() -> Iterator[None]:
    """Draws inside this block are not requests (a worker's warm-up): nothing is recorded, so
    the metrics count only what clients asked for."""
    token = _quiet.set(True)
    try:
        yield
    finally:
        _quiet.reset(token)


@contextlib.contextmanager
def layer_timing(service: str) -> Iterator[None]:
    """Layers drawn inside this block are timed as layers of ``service``."""
    token = _service.set(service)
    try:
        yield
    finally:
        _service.reset(token)


@contextlib.contextmanager
def layer_timer(layer_id: int) -> Iterator[None]:
    """Time one layer's draw (recorded also when it fails: a budget stop is time spent)."""
    service = _service.get()
    if service is None or _quiet.get():
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        layer_rendered(service, layer_id, time.perf_counter() - start)
