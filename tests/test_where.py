"""Example-based tests of the where-clause engine on a small table with NULLs in every column.

Each case asserts the exact set of OBJECTIDs selected, so a change in SQL semantics (NULL
handling, case sensitivity, wildcard escaping, boundary inclusiveness) shows up as a diff.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest

from mapserver.errors import InvalidParameter, MapServerError, WhereClauseError
from mapserver.where import (
    MAX_CLAUSE_LENGTH,
    FieldInfo,
    WhereExpression,
    combine_and,
    compile_where,
)


def ms(text: str) -> int:
    """Epoch ms (UTC) computed independently of the engine's own literal parser."""
    fmt = "%Y-%m-%d %H:%M:%S" if " " in text else "%Y-%m-%d"
    return int(datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp() * 1000)


FIELDS = [
    FieldInfo("OBJECTID", "esriFieldTypeOID"),
    FieldInfo("NAME", "esriFieldTypeString"),
    FieldInfo("POP", "esriFieldTypeInteger"),
    FieldInfo("AREA", "esriFieldTypeDouble"),
    FieldInfo("CONTINENT", "esriFieldTypeString"),
    FieldInfo("FOUNDED", "esriFieldTypeDate"),
    FieldInfo("SHAPE", "esriFieldTypeGeometry"),
]

N = 8
COLUMNS: dict[str, np.ndarray] = {
    "OBJECTID": np.arange(1, N + 1, dtype=np.int64),
    "NAME": np.array(["Paris", "paris", "Lagos", None, "São Paulo", "O'Brien", "a_b%c",
                      "  Tokyo "], dtype=object),
    "POP": np.array([2148000, 100, 15388000, 0, 12325000, -1, 50, 13960000], dtype=np.int64),
    "POP__null": np.array([False, False, False, False, False, True, False, False]),
    "AREA": np.array([105.4, 1.5, 1171.3, np.nan, 1521.1, 2.25, 0.0, 2194.0]),
    "CONTINENT": np.array(["Europe", "Europe", "Africa", None, "South America", "Europe",
                           "Asia", "Asia"], dtype=object),
    "FOUNDED": np.array([ms("2000-01-01"), ms("2000-01-01 12:30:00"), ms("1990-06-15"), 0,
                         ms("2020-02-29"), 0, ms("1969-12-31"), ms("2030-01-01")],
                        dtype=np.int64),
    "FOUNDED__null": np.array([False, False, False, True, False, False, False, False]),
}
NOW = float(ms("2025-06-01 08:00:00"))


def ids(clause: str) -> list[int]:
    expr = compile_where(clause, FIELDS)
    assert expr is not None
    mask = expr.evaluate(COLUMNS, N, now_ms=NOW)
    assert mask.dtype == np.bool_ and mask.shape == (N,)
    return [int(i) for i in COLUMNS["OBJECTID"][mask]]


def error_of(clause: str) -> dict:
    with pytest.raises(WhereClauseError) as info:
        compile_where(clause, FIELDS)
    return info.value.to_json()


def body(detail: str) -> dict:
    return {"error": {"code": 400, "message": "Invalid where clause", "details": [detail]}}


ALL = list(range(1, N + 1))

