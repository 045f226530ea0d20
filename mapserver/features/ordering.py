"""``orderByFields`` (``F1 ASC, F2 DESC``) over rows of Python values, and paging.

Sorting is stable and NULLs sort first ascending (last descending), as in file geodatabases.
Rows are sorted by successive stable passes from the last key to the first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mapserver.errors import InvalidParameter


def parse_order_by(text: str | None, resolve: Callable[[str], str | None], message: str
                   ) -> list[tuple[str, bool]]:
    """[(canonical name, descending)]; ``resolve`` maps a client name to a known one."""
    if text is None:
        return []
    out = []
    for part in text.split(","):
        words = part.split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].upper() not in ("ASC", "DESC")):
            raise InvalidParameter(message, ["'orderByFields' parameter is invalid"])
        name = resolve(words[0])
        if name is None:
            raise InvalidParameter(message, ["'orderByFields' parameter is invalid",
                                             f"Field '{words[0][:60]}' does not exist"])
        out.append((name, len(words) == 2 and words[1].upper() == "DESC"))
    return out


def sort_rows(order: Sequence[int], keys: Sequence[tuple[Sequence[object], bool]]
              ) -> list[int]:
    """``order`` (row positions) sorted by ``keys`` = [(values by position, descending)]."""
    rows = list(order)
    for values, desc in reversed(keys):
        rows.sort(key=lambda r, v=values: (v[r] is not None, v[r] if v[r] is not None else 0),
                  reverse=desc)
    return rows


def page(n: int, offset: int, count: int) -> tuple[slice, bool]:
    """The slice of a page and whether more records exist beyond it."""
    end = offset + count
    return slice(offset, end), end < n
