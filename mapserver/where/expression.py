"""Public face of the where engine: compile a clause once per layer, evaluate it per request.

Compilation goes text -> tokens -> AST (:mod:`.parser`) -> resource guards -> typed AST
(:mod:`.check`). The result is an immutable :class:`WhereExpression` that is safe to cache on a
layer (service ``definitionExpression``) and to share between request threads. Evaluation
(:mod:`.evaluate`) needs nothing but numpy columns. The clause never reaches eval() or any SQL
engine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from mapserver.errors import WhereClauseError
from mapserver.where.ast import And, Func, Node, depth_and_size
from mapserver.where.ast import Field as FieldNode
from mapserver.where.check import Checker, field_lookup
from mapserver.where.common import MAX_AST_DEPTH, MAX_AST_NODES, MAX_CLAUSE_LENGTH, fail
from mapserver.where.evaluate import Evaluator
from mapserver.where.parser import AGGREGATES, parse

NUMERIC_TYPES = ("esriFieldTypeSmallInteger", "esriFieldTypeInteger", "esriFieldTypeSingle",
                 "esriFieldTypeDouble", "esriFieldTypeOID")


@dataclass(frozen=True)
class FieldInfo:
    """What the where engine needs to know about a layer field: its name and ArcGIS type."""

    name: str
    type: str


@dataclass(frozen=True)
class WhereExpression:
    """A compiled, validated, immutable where clause.

    ``text`` is the clause as the client wrote it (or a parenthesised AND of several, see
    :func:`combine_and`). ``fields_used`` holds canonical field names, so a data source can read
    only the columns it needs. ``root`` is the typed AST, exposed for consumers that want to
    translate it (for example, push it down to a data source); treat it as read-only.
    """

    text: str
    fields_used: frozenset[str]
    root: Node = field(repr=False)

    def evaluate(self, columns: Mapping[str, np.ndarray], n: int,
                 *, now_ms: float | None = None) -> np.ndarray:
        """Return a bool mask of length ``n``: True where the clause is definitely true.

        ``columns`` maps each name in :attr:`fields_used` to a length-``n`` array: float (NaN is
        NULL) or int64 for numbers, object arrays (None is NULL) for strings, int64 epoch ms for
        dates. ``columns[name + "__null"]`` may add a bool NULL mask to any column. Rows where the
        clause is unknown (NULL involved) are not selected, as in SQL. ``now_ms`` pins
        CURRENT_DATE/CURRENT_TIMESTAMP (tests, or one consistent clock across pages).
        """
        with np.errstate(all="ignore"):
            return Evaluator(columns, n, now_ms).condition(self.root)


def compile_where(text: str | None, fields: Sequence[FieldInfo]) -> WhereExpression | None:
    """Parse and validate ``text`` against ``fields``; None (no filter) for empty/blank input.

    Raises :class:`~mapserver.errors.WhereClauseError` for anything that is not a valid,
    supported clause over these fields. The check happens here, once, so ``evaluate`` cannot
    fail because of the client's input.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise fail("Where clause must be a string")
    if not text.strip():
        return None
    if len(text) > MAX_CLAUSE_LENGTH:
        raise fail(f"Where clause is too long ({len(text)} characters; the limit is "
                   f"{MAX_CLAUSE_LENGTH})")
    tree = parse(text)
    depth, size = depth_and_size(tree)
    if depth > MAX_AST_DEPTH:
        raise fail(f"Where clause is nested too deeply (depth {depth}; the limit is "
                   f"{MAX_AST_DEPTH})")
    if size > MAX_AST_NODES:
        raise fail(f"Where clause is too complex ({size} terms; the limit is {MAX_AST_NODES})")
    checker = Checker(field_lookup([(f.name, f.type) for f in fields]))
    typed = checker.check_condition(tree)
    return WhereExpression(text, frozenset(checker.fields_used), typed)


