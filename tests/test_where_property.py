"""Property-based tests of the where engine.

(a) Random *valid* clauses, generated from a typed grammar over random tables, must select
    exactly the rows SQLite selects for an equivalent clause over the same rows. Each
    generated clause comes as a pair: our ArcGIS text and a SQLite rendering of the same
    meaning, which spells out the places where SQLite differs on purpose: true division,
    CONCAT's NULL-as-empty rule, ``substr``/``instr``/``ltrim`` names, date literals as epoch
    ms, and case-sensitive LIKE via the pragma.
(b) Hostile or garbage input (arbitrary text, token soup, valid clauses with SQL keywords,
    quotes, semicolons and comments spliced in) may only ever raise WhereClauseError. A clause
    that compiles must also evaluate without raising.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mapserver.errors import WhereClauseError
from mapserver.where import FieldInfo, compile_where

FIELDS = [
    FieldInfo("OBJECTID", "esriFieldTypeOID"),
    FieldInfo("NAME", "esriFieldTypeString"),
    FieldInfo("CODE", "esriFieldTypeString"),
    FieldInfo("POP", "esriFieldTypeInteger"),
    FieldInfo("AREA", "esriFieldTypeDouble"),
    FieldInfo("FOUNDED", "esriFieldTypeDate"),
]

SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ASCII only, so SQLite's ASCII-only UPPER/LOWER and byte-wise text ordering match Python's.
ALPHABET = "aAbB x_%'!"
DAY = 86_400_000

# -- tables ----------------------------------------------------------------------------------


@dataclass
class Table:
    """One random table in both representations: numpy columns and rows for SQLite."""

    rows: list[tuple]
    columns: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.rows)


texts = st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=5))
dates = st.one_of(
    st.none(),
    st.integers(-400, 400).map(lambda d: d * DAY + 10_957 * DAY),  # days around 2000-01-01
    st.integers(-(10**12), 2 * 10**12),
)
row_values = st.tuples(
    texts,
    texts,
    st.one_of(st.none(), st.integers(-1000, 1000)),
    st.one_of(st.none(), st.sampled_from([-2.5, 0.0, 0.5, 1.0, 3.75, 100.25]),
              st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)),
    dates,
)


@st.composite
def tables(draw: st.DrawFn) -> Table:
    values = draw(st.lists(row_values, min_size=0, max_size=12))
    rows = [(i + 1, *v) for i, v in enumerate(values)]
    n = len(rows)

    def ints(idx: int) -> tuple[np.ndarray, np.ndarray]:
        null = np.array([r[idx] is None for r in rows], dtype=bool)
        # junk under the mask proves the mask, not the value, decides NULL
        data = np.array([777_777 if r[idx] is None else r[idx] for r in rows], dtype=np.int64)
        return data, null

    pop, pop_null = ints(3)
    founded, founded_null = ints(5)
    columns = {
        "OBJECTID": np.arange(1, n + 1, dtype=np.int64),
        "NAME": np.array([r[1] for r in rows] + [None], dtype=object)[:n],
        "CODE": np.array([r[2] for r in rows] + [None], dtype=object)[:n],
        "POP": pop,
        "POP__null": pop_null,
        "AREA": np.array([np.nan if r[4] is None else r[4] for r in rows], dtype=np.float64),
        "FOUNDED": founded,
        "FOUNDED__null": founded_null,
    }
    return Table(rows, columns)


@pytest.fixture(scope="module")
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("PRAGMA case_sensitive_like = ON")
    assert conn.execute("SELECT 'a' LIKE 'A'").fetchone() == (0,), "pragma not honoured"
    conn.execute("CREATE TABLE t (OBJECTID INTEGER, NAME TEXT, CODE TEXT, POP INTEGER, "
                 "AREA REAL, FOUNDED INTEGER)")
    return conn


def sqlite_ids(conn: sqlite3.Connection, table: Table, where: str) -> list[int]:
    conn.execute("DELETE FROM t")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", table.rows)
    return [r[0] for r in conn.execute(f"SELECT OBJECTID FROM t WHERE {where} ORDER BY 1")]


# -- clause grammar: every strategy yields (our text, SQLite text) --------------------------

Pair = tuple[str, str]


def same(text: str) -> Pair:
    return (text, text)


def field(name: str) -> st.SearchStrategy[Pair]:
    """A field reference in random case, sometimes double-quoted (ours only)."""
    return st.sampled_from([name, name.lower(), name.title(), f'"{name.lower()}"']).map(
        lambda ours: (ours, name))


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


str_literal = st.text(alphabet=ALPHABET, max_size=4).map(lambda s: same(sql_string(s)))
int_literal = st.integers(-20, 1200).map(lambda i: same(str(i)))
small_int = st.integers(-4, 4).map(lambda i: same(str(i)))
float_literal = st.sampled_from(["0.5", "2.25", "1.5e2", ".5", "100.0", "-3.75"]).map(same)
null_literal = st.just(("NULL", "NULL"))


def date_literal() -> st.SearchStrategy[Pair]:
    def render(ms: int, as_ts: bool) -> Pair:
        dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
        if as_ts:
            return (f"TIMESTAMP '{dt:%Y-%m-%d %H:%M:%S}'", str(ms))
        return (f"DATE '{dt:%Y-%m-%d}'", str(ms - ms % DAY))

    return st.builds(render, st.integers(-400, 400).map(lambda d: (d + 10_957) * DAY)
                     | st.integers(0, 2 * 10**9).map(lambda s: s * 1000), st.booleans())


def op2(fmt_ours: str, fmt_ref: str, *parts: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    """Combine sub-pairs through a format string for each dialect."""
    return st.tuples(*parts).map(
        lambda ps: (fmt_ours.format(*(p[0] for p in ps)), fmt_ref.format(*(p[1] for p in ps))))


def int_expr(depth: int) -> st.SearchStrategy[Pair]:
    """Integer-valued expressions (exact in both engines; magnitudes stay far below 2**53)."""
    leaves = st.one_of(field("POP"), field("OBJECTID"), int_literal)
    if depth <= 0:
        return leaves
    sub = int_expr(depth - 1)
    return st.one_of(
        leaves,
        op2("({} + {})", "({} + {})", sub, sub),
        op2("({} - {})", "({} - {})", sub, sub),
        op2("({} * {})", "({} * {})", sub, small_int),
        op2("(- {})", "(- {})", sub),
        op2("ABS({})", "abs({})", sub),
        op2("MOD({}, {})", "({} % {})", sub, sub),
        op2("CHAR_LENGTH({})", "length({})", str_expr(depth - 1)),
        op2("POSITION({} IN {})", "instr({1}, {0})", str_expr(depth - 1), str_expr(depth - 1)),
        op2("CAST({} AS INTEGER)", "CAST({} AS INTEGER)", num_expr(depth - 1)),
    )


def num_expr(depth: int) -> st.SearchStrategy[Pair]:
    """Any numeric expression, including float columns and true division."""
    leaves = st.one_of(field("AREA"), float_literal, int_literal)
    if depth <= 0:
        return st.one_of(leaves, int_expr(0))
    sub = num_expr(depth - 1)
    return st.one_of(
        leaves,
        int_expr(depth),
        op2("({} + {})", "({} + {})", sub, sub),
        op2("({} - {})", "({} - {})", sub, sub),
        op2("({} * {})", "({} * {})", sub, small_int),
        op2("({} / {})", "(CAST({} AS REAL) / {})", sub, sub),
        op2("FLOOR({})", "floor({})", sub),
        op2("CEILING({})", "ceil({})", sub),
        op2("CAST({} AS FLOAT)", "CAST({} AS REAL)", int_expr(depth - 1)),
    )


def str_expr(depth: int) -> st.SearchStrategy[Pair]:
    leaves = st.one_of(field("NAME"), field("CODE"), str_literal)
    if depth <= 0:
        return leaves
    sub = str_expr(depth - 1)
    pos = st.integers(1, 4).map(lambda i: same(str(i)))
    length = st.integers(0, 4).map(lambda i: same(str(i)))
    ch = st.sampled_from(["a", "x", " ", "'"]).map(lambda c: same(sql_string(c)))
    return st.one_of(
        leaves,
        op2("UPPER({})", "upper({})", sub),
        op2("LOWER({})", "lower({})", sub),
        op2("SUBSTRING({} FROM {} FOR {})", "substr({}, {}, {})", sub, pos, length),
        op2("SUBSTRING({}, {}, {})", "substr({}, {}, {})", sub, pos, length),
        op2("SUBSTRING({} FROM {})", "substr({}, {})", sub, pos),
        op2("TRIM({})", "trim({})", sub),
        op2("TRIM(LEADING {1} FROM {0})", "ltrim({0}, {1})", sub, ch),
        op2("TRIM(TRAILING {1} FROM {0})", "rtrim({0}, {1})", sub, ch),
        op2("TRIM(BOTH {1} FROM {0})", "trim({0}, {1})", sub, ch),
        op2("CONCAT({}, {})", "(COALESCE({}, '') || COALESCE({}, ''))", sub, sub),
        op2("CONCAT({}, {})", "(COALESCE({}, '') || COALESCE(CAST({} AS TEXT), ''))",
            sub, int_expr(depth - 1)),
        op2("CAST({} AS VARCHAR)", "CAST({} AS TEXT)", int_expr(depth - 1)),
    )


def date_expr(depth: int) -> st.SearchStrategy[Pair]:
    base = st.one_of(field("FOUNDED"), date_literal())
    if depth <= 0:
        return base
    return st.one_of(
        base,
        op2("CAST({} AS DATE)", "(CAST(floor({} / 86400000.0) AS INTEGER) * 86400000)",
            field("FOUNDED")),
    )


CMP = st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="]).map(
    lambda op: (op, "<>" if op == "!=" else op))


def comparison(values: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    return st.tuples(values, CMP, values).map(
        lambda t: (f"{t[0][0]} {t[1][0]} {t[2][0]}", f"{t[0][1]} {t[1][1]} {t[2][1]}"))


def in_list(values: st.SearchStrategy[Pair], items: st.SearchStrategy[Pair]) -> st.SearchStrategy[
        Pair]:
    return st.tuples(values, st.booleans(), st.lists(items | null_literal, min_size=1,
                                                     max_size=4)).map(
        lambda t: (f"{t[0][0]} {'NOT ' if t[1] else ''}IN ({', '.join(i[0] for i in t[2])})",
                   f"{t[0][1]} {'NOT ' if t[1] else ''}IN ({', '.join(i[1] for i in t[2])})"))


def between(values: st.SearchStrategy[Pair]) -> st.SearchStrategy[Pair]:
    return st.tuples(values, st.booleans(), values, values).map(
        lambda t: tuple(f"{t[0][k]} {'NOT ' if t[1] else ''}BETWEEN {t[2][k]} AND {t[3][k]}"
                        for k in (0, 1)))  # type: ignore[return-value]


@st.composite
def like(draw: st.DrawFn, depth: int) -> Pair:
    subject = draw(str_expr(depth))
    negated = "NOT " if draw(st.booleans()) else ""
    if draw(st.integers(0, 5)) == 0:  # pattern from a column: per-row patterns, no ESCAPE
        pattern = draw(field("CODE"))
        return (f"{subject[0]} {negated}LIKE {pattern[0]}",
                f"{subject[1]} {negated}LIKE {pattern[1]}")
    use_escape = draw(st.booleans())
    units = ["a", "b", "A", "x", " ", "'", "%", "_"]
    if use_escape:
        units += ["!%", "!_", "!!"]
    pattern = "".join(draw(st.lists(st.sampled_from(units), max_size=5)))
    escape = " ESCAPE '!'" if use_escape else ""
    text = f"{negated}LIKE {sql_string(pattern)}{escape}"
    return (f"{subject[0]} {text}", f"{subject[1]} {text}")


def is_null(depth: int) -> st.SearchStrategy[Pair]:
    return st.tuples(st.one_of(num_expr(depth), str_expr(depth), date_expr(depth)),
                     st.booleans()).map(
        lambda t: tuple(f"{t[0][k]} IS {'NOT ' if t[1] else ''}NULL"
                        for k in (0, 1)))  # type: ignore[return-value]


def predicate(depth: int) -> st.SearchStrategy[Pair]:
    return st.one_of(
        comparison(num_expr(depth)),
        comparison(str_expr(depth)),
        comparison(date_expr(depth)),
        in_list(num_expr(depth), num_expr(0)),
        in_list(str_expr(depth), str_literal),
        in_list(date_expr(0), date_literal()),
        between(num_expr(depth)),
        between(str_expr(0)),
        between(date_expr(0)),
        like(depth),
        is_null(depth),
        st.sampled_from(["TRUE", "FALSE", "1=1"]).map(same),
    )


def condition(depth: int) -> st.SearchStrategy[Pair]:
    base = predicate(1)
    if depth <= 0:
        return base
    sub = condition(depth - 1)
    conj = st.sampled_from(["AND", "and", "OR", "Or"])
    return st.one_of(
        base,
        st.tuples(sub, conj, sub).map(
            lambda t: (f"{t[0][0]} {t[1]} {t[2][0]}", f"{t[0][1]} {t[1].upper()} {t[2][1]}")),
        st.tuples(sub, conj, sub).map(
            lambda t: (f"({t[0][0]}) {t[1]} ({t[2][0]})",
                       f"({t[0][1]}) {t[1].upper()} ({t[2][1]})")),
        sub.map(lambda p: (f"NOT ({p[0]})", f"NOT ({p[1]})")),
        sub.map(lambda p: (f"not {p[0]}", f"NOT {p[1]}")),
    )


CONDITIONS = condition(2)


# -- (a) agreement with SQLite ----------------------------------------------------------------


@SETTINGS
@given(table=tables(), clause=CONDITIONS)
def test_agrees_with_sqlite(db: sqlite3.Connection, table: Table, clause: Pair) -> None:
    ours, ref = clause
    expr = compile_where(ours, FIELDS)
    assert expr is not None
    mask = expr.evaluate(table.columns, table.n)
    got = [int(i) for i in table.columns["OBJECTID"][mask]]
    assert got == sqlite_ids(db, table, ref), f"ours: {ours}\nsqlite: {ref}"


# -- (b) hostile input only ever raises WhereClauseError --------------------------------------

FRAGMENTS = [
    ";", "; DROP TABLE t", "--", "/*", "*/", "'", "''", '"', "\\", "`", "[", "]", "(", ")",
    "?", ":x", "@x", "$1", "%", "_", "||", "::int", "==", "!", "SELECT * FROM t", "UNION SELECT 1",
    " OR 1=1", " AND ", " NOT ", " IN ", " IN (SELECT 1)", " LIKE ", " ESCAPE '", " BETWEEN ",
    " IS ", "NULL", "CAST(", " AS ", "DATE '", "TIMESTAMP '2020", "CURRENT_DATE", "EXISTS(",
    "SUBSTRING(", " FROM ", " FOR ", "TRIM(", "LEADING", "1e999", "0x1F", ".", ",", "\x00",
    "\u00e9", "\u202e", "\n", "é'--", "'; --", "' OR ''='", "sleep(1)", "CHAR(0x41)",
]
TOKENS = [
    "pop", "NAME", '"area"', "founded", "1", "2.5", "'a'", "'b''c'", "=", "<>", "<", ">=", "+",
    "-", "*", "/", "(", ")", ",", "AND", "OR", "NOT", "IN", "BETWEEN", "LIKE", "ESCAPE", "IS",
    "NULL", "TRUE", "CAST", "AS", "INTEGER", "VARCHAR", "DATE", "'2020-01-01'", "UPPER",
    "SUBSTRING", "FROM", "FOR", "TRIM", "BOTH", "CONCAT", "MOD", "POSITION", "CURRENT_DATE",
    "SELECT", ";", "--", "/*", "'", '"',
]


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = draw(CONDITIONS)[0]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.sampled_from(FRAGMENTS)) + text[at:]
        else:
            end = draw(st.integers(at, min(len(text), at + 6)))
            text = text[:at] + text[end:]
    return text


HOSTILE = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join),
    mutated(),
)

FIXED_TABLE = Table(
    rows=[(1, "a", "b", 5, 1.5, 0, ), (2, None, "'", None, None, None)],
    columns={
        "OBJECTID": np.array([1, 2], dtype=np.int64),
        "NAME": np.array(["a", None], dtype=object),
        "CODE": np.array(["b", "'"], dtype=object),
        "POP": np.array([5, 0], dtype=np.int64),
        "POP__null": np.array([False, True]),
        "AREA": np.array([1.5, np.nan]),
        "FOUNDED": np.array([0, 0], dtype=np.int64),
        "FOUNDED__null": np.array([False, True]),
    },
)


@SETTINGS
@given(text=HOSTILE)
def test_hostile_input_only_raises_where_clause_error(text: str) -> None:
    try:
        expr = compile_where(text, FIELDS)
    except WhereClauseError as err:
        body = err.to_json()["error"]
        assert body["code"] == 400 and body["message"] == "Invalid where clause"
        assert len(body["details"]) == 1 and body["details"][0]
        return
    if expr is not None:
        mask = expr.evaluate(FIXED_TABLE.columns, FIXED_TABLE.n)
        assert mask.dtype == np.bool_ and mask.shape == (FIXED_TABLE.n,)


@settings(SETTINGS, max_examples=100)
@given(table=tables(), clause=like(0))
def test_like_agrees_with_sqlite(db: sqlite3.Connection, table: Table, clause: Pair) -> None:
    """LIKE on its own, because it is where SQLite differs most (case, escapes, wildcards)."""
    ours, ref = clause
    expr = compile_where(ours, FIELDS)
    assert expr is not None
    got = [int(i) for i in table.columns["OBJECTID"][expr.evaluate(table.columns, table.n)]]
    assert got == sqlite_ids(db, table, ref), f"ours: {ours}\nsqlite: {ref}"
