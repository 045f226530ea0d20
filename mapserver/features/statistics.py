"""``outStatistics`` with ``groupByFieldsForStatistics`` and ``having``: count, sum, min, max,
avg, stddev, var, percentile_cont and percentile_disc.

NULLs are ignored as in SQL aggregates; ``stddev``/``var`` are the sample (n-1) statistics, as
the databases behind ArcGIS compute STDEV/VAR; an aggregate over no values is NULL (count: 0).
``percentile_cont`` interpolates linearly between the two nearest ranks (SQL PERCENTILE_CONT),
``percentile_disc`` is the first value whose cumulative share reaches the fraction (SQL
PERCENTILE_DISC); ``statisticParameters``: ``{"value": 0..1, "orderBy": "ASC"|"DESC"}``.
``having`` (through the where engine's :func:`~mapserver.where.compile_having`) keeps the
groups whose aggregates satisfy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapserver.errors import InvalidParameter, WhereClauseError
from mapserver.features.attributes import resolve_fields
from mapserver.sources.features import NUMERIC_FIELD_TYPES, FeatureTable, Field
from mapserver.where import FieldInfo, WhereExpression, compile_having

STAT_TYPES = ("count", "sum", "min", "max", "avg", "stddev", "var", "percentile_cont",
              "percentile_disc")
PERCENTILES = ("percentile_cont", "percentile_disc")


@dataclass(frozen=True)
class Statistic:
    type: str
    field: Field
    out_name: str
    fraction: float | None = None  # percentiles: statisticParameters.value
    descending: bool = False  # percentiles: statisticParameters.orderBy DESC


@dataclass(frozen=True)
class Having:
    expression: WhereExpression
    columns: tuple[tuple[str, str, str], ...]  # (column, aggregate, field name)


def parse_having(table: FeatureTable, text: str, group_by: Sequence[Field],
                 message: str) -> Having:
    try:
        expr, cols = compile_having(text, [FieldInfo(f.name, f.type) for f in group_by],
                                    [FieldInfo(f.name, f.type) for f in table.fields])
    except WhereClauseError as exc:
        raise WhereClauseError(message, ["'having' parameter is invalid", *exc.details]
                               ) from None
    return Having(expr, cols)


def parse_statistics(table: FeatureTable, value: object, message: str) -> list[Statistic]:
    bad = InvalidParameter(message, ["'outStatistics' parameter is invalid"])
    if not isinstance(value, list) or not value:
        raise bad
    out = []
    for item in value:
        if not isinstance(item, dict):
            raise bad
        stype = str(item.get("statisticType") or "").lower()
        fname = item.get("onStatisticField")
        if stype not in STAT_TYPES or not isinstance(fname, str):
            raise bad
        field = resolve_fields(table, [fname], message, "outStatistics")[0]
        if stype not in ("count", "min", "max") and field.type not in NUMERIC_FIELD_TYPES:
            raise InvalidParameter(message, ["'outStatistics' parameter is invalid",
                                             f"'{stype}' needs a numeric field"])
        fraction, desc = None, False
        if stype in PERCENTILES:
            sp = item.get("statisticParameters")
            value = sp.get("value") if isinstance(sp, dict) else None
            order = str(sp.get("orderBy") or "ASC").upper() if isinstance(sp, dict) else ""
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not 0 <= value <= 1 or order not in ("ASC", "DESC")):
                raise InvalidParameter(message, ["'outStatistics' parameter is invalid",
                                                 f"'{stype}' needs statisticParameters "
                                                 '{"value": 0..1, "orderBy": "ASC"|"DESC"}'])
            fraction, desc = float(value), order == "DESC"
        name = item.get("outStatisticFieldName")
        if not isinstance(name, str) or not name.strip():
            name = f"{stype}_{field.name}"
        out.append(Statistic(stype, field, name.strip(), fraction, desc))
    return out


def _percentile(st: Statistic, vals: list[object]) -> object:
    arr = np.sort(np.asarray(vals, dtype=float))
    if st.descending:
        arr = arr[::-1]
    p = st.fraction or 0.0
    if st.type == "percentile_disc":
        k = max(int(np.ceil(p * len(arr))) - 1, 0)
        v = vals[0] if all(isinstance(x, int) for x in vals) else None
        return int(arr[k]) if v is not None else float(arr[k])
    pos = p * (len(arr) - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, len(arr) - 1)
    return float(arr[lo] + (arr[hi] - arr[lo]) * (pos - lo))


def _aggregate(stype: str, values: list[object], st: Statistic | None = None) -> object:
    vals = [v for v in values if v is not None]
    if stype == "count":
        return len(vals)
    if not vals:
        return None
    if stype == "min":
        return min(vals)  # type: ignore[type-var]
    if stype == "max":
        return max(vals)  # type: ignore[type-var]
    if stype in PERCENTILES:
        assert st is not None
        return _percentile(st, vals)
    arr = np.asarray(vals, dtype=float)
    if stype == "sum":
        s = float(arr.sum())
        return int(s) if all(isinstance(v, int) for v in vals) else s
    if stype == "avg":
        return float(arr.mean())
    if len(arr) < 2:
        return None
    return float(arr.std(ddof=1) if stype == "stddev" else arr.var(ddof=1))


def compute(table: FeatureTable, idx: np.ndarray, stats: Sequence[Statistic],
            group_by: Sequence[Field], having: Having | None = None
            ) -> list[dict[str, object]]:
    """One attribute dict per group (group fields first, then statistics), groups in order of
    first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i in idx.tolist():
        key = tuple(table.value(f.name, i) for f in group_by)
        groups.setdefault(key, []).append(i)
    if not group_by and not groups:
        groups[()] = []
    if having is not None:
        groups = _having(table, groups, group_by, having)
    rows = []
    for key, members in groups.items():
        row: dict[str, object] = {f.name: k for f, k in zip(group_by, key, strict=True)}
        for st in stats:
            row[st.out_name] = _aggregate(st.type, [table.value(st.field.name, i)
                                                    for i in members], st)
        rows.append(row)
    return rows


