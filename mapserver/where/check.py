"""Semantic checks: resolve field names against the layer and assign a static type to every node.

This runs after parsing and before evaluation. Every type error SQL would reject (``name < 5``,
``UPPER(pop)``, ``NOT pop``) is therefore reported once, at compile time, with a clear message,
instead of surfacing as a numpy exception on some request later. The checker returns a *new*
tree with ``vtype`` set everywhere. Bare NULL literals take the type their context needs, so
the evaluator never meets an untyped value.
"""

from __future__ import annotations

from collections.abc import Mapping

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
from mapserver.where.common import fail, parse_timestamp_ms

#: ArcGIS field type -> where-clause value type. Types absent here cannot appear in a clause.
FIELD_VTYPES: dict[str, VType] = {
    "esriFieldTypeOID": VType.INTEGER,
    "esriFieldTypeInteger": VType.INTEGER,
    "esriFieldTypeSmallInteger": VType.INTEGER,
    "esriFieldTypeBigInteger": VType.INTEGER,
    "esriFieldTypeDouble": VType.FLOAT,
    "esriFieldTypeSingle": VType.FLOAT,
    "esriFieldTypeString": VType.STRING,
    "esriFieldTypeGUID": VType.STRING,
    "esriFieldTypeGlobalID": VType.STRING,
    "esriFieldTypeDate": VType.DATE,
    "esriFieldTypeDateOnly": VType.DATE,
}