CASES = [
    # trivial
    ("1=1", ALL),
    ("1 = 0", []),
    ("TRUE", ALL),
    ("FALSE", []),
    ("NOT FALSE", ALL),
    # numeric comparisons, NULL row 6 never matches
    ("POP > 1000000", [1, 3, 5, 8]),
    ("pop >= 100", [1, 2, 3, 5, 8]),
    ("pop < 100", [4, 7]),
    ("pop <= 50", [4, 7]),
    ("pop = 0", [4]),
    ("pop <> 0", [1, 2, 3, 5, 7, 8]),
    ("pop != 0", [1, 2, 3, 5, 7, 8]),
    ("0 < pop", [1, 2, 3, 5, 7, 8]),
    ("area > 1000", [3, 5, 8]),
    ("area = 2.25", [6]),
    ("OBJECTID = 3", [3]),
    # string comparisons are case-sensitive and by code point
    ("NAME = 'Paris'", [1]),
    ("name = 'paris'", [2]),
    ("name <> 'Paris'", [2, 3, 5, 6, 7, 8]),
    ("name < 'M'", [3, 8]),
    ("name >= 'a'", [2, 7]),
    ("name = 'O''Brien'", [6]),
    ("'São Paulo' = name", [5]),
    # logic, parentheses, three-valued logic
    ("continent = 'Europe' AND pop > 1000", [1]),
    ("continent = 'Asia' OR pop = 0", [4, 7, 8]),
    ("NOT continent = 'Europe'", [3, 5, 7, 8]),
    ("NOT (continent = 'Europe' OR pop > 1000000)", [7]),
    ("pop > 10 OR continent = 'Europe'", [1, 2, 3, 5, 6, 7, 8]),
    ("NOT (pop > 10 AND continent = 'Europe')", [3, 4, 5, 7, 8]),
    ("NOT NOT pop = 0", [4]),
    ("(pop = 0 OR pop = 50) AND (area = 0 OR area IS NULL)", [4, 7]),
    ("pop = 0 OR pop = 50 AND area = 1", [4]),  # AND binds tighter than OR
    ("pop = NULL", []),
    ("NOT pop = NULL", []),
    ("NULL IS NULL", ALL),
    # IN / NOT IN
    ("continent IN ('Asia', 'Africa')", [3, 7, 8]),
    ("continent NOT IN ('Asia', 'Africa')", [1, 2, 5, 6]),
    ("pop IN (0, 50, NULL)", [4, 7]),
    ("pop NOT IN (0, NULL)", []),
    ("OBJECTID IN (1, 3)", [1, 3]),
    ("OBJECTID in (3)", [3]),
    ("pop IN (area * 0, 100)", [2]),
    ("NOT pop IN (0, 50)", [1, 2, 3, 5, 8]),
    # BETWEEN
    ("pop BETWEEN 50 AND 2148000", [1, 2, 7]),
    ("pop NOT BETWEEN 50 AND 2148000", [3, 4, 5, 8]),
    ("area BETWEEN 1.5 AND 105.4", [1, 2, 6]),
    ("name BETWEEN 'A' AND 'Z'", [1, 3, 5, 6]),
    # LIKE
    ("name LIKE 'P%'", [1]),
    ("name LIKE 'p%'", [2]),
    ("name LIKE '%aris'", [1, 2]),
    ("name LIKE '_aris'", [1, 2]),
    ("name LIKE '%'", [1, 2, 3, 5, 6, 7, 8]),
    ("name NOT LIKE '%a%'", [6, 8]),
    ("name LIKE 'S_o%'", [5]),
    ("name LIKE 'a\\_b\\%c' ESCAPE '\\'", [7]),
    ("name LIKE 'a!_%' ESCAPE '!'", [7]),
    ("name LIKE 'a!%%' ESCAPE '!'", []),
    ("name LIKE 'a_b%'", [7]),
    ("name LIKE 'O''%'", [6]),
    ("name LIKE '%.%'", []),
    ("name LIKE continent", []),
    ("UPPER(name) LIKE '%AR%'", [1, 2]),
    # IS NULL
    ("name IS NULL", [4]),
    ("pop IS NULL", [6]),
    ("area IS NULL", [4]),
    ("founded IS NULL", [4]),
    ("name IS NOT NULL", [1, 2, 3, 5, 6, 7, 8]),
    ("NOT name IS NULL", [1, 2, 3, 5, 6, 7, 8]),
    # arithmetic
    ("pop / 1000 > 2000", [1, 3, 5, 8]),
    ("pop * 2 + 1 = 101", [7]),
    ("-pop < -1000000", [1, 3, 5, 8]),
    ("- pop = -50", [7]),
    ("pop - 50 = 0", [7]),
    ("area / 0 IS NULL", ALL),
    ("pop / (pop - 100) IS NULL", [2, 6]),
    ("2 + 3 * 4 = 14", ALL),
    ("(2 + 3) * 4 = 20", ALL),
    ("7 / 2 = 3.5", ALL),
    ("10 - 2 - 3 = 5", ALL),
    ("1.5e1 = 15", ALL),
    (".5 = 0.5", ALL),
    ("+1 = 1", ALL),
    ("'it''s' = 'it''s'", ALL),
    # functions
    ("UPPER(name) = 'PARIS'", [1, 2]),
    ("lower(NAME) = 'paris'", [1, 2]),
    ("CHAR_LENGTH(name) = 5", [1, 2, 3, 7]),
    ("CHARACTER_LENGTH(name) = 7", [6]),
    ("SUBSTRING(name FROM 2 FOR 3) = 'ari'", [1, 2]),
    ("SUBSTRING(name, 1, 1) = 'a'", [7]),
    ("SUBSTRING(name FROM 3) = 'gos'", [3]),
    ("SUBSTRING(name FROM 0 FOR 2) = 'P'", [1]),
    ("SUBSTRING(name FROM 2 FOR -1) IS NULL", ALL),
    ("TRIM(name) = 'Tokyo'", [8]),
    ("TRIM(LEADING FROM name) = 'Tokyo '", [8]),
    ("TRIM(TRAILING ' ' FROM name) = '  Tokyo'", [8]),
    ("TRIM(BOTH 'P' FROM name) = 'aris'", [1]),
    ("TRIM('s' FROM name) = 'Pari'", [1]),
    ("CONCAT(name, '-', continent) = 'Paris-Europe'", [1]),
    ("CONCAT(name, continent) = ''", [4]),
    ("CONCAT(name, pop) = 'paris100'", [2]),
    ("CONCAT(OBJECTID, '/', area) = '2/1.5'", [2]),
    ("CAST(pop AS VARCHAR) = '100'", [2]),
    ("CAST(pop AS VARCHAR(20)) = '100'", [2]),
    ("CAST(pop AS CHAR(3)) = '100'", [2]),
    ("CAST(area AS INTEGER) = 105", [1]),
    ("CAST(area AS INTEGER) = 1", [2]),
    ("CAST('42' AS INTEGER) = 42", ALL),
    ("CAST('x' AS INTEGER) IS NULL", ALL),
    ("CAST(pop AS FLOAT) / 3 > 33.3", [1, 2, 3, 5, 8]),
    ("CAST(pop AS REAL) = 100", [2]),
    ("CAST(pop AS DOUBLE) = 100", [2]),
    ("CAST(founded AS DATE) = DATE '2000-01-01'", [1, 2]),
    ("CAST('2000-01-01' AS DATE) = founded", [1]),
    ("CAST('2000-01-01 12:30:00' AS TIMESTAMP) = founded", [2]),
    ("CAST(founded AS TIMESTAMP) = TIMESTAMP '2000-01-01 12:30:00'", [2]),
    ("CAST(founded AS VARCHAR) = '2000-01-01 12:30:00'", [2]),
    ("ABS(pop - 100) < 60", [2, 7]),
    ("ROUND(area) = 2", [2, 6]),
    ("ROUND(area, 1) = 2.3", [6]),
    ("ROUND(-2.5) = -3", ALL),
    ("FLOOR(area) = 1", [2]),
    ("CEILING(area) = 2", [2]),
    ("CEIL(area) = 3", [6]),
    ("MOD(pop, 3) = 1", [2, 3, 5, 8]),
    ("MOD(pop, 0) IS NULL", ALL),
    ("MOD(-7, 3) = -1", ALL),
    ("POSITION('a' IN name) = 2", [1, 2, 3]),
    ("POSITION('zz' IN name) = 0", [1, 2, 3, 5, 6, 7, 8]),
    ("upper(lower(upper(name))) = 'LAGOS'", [3]),
    # dates: int64 epoch ms with a null mask
    ("founded = DATE '2000-01-01'", [1]),
    ("founded >= TIMESTAMP '2000-01-01 12:00:00'", [2, 5, 8]),
    ("founded < DATE '1970-01-01'", [7]),
    ("founded = date '1970-01-01'", [6]),  # 0 ms is a real date; only the mask means NULL
    ("founded BETWEEN DATE '1970-01-01' AND DATE '2000-01-01'", [1, 3, 6]),
    ("founded > '2020-01-01'", [5, 8]),
    ("founded IN ('2000-01-01', DATE '2020-02-29')", [1, 5]),
    ("founded = DATE '2000-01-01 12:30:00'", [2]),
    ("founded = TIMESTAMP '2000-01-01T12:30'", [2]),
    ("founded < CURRENT_DATE", [1, 2, 3, 5, 6, 7]),
    ("founded > CURRENT_TIMESTAMP", [8]),
    ("CURRENT_DATE = DATE '2025-06-01'", ALL),
    ("CURRENT_TIMESTAMP = TIMESTAMP '2025-06-01 08:00:00'", ALL),
    # field names: case-insensitive, optionally double-quoted
    ('"NAME" = \'Paris\'', [1]),
    ('"name" = \'Paris\'', [1]),
    ("NaMe = 'Paris'", [1]),
    # whitespace and keyword case
    ("  pop\n>\t1000000\r\n", [1, 3, 5, 8]),
    ("pop between 0 and 50 and name like '%o%' or name is null", [4]),
]


