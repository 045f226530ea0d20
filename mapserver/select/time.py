"""Time filtering for every map operation: ``time``, ``timeRelation``, ``layerTimeOptions``.

A feature lives over [start, end] (end = start without an end field); a request asks for
[t0, t1] where ``None`` is an open end. The four ArcGIS relations differ only in which window
ends are inclusive. Offsets move the *data* in time (a layer offset by +5 years shows, at
2007, what it held in 2002), so they are applied to the request window in the opposite sense.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import numpy as np

from mapserver.catalog.model import Layer
from mapserver.params.filters import (
    CALENDAR_UNITS_MONTHS,
    FIXED_UNITS_MS,
    OVERLAPS,
    TimeOptions,
    Window,
)


def shift_ms(ms: int, amount: float, units: str) -> int:
    """``ms`` moved by ``amount`` units; months and longer follow the calendar (UTC)."""
    if not amount:
        return ms
    if units in FIXED_UNITS_MS or units == "esriTimeUnitsUnknown":
        return int(round(ms + amount * FIXED_UNITS_MS.get(units, 1)))
    months = int(round(amount * CALENDAR_UNITS_MONTHS[units]))
    dt = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    total = dt.year * 12 + (dt.month - 1) + months
    year, month = divmod(total, 12)
    month += 1
    if not 1 <= year <= 9999:
        return ms + int(months * 30.436875 * 86_400_000)
    day = min(dt.day, calendar.monthrange(year, month)[1])
    shifted = dt.replace(year=year, month=month, day=day)
    return int((shifted - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(milliseconds=1))


def layer_window(time: Window | None, opts: TimeOptions | None) -> Window | None:
    """The window one layer is filtered with, or None for no time filter."""
    if time is None:
        return None
    opts = opts or TimeOptions()
    if not opts.use_time:
        return None
    t0, t1 = time
    if opts.cumulative:
        t0 = None
    if opts.offset:
        t0 = None if t0 is None else shift_ms(t0, -opts.offset, opts.offset_units)
        t1 = None if t1 is None else shift_ms(t1, -opts.offset, opts.offset_units)
    return (t0, t1)


def interval_mask(start: np.ndarray, end: np.ndarray, window: Window,
                  relation: str = OVERLAPS) -> np.ndarray:
    """Which [start, end] intervals satisfy ``relation`` with ``window``.

    Overlaps: both window ends inclusive. OverlapsStartWithinEnd: the window end is excluded.
    AfterStartOverlapsEnd: the window start is excluded. Within: the interval lies strictly
    after the window start and before its end.
    """
    t0, t1 = window
    ok = np.ones(len(start), dtype=bool)
    if relation == "esriTimeRelationWithin":
        if t0 is not None:
            ok &= start > t0
        if t1 is not None:
            ok &= end < t1
        return ok
    if t1 is not None:
        ok &= (start < t1) if relation == "esriTimeRelationOverlapsStartWithinEnd" \
            else (start <= t1)
    if t0 is not None:
        ok &= (end > t0) if relation == "esriTimeRelationAfterStartOverlapsEnd" \
            else (end >= t0)
    return ok


def time_mask(layer: Layer, idx: np.ndarray, time: tuple[int | None, int | None],
              relation: str = OVERLAPS) -> np.ndarray:
    """Features whose [start, end] stands in ``relation`` to the requested [t0, t1]
    (Overlaps: ends inclusive); features with a NULL time never match."""
    ti = layer.time_info
    assert ti is not None and layer.table is not None
    cols = layer.table.columns
    start = np.asarray(cols[ti.start_field])[idx]
    end = np.asarray(cols[ti.end_field])[idx] if ti.end_field else start
    ok = interval_mask(start, end, time, relation)
    for fname in (ti.start_field, ti.end_field):
        null = cols.get(f"{fname}__null") if fname else None
        if null is not None:
            ok &= ~null[idx]
    return ok
