"""Label expressions: VBScript ``labelExpression`` and Arcade ``labelExpressionInfo``.

Both are parsed by a small recursive-descent parser into an allowlisted tuple AST and evaluated
per feature by :func:`evaluate`; nothing is ever passed to ``eval``. Field references are
resolved against the layer's real fields when the expression is compiled, so an unknown field
is an error at load (services) or request time (``dynamicLayers``), never while drawing.

VBScript (``labelExpression``): ``[FIELD]``, string literals (``""`` escapes a quote), numbers,
``&`` and ``+`` concatenation, parentheses, ``UCase``/``LCase``/``Trim``/``Round`` and the
constants ``vbNewLine``/``vbCrLf``/``vbLf``.

Arcade (``labelExpressionInfo.expression``): ``$feature.x`` and ``$feature["x"]``, string
literals in ``"`` or ``'``, numbers, ``+`` (concatenation when either side is text, else
addition), ``- * /``, comparisons ``== != < <= > >=``, ``&& || !``, the functions ``Upper``,
``Lower``, ``Round``, ``Text``, ``IIf``, ``Concatenate``, ``Trim``, ``IsEmpty``, and
``TextFormatting.NewLine``; an optional leading ``return`` and trailing ``;``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_EXPRESSION_LENGTH = 2000
MAX_NODES = 500


class LabelExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class LabelExpression:
    """A compiled label expression: ``root`` is the AST, ``fields`` the canonical field names
    it reads."""

    text: str
    language: str  # "vbscript" | "arcade"
    root: tuple
    fields: tuple[str, ...]

    def text_for(self, row: Mapping[str, Any]) -> str | None:
        """The label text for one feature's values ``row`` (None: no label)."""
        value = _eval(self.root, row)
        if value is None:
            return None
        text = _to_text(value)
        return text if text.strip() else None


_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<bracket>\[[^\[\]]+\])
  | (?P<dstr>"(?:[^"\\]|\\.|"")*")
  | (?P<sstr>'(?:[^'\\]|\\.)*')
  | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<name>\$?[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<>|<=|>=|&&|\|\||[-+*/&()<>=!.,;])