@pytest.mark.parametrize(("clause", "expected"), CASES, ids=[c[0] for c in CASES])
def test_selects_exact_rows(clause: str, expected: list[int]) -> None:
    assert ids(clause) == expected


# -- compile_where contract -------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t "])
def test_empty_clause_means_no_filter(text: str | None) -> None:
    assert compile_where(text, FIELDS) is None


def test_fields_used_are_canonical() -> None:
    expr = compile_where("name = 'x' AND \"pop\" > 1 OR upper(Continent) = 'A'", FIELDS)
    assert expr is not None
    assert expr.fields_used == frozenset({"NAME", "POP", "CONTINENT"})
    assert compile_where("1=1", FIELDS).fields_used == frozenset()  # type: ignore[union-attr]


def test_expression_is_immutable_and_hashable() -> None:
    expr = compile_where("pop > 1", FIELDS)
    assert isinstance(expr, WhereExpression)
    with pytest.raises(dataclasses.FrozenInstanceError):
        expr.text = "1=1"  # type: ignore[misc]
    assert hash(expr) == hash(compile_where("pop > 1", FIELDS))
    assert expr.text == "pop > 1"


def test_evaluate_only_needs_used_columns_and_handles_empty() -> None:
    expr = compile_where("pop > 1", FIELDS)
    assert expr is not None
    mask = expr.evaluate({"POP": np.array([0, 5], dtype=np.int64)}, 2)
    assert mask.tolist() == [False, True]
    assert expr.evaluate({"POP": np.zeros(0, dtype=np.int64)}, 0).shape == (0,)