class Checker:
    """Types one tree against one layer's fields (``lookup``: upper-case name -> (name, type))."""

    def __init__(self, lookup: Mapping[str, tuple[str, VType | None]]) -> None:
        self.lookup = lookup
        self.fields_used: set[str] = set()

    # -- entry points -------------------------------------------------------------------------

    def check_condition(self, node: Node) -> Node:
        """Type ``node`` and insist it is a condition (a where clause must be true/false)."""
        typed = self.check(node)
        return self.as_condition(typed)

    def as_condition(self, node: Node) -> Node:
        if node.vtype is VType.NULL:
            return _null(VType.BOOLEAN)
        if node.vtype is not VType.BOOLEAN:
            raise fail(f"Expected a condition but found a {node.vtype.label} expression")
        return node

    # -- dispatch -----------------------------------------------------------------------------

    def check(self, node: Node) -> Node:
        match node:
            case Literal():
                return node
            case Now():
                return node
            case Field(name=name):
                return self.field(name)
            case Neg(operand=operand):
                inner = self.numeric(self.check(operand), "unary '-'")
                vtype = VType.FLOAT if inner.vtype is VType.NULL else inner.vtype
                return Neg(_coerce_null(inner, vtype), vtype)
            case Arith(op=op, left=left, right=right):
                return self.arith(op, self.check(left), self.check(right))
            case Compare(op=op, left=left, right=right):
                a, b = self.comparable(self.check(left), self.check(right), f"'{op}'")
                return Compare(op, a, b)
            case And(items=items):
                return And(tuple(self.check_condition(i) for i in items))
            case Or(items=items):
                return Or(tuple(self.check_condition(i) for i in items))
            case Not(operand=operand):
                return Not(self.check_condition(operand))
            case InList(operand=operand, items=items, negated=negated):
                op = self.check(operand)
                typed_items = []
                for item in items:
                    op, it = self.comparable(op, self.check(item), "IN")
                    typed_items.append(it)
                op_type = op.vtype
                typed_items = [_coerce_null(it, op_type) for it in typed_items]
                return InList(op, tuple(typed_items), negated)
            case Between(operand=operand, low=low, high=high, negated=negated):
                op = self.check(operand)
                op, lo = self.comparable(op, self.check(low), "BETWEEN")
                op, hi = self.comparable(op, self.check(high), "BETWEEN")
                lo = _coerce_null(lo, op.vtype)
                return Between(op, lo, hi, negated)
            case Like(operand=operand, pattern=pattern, escape=escape, negated=negated):
                op = self.string(self.check(operand), "LIKE")
                pat = self.string(self.check(pattern), "LIKE pattern")
                if isinstance(pat, Literal) and isinstance(pat.value, str) and escape:
                    _check_escapes(pat.value, escape)
                return Like(op, pat, escape, negated)
            case IsNull(operand=operand, negated=negated):
                inner = self.check(operand)
                return IsNull(_coerce_null(inner, VType.FLOAT), negated)
            case Trim(operand=operand, chars=chars, where=where):
                src = self.string(self.check(operand), "TRIM")
                ch = None if chars is None else self.string(self.check(chars), "TRIM")
                return Trim(src, ch, where)
            case Cast(operand=operand, target=target):
                return self.cast(self.check(operand), target)
            case Func():
                return self.func(node)
        raise fail(f"Unsupported construct {type(node).__name__}")  # pragma: no cover

    # -- rules --------------------------------------------------------------------------------

    def field(self, raw: str) -> Node:
        hit = self.lookup.get(raw.upper())
        if hit is None:
            raise fail(f"Unknown field '{raw}' in where clause")
        name, vtype = hit
        if vtype is None:
            raise fail(f"Field '{name}' cannot be used in a where clause")
        self.fields_used.add(name)
        return Field(name, vtype)

    def numeric(self, node: Node, what: str) -> Node:
        if node.vtype.is_numeric or node.vtype is VType.NULL:
            return node
        raise fail(f"{what} needs a number, not a {node.vtype.label}")

    def string(self, node: Node, what: str) -> Node:
        if node.vtype is VType.STRING:
            return node
        if node.vtype is VType.NULL:
            return _null(VType.STRING)
        raise fail(f"{what} needs a string, not a {node.vtype.label}")

    def arith(self, op: str, a: Node, b: Node) -> Node:
        self.numeric(a, f"'{op}'")
        self.numeric(b, f"'{op}'")
        if op == "/":
            vtype = VType.FLOAT  # true division: 'pop / 1000 > 0.5' must mean what it says
        elif a.vtype is VType.FLOAT or b.vtype is VType.FLOAT:
            vtype = VType.FLOAT
        elif a.vtype is VType.NULL and b.vtype is VType.NULL:
            vtype = VType.FLOAT
        else:
            vtype = VType.INTEGER
        return Arith(op, _coerce_null(a, vtype), _coerce_null(b, vtype), vtype)

    def comparable(self, a: Node, b: Node, what: str) -> tuple[Node, Node]:
        """Check ``a`` and ``b`` can be compared; coerce NULL and date-string literals."""
        ta, tb = a.vtype, b.vtype
        if ta is VType.BOOLEAN or tb is VType.BOOLEAN:
            raise fail(f"Cannot use {what} on conditions; compare values instead")
        if ta is VType.NULL and tb is VType.NULL:
            return _null(VType.FLOAT), _null(VType.FLOAT)
        if ta is VType.NULL:
            return _null(tb), b
        if tb is VType.NULL:
            return a, _null(ta)
        if ta.is_numeric and tb.is_numeric or ta is tb:
            return a, b
        if ta is VType.DATE and tb is VType.STRING:
            return a, _date_from_string(b)
        if tb is VType.DATE and ta is VType.STRING:
            return _date_from_string(a), b
        raise fail(f"Cannot compare a {ta.label} with a {tb.label} using {what}")

    def cast(self, node: Node, target: str) -> Node:
        src = node.vtype
        if src is VType.BOOLEAN:
            raise fail("Cannot CAST a condition")
        if src is VType.NULL:
            vtype = _CAST_VTYPES[target]
            return _null(vtype)
        if target in ("DATE", "TIMESTAMP") and src.is_numeric:
            raise fail(f"Cannot CAST a number to {target}")
        if target in ("INTEGER", "FLOAT") and src is VType.DATE:
            raise fail(f"Cannot CAST a date to {target}")
        if (target in ("DATE", "TIMESTAMP") and isinstance(node, Literal)
                and isinstance(node.value, str)
                and parse_timestamp_ms(node.value, date_only=target == "DATE") is None):
            raise fail(f"Cannot CAST '{node.value}' to {target}")
        return Cast(node, target, _CAST_VTYPES[target])

    def func(self, node: Func) -> Node:
        name = node.name
        args = [self.check(a) for a in node.args]
        if name in ("UPPER", "LOWER"):
            return Func(name, (self.string(args[0], name),), VType.STRING)
        if name == "CHAR_LENGTH":
            return Func(name, (self.string(args[0], name),), VType.INTEGER)
        if name == "CONCAT":
            for a in args:
                if a.vtype is VType.BOOLEAN:
                    raise fail("CONCAT cannot take a condition")
            return Func(name, tuple(_coerce_null(a, VType.STRING) for a in args), VType.STRING)
        if name == "POSITION":
            needle = self.string(args[0], name)
            hay = self.string(args[1], name)
            return Func(name, (needle, hay), VType.INTEGER)
        if name == "EXTRACT":
            part = args[0]
            date = args[1]
            if date.vtype is VType.NULL:
                date = _null(VType.DATE)
            if date.vtype is not VType.DATE:
                raise fail(f"EXTRACT needs a date, not a {date.vtype.label}")
            assert isinstance(part, Literal)
            return Func(name, (part, date),
                        VType.FLOAT if part.value == "SECOND" else VType.INTEGER)
        if name == "COALESCE":
            return self.coalesce(args)
        if name == "SUBSTRING":
            src = self.string(args[0], name)
            rest = [_coerce_null(self.numeric(a, name), VType.INTEGER) for a in args[1:]]
            return Func(name, (src, *rest), VType.STRING)
        # numeric functions
        nums = [self.numeric(a, name) for a in args]
        if name == "MOD":
            vtype = (VType.INTEGER if all(a.vtype is VType.INTEGER for a in nums)
                     else VType.FLOAT)
        elif name in ("FLOOR", "CEILING"):
            vtype = VType.INTEGER if nums[0].vtype is VType.INTEGER else VType.FLOAT
        elif name == "ROUND":
            vtype = VType.INTEGER if nums[0].vtype is VType.INTEGER else VType.FLOAT
        else:  # ABS
            vtype = nums[0].vtype if nums[0].vtype.is_numeric else VType.FLOAT
        return Func(name, tuple(_coerce_null(a, vtype) for a in nums), vtype)


    def coalesce(self, args: list[Node]) -> Node:
        """``COALESCE(a, b, …)``: all numbers, all strings or all dates (NULLs fit anything)."""
        kinds = [a.vtype for a in args if a.vtype is not VType.NULL]
        if any(k is VType.BOOLEAN for k in kinds):
            raise fail("COALESCE cannot take a condition")
        if not kinds:
            return _null(VType.FLOAT)
        if all(k.is_numeric for k in kinds):
            vtype = VType.INTEGER if all(k is VType.INTEGER for k in kinds) else VType.FLOAT
        elif all(k is kinds[0] for k in kinds):
            vtype = kinds[0]
        elif all(k in (VType.DATE, VType.STRING) for k in kinds):
            vtype = VType.DATE
            args = [_date_from_string(a) if a.vtype is VType.STRING else a for a in args]
        else:
            raise fail("COALESCE arguments must all be numbers, strings or dates")
        return Func("COALESCE", tuple(_coerce_null(a, vtype) for a in args), vtype)