""", re.VERBOSE)


def _tokenize(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise LabelExpressionError(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


VB_FUNCS = {"ucase": "upper", "lcase": "lower", "trim": "trim", "round": "round",
            "cstr": "text"}
VB_CONSTS = {"vbnewline": "\n", "vbcrlf": "\n", "vblf": "\n", "vbcr": "\n"}
ARCADE_FUNCS = {"upper": "upper", "lower": "lower", "round": "round", "text": "text",
                "iif": "iif", "concatenate": "concat", "trim": "trim", "isempty": "isempty",
                "proper": "proper"}
ARITY = {"upper": (1, 1), "lower": (1, 1), "trim": (1, 1), "round": (1, 2), "text": (1, 2),
         "iif": (3, 3), "concat": (1, 3), "isempty": (1, 1), "proper": (1, 1)}


class _Parser:
    def __init__(self, text: str, language: str, resolve: Callable[[str], str]) -> None:
        self.toks = _tokenize(text)
        self.pos = 0
        self.lang = language
        self.resolve = resolve
        self.fields: list[str] = []
        self.nodes = 0

    # helpers
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.pos + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise LabelExpressionError("unexpected end of expression")
        self.pos += 1
        return tok

    def accept(self, value: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] in ("op", "name") and tok[1].lower() == value:
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            tok = self.peek()
            raise LabelExpressionError(f"expected {value!r}, found "
                                       f"{tok[1] if tok else 'end of expression'!r}")

    def node(self, *parts: Any) -> tuple:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LabelExpressionError(f"more than {MAX_NODES} nodes")
        return parts

    def field(self, raw: str) -> tuple:
        name = self.resolve(raw)
        if name not in self.fields:
            self.fields.append(name)
        return self.node("field", name)

    # grammar
    def parse(self) -> tuple:
        if self.lang == "arcade":
            self.accept("return")
        root = self.expr()
        if self.lang == "arcade":
            while self.accept(";"):
                pass
        if self.peek() is not None:
            raise LabelExpressionError(f"unexpected {self.peek()[1]!r}")
        return root

    def expr(self, depth: int = 0) -> tuple:
        if depth > 50:
            raise LabelExpressionError("expression nested too deeply")
        if self.lang == "vbscript":
            return self.concat(depth)
        return self.logic_or(depth)

    # VBScript: & (concat) lowest, then + - (add or concat), * /
    def concat(self, depth: int) -> tuple:
        left = self.additive(depth)
        while self.accept("&"):
            left = self.node("concat", left, self.additive(depth))
        return left

    # Arcade: || && then comparisons, then + -, * /
    def logic_or(self, depth: int) -> tuple:
        left = self.logic_and(depth)
        while self.accept("||"):
            left = self.node("or", left, self.logic_and(depth))
        return left

    def logic_and(self, depth: int) -> tuple:
        left = self.compare(depth)
        while self.accept("&&"):
            left = self.node("and", left, self.compare(depth))
        return left

    def compare(self, depth: int) -> tuple:
        left = self.additive(depth)
        tok = self.peek()
        if tok is not None and tok[0] == "op" and tok[1] in ("==", "!=", "<", "<=", ">", ">="):
            self.pos += 1
            left = self.node("cmp", tok[1], left, self.additive(depth))
        return left

    def additive(self, depth: int) -> tuple:
        left = self.term(depth)
        while True:
            if self.accept("+"):
                left = self.node("add", left, self.term(depth))
            elif self.accept("-"):
                left = self.node("arith", "-", left, self.term(depth))
            else:
                return left

    def term(self, depth: int) -> tuple:
        left = self.unary(depth)
        while True:
            if self.accept("*"):
                left = self.node("arith", "*", left, self.unary(depth))
            elif self.accept("/"):
                left = self.node("arith", "/", left, self.unary(depth))
            else:
                return left

    def unary(self, depth: int) -> tuple:
        if self.accept("-"):
            return self.node("neg", self.unary(depth + 1))
        if self.lang == "arcade" and self.accept("!"):
            return self.node("not", self.unary(depth + 1))
        return self.primary(depth)

    def primary(self, depth: int) -> tuple:
        kind, value = self.take()
        if kind == "op" and value == "(":
            inner = self.expr(depth + 1)
            self.expect(")")
            return inner
        if kind == "num":
            return self.node("lit", float(value))
        if kind == "dstr":
            body = value[1:-1]
            body = body.replace('""', '"') if self.lang == "vbscript" else _unescape(body)
            return self.node("lit", body)
        if kind == "sstr" and self.lang == "arcade":
            return self.node("lit", _unescape(value[1:-1]))
        if kind == "bracket" and self.lang == "vbscript":
            return self.field(value[1:-1].strip())
        if kind == "name":
            low = value.lower()
            if self.lang == "arcade" and low == "$feature":
                if self.accept("."):
                    k, name = self.take()
                    if k != "name":
                        raise LabelExpressionError("expected a field name after $feature.")
                    return self.field(name)
                k, name = self.take()
                inner = name[1:-1].strip() if k == "bracket" else ""
                if len(inner) < 2 or inner[0] not in "\"'" or inner[-1] != inner[0]:
                    raise LabelExpressionError('expected $feature.name or $feature["name"]')
                return self.field(inner[1:-1])
            if self.lang == "arcade" and low == "textformatting":
                self.expect(".")
                k, name = self.take()
                if name.lower() != "newline":
                    raise LabelExpressionError(f"unknown TextFormatting.{name}")
                return self.node("lit", "\n")
            if self.lang == "arcade" and low in ("true", "false"):
                return self.node("lit", low == "true")
            if self.lang == "arcade" and low == "null":
                return self.node("lit", None)
            if self.lang == "vbscript" and low in VB_CONSTS:
                return self.node("lit", VB_CONSTS[low])
            funcs = VB_FUNCS if self.lang == "vbscript" else ARCADE_FUNCS
            if low in funcs and self.peek() == ("op", "("):
                fn = funcs[low]
                self.take()
                args = []
                if not self.accept(")"):
                    args.append(self.expr(depth + 1))
                    while self.accept(","):
                        args.append(self.expr(depth + 1))
                    self.expect(")")
                lo, hi = ARITY[fn]
                if not lo <= len(args) <= hi:
                    raise LabelExpressionError(f"{value}() takes {lo}..{hi} arguments")
                return self.node("call", fn, tuple(args))
            raise LabelExpressionError(f"unknown name {value!r}")
        raise LabelExpressionError(f"unexpected {value!r}")


def _unescape(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def compile_label(text: str, language: str, field_names: Sequence[str]) -> LabelExpression:
    """Parse ``text`` (``"vbscript"`` or ``"arcade"``), resolving fields case-insensitively."""
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise LabelExpressionError(f"longer than {MAX_EXPRESSION_LENGTH} characters")
    canon = {f.lower(): f for f in field_names}

    def resolve(raw: str) -> str:
        name = canon.get(raw.lower())
        if name is None:
            raise LabelExpressionError(f"unknown field {raw!r}")
        return name

    p = _Parser(text, language, resolve)
    if not p.toks:
        raise LabelExpressionError("empty expression")
    root = p.parse()
    return LabelExpression(text=text, language=language, root=root, fields=tuple(p.fields))


# evaluation ------------------------------------------------------------------------------

def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _to_text(v: Any) -> str:
    v = _py(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e16 else repr(v)
    return str(v)


def _num(v: Any) -> float | None:
    v = _py(v)
    if v is None:
        return None
    if isinstance(v, bool | int | float):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _format_number(v: float, fmt: str) -> str:
    """Arcade ``Text(number, "#,###.00")``: decimals from the pattern after ``.``, grouping
    when it has a ``,``."""
    decimals = len([c for c in fmt.split(".", 1)[1] if c in "0#"]) if "." in fmt else 0
    required = len([c for c in fmt.split(".", 1)[1] if c == "0"]) if "." in fmt else 0
    s = f"{v:,.{decimals}f}" if "," in fmt else f"{v:.{decimals}f}"
    if decimals > required and "." in s:  # optional '#' decimals drop trailing zeros
        head, tail = s.split(".")
        tail = tail.rstrip("0")
        tail = tail + "0" * max(0, required - len(tail))
        s = head + ("." + tail if tail else "")
    return s


def _eval(node: tuple, row: Mapping[str, Any]) -> Any:
    op = node[0]
    if op == "lit":
        return node[1]
    if op == "field":
        return _py(row[node[1]])
    if op == "concat":
        return _to_text(_eval(node[1], row)) + _to_text(_eval(node[2], row))
    if op == "add":
        a, b = _eval(node[1], row), _eval(node[2], row)
        if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
            return _to_text(a) + _to_text(b)
        return float(a) + float(b)
    if op == "arith":
        a, b = _num(_eval(node[2], row)), _num(_eval(node[3], row))
        if a is None or b is None:
            return None
        if node[1] == "-":
            return a - b
        if node[1] == "*":
            return a * b
        return a / b if b else None
    if op == "neg":
        a = _num(_eval(node[1], row))
        return -a if a is not None else None
    if op == "not":
        return not _truthy(_eval(node[1], row))
    if op == "and":
        return _truthy(_eval(node[1], row)) and _truthy(_eval(node[2], row))
    if op == "or":
        return _truthy(_eval(node[1], row)) or _truthy(_eval(node[2], row))
    if op == "cmp":
        a, b = _eval(node[2], row), _eval(node[3], row)
        if isinstance(a, str) != isinstance(b, str) and a is not None and b is not None:
            a, b = _to_text(a), _to_text(b)
        cmp = node[1]
        if cmp == "==":
            return a == b
        if cmp == "!=":
            return a != b
        if a is None or b is None:
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[cmp]
    if op == "call":
        return _call(node[1], node[2], row)
    raise LabelExpressionError(f"unknown node {op}")  # pragma: no cover - parser allowlist


def _truthy(v: Any) -> bool:
    v = _py(v)
    if v is None:
        return False
    if isinstance(v, str):
        return v != ""
    return bool(v)


def _call(fn: str, args: tuple, row: Mapping[str, Any]) -> Any:
    if fn == "iif":
        return _eval(args[1], row) if _truthy(_eval(args[0], row)) else _eval(args[2], row)
    vals = [_eval(a, row) for a in args]
    if fn == "upper":
        return _to_text(vals[0]).upper()
    if fn == "lower":
        return _to_text(vals[0]).lower()
    if fn == "proper":
        return _to_text(vals[0]).title()
    if fn == "trim":
        return _to_text(vals[0]).strip()
    if fn == "concat":
        if len(vals) >= 2:
            return _to_text(vals[1]).join(_to_text(v) for v in _flat(vals[0]))
        return "".join(_to_text(v) for v in _flat(vals[0]))
    if fn == "isempty":
        v = _py(vals[0])
        return v is None or v == ""
    if fn == "round":
        x = _num(vals[0])
        if x is None:
            return None
        places = int(_num(vals[1]) or 0) if len(vals) > 1 else 0
        r = round(x, places)
        return float(r)
    if fn == "text":
        v = _py(vals[0])
        if len(vals) > 1 and (x := _num(v)) is not None and not isinstance(v, str):
            return _format_number(x, _to_text(vals[1]))
        return _to_text(v)
    raise LabelExpressionError(f"unknown function {fn}")  # pragma: no cover


def _flat(v: Any) -> list:
    return list(v) if isinstance(v, list | tuple) else [v]



# labelPlacement ----------------------------------------------------------------------------

_POINT = "esriServerPointLabelPlacement"
_LINE = "esriServerLinePlacement"
POINT_PLACEMENTS = {f"{_POINT}{v}{h}" for v in ("Above", "Below", "Center")
                    for h in ("Left", "Center", "Right")}
LINE_PLACEMENTS = {f"{_LINE}{v}{w}" for v in ("Above", "Below", "Center")
                   for w in ("After", "Along", "Before", "Start", "End")}
POLYGON_PLACEMENTS = {"esriServerPolygonPlacementAlwaysHorizontal"}
LABEL_PLACEMENTS = {"esriGeometryPoint": POINT_PLACEMENTS,
                    "esriGeometryMultipoint": POINT_PLACEMENTS,
                    "esriGeometryPolyline": LINE_PLACEMENTS,
                    "esriGeometryPolygon": POLYGON_PLACEMENTS}


@dataclass(frozen=True)
class Placement:
    """How a label sits on its anchor: matplotlib alignments, an offset in points (x right,
    y up), whether it follows the line's direction, and where along a line (0..1)."""

    ha: str = "center"
    va: str = "center"
    dx: float = 0.0
    dy: float = 0.0
    along: bool = False
    at: float = 0.5