def test_column_representations() -> None:
    """Float NaN, int64 + __null mask, the int64-min date sentinel and datetime64 NaT."""
    fields = [FieldInfo("F", "esriFieldTypeDouble"), FieldInfo("I", "esriFieldTypeSmallInteger"),
              FieldInfo("D", "esriFieldTypeDate"), FieldInfo("T", "esriFieldTypeDate")]
    cols = {
        "F": np.array([1.0, np.nan, 3.0]),
        "I": np.array([1, 2, 3], dtype=np.int32),
        "I__null": np.array([False, False, True]),
        "D": np.array([0, np.iinfo(np.int64).min, 86_400_000], dtype=np.int64),
        "T": np.array(["1970-01-01", "NaT", "1970-01-02"], dtype="datetime64[ms]"),
    }

    def run(clause: str) -> list[bool]:
        expr = compile_where(clause, fields)
        assert expr is not None
        return expr.evaluate(cols, 3).tolist()

    assert run("F IS NULL") == [False, True, False]
    assert run("I IS NULL") == [False, False, True]
    assert run("I < 10") == [True, True, False]
    assert run("D IS NULL") == [False, True, False]
    assert run("T IS NULL") == [False, True, False]
    assert run("D = T") == [True, False, True]
    assert run("F + I = 2") == [True, False, False]


def test_missing_column_is_a_server_bug_not_a_client_error() -> None:
    expr = compile_where("pop > 1", FIELDS)
    assert expr is not None
    with pytest.raises(KeyError):
        expr.evaluate({}, 3)


def test_current_date_uses_the_clock_when_not_pinned() -> None:
    expr = compile_where("founded < CURRENT_TIMESTAMP", FIELDS)
    assert expr is not None
    assert COLUMNS["OBJECTID"][expr.evaluate(COLUMNS, N)].tolist()[:3] == [1, 2, 3]


# -- combine_and --------------------------------------------------------------------------------


