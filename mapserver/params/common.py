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

from mapserver import limits
from mapserver.errors import InvalidParameter

MAX_PARAM_LENGTH = 2_000_000  # hard cap on any one value; JSON values: limits.max_json_bytes


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
            arr = safe_loads(text, name)
        except InvalidParameter:
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
    return safe_loads(value, name)


class _NotFinite(ValueError):
    pass


class JsonSyntaxError(InvalidParameter):
    """The text is not JSON at all (lenient parsers may try another reading)."""


def _finite_float(text: str) -> float:
    f = float(text)
    if not math.isfinite(f):  # 1e400
        raise _NotFinite(text)
    return f


def _no_constant(text: str) -> Any:
    raise _NotFinite(text)  # NaN, Infinity, -Infinity are not JSON


def safe_loads(text: str | bytes, name: str, lim: limits.Limits | None = None) -> Any:
    """JSON within the request limits: at most ``max_json_bytes`` long, ``max_json_depth``
    deep, ``max_json_items`` values, finite numbers only (no NaN/Infinity/1e400). Every
    failure is an :class:`InvalidParameter` naming ``name``."""
    lim = lim or limits.current()
    if len(text) > lim.max_json_bytes:
        raise limits.too_large(name, f"is longer than {lim.max_json_bytes} bytes "
                                     "(MAPSERVER_MAX_JSON_BYTES)")
    try:
        obj = json.loads(text, parse_float=_finite_float, parse_constant=_no_constant)
    except _NotFinite as exc:
        raise InvalidParameter("Invalid or missing input parameters.",
                               [f"'{name}' contains a number that is not finite"]) from exc
    except RecursionError as exc:
        raise limits.too_large(name, f"is nested deeper than {lim.max_json_depth} levels "
                                     "(MAPSERVER_MAX_JSON_DEPTH)") from exc
    except ValueError as exc:
        raise JsonSyntaxError("Invalid or missing input parameters.",
                              [f"'{name}' is not valid JSON"]) from exc
    check_json_shape(obj, name, lim)
    return obj


def check_json_shape(obj: Any, name: str, lim: limits.Limits | None = None) -> None:
    """Depth and value count of parsed JSON, walked without recursion."""
    lim = lim or limits.current()
    stack = [(obj, 1)]
    items = 0
    while stack:
        o, depth = stack.pop()
        if depth > lim.max_json_depth:
            raise limits.too_large(name, f"is nested deeper than {lim.max_json_depth} levels "
                                         "(MAPSERVER_MAX_JSON_DEPTH)")
        if isinstance(o, dict):
            children = list(o.values())
        elif isinstance(o, list):
            children = o
        else:  # a bare scalar document: "null", "1.5", "\"text\""
            children = []
        items += len(children)
        if items > lim.max_json_items:
            raise limits.too_large(name, f"holds more than {lim.max_json_items} values "
                                         "(MAPSERVER_MAX_JSON_ITEMS)")
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


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
