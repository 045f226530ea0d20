"""Request limits: what one request may ask for, checked before any work starts.

Every limit is a setting (environment variable, see README "Settings") with a default that
lets every ArcGIS / Earth Engine client workflow through and keeps one worker's memory and time
bounded. :func:`current` is the active :class:`Limits` (per request: the app's settings, set by
``rest/limits.py``; elsewhere, e.g. in batch pool children, the environment's).

The wall-clock budget is cooperative: :func:`start_budget` at the start of a request,
:func:`check_budget` between stages and layers; past the deadline it raises
:class:`BudgetExceeded` (an ArcGIS error body), long before gunicorn's worker timeout.
"""

from __future__ import annotations

import contextvars
import os
import time
from dataclasses import dataclass, fields

from mapserver.errors import InvalidParameter, MapServerError


@dataclass(frozen=True)
class Limits:
    """Defaults are the documented settings; ``from_env`` reads ``MAPSERVER_<NAME>``."""

    max_body_bytes: int = 8 * 1024 * 1024        # MAPSERVER_MAX_BODY_BYTES
    max_json_bytes: int = 2 * 1024 * 1024        # MAPSERVER_MAX_JSON_BYTES (one JSON value)
    max_json_depth: int = 64                     # MAPSERVER_MAX_JSON_DEPTH
    max_json_items: int = 1_000_000              # MAPSERVER_MAX_JSON_ITEMS (values in one doc)
    max_vertices: int = 250_000                  # MAPSERVER_MAX_VERTICES (per geometry input)
    max_symbol_pixels: float = 256.0             # MAPSERVER_MAX_SYMBOL_PIXELS (size/width)
    min_dpi: float = 1.0                         # MAPSERVER_MIN_DPI
    max_dpi: float = 2400.0                      # MAPSERVER_MAX_DPI
    min_map_scale: float = 1.0                   # MAPSERVER_MIN_MAP_SCALE
    max_map_scale: float = 1e10                  # MAPSERVER_MAX_MAP_SCALE
    max_time_offset_years: float = 10_000.0      # MAPSERVER_MAX_TIME_OFFSET_YEARS
    max_wkt_length: int = 16_384                 # MAPSERVER_MAX_WKT_LENGTH
    max_dynamic_layers: int = 100                # MAPSERVER_MAX_DYNAMIC_LAYERS
    request_seconds: float = 25.0                # MAPSERVER_REQUEST_SECONDS (0: no budget)
    jobs_max_pixels: int = 1_000_000_000         # MAPSERVER_JOBS_MAX_PIXELS (whatever maxPixels)
    jobs_max_tiles: int = 100_000                # MAPSERVER_JOBS_MAX_TILES
    jobs_max_frames: int = 1_000                 # MAPSERVER_JOBS_MAX_FRAMES
    jobs_max_frame_pixels: int = 16_777_216      # MAPSERVER_JOBS_MAX_FRAME_PIXELS
    jobs_max_file_bytes: int = 16 * 1024 ** 3    # MAPSERVER_JOBS_MAX_FILE_BYTES (16 GiB)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Limits:
        env = dict(os.environ if env is None else env)
        values = {}
        for f in fields(cls):
            raw = env.get("MAPSERVER_" + f.name.upper())
            if raw is None or not raw.strip():
                continue
            kind = int if f.type in ("int", int) else float
            try:
                values[f.name] = kind(float(raw)) if kind is int else kind(raw)
            except ValueError as exc:
                raise ValueError(f"MAPSERVER_{f.name.upper()} must be a number") from exc
        return cls(**values)


_DEFAULT: Limits | None = None
_active: contextvars.ContextVar[Limits | None] = contextvars.ContextVar("limits", default=None)
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline",
                                                                          default=None)


def current() -> Limits:
    lim = _active.get()
    if lim is not None:
        return lim
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Limits.from_env()
    return _DEFAULT


def activate(limits: Limits) -> None:
    """Make ``limits`` the active ones for this request (context)."""
    _active.set(limits)


def too_large(name: str, problem: str) -> InvalidParameter:
    return InvalidParameter("Invalid or missing input parameters.", [f"'{name}' {problem}"])


# --- wall-clock budget ------------------------------------------------------------------------

class BudgetExceeded(MapServerError):
    """The request ran past its wall-clock budget (MAPSERVER_REQUEST_SECONDS)."""

    code = 400
    default_message = "The request exceeded the time limit."


def start_budget(seconds: float | None = None) -> None:
    s = current().request_seconds if seconds is None else seconds
    _deadline.set(time.monotonic() + s if s and s > 0 else None)


def clear_budget() -> None:
    _deadline.set(None)


def check_budget(stage: str) -> None:
    """Raise :class:`BudgetExceeded` when the request's deadline has passed."""
    end = _deadline.get()
    if end is not None and time.monotonic() > end:
        _deadline.set(None)  # one error is enough; the error page must not trip it again
        raise BudgetExceeded(details=[
            f"The request took longer than {current().request_seconds:g} s and was stopped "
            f"({stage}); ask for a smaller image, fewer layers or a simpler filter"])