def test_combine_and() -> None:
    a = compile_where("continent = 'Europe'", FIELDS)
    b = compile_where("pop > 50 OR pop IS NULL", FIELDS)
    assert combine_and() is None
    assert combine_and(None, None) is None
    assert combine_and(a, None) is a
    both = combine_and(a, None, b)
    assert both is not None
    assert both.text == "(continent = 'Europe') AND (pop > 50 OR pop IS NULL)"
    assert both.fields_used == frozenset({"CONTINENT", "POP"})
    mask = both.evaluate(COLUMNS, N)
    assert COLUMNS["OBJECTID"][mask].tolist() == [1, 2, 6]
    three = combine_and(both, compile_where("area < 100", FIELDS))
    assert three is not None
    assert COLUMNS["OBJECTID"][three.evaluate(COLUMNS, N)].tolist() == [2, 6]


# -- errors: exact bodies -----------------------------------------------------------------------


def test_error_is_the_shared_error_type() -> None:
    with pytest.raises(WhereClauseError) as info:
        compile_where("FOO = 1", FIELDS)
    assert isinstance(info.value, InvalidParameter)
    assert isinstance(info.value, MapServerError)
    assert info.value.code == 400


@pytest.mark.parametrize(
    ("clause", "detail"),
    [
        ("FOO = 1", "Unknown field 'FOO' in where clause"),
        ('"Foo Bar" = 1', "Unknown field 'Foo Bar' in where clause"),
        ("pop = ", "Syntax error at position 7: expected an expression, found end of clause"),
        ("pop = 1 AND", "Syntax error at position 12: expected an expression, found end of "
                        "clause"),
        ("(pop = 1", "Syntax error at position 9: expected ')', found end of clause"),
        ("pop = 1)", "Syntax error at position 8: expected end of clause, found ')'"),
        ("pop 1", "Syntax error at position 5: expected end of clause, found '1'"),
        ("pop < 1 < 2", "Syntax error at position 9: expected end of clause, found '<'"),
        ("1=1; DROP TABLE x",
         "Multiple statements are not allowed in where clauses (';' at position 4)"),
        ("pop = 1;", "Multiple statements are not allowed in where clauses (';' at position 8)"),
        ("pop IN (SELECT pop FROM t)",
         "Subqueries are not allowed in where clauses ('SELECT' at position 9)"),
        ("EXISTS (SELECT 1)",
         "Subqueries are not allowed in where clauses ('EXISTS' at position 1)"),
        ("pop = (SELECT MAX(pop) FROM t)",
         "Subqueries are not allowed in where clauses ('SELECT' at position 8)"),
        ("pop = 1 -- comment",
         "Comments are not allowed in where clauses ('--' at position 9)"),
        ("pop = /* x */ 1", "Comments are not allowed in where clauses ('/*' at position 7)"),
        ("FOO(name) = 1", "Unknown function 'FOO' in where clause"),
        ("sleep(5) = 0", "Unknown function 'sleep' in where clause"),
        ("pop = 1 UNION SELECT * FROM t",
         "SQL keyword 'UNION' is not allowed in where clauses (position 9)"),
        ("DROP TABLE x", "SQL keyword 'DROP' is not allowed in where clauses (position 1)"),
        ("pop = ?", "Parameters are not allowed in where clauses ('?' at position 7)"),
        ("pop = :p", "Parameters are not allowed in where clauses (':' at position 7)"),
        ("pop = @p", "Parameters are not allowed in where clauses ('@' at position 7)"),
        ("pop = $1", "Parameters are not allowed in where clauses ('$' at position 7)"),
        ("name = 'abc", "Unterminated string literal starting at position 8"),
        ('"name = 1', "Unterminated quoted field name starting at position 1"),
        ("pop = 0x10", "Malformed number '0x' at position 7"),
        ("pop::int = 1", "Parameters are not allowed in where clauses (':' at position 4)"),
        ("pop == 1", "Syntax error at position 6: expected an expression, found '='"),
        ("`pop` = 1", "Unexpected character '`' at position 1"),
        ("[pop] = 1", "Unexpected character '[' at position 1"),
        ("pop || 'a' = 'b'", "Unexpected character '|' at position 5"),
        ("pop", "Expected a condition but found a number expression"),
        ("name", "Expected a condition but found a string expression"),
        ("name < 5", "Cannot compare a string with a number using '<'"),
        ("pop IN ('a')", "Cannot compare a number with a string using IN"),
        ("founded = 5", "Cannot compare a date with a number using '='"),
        ("founded > 'yesterday'",
         "Cannot compare a date with 'yesterday'; use DATE 'yyyy-mm-dd' or TIMESTAMP "
         "'yyyy-mm-dd hh:mm:ss'"),
        ("pop + name = 1", "'+' needs a number, not a string"),
        ("founded + 1 > founded", "'+' needs a number, not a date"),
        ("UPPER(pop) = 'A'", "UPPER needs a string, not a number"),
        ("name LIKE 5", "LIKE pattern needs a string, not a number"),
        ("NOT pop", "Expected a condition but found a number expression"),
        ("(pop = 1) = (pop = 2)", "Cannot use '=' on conditions; compare values instead"),
        ("pop = 1 AND 5", "Expected a condition but found a number expression"),
        ("founded = DATE '2020-13-01'",
         "Invalid DATE literal '2020-13-01' at position 16; expected 'yyyy-mm-dd'"),
        ("founded = TIMESTAMP 'now'",
         "Invalid TIMESTAMP literal 'now' at position 21; expected 'yyyy-mm-dd hh:mm:ss'"),
        ("name LIKE 'a' ESCAPE 'ab'", "ESCAPE must be a single character (position 22)"),
        ("name LIKE 'a!b' ESCAPE '!'", "LIKE pattern 'a!b' has an invalid escape sequence"),
        ("UPPER(name, 1) = 'A'", "Function 'UPPER' expects 1 argument(s), got 2"),
        ("MOD(pop) = 1", "Function 'MOD' expects 2 argument(s), got 1"),
        ("CAST(pop AS BLOB) = 1",
         "Unsupported CAST type 'BLOB' (use INTEGER, FLOAT, REAL, DOUBLE, VARCHAR, CHAR, DATE "
         "or TIMESTAMP)"),
        ("CAST(pop AS DATE) = founded", "Cannot CAST a number to DATE"),
        ("CAST('soon' AS DATE) = founded", "Cannot CAST 'soon' to DATE"),
        ("SHAPE IS NULL", "Field 'SHAPE' cannot be used in a where clause"),
        ("pop = 1e999", "Numeric literal out of range at position 7"),
        ('"" = 1', "Empty quoted field name at position 1"),
    ],
)
def test_error_bodies(clause: str, detail: str) -> None:
    assert error_of(clause) == body(detail)