GAP = 2.0  # points between the anchor (a point's marker) and its label, as ArcGIS leaves


def placement(name: str, font_size: float) -> Placement:
    """The :class:`Placement` for an ``esriServer*Placement*`` name ("" = centred)."""
    if name.startswith(_POINT):
        rest = name[len(_POINT):]
        vert = next(v for v in ("Above", "Below", "Center") if rest.startswith(v))
        horiz = rest[len(vert):]
        va = {"Above": "bottom", "Below": "top", "Center": "center"}[vert]
        ha = {"Left": "right", "Right": "left", "Center": "center"}[horiz]
        dy = {"Above": GAP, "Below": -GAP, "Center": 0.0}[vert]
        dx = {"Left": -GAP, "Right": GAP, "Center": 0.0}[horiz]
        return Placement(ha=ha, va=va, dx=dx, dy=dy)
    if name.startswith(_LINE):
        rest = name[len(_LINE):]
        vert = next(v for v in ("Above", "Below", "Center") if rest.startswith(v))
        where = rest[len(vert):]
        va = {"Above": "bottom", "Below": "top", "Center": "center"}[vert]
        dy = {"Above": GAP / 2, "Below": -GAP / 2, "Center": 0.0}[vert]
        at = {"Start": 0.0, "End": 1.0, "Before": 0.0, "After": 1.0}.get(where, 0.5)
        ha = {"Start": "left", "End": "right", "Before": "right", "After": "left"}.get(
            where, "center")
        return Placement(ha=ha, va=va, dy=dy, along=True, at=at)
    return Placement()


