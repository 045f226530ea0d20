"""``outStatistics`` with ``groupByFieldsForStatistics``: count, sum, min, max, avg, stddev, var.

NULLs are ignored as in SQL aggregates; ``stddev``/``var`` are the sample (n-1) statistics, as
the databases behind ArcGIS compute STDEV/VAR; an aggregate over no values is NULL (count: 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mapserver.errors import InvalidParameter
from mapserver.features.attributes import resolve_fields
from mapserver.sources.features import NUMERIC_FIELD_TYPES, FeatureTable, Field

STAT_TYPES = ("count", "sum", "min", "max", "avg", "stddev", "var")


@dataclass(frozen=True)
class Statistic:
    type: str
    field: Field
    out_name: str


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
        name = item.get("outStatisticFieldName")
        if not isinstance(name, str) or not name.strip():
            name = f"{stype}_{field.name}"
        out.append(Statistic(stype, field, name.strip()))
    return out


def _aggregate(stype: str, values: list[object]) -> object:
    vals = [v for v in values if v is not None]
    if stype == "count":
        return len(vals)
    if not vals:
        return None
    if stype == "min":
        return min(vals)  # type: ignore[type-var]
    if stype == "max":
        return max(vals)  # type: ignore[type-var]
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
            group_by: Sequence[Field]) -> list[dict[str, object]]:
    """One attribute dict per group (group fields first, then statistics), groups in order of
    first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i in idx.tolist():
        key = tuple(table.value(f.name, i) for f in group_by)
        groups.setdefault(key, []).append(i)
    if not group_by and not groups:
        groups[()] = []
    rows = []
    for key, members in groups.items():
        row: dict[str, object] = {f.name: k for f, k in zip(group_by, key, strict=True)}
        for st in stats:
            row[st.out_name] = _aggregate(st.type, [table.value(st.field.name, i)
                                                    for i in members])
        rows.append(row)
    return rows


def stat_field_json(st: Statistic) -> dict:
    if st.type == "count":
        ftype = "esriFieldTypeInteger"
    elif st.type in ("min", "max"):
        ftype = st.field.type if st.field.type != "esriFieldTypeOID" else "esriFieldTypeInteger"
    else:
        ftype = "esriFieldTypeDouble"
    return {"name": st.out_name, "type": ftype, "alias": st.out_name}