def test_non_string_clause_is_rejected() -> None:
    with pytest.raises(WhereClauseError):
        compile_where(42, FIELDS)  # type: ignore[arg-type]


# -- resource guards: never RecursionError, never unbounded work -------------------------------


def test_too_long() -> None:
    clause = "pop = 1 OR " * 1000 + "pop = 1"
    assert len(clause) > MAX_CLAUSE_LENGTH
    assert error_of(clause) == body(
        f"Where clause is too long ({len(clause)} characters; the limit is 10000)")


def test_long_flat_chains_are_fine() -> None:
    clause = " OR ".join(f"pop = {i}" for i in range(600))
    assert ids(clause) == [2, 4, 7]
    in_list = "OBJECTID IN (" + ",".join(str(i) for i in range(2, 2000)) + ")"
    assert ids(in_list) == ALL[1:]


@pytest.mark.parametrize(
    "clause",
    [
        "(" * 3000 + "1=1" + ")" * 3000,
        "NOT " * 2000 + "1=1",
        "- " * 4000 + "1 = 1",
        "1" + " + 1" * 2400 + " = 1",
        "UPPER(" * 1500 + "name" + ")" * 1500 + " = 'A'",
        "pop IN (" + "1," * 4100 + "1)",
    ],
    ids=["parens", "not", "minus", "plus-chain", "calls", "huge-in-list"],
)
def test_pathological_nesting_is_a_clean_error(clause: str) -> None:
    err = error_of(clause)
    assert err["error"]["message"] == "Invalid where clause"
    detail = err["error"]["details"][0]
    assert "too deeply" in detail or "too complex" in detail or "too long" in detail
