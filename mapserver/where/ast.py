"""The where-clause AST: small frozen dataclasses, one per allowed construct.

The node classes *are* the allowlist. The parser can only build these, the checker only types
these, and the evaluator only runs these. Anything a client writes that does not map onto one
of them is rejected before evaluation. Nodes are frozen and hold only tuples, strings, floats and
booleans, so a compiled expression is immutable and hashable and can be cached and shared
between threads.

Every node has a ``vtype``. The parser leaves it as ``VType.UNKNOWN`` and the checker
(:mod:`mapserver.where.check`) fills it in. The evaluator relies on those types to pick the
numeric, string or date code path without inspecting the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum


class VType(Enum):
    """Static value type of an expression. Numbers keep int/float apart so CAST can render them."""

    UNKNOWN = "unknown"
    INTEGER = "integer"
    FLOAT = "float"
    STRING = "string"
    DATE = "date"
    BOOLEAN = "boolean"
    NULL = "null"  # the bare NULL literal before the checker gives it its context's type

    @property
    def is_numeric(self) -> bool:
        """True for INTEGER and FLOAT, which are interchangeable in arithmetic and comparisons."""
        return self in (VType.INTEGER, VType.FLOAT)

    @property
    def label(self) -> str:
        """Human name used in error details ("number" rather than "integer" / "float")."""
        return "number" if self.is_numeric else self.value


class Node:
    """Base of all AST nodes. Children are found generically so walkers need not list them."""

    vtype: VType

    def children(self) -> Iterator[Node]:
        """Yield direct child nodes (fields that are nodes or tuples of nodes)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Node):
                yield value
            elif isinstance(value, tuple):
                for item in value:
                    if isinstance(item, Node):
                        yield item


@dataclass(frozen=True)
class Literal(Node):
    """A constant. Numbers are float, dates are float epoch milliseconds (UTC), NULL is None."""

    value: float | str | bool | None
    vtype: VType = VType.UNKNOWN


@dataclass(frozen=True)
class Field(Node):
    """A reference to a layer field. ``name`` is the canonical name after checking."""

    name: str
    vtype: VType = VType.UNKNOWN


@dataclass(frozen=True)
class Now(Node):
    """CURRENT_DATE or CURRENT_TIMESTAMP. Resolved at evaluation time, not at compile time."""

    kind: str  # "CURRENT_DATE" | "CURRENT_TIMESTAMP"
    vtype: VType = VType.DATE


@dataclass(frozen=True)
class Neg(Node):
    """Unary minus."""

    operand: Node
    vtype: VType = VType.UNKNOWN


@dataclass(frozen=True)
class Arith(Node):
    """Binary arithmetic: ``+ - * /``."""

    op: str
    left: Node
    right: Node
    vtype: VType = VType.UNKNOWN


@dataclass(frozen=True)
class Compare(Node):
    """Binary comparison; ``op`` is one of ``= <> < <= > >=`` (``!=`` is normalised to ``<>``)."""

    op: str
    left: Node
    right: Node
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class And(Node):
    """N-ary AND. Kept flat so long chains do not make the tree (and the recursion) deep."""

    items: tuple[Node, ...]
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class Or(Node):
    """N-ary OR, flat for the same reason as :class:`And`."""

    items: tuple[Node, ...]
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class Not(Node):
    """Logical NOT (three-valued: NOT unknown is unknown)."""

    operand: Node
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class InList(Node):
    """``x [NOT] IN (a, b, ...)``. Only explicit lists: subqueries never parse."""

    operand: Node
    items: tuple[Node, ...]
    negated: bool = False
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class Between(Node):
    """``x [NOT] BETWEEN low AND high`` (inclusive on both ends)."""

    operand: Node
    low: Node
    high: Node
    negated: bool = False
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class Like(Node):
    """``x [NOT] LIKE pattern [ESCAPE 'c']``, case-sensitive, ``%`` and ``_`` wildcards."""

    operand: Node
    pattern: Node
    escape: str | None = None
    negated: bool = False
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class IsNull(Node):
    """``x IS [NOT] NULL`` (always true or false, never unknown)."""

    operand: Node
    negated: bool = False
    vtype: VType = VType.BOOLEAN


@dataclass(frozen=True)
class Func(Node):
    """A call to one of the allowlisted scalar functions (canonical upper-case ``name``)."""

    name: str
    args: tuple[Node, ...]
    vtype: VType = VType.UNKNOWN


@dataclass(frozen=True)
class Trim(Node):
    """``TRIM([BOTH|LEADING|TRAILING] [chars] FROM s)``; ``chars`` None means a space."""

    operand: Node
    chars: Node | None = None
    where: str = "BOTH"
    vtype: VType = VType.STRING


@dataclass(frozen=True)
class Cast(Node):
    """``CAST(x AS t)`` with ``target`` one of INTEGER, FLOAT, VARCHAR, DATE, TIMESTAMP."""

    operand: Node
    target: str
    vtype: VType = VType.UNKNOWN


def walk(root: Node) -> Iterator[Node]:
    """Yield every node, iteratively (no recursion, so it is safe on any tree the parser built)."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children())


def depth_and_size(root: Node) -> tuple[int, int]:
    """Return (max depth, node count), computed iteratively for the resource guards."""
    max_depth = 0
    size = 0
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        size += 1
        max_depth = max(max_depth, depth)
        stack.extend((child, depth + 1) for child in node.children())
    return max_depth, size