def compile_having(text: str, group_fields: Sequence[FieldInfo],
                   fields: Sequence[FieldInfo]
                   ) -> tuple[WhereExpression, tuple[tuple[str, str, str], ...]]:
    """A ``having`` clause: a condition over aggregate calls (``SUM(pop_est) > 1e9``).

    Each aggregate call over one of ``fields`` becomes a column ``__having_<k>`` (COUNT:
    INTEGER; MIN / MAX: the field's type; otherwise DOUBLE); a bare field must be one of
    ``group_fields``. The caller supplies those columns, one row per group. Returns the
    compiled clause and ``(column, aggregate, field)`` for each distinct call.
    """
    if not isinstance(text, str) or not text.strip():
        raise fail("Having clause is empty")
    if len(text) > MAX_CLAUSE_LENGTH:
        raise fail(f"Having clause is too long ({len(text)} characters)")
    tree = parse(text, aggregates=True)
    depth, size = depth_and_size(tree)
    if depth > MAX_AST_DEPTH or size > MAX_AST_NODES:
        raise fail("Having clause is too complex")
    grouped = {f.name.upper() for f in group_fields}
    by_upper = {f.name.upper(): f for f in fields}
    calls: dict[tuple[str, str], str] = {}
    infos: list[FieldInfo] = list(group_fields)

    def replace(node: Node) -> Node:
        if isinstance(node, Func) and node.name in AGGREGATES:
            arg = node.args[0]
            assert isinstance(arg, FieldNode)
            f = by_upper.get(arg.name.upper())
            if f is None:
                raise fail(f"Unknown field '{arg.name}' in having clause")
            key = (node.name, f.name)
            if key not in calls:
                calls[key] = col = f"__having_{len(calls)}"
                if node.name == "COUNT":
                    ftype = "esriFieldTypeInteger"
                elif node.name in ("MIN", "MAX"):
                    ftype = f.type
                elif f.type in NUMERIC_TYPES:
                    ftype = "esriFieldTypeDouble"
                else:
                    raise fail(f"{node.name} needs a numeric field, not '{f.name}'")
                infos.append(FieldInfo(col, ftype))
            return FieldNode(calls[key])
        if isinstance(node, FieldNode) and node.name.upper() not in grouped:
            raise fail(f"Field '{node.name}' in having clause is neither aggregated nor a "
                       "groupByFieldsForStatistics field")
        changes: dict[str, object] = {}
        for fd in dataclasses.fields(node):  # type: ignore[arg-type]
            v = getattr(node, fd.name)
            if isinstance(v, Node):
                changes[fd.name] = replace(v)
            elif isinstance(v, tuple) and v and all(isinstance(x, Node) for x in v):
                changes[fd.name] = tuple(replace(x) for x in v)
        return dataclasses.replace(node, **changes) if changes else node  # type: ignore[arg-type]

    tree = replace(tree)
    checker = Checker(field_lookup([(f.name, f.type) for f in infos]))
    typed = checker.check_condition(tree)
    cols = tuple((col, agg, name) for (agg, name), col in calls.items())
    return WhereExpression(text, frozenset(checker.fields_used), typed), cols


def combine_and(*exprs: WhereExpression | None) -> WhereExpression | None:
    """AND several compiled clauses (e.g. the service's definitionExpression and layerDefs).

    None entries (no filter) are skipped. If nothing is left the result is None, and a single
    clause is returned unchanged. Inputs were already validated, so this never raises.
    """
    present = [e for e in exprs if e is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]
    items: list[Node] = []
    for e in present:
        items.extend(e.root.items if isinstance(e.root, And) else (e.root,))
    text = " AND ".join(f"({e.text})" for e in present)
    used = frozenset().union(*(e.fields_used for e in present))
    return WhereExpression(text, used, And(tuple(items)))


def compile_clause(fields: Sequence[FieldInfo], text: str | None, param: str,
                   message: str | None = None) -> WhereExpression | None:
    """Compile one clause a parameter carries; errors name that parameter (``where``,
    ``layerDefs``, ``definitionExpression``) and may carry the operation's own message."""
    try:
        return compile_where(text, fields)
    except WhereClauseError as exc:
        raise WhereClauseError(message or exc.message,
                               [f"'{param}' parameter is invalid", *exc.details]) from None
