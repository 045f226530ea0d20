"""Tokenizer and recursive-descent parser for ArcGIS "standardized SQL" where clauses.

Why hand-written rather than sqlglot: we tried sqlglot 30.30.0 first. It parses fine, but it
accepts a superset of SQL across dialects and *normalises* the extensions into ordinary nodes
before we can see them: ``a::int`` becomes Cast, ``a == 1`` becomes EQ, ``{fn UCASE(b)}`` becomes
Upper, ``a ISNULL`` / ``a NOT NULL`` become IS NULL, ``+a`` becomes ``a``, ``BETWEEN SYMMETRIC``
becomes an OR, and ``a = 0x10`` parses silently as an *alias* ``a = 0 AS x10``. Comments survive
only as side-attributes, and an empty ``--`` comment leaves nothing at all. So an allowlist of
sqlglot node types cannot tell what the client actually wrote, and the language we accept would
move with every sqlglot release (it is at major version 30). This grammar is small enough that a
parser of our own is shorter than the adapter plus its special cases. It also accepts exactly
what is documented here, gives errors with a character position, and enforces the nesting limit
while parsing, so hostile input can never cause a RecursionError.

Grammar (keywords and function names case-insensitive)::

    clause    := or EOF
    or        := and (OR and)*
    and       := not (AND not)*
    not       := NOT not | predicate
    predicate := additive [ cmp additive
                          | [NOT] IN '(' or (',' or)* ')'
                          | [NOT] BETWEEN additive AND additive
                          | [NOT] LIKE additive [ESCAPE string]
                          | IS [NOT] NULL ]
    additive  := term (('+' | '-') term)*
    term      := unary (('*' | '/') unary)*
    unary     := ('-' | '+') unary | primary
    primary   := number | string | TRUE | FALSE | NULL
               | DATE string | TIMESTAMP string | CURRENT_DATE | CURRENT_TIMESTAMP
               | CAST '(' or AS type ')' | SUBSTRING(...) | TRIM(...) | POSITION(a IN b)
               | name '(' args ')' | '(' or ')' | identifier | "quoted identifier"

The lexer rejects comments, ``;``, parameters (``?``, ``:x``, ``@x``, ``$1``), backquotes,
brackets and any other character outside the grammar. The parser rejects SELECT and all other
statement keywords, so subqueries, UNION and DDL/DML can never form a valid tree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

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
from mapserver.where.common import MAX_NESTING, fail, parse_timestamp_ms

# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------

NUM, STR, IDENT, QIDENT, OP, EOF = "number", "string", "identifier", "quoted", "operator", "end"

_TWO_CHAR_OPS = ("<>", "!=", "<=", ">=")
_ONE_CHAR_OPS = "=<>+-*/(),"


@dataclass(frozen=True)
class Token:
    """One lexeme. ``pos`` is the 1-based character position, used in error details."""

    kind: str
    text: str  # identifier text, literal string value, number text, or operator
    pos: int

    def describe(self) -> str:
        """Short human description for 'found ...' in syntax errors."""
        if self.kind == EOF:
            return "end of clause"
        if self.kind == STR:
            return "string literal"
        if self.kind == QIDENT:
            return f'"{self.text}"'
        return f"'{self.text}'"


_DIGITS = frozenset("0123456789")


def _is_ident_start(ch: str) -> bool:
    return ch.isalpha() or ch == "_"


def _is_ident_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, rejecting anything that has no place in a where clause."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        pos = i + 1
        if ch.isspace():
            i += 1
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            raise fail(
                f"Comments are not allowed in where clauses ('{text[i:i + 2]}' at position {pos})"
            )
        if ch == ";":
            raise fail(
                f"Multiple statements are not allowed in where clauses (';' at position {pos})"
            )
        if ch == "'":
            value, i = _read_quoted(text, i, "'", "string literal")
            tokens.append(Token(STR, value, pos))
            continue
        if ch == '"':
            value, i = _read_quoted(text, i, '"', "quoted field name")
            if not value:
                raise fail(f"Empty quoted field name at position {pos}")
            tokens.append(Token(QIDENT, value, pos))
            continue
        if ch in _DIGITS or (ch == "." and i + 1 < n and text[i + 1] in _DIGITS):
            j = i
            while j < n and text[j] in _DIGITS:
                j += 1
            if j < n and text[j] == ".":
                j += 1
                while j < n and text[j] in _DIGITS:
                    j += 1
            if j < n and text[j] in "eE":
                k = j + 1
                if k < n and text[k] in "+-":
                    k += 1
                if k < n and text[k] in _DIGITS:
                    while k < n and text[k] in _DIGITS:
                        k += 1
                    j = k
            if j < n and (_is_ident_char(text[j]) or text[j] == "."):
                raise fail(f"Malformed number '{text[i:j + 1]}' at position {pos}")
            tokens.append(Token(NUM, text[i:j], pos))
            i = j
            continue
        if _is_ident_start(ch):
            j = i + 1
            while j < n and _is_ident_char(text[j]):
                j += 1
            tokens.append(Token(IDENT, text[i:j], pos))
            i = j
            continue
        two = text[i:i + 2]
        if two in _TWO_CHAR_OPS:
            tokens.append(Token(OP, "<>" if two == "!=" else two, pos))
            i += 2
            continue
        if ch in _ONE_CHAR_OPS:
            tokens.append(Token(OP, ch, pos))
            i += 1
            continue
        if ch in "?:@$":
            raise fail(f"Parameters are not allowed in where clauses ('{ch}' at position {pos})")
        raise fail(f"Unexpected character {ch!r} at position {pos}")
    tokens.append(Token(EOF, "", n + 1))
    return tokens


def _read_quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    """Read a quoted token starting at ``start``; a doubled quote stands for one quote char."""
    parts: list[str] = []
    i = start + 1
    n = len(text)
    while True:
        j = text.find(quote, i)
        if j < 0:
            raise fail(f"Unterminated {what} starting at position {start + 1}")
        parts.append(text[i:j])
        if j + 1 < n and text[j + 1] == quote:
            parts.append(quote)
            i = j + 2
            continue
        return "".join(parts), j + 1


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

#: Words that can never be a bare field name; a field with such a name must be double-quoted.
RESERVED = frozenset(
    {"AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "ESCAPE", "IS", "NULL", "TRUE", "FALSE",
     "CAST", "AS", "CURRENT_DATE", "CURRENT_TIMESTAMP"}
)

#: Statement-level SQL. Named in the error so "why was my clause rejected" is answerable.
FORBIDDEN = frozenset(
    {"SELECT", "UNION", "INTERSECT", "EXCEPT", "INSERT", "UPDATE", "DELETE", "DROP", "CREATE",
     "ALTER", "TRUNCATE", "MERGE", "GRANT", "REVOKE", "EXEC", "EXECUTE", "CALL", "DECLARE",
     "WITH", "INTO", "WHERE", "GROUP", "HAVING", "ORDER", "LIMIT", "OFFSET", "FETCH", "JOIN",
     "EXISTS", "ATTACH", "DETACH", "PRAGMA", "VACUUM", "REPLACE", "UPSERT", "SHUTDOWN"}
)

#: Plain-call functions: canonical name -> (min args, max args or None for unbounded).
FUNCTIONS: dict[str, tuple[int, int | None]] = {
    "UPPER": (1, 1),
    "LOWER": (1, 1),
    "CHAR_LENGTH": (1, 1),
    "CONCAT": (1, None),
    "ABS": (1, 1),
    "ROUND": (1, 2),
    "FLOOR": (1, 1),
    "CEILING": (1, 1),
    "MOD": (2, 2),
    "SUBSTRING": (2, 3),
    "COALESCE": (1, None),
}
#: ``EXTRACT(part FROM date)``: the parts, as ``Func("EXTRACT", (Literal(part), date))``.
EXTRACT_PARTS = ("YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND")
#: Aggregate calls, allowed only in a ``having`` clause (``Parser(text, aggregates=True)``):
#: ``Func(name, (Field,))``; the statistics code replaces each by its per-group value.
AGGREGATES = ("COUNT", "SUM", "MIN", "MAX", "AVG", "STDDEV", "VAR")
_ALIASES = {"CHARACTER_LENGTH": "CHAR_LENGTH", "CEIL": "CEILING", "SUBSTR": "SUBSTRING"}

#: CAST target spellings -> canonical target.
CAST_TYPES = {
    "INTEGER": "INTEGER", "INT": "INTEGER", "SMALLINT": "INTEGER", "BIGINT": "INTEGER",
    "FLOAT": "FLOAT", "REAL": "FLOAT", "DOUBLE": "FLOAT",
    "VARCHAR": "VARCHAR", "CHAR": "VARCHAR", "CHARACTER": "VARCHAR",
    "DATE": "DATE", "TIMESTAMP": "TIMESTAMP",
}

_CMP_OPS = frozenset({"=", "<>", "<", "<=", ">", ">="})


class Parser:
    """Recursive-descent parser over a token list. Builds an untyped AST with raw field names."""

    def __init__(self, text: str, aggregates: bool = False) -> None:
        self.aggregates = aggregates
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # -- token helpers ------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def is_kw(self, *words: str, offset: int = 0) -> bool:
        tok = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return tok.kind == IDENT and tok.text.upper() in words

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == OP and self.tok.text in ops

    def accept_kw(self, word: str) -> bool:
        if self.is_kw(word):
            self.advance()
            return True
        return False

    def expect_kw(self, word: str) -> None:
        if not self.accept_kw(word):
            self.error(f"expected {word}")

    def expect_op(self, op: str) -> None:
        if not self.is_op(op):
            self.error(f"expected '{op}'")
        self.advance()

    def error(self, what: str) -> NoReturn:
        tok = self.tok
        if tok.kind == IDENT and tok.text.upper() in FORBIDDEN:
            self.forbidden(tok)
        raise fail(f"Syntax error at position {tok.pos}: {what}, found {tok.describe()}")

    def forbidden(self, tok: Token) -> NoReturn:
        word = tok.text.upper()
        if word == "SELECT" or word == "EXISTS":
            raise fail(f"Subqueries are not allowed in where clauses ('{tok.text}' at position "
                       f"{tok.pos})")
        raise fail(f"SQL keyword '{tok.text}' is not allowed in where clauses (position "
                   f"{tok.pos})")

    def enter(self) -> None:
        """Count one level of nesting; refuse before Python's recursion limit is anywhere near."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise fail(f"Where clause is nested too deeply (more than {MAX_NESTING} levels at "
                       f"position {self.tok.pos})")

    def leave(self) -> None:
        self.depth -= 1

    # -- grammar ------------------------------------------------------------------------------

    def parse(self) -> Node:
        node = self.parse_or()
        if self.tok.kind != EOF:
            self.error("expected end of clause")
        return node

    def parse_or(self) -> Node:
        self.enter()
        items = [self.parse_and()]
        while self.accept_kw("OR"):
            items.append(self.parse_and())
        self.leave()
        return items[0] if len(items) == 1 else Or(tuple(items))

    def parse_and(self) -> Node:
        items = [self.parse_not()]
        while self.accept_kw("AND"):
            items.append(self.parse_not())
        return items[0] if len(items) == 1 else And(tuple(items))

    def parse_not(self) -> Node:
        if self.accept_kw("NOT"):
            self.enter()
            node = Not(self.parse_not())
            self.leave()
            return node
        return self.parse_predicate()

    def parse_predicate(self) -> Node:
        left = self.parse_additive()
        if self.tok.kind == OP and self.tok.text in _CMP_OPS:
            op = self.advance().text
            return Compare(op, left, self.parse_additive())
        if self.accept_kw("IS"):
            negated = self.accept_kw("NOT")
            self.expect_kw("NULL")
            return IsNull(left, negated)
        negated = False
        if self.is_kw("NOT") and self.is_kw("IN", "BETWEEN", "LIKE", offset=1):
            self.advance()
            negated = True
        if self.accept_kw("IN"):
            self.expect_op("(")
            if self.is_kw("SELECT"):
                self.forbidden(self.tok)
            items = [self.parse_in_item()]
            while self.is_op(","):
                self.advance()
                items.append(self.parse_in_item())
            self.expect_op(")")
            return InList(left, tuple(items), negated)
        if self.accept_kw("BETWEEN"):
            low = self.parse_additive()
            self.expect_kw("AND")
            return Between(left, low, self.parse_additive(), negated)
        if self.accept_kw("LIKE"):
            pattern = self.parse_additive()
            escape: str | None = None
            if self.accept_kw("ESCAPE"):
                tok = self.tok
                if tok.kind != STR:
                    self.error("expected a string literal after ESCAPE")
                self.advance()
                if len(tok.text) != 1:
                    raise fail(f"ESCAPE must be a single character (position {tok.pos})")
                escape = tok.text
            return Like(left, pattern, escape, negated)
        return left

    def parse_in_item(self) -> Node:
        """One IN-list item. Bare literals skip the full descent: long OBJECTID lists are common."""
        tok = self.tok
        nxt = self.tokens[self.i + 1]
        if tok.kind in (NUM, STR) and nxt.kind == OP and nxt.text in (",", ")"):
            self.advance()
            return _number(tok) if tok.kind == NUM else Literal(tok.text, VType.STRING)
        return self.parse_or()

    def parse_additive(self) -> Node:
        node = self.parse_term()
        while self.is_op("+", "-"):
            op = self.advance().text
            node = Arith(op, node, self.parse_term())
        return node

    def parse_term(self) -> Node:
        node = self.parse_unary()
        while self.is_op("*", "/"):
            op = self.advance().text
            node = Arith(op, node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.is_op("-", "+"):
            op = self.advance().text
            self.enter()
            operand = self.parse_unary()
            self.leave()
            if op == "+":
                return operand
            if isinstance(operand, Literal) and isinstance(operand.value, float):
                return Literal(-operand.value, operand.vtype)
            return Neg(operand)
        return self.parse_primary()

    def parse_primary(self) -> Node:
        tok = self.tok
        if tok.kind == NUM:
            self.advance()
            return _number(tok)
        if tok.kind == STR:
            self.advance()
            return Literal(tok.text, VType.STRING)
        if tok.kind == QIDENT:
            self.advance()
            return Field(tok.text)
        if self.is_op("("):
            self.advance()
            if self.is_kw("SELECT"):
                self.forbidden(self.tok)
            node = self.parse_or()
            self.expect_op(")")
            return node
        if tok.kind != IDENT:
            self.error("expected an expression")
        word = tok.text.upper()
        if word in FORBIDDEN:
            self.forbidden(tok)
        nxt = self.tokens[self.i + 1]
        if word in ("TRUE", "FALSE"):
            self.advance()
            return Literal(word == "TRUE", VType.BOOLEAN)
        if word == "NULL":
            self.advance()
            return Literal(None, VType.NULL)
        if word in ("DATE", "TIMESTAMP") and nxt.kind == STR:
            self.advance()
            self.advance()
            ms = parse_timestamp_ms(nxt.text)
            if ms is None:
                shape = "yyyy-mm-dd" if word == "DATE" else "yyyy-mm-dd hh:mm:ss"
                raise fail(f"Invalid {word} literal '{nxt.text}' at position {nxt.pos}; "
                           f"expected '{shape}'")
            return Literal(ms, VType.DATE)
        if word in ("CURRENT_DATE", "CURRENT_TIMESTAMP"):
            self.advance()
            if self.is_op("(") and self.tokens[self.i + 1].text == ")":
                self.advance()
                self.advance()
            return Now(word)
        if word in RESERVED:
            if word == "CAST":
                return self.parse_call(tok)
            self.error("expected an expression")
        if nxt.kind == OP and nxt.text == "(":
            return self.parse_call(tok)
        self.advance()
        return Field(tok.text)

    def parse_call(self, name_tok: Token) -> Node:
        word = name_tok.text.upper()
        word = _ALIASES.get(word, word)
        if self.aggregates and word in AGGREGATES:
            self.advance()
            self.expect_op("(")
            tok = self.tok
            if tok.kind not in (IDENT, QIDENT) or tok.text.upper() in RESERVED:
                self.error("expected a field name")
            self.advance()
            self.expect_op(")")
            return Func(word, (Field(tok.text),))
        if word not in FUNCTIONS and word not in ("CAST", "TRIM", "POSITION", "EXTRACT"):
            raise fail(f"Unknown function '{name_tok.text}' in where clause")
        self.advance()  # name
        self.expect_op("(")
        self.enter()
        if self.is_kw("SELECT"):
            self.forbidden(self.tok)
        if word == "CAST":
            node = self.parse_cast_body()
        elif word == "TRIM":
            node = self.parse_trim_body()
        elif word == "EXTRACT":
            part = self.tok
            if part.kind != IDENT or part.text.upper() not in EXTRACT_PARTS:
                self.error("expected YEAR, MONTH, DAY, HOUR, MINUTE or SECOND")
            self.advance()
            self.expect_kw("FROM")
            node = Func("EXTRACT", (Literal(part.text.upper(), VType.STRING), self.parse_or()))
        elif word == "POSITION":
            needle = self.parse_additive()
            self.expect_kw("IN")
            node = Func("POSITION", (needle, self.parse_additive()))
        elif word == "SUBSTRING" and not self.is_op(")"):
            node = self.parse_substring_body()
        else:
            args: list[Node] = []
            if not self.is_op(")"):
                args.append(self.parse_or())
                while self.is_op(","):
                    self.advance()
                    args.append(self.parse_or())
            lo, hi = FUNCTIONS[word]
            if len(args) < lo or (hi is not None and len(args) > hi):
                want = str(lo) if lo == hi else (f"{lo} to {hi}" if hi else f"at least {lo}")
                raise fail(f"Function '{word}' expects {want} argument(s), got {len(args)}")
            node = Func(word, tuple(args))
        self.expect_op(")")
        self.leave()
        return node

    def parse_cast_body(self) -> Node:
        operand = self.parse_or()
        self.expect_kw("AS")
        tok = self.tok
        if tok.kind != IDENT:
            self.error("expected a type name")
        self.advance()
        word = tok.text.upper()
        if word == "DOUBLE" and self.is_kw("PRECISION"):
            self.advance()
        if word in ("CHARACTER", "CHAR") and self.is_kw("VARYING"):
            self.advance()
        if word not in CAST_TYPES:
            raise fail(f"Unsupported CAST type '{tok.text}' (use INTEGER, FLOAT, REAL, DOUBLE, "
                       "VARCHAR, CHAR, DATE or TIMESTAMP)")
        if self.is_op("("):  # VARCHAR(n), DECIMAL-style precision: accepted and ignored
            self.advance()
            if self.tok.kind != NUM:
                self.error("expected a length")
            self.advance()
            self.expect_op(")")
        return Cast(operand, CAST_TYPES[word])

    def parse_trim_body(self) -> Node:
        where = "BOTH"
        if self.is_kw("BOTH", "LEADING", "TRAILING"):
            where = self.advance().text.upper()
            if self.accept_kw("FROM"):
                return Trim(self.parse_or(), None, where)
            chars = self.parse_additive()
            self.expect_kw("FROM")
            return Trim(self.parse_or(), chars, where)
        first = self.parse_additive()
        if self.accept_kw("FROM"):
            return Trim(self.parse_or(), first, where)
        return Trim(first, None, where)

    def parse_substring_body(self) -> Node:
        source = self.parse_additive()
        if self.accept_kw("FROM"):
            args = [source, self.parse_additive()]
            if self.accept_kw("FOR"):
                args.append(self.parse_additive())
            return Func("SUBSTRING", tuple(args))
        args = [source]
        while self.is_op(","):
            self.advance()
            args.append(self.parse_or())
        if not 2 <= len(args) <= 3:
            raise fail(f"Function 'SUBSTRING' expects 2 to 3 argument(s), got {len(args)}")
        return Func("SUBSTRING", tuple(args))


def _number(tok: Token) -> Literal:
    """Numeric literal; integer-looking text is typed INTEGER so CAST/rendering keep it integral."""
    text = tok.text
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise fail(f"Numeric literal out of range at position {tok.pos}")
    is_int = all(c in _DIGITS for c in text)
    return Literal(value, VType.INTEGER if is_int else VType.FLOAT)


def parse(text: str, aggregates: bool = False) -> Node:
    """Parse ``text`` into an untyped AST (field names as written). Raises WhereClauseError.
    ``aggregates``: a ``having`` clause, where ``COUNT(f)``, ``SUM(f)``, … may appear."""
    return Parser(text, aggregates).parse()
