"""Vectorised evaluation of a checked where-clause AST over numpy columns.

Every intermediate value is a pair ``(data, null)`` of whole-column arrays. Numbers and dates
are float64 (dates as epoch ms, exact below 2**53). Strings are object arrays. Conditions are
bool arrays. SQL's three-valued logic falls out of carrying the null mask: a condition is
*true* where ``data & ~null``, *false* where ``~data & ~null``, and *unknown* elsewhere. Only
true rows are selected in the end. Numeric work is pure numpy. String work runs per element
over object arrays, as the numpy docs recommend for variable-length Python strings.

Nothing here parses or trusts the clause text: the evaluator only sees the typed AST that the
checker produced, so the ``match`` below is exhaustive over the allowlisted node classes.
"""

from __future__ import annotations

import math
import operator
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from mapserver.where.ast import (
    And,
    Arith,
    Between,
    Cast,
    Compare,
    Field,
    Func,
    InList,
    IsNull,
    Like,
    Literal,
    Neg,
    Node,
    Not,
    Now,
    Or,
    Trim,
    VType,
)
from mapserver.where.common import format_timestamp_ms, parse_timestamp_ms

DAY_MS = 86_400_000
#: int64 sentinel some readers use for a NULL date (it is also NaT's integer value).
INT64_NULL_SENTINEL = np.iinfo(np.int64).min

_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


class Val(NamedTuple):
    """A column-shaped value: ``data`` plus a bool ``null`` mask of the same length."""

    data: np.ndarray
    null: np.ndarray


