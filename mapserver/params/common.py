"""Request parameters as ArcGIS clients send them: case-insensitive names, GET and POST merged,
empty value meaning "use the default". Parsers here turn strings into typed values or raise
:class:`InvalidParameter` with an ArcGIS-style message; they never see Flask.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from mapserver.errors import InvalidParameter

MAX_PARAM_LENGTH = 2_000_000


class Params:
    """Case-insensitive view of request parameters.

    When two keys differ only by case (``bbox`` and ``BBOX``), the documented camelCase
    spelling wins, then the first one sent. Without a ``canonical`` list (the dispatcher does
    not know each operation's names) any spelling with lower-case letters beats an all-upper
    one, which is what OpenLayers' legacy ``BBOX``/``F`` keys next to user params look like.
    Empty values read as missing.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], canonical: Iterable[str] = ()) -> None:
        canon = {c.lower(): c for c in canonical}
        self._values: dict[str, str] = {}
        exact: set[str] = set()
        for key, value in pairs:
            low = key.lower()
            if len(value) > MAX_PARAM_LENGTH:
                raise InvalidParameter("Invalid or missing input parameters.",
                                       [f"Parameter '{key[:40]}' is too long"])
            is_canonical = canon.get(low) == key if canon else key != key.upper()
            if low not in self._values or (is_canonical and low not in exact):
                self._values[low] = value
                if is_canonical:
                    exact.add(low)

    def raw(self, name: str) -> str | None:
        """The value, stripped; ``None`` when absent or empty."""
        v = self._values.get(name.lower())
        if v is None:
            return None
        v = v.strip()
        return v or None

    def __contains__(self, name: str) -> bool:
        return self.raw(name) is not None

    def keys(self) -> list[str]:
        return list(self._values)


def parse_float(value: str, name: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError) as exc:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'{name}' must be a number, got '{value[:40]}'"]) from exc
    if not math.isfinite(f):
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'{name}' must be a finite number"])
    return f


def parse_numbers(value: str, name: str, count: int | None = None) -> list[float]:
    """Comma (or space) separated numbers, e.g. bbox or size."""
    text = value.strip()
    if text.startswith("["):
        try:
            arr = json.loads(text)
        except ValueError:
            arr = None
        if isinstance(arr, list):
            text = ",".join(str(v) for v in arr)
    parts = [p for p in re.split(r"[,\s]+", text) if p]
    if count is not None and len(parts) != count:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'{name}' needs {count} comma-separated numbers"])
    return [parse_float(p, name) for p in parts]


def parse_bool(value: str | None, name: str, default: bool) -> bool:
    if value is None:
        return default
    low = value.strip().lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise InvalidParameter("Invalid or missing input parameters.",
                           [f"'{name}' must be true or false"])


def parse_json(value: str, name: str) -> Any:
    try:
        return json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'{name}' is not valid JSON"]) from exc


def parse_f(params: Params, allowed: Iterable[str] = ("html", "json", "pjson"),
            default: str = "html") -> str:
    """The ``f`` parameter; ``pretty=true`` turns json into pjson (GDAL appends it)."""
    f = (params.raw("f") or default).lower()
    allowed = tuple(allowed)
    if f not in allowed:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"Unsupported response format '{f[:20]}'. "
                                f"Valid values: {', '.join(allowed)}"])
    if f == "json" and (params.raw("pretty") or "").lower() == "true":
        return "pjson"
    return f


def parse_int_list(text: str, name: str) -> list[int]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(int(part))
        except ValueError as exc:
            raise InvalidParameter(
                "Invalid or missing input parameters.",
                [f"'{name}' contains an invalid layer id '{part[:20]}'"]) from exc
    return out
