"""Limits, the single error constructor and date-literal helpers shared by the where engine.

The error message is defined here only, so every rejection has the same shape whichever stage
raised it (``{"code": 400, "message": "Invalid where clause", "details": [one sentence]}``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from mapserver.errors import WhereClauseError

#: The ``message`` of every where-clause error; the details say what was wrong.
MESSAGE = "Invalid where clause"

#: Longest clause accepted. Bounds parse time and memory before any work is done.
MAX_CLAUSE_LENGTH = 10_000
#: Deepest nesting of parentheses / NOT / unary minus / function calls the parser will follow.
#: Each level costs about eight Python frames, so this keeps far below the recursion limit.
MAX_NESTING = 40
#: Deepest AST accepted (checked iteratively). Bounds recursion in the checker and evaluator,
#: which walk the tree recursively; left-deep chains like ``a+a+a+...`` count here.
MAX_AST_DEPTH = 100
#: Most AST nodes accepted. Each node is roughly one whole-column numpy pass at evaluation time,
#: so this bounds the work one request can ask for. (IN lists of literals are evaluated in one
#: pass but still count per item; 4,000 leaves room for realistic ``OBJECTID IN (...)`` lists.)
MAX_AST_NODES = 4_000


def fail(detail: str) -> WhereClauseError:
    """Build (not raise) the one error type clients see, so callers write ``raise fail(...)``."""
    return WhereClauseError(MESSAGE, [detail])


_DATE_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
_TS_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_timestamp_ms(text: str, *, date_only: bool = False) -> float | None:
    """Parse 'yyyy-mm-dd[ hh:mm[:ss[.ffffff]]]' (UTC) to epoch ms, or None if malformed.

    Strict regexes rather than ``fromisoformat`` because the latter accepts many forms (week
    dates, offsets) that standardized SQL does not, and we want one well-defined literal syntax.
    ``date_only`` additionally forbids a time part (used by CAST(... AS DATE) validation only;
    ``DATE '...'`` literals accept a time part because ArcGIS' own examples use one).
    """
    m = (_DATE_RE if date_only else _TS_RE).fullmatch(text.strip())
    if m is None:
        return None
    parts = m.groups()
    year, month, day = int(parts[0]), int(parts[1]), int(parts[2])
    hour = minute = second = micro = 0
    if len(parts) > 3:
        hour = int(parts[3] or 0)
        minute = int(parts[4] or 0)
        second = int(parts[5] or 0)
        micro = int((parts[6] or "0").ljust(6, "0"))
    try:
        dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)
    except ValueError:
        return None
    delta = dt - _EPOCH
    return float((delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000)


def format_timestamp_ms(ms: float) -> str:
    """Render epoch ms as 'yyyy-mm-dd hh:mm:ss' (UTC), the inverse used by CAST(date AS VARCHAR)."""
    seconds = int(ms // 1000)
    dt = datetime.fromtimestamp(seconds, tz=UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S")