# --- metatiles: the label window ------------------------------------------------------------
# A metatile (maps/metatiles.py) is drawn on one grid: its N x N tiles plus a buffer. Labels are
# placed once on that grid, then the grid is cut into tiles, so inside a metatile a label is
# never cut or repeated. At the metatile's own edges the policy is DROP: a label is drawn only
# when its whole box lies inside the metatile's core (the tiles, not the buffer). A label that
# would cross the edge is drawn by neither metatile (placement near the edge depends on what
# each grid sees, so "draw it in both" could not promise the same position on both sides);
# the buffer makes features just outside the core count for collisions and anchors. The window
# travels in a context variable because it is a property of the drawing call, set for the
# duration of one metatile render, and every entry point (the /tile cache, ``mapserver seed``,
# the batch tile pyramid) draws through the same ``draw_map`` without knowing about it.
LABEL_WINDOW: ContextVar[tuple[float, float, float, float] | None] = ContextVar(
    "label_window", default=None)


@contextmanager
def label_window(box: tuple[float, float, float, float] | None) -> Iterator[None]:
    """Within the block, labels are drawn only if their pixel box lies inside ``box``
    (x0, y0, x1, y1 in the grid's pixels); None: no restriction (exports)."""
    token = LABEL_WINDOW.set(box)
    try:
        yield
    finally:
        LABEL_WINDOW.reset(token)


def outside_window(box: tuple[float, float, float, float]) -> bool:
    """True when a label's pixel box is not wholly inside the current label window."""
    window = LABEL_WINDOW.get()
    if window is None:
        return False
    # the box is an estimate (0.6 em per character, no halo): keep a margin so the glyphs
    # and halo really stay inside
    w, h = box[2] - box[0], box[3] - box[1]
    pad = 0.25 * min(w, h) + 2.0
    box = (box[0] - pad - 0.1 * w, box[1] - pad, box[2] + pad + 0.1 * w, box[3] + pad)
    return (box[0] < window[0] or box[1] < window[1] or box[2] > window[2]
            or box[3] > window[3])