_CAST_VTYPES = {
    "INTEGER": VType.INTEGER,
    "FLOAT": VType.FLOAT,
    "VARCHAR": VType.STRING,
    "DATE": VType.DATE,
    "TIMESTAMP": VType.DATE,
}


def _null(vtype: VType) -> Literal:
    return Literal(None, vtype)


def _coerce_null(node: Node, vtype: VType) -> Node:
    """Give an untyped NULL literal the type its context needs."""
    if node.vtype is VType.NULL:
        return _null(vtype)
    return node


def _date_from_string(node: Node) -> Node:
    """Allow ``date_field > '2020-01-01'``: a string *literal* next to a date is read as a date."""
    if isinstance(node, Literal) and isinstance(node.value, str):
        ms = parse_timestamp_ms(node.value)
        if ms is None:
            raise fail(f"Cannot compare a date with '{node.value}'; use DATE 'yyyy-mm-dd' or "
                       "TIMESTAMP 'yyyy-mm-dd hh:mm:ss'")
        return Literal(ms, VType.DATE)
    raise fail("Cannot compare a date with a string expression; CAST it to DATE or TIMESTAMP")


def _check_escapes(pattern: str, escape: str) -> None:
    """SQL requires the escape character to precede only %, _ or itself."""
    i = 0
    while i < len(pattern):
        if pattern[i] == escape:
            if i + 1 >= len(pattern) or pattern[i + 1] not in ("%", "_", escape):
                raise fail(f"LIKE pattern '{pattern}' has an invalid escape sequence")
            i += 2
        else:
            i += 1


def field_lookup(fields: list[tuple[str, str]]) -> dict[str, tuple[str, VType | None]]:
    """Upper-cased name -> (canonical name, value type or None if not queryable)."""
    return {name.upper(): (name, FIELD_VTYPES.get(ftype)) for name, ftype in fields}


__all__ = ["Checker", "FIELD_VTYPES", "field_lookup"]