def like_regex(pattern: str, escape: str | None) -> re.Pattern[str]:
    """Translate a LIKE pattern to an anchored regex (``%`` -> ``.*``, ``_`` -> ``.``).

    An escape character before anything other than ``%``, ``_`` or itself was already rejected
    by the checker for literal patterns. For patterns computed per row it is taken literally,
    because a per-row error has no good place to go.
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def like_matcher(pattern: str, escape: str | None) -> Callable[[str], bool]:
    """A predicate for one LIKE pattern; the usual shapes avoid the regex engine entirely.

    ``'abc'``, ``'abc%'``, ``'%abc'`` and ``'%abc%'`` are by far the most common patterns in
    map clients and map to ``==``, ``startswith``, ``endswith`` and ``in``, several times
    faster per row than a regex. Everything else goes through :func:`like_regex`.
    """
    literal: list[str] = []
    wild: list[int] = []  # positions (in literal-char units) of '%' ; any '_' -> regex
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if escape is not None and ch == escape and i + 1 < len(pattern):
            literal.append(pattern[i + 1])
            i += 2
            continue
        if ch == "_":
            wild = [-1]
            break
        if ch == "%":
            wild.append(len(literal))
        else:
            literal.append(ch)
        i += 1
    text = "".join(literal)
    end = len(literal)
    if wild == []:
        return lambda s: s == text
    if wild == [end] and end > 0:
        return lambda s: s.startswith(text)
    if wild == [0] and end > 0:
        return lambda s: s.endswith(text)
    if wild == [0, end] or wild == [0]:
        return lambda s: text in s
    rx = like_regex(pattern, escape)
    return lambda s: rx.fullmatch(s) is not None


class Evaluator:
    """Evaluates one typed AST against one set of columns; instances are per call, not shared."""

    def __init__(self, columns: Mapping[str, np.ndarray], n: int,
                 now_ms: float | None = None) -> None:
        self.columns = columns
        self.n = n
        self.now_ms = float(time.time() * 1000.0) if now_ms is None else now_ms
        self.cache: dict[str, Val] = {}
        self.no_nulls = np.zeros(n, dtype=bool)

    # -- helpers ------------------------------------------------------------------------------

    def full(self, value: Any, vtype: VType) -> Val:
        n = self.n
        if value is None:
            return Val(self.empty(vtype), np.ones(n, dtype=bool))
        if vtype is VType.STRING:
            return Val(np.full(n, value, dtype=object), self.no_nulls)
        if vtype is VType.BOOLEAN:
            return Val(np.full(n, bool(value), dtype=bool), self.no_nulls)
        return Val(np.full(n, float(value), dtype=np.float64), self.no_nulls)

    def empty(self, vtype: VType) -> np.ndarray:
        if vtype is VType.STRING:
            return np.full(self.n, None, dtype=object)
        if vtype is VType.BOOLEAN:
            return np.zeros(self.n, dtype=bool)
        return np.zeros(self.n, dtype=np.float64)

    def strings(self, values: list[Any]) -> np.ndarray:
        arr = np.empty(self.n, dtype=object)
        arr[:] = values
        return arr

    def column(self, name: str, vtype: VType) -> Val:
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        if name not in self.columns:
            raise KeyError(f"where clause needs column {name!r}, which was not supplied")
        raw = np.asarray(self.columns[name])
        if raw.shape != (self.n,):
            raise ValueError(f"column {name!r} has shape {raw.shape}, expected ({self.n},)")
        if vtype is VType.STRING:
            # Contract: str or None per row. Non-object input (e.g. '<U' arrays) is converted.
            data = raw if raw.dtype == object else raw.astype(object)
            null = np.asarray(np.equal(data, None), dtype=bool)
        else:
            data, null = _numeric_column(raw, vtype)
        extra = self.columns.get(name + "__null")
        if extra is not None:
            null = null | np.asarray(extra, dtype=bool)
        val = Val(data, null)
        self.cache[name] = val
        return val

    # -- dispatch -----------------------------------------------------------------------------

    def condition(self, node: Node) -> np.ndarray:
        """Evaluate a condition to the final selection mask: only definitely-true rows."""
        val = self.eval(node)
        return np.asarray(val.data & ~val.null, dtype=bool)

    def eval(self, node: Node) -> Val:
        match node:
            case Literal(value=value, vtype=vtype):
                return self.full(value, vtype)
            case Field(name=name, vtype=vtype):
                return self.column(name, vtype)
            case Now(kind=kind):
                ms = self.now_ms
                if kind == "CURRENT_DATE":
                    ms = math.floor(ms / DAY_MS) * DAY_MS
                return self.full(ms, VType.DATE)
            case Neg(operand=operand):
                v = self.eval(operand)
                return Val(-v.data, v.null)
            case Arith(op=op, left=left, right=right):
                return _arith(op, self.eval(left), self.eval(right))
            case Compare(op=op, left=left, right=right):
                return self.compare(op, self.eval(left), self.eval(right),
                                    left.vtype is VType.STRING)
            case And(items=items):
                return _and([self.eval(i) for i in items])
            case Or(items=items):
                return _or([self.eval(i) for i in items])
            case Not(operand=operand):
                v = self.eval(operand)
                return Val(~v.data, v.null)
            case InList():
                return self.in_list(node)
            case Between(operand=operand, low=low, high=high, negated=negated):
                v = self.eval(operand)
                is_str = operand.vtype is VType.STRING
                res = _and([self.compare(">=", v, self.eval(low), is_str),
                            self.compare("<=", v, self.eval(high), is_str)])
                return Val(~res.data, res.null) if negated else res
            case Like():
                return self.like(node)
            case IsNull(operand=operand, negated=negated):
                v = self.eval(operand)
                return Val(~v.null if negated else v.null.copy(), self.no_nulls)
            case Trim(operand=operand, chars=chars, where=where):
                return self.trim(self.eval(operand), None if chars is None else self.eval(chars),
                                 where)
            case Cast(operand=operand, target=target):
                return self.cast(self.eval(operand), operand.vtype, target)
            case Func():
                return self.func(node)
        raise TypeError(f"unexpected node {type(node).__name__}")  # pragma: no cover

    # -- predicates ---------------------------------------------------------------------------

    def compare(self, op: str, a: Val, b: Val, is_str: bool) -> Val:
        null = a.null | b.null
        fn = _CMP[op]
        if is_str:
            ad = np.where(a.null, "", a.data)
            bd = np.where(b.null, "", b.data)
            data = np.asarray(fn(ad, bd), dtype=bool)
        else:
            data = np.asarray(fn(a.data, b.data), dtype=bool)
        return Val(data & ~null, null)

    def in_list(self, node: InList) -> Val:
        v = self.eval(node.operand)
        is_str = node.operand.vtype is VType.STRING
        literals = [i for i in node.items if isinstance(i, Literal)]
        if len(literals) == len(node.items):
            values = [i.value for i in literals if i.value is not None]
            has_null = len(values) < len(literals)
            if is_str:
                wanted = set(values)
                hit = np.fromiter((x in wanted for x in v.data.tolist()), dtype=bool,
                                  count=self.n)
            else:
                hit = np.isin(v.data, np.asarray(values, dtype=np.float64))
            true = hit & ~v.null
            null = ~true & (v.null | has_null)
            res = Val(true, null)
        else:
            res = _or([self.compare("=", v, self.eval(i), is_str) for i in node.items])
        return Val(~res.data, res.null) if node.negated else res

    def like(self, node: Like) -> Val:
        v = self.eval(node.operand)
        pattern = node.pattern
        if isinstance(pattern, Literal):
            if pattern.value is None:
                return Val(self.empty(VType.BOOLEAN), np.ones(self.n, dtype=bool))
            matches = like_matcher(str(pattern.value), node.escape)
            data = np.fromiter(
                (s is not None and matches(s) for s in v.data.tolist()),
                dtype=bool, count=self.n)
            null = v.null
        else:
            p = self.eval(pattern)
            compiled: dict[str, re.Pattern[str]] = {}

            def match(s: str | None, pat: str | None) -> bool:
                if s is None or pat is None:
                    return False
                rx = compiled.get(pat)
                if rx is None:
                    rx = compiled[pat] = like_regex(pat, node.escape)
                return rx.fullmatch(s) is not None

            data = np.fromiter((match(s, q) for s, q in zip(v.data.tolist(), p.data.tolist(),
                                                            strict=True)),
                               dtype=bool, count=self.n)
            null = v.null | p.null
        if node.negated:
            data = ~data & ~null
        return Val(data, null)

    # -- string functions ---------------------------------------------------------------------

    def map_str(self, fn: Callable[..., Any], *vals: Val, out: VType) -> Val:
        """Apply ``fn`` row-wise over non-null rows of ``vals``; NULL in -> NULL out."""
        null = np.zeros(self.n, dtype=bool)
        for v in vals:
            null = null | v.null
        nulls = null.tolist()
        if len(vals) == 1:
            results = [None if isnull else fn(x)
                       for x, isnull in zip(vals[0].data.tolist(), nulls, strict=True)]
        else:
            cols = [v.data.tolist() for v in vals]
            results = [None if isnull else fn(*args)
                       for isnull, *args in zip(nulls, *cols, strict=True)]
        if out is VType.STRING:
            data = self.strings(results)
            return Val(data, null | np.asarray(np.equal(data, None), dtype=bool))
        arr = np.array([np.nan if r is None else r for r in results], dtype=np.float64)
        return Val(arr, null | np.isnan(arr))

    def trim(self, src: Val, chars: Val | None, where: str) -> Val:
        method = {"BOTH": str.strip, "LEADING": str.lstrip, "TRAILING": str.rstrip}[where]
        if chars is None:
            return self.map_str(lambda s: method(s, " "), src, out=VType.STRING)
        return self.map_str(lambda s, c: method(s, c), src, chars, out=VType.STRING)

    def func(self, node: Func) -> Val:
        name = node.name
        args = [self.eval(a) for a in node.args]
        if name == "UPPER":
            return self.map_str(str.upper, args[0], out=VType.STRING)
        if name == "LOWER":
            return self.map_str(str.lower, args[0], out=VType.STRING)
        if name == "CHAR_LENGTH":
            return self.map_str(len, args[0], out=VType.FLOAT)
        if name == "POSITION":
            return self.map_str(lambda needle, hay: hay.find(needle) + 1, args[0], args[1],
                                out=VType.FLOAT)
        if name == "SUBSTRING":
            return self.map_str(_substring, *args, out=VType.STRING)
        if name == "COALESCE":
            data = args[0].data.copy()
            null = args[0].null.copy()
            for b in args[1:]:
                data[null] = b.data[null]
                null = null & b.null
            return Val(data, null)
        if name == "EXTRACT":
            return _extract(str(node.args[0].value), args[1])  # type: ignore[attr-defined]
        if name == "CONCAT":
            parts = [self.to_string(a, arg.vtype).data.tolist()
                     for a, arg in zip(args, node.args, strict=True)]
            joined = ["".join("" if p is None else p for p in row) for row in zip(*parts,
                                                                                    strict=True)]
            return Val(self.strings(joined) if parts else self.empty(VType.STRING),
                       self.no_nulls)
        a = args[0]
        with np.errstate(all="ignore"):
            if name == "ABS":
                return Val(np.abs(a.data), a.null)
            if name == "FLOOR":
                return Val(np.floor(a.data), a.null)
            if name == "CEILING":
                return Val(np.ceil(a.data), a.null)
            if name == "ROUND":
                digits = args[1] if len(args) > 1 else self.full(0.0, VType.INTEGER)
                d = np.clip(np.trunc(np.nan_to_num(digits.data)), -300, 300)
                scale = np.power(10.0, d)
                data = np.sign(a.data) * np.floor(np.abs(a.data) * scale + 0.5) / scale
                null = a.null | digits.null
                data = np.where(np.isfinite(data), data, a.data)  # huge scale: leave as is
                return Val(data, null | np.isnan(data))
            if name == "MOD":
                b = args[1]
                zero = b.data == 0
                data = np.fmod(a.data, np.where(zero, 1.0, b.data))
                null = a.null | b.null | zero
                return Val(data, null | np.isnan(data))
        raise TypeError(f"unexpected function {name}")  # pragma: no cover

    # -- casts --------------------------------------------------------------------------------

    def to_string(self, v: Val, vtype: VType) -> Val:
        """Render any value as text, the way CAST(... AS VARCHAR) and CONCAT need it."""
        if vtype is VType.STRING:
            return v
        if vtype is VType.DATE:
            return self.map_str(_format_date, v, out=VType.STRING)
        if vtype is VType.INTEGER:
            return self.map_str(_format_int, v, out=VType.STRING)
        return self.map_str(_format_float, v, out=VType.STRING)

    def cast(self, v: Val, src: VType, target: str) -> Val:
        if target == "VARCHAR":
            return self.to_string(v, src)
        if target in ("INTEGER", "FLOAT"):
            if src is VType.STRING:
                v = self.map_str(_parse_number, v, out=VType.FLOAT)
            if target == "INTEGER":
                with np.errstate(all="ignore"):
                    data = np.trunc(v.data)
                return Val(data, v.null | ~np.isfinite(data))
            return v
        # DATE / TIMESTAMP
        if src is VType.STRING:
            v = self.map_str(lambda s: parse_timestamp_ms(s), v, out=VType.FLOAT)
        if target == "DATE":
            return Val(np.floor(v.data / DAY_MS) * DAY_MS, v.null)
        return v


# -- module-level helpers ---------------------------------------------------------------------


def _extract(part: str, v: Val) -> Val:
    """``EXTRACT(part FROM date)`` over epoch-ms floats (UTC), vectorised with datetime64."""
    ms = np.where(v.null | ~np.isfinite(v.data), 0.0, v.data)
    t = np.floor(ms).astype(np.int64).astype("datetime64[ms]")
    if part == "YEAR":
        out = t.astype("datetime64[Y]").astype(np.int64) + 1970
    elif part == "MONTH":
        out = t.astype("datetime64[M]").astype(np.int64) % 12 + 1
    elif part == "DAY":
        out = (t.astype("datetime64[D]") - t.astype("datetime64[M]")).astype(np.int64) + 1
    else:
        in_day = (t - t.astype("datetime64[D]")).astype(np.int64)  # ms since midnight
        if part == "HOUR":
            out = in_day // 3_600_000
        elif part == "MINUTE":
            out = in_day // 60_000 % 60
        else:
            return Val((in_day % 60_000) / 1000.0, v.null | ~np.isfinite(v.data))
    return Val(out.astype(np.float64), v.null | ~np.isfinite(v.data))


def _numeric_column(raw: np.ndarray, vtype: VType) -> tuple[np.ndarray, np.ndarray]:
    """Decode a numeric or date column into float64 data and a null mask."""
    kind = raw.dtype.kind
    if kind == "M":
        null = np.isnat(raw)
        data = raw.astype("datetime64[ms]").astype(np.int64).astype(np.float64)
    elif kind in "iu":
        data = raw.astype(np.float64)
        null = np.zeros(raw.shape, dtype=bool)
        if vtype is VType.DATE and kind == "i":
            null = raw == INT64_NULL_SENTINEL
    elif kind in "fb":
        data = raw.astype(np.float64)
        null = np.isnan(data)
    else:
        data = np.array([np.nan if v is None else float(v) for v in raw.tolist()],
                        dtype=np.float64)
        null = np.isnan(data)
    return np.where(null, 0.0, data), null


def _arith(op: str, a: Val, b: Val) -> Val:
    null = a.null | b.null
    with np.errstate(all="ignore"):
        if op == "+":
            data = a.data + b.data
        elif op == "-":
            data = a.data - b.data
        elif op == "*":
            data = a.data * b.data
        else:
            zero = b.data == 0
            data = a.data / np.where(zero, 1.0, b.data)
            null = null | zero  # division by zero is NULL rather than an error or inf
    nan = np.isnan(data)
    return Val(np.where(nan, 0.0, data), null | nan)


def _and(vals: list[Val]) -> Val:
    """Three-valued AND: false if any operand is false, else unknown if any is unknown."""
    true = np.ones_like(vals[0].data, dtype=bool)
    false = np.zeros_like(vals[0].data, dtype=bool)
    for v in vals:
        true &= v.data & ~v.null
        false |= ~v.data & ~v.null
    return Val(true, ~(true | false))


def _or(vals: list[Val]) -> Val:
    """Three-valued OR: true if any operand is true, else unknown if any is unknown."""
    true = np.zeros_like(vals[0].data, dtype=bool)
    false = np.ones_like(vals[0].data, dtype=bool)
    for v in vals:
        true |= v.data & ~v.null
        false &= ~v.data & ~v.null
    return Val(true, ~(true | false))


def _clamp_int(x: float) -> int:
    return int(max(min(x, 2.0**62), -(2.0**62)))


def _substring(s: str, start: float, length: float | None = None) -> str | None:
    """SQL SUBSTRING: 1-based ``start``, may be < 1 (those positions just do not exist)."""
    first = _clamp_int(start)
    begin = max(first, 1) - 1
    if length is None:
        return s[begin:]
    count = _clamp_int(length)
    if count < 0:
        return None  # SQL raises here; a per-row error has nowhere to go, so NULL
    end = first - 1 + count
    return s[begin:max(end, begin)]


def _format_int(x: float) -> str:
    return str(int(x))


def _format_float(x: float) -> str:
    if math.isfinite(x) and x.is_integer() and abs(x) < 1e16:
        return f"{x:.1f}"
    return repr(float(x))


def _format_date(x: float) -> str | None:
    try:
        return format_timestamp_ms(x)
    except (OverflowError, ValueError, OSError):
        return None


def _parse_number(s: str) -> float | None:
    text = s.strip()
    if not _NUMBER_RE.fullmatch(text):
        return None
    value = float(text)
    return value if math.isfinite(value) else None
