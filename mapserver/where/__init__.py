"""Where-clause engine for ``layerDefs``, ``definitionExpression``, query ``where`` and find.

ArcGIS "standardized SQL" clauses are parsed by our own small parser into a frozen-dataclass
AST. The node classes are the allowlist. Field names are checked against the layer's real
fields, every node is type-checked, and the tree is then evaluated vectorised over numpy
columns. The clause text is never passed to eval() or pasted into SQL, so there is no injection
surface, and every problem is reported as a :class:`~mapserver.errors.WhereClauseError`
(``400 Invalid where clause``) at compile time.

Layout: :mod:`.parser` (tokenizer + recursive descent; explains why not sqlglot),
:mod:`.ast` (node classes), :mod:`.check` (name resolution and typing), :mod:`.evaluate`
(numpy evaluation, three-valued logic), :mod:`.expression` (this public API),
:mod:`.common` (limits, error helper, date literals).
"""

from mapserver.where.common import MAX_AST_DEPTH, MAX_AST_NODES, MAX_CLAUSE_LENGTH, MAX_NESTING
from mapserver.where.expression import (
    FieldInfo,
    WhereExpression,
    combine_and,
    compile_clause,
    compile_having,
    compile_where,
)

__all__ = [
    "MAX_AST_DEPTH",
    "MAX_AST_NODES",
    "MAX_CLAUSE_LENGTH",
    "MAX_NESTING",
    "FieldInfo",
    "WhereExpression",
    "combine_and",
    "compile_clause",
    "compile_having",
    "compile_where",
]