def _having(table: FeatureTable, groups: dict[tuple, list[int]], group_by: Sequence[Field],
            having: Having) -> dict[tuple, list[int]]:
    """The groups whose aggregates satisfy the having clause (one row per group, evaluated
    vectorised by the where engine; a NULL aggregate makes the condition unknown: dropped)."""
    keys = list(groups)
    n = len(keys)
    columns: dict[str, np.ndarray] = {}
    for j, f in enumerate(group_by):
        columns[f.name] = _column([k[j] for k in keys], f.type)
    for col, agg, fname in having.columns:
        values = [_aggregate(agg.lower(), [table.value(fname, i) for i in groups[k]])
                  for k in keys]
        ftype = next(f.type for f in table.fields if f.name == fname)
        columns[col] = _column(values, "esriFieldTypeDouble" if agg not in ("MIN", "MAX")
                               else ftype)
    keep = having.expression.evaluate(columns, n)
    return {k: groups[k] for k, ok in zip(keys, keep.tolist(), strict=True) if ok}


def _column(values: list[object], ftype: str) -> np.ndarray:
    if ftype in NUMERIC_FIELD_TYPES or ftype == "esriFieldTypeDate":
        return np.array([np.nan if v is None else float(v) for v in values],  # type: ignore
                        dtype=float)
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def stat_field_json(st: Statistic) -> dict:
    if st.type == "count":
        ftype = "esriFieldTypeInteger"
    elif st.type in ("min", "max") or (st.type == "percentile_disc"
                                        and st.field.type != "esriFieldTypeDouble"):
        ftype = st.field.type if st.field.type != "esriFieldTypeOID" else "esriFieldTypeInteger"
    else:
        ftype = "esriFieldTypeDouble"
    return {"name": st.out_name, "type": ftype, "alias": st.out_name}
