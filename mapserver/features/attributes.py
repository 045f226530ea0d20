"""Attribute values as each operation returns them.

``query`` returns raw values keyed by field name (dates as epoch ms). ``identify`` and ``find``
return, by default, *formatted strings keyed by field alias* (``"Null"`` for NULL, dates as
``M/D/YYYY h:mm:ss AM``), which is what popups show; ``returnFieldName`` switches the keys to
names and ``returnUnformattedValues`` the values to raw ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from mapserver.errors import InvalidParameter
from mapserver.sources.features import FeatureTable, Field

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_value(field: Field, value: object) -> str:
    """The display string ArcGIS puts in identify/find attributes."""
    if value is None:
        return "Null"
    if field.type == "esriFieldTypeDate":
        dt = _EPOCH + timedelta(milliseconds=int(value))  # type: ignore[arg-type]
        hour = dt.hour % 12 or 12
        return (f"{dt.month}/{dt.day}/{dt.year} {hour}:{dt.minute:02d}:{dt.second:02d} "
                f"{'AM' if dt.hour < 12 else 'PM'}")
    if isinstance(value, float | int):
        return format_number(value)
    return str(value)


def format_number(value: float | int) -> str:
    """Integers as digits, doubles in their shortest round-trip form (``2.5``, not ``2.50``)."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(int(value))


def display_value(table: FeatureTable, display_field: str | None, i: int) -> str:
    f = table.field(display_field) if display_field else None
    if f is None:
        return ""
    v = table.value(f.name, i)
    return "Null" if v is None else format_value(f, v)


def popup_attributes(table: FeatureTable, i: int, field_names: bool,
                     unformatted: bool) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in table.fields:
        v = table.value(f.name, i)
        out[f.name if field_names else f.alias] = v if unformatted else format_value(f, v)
    return out


def resolve_fields(table: FeatureTable, names: Sequence[str], message: str,
                   param: str) -> list[Field]:
    """Field objects for client-given names (case-insensitive), in the order given."""
    out = []
    for name in names:
        f = table.field(name)
        if f is None:
            raise InvalidParameter(message, [f"'{param}' parameter is invalid",
                                             f"Field '{name[:60]}' does not exist"])
        if f not in out:
            out.append(f)
    return out


def parse_out_fields(table: FeatureTable, text: str | None, message: str) -> list[Field]:
    """``outFields``: ``*`` or a comma list; absent means just the object id field."""
    if text is None:
        return [f for f in table.fields if f.name == table.oid_field]
    names = [n.strip() for n in text.split(",") if n.strip()]
    if "*" in names:
        # "*" with anything else is not a field list ArcGIS accepts; naming an unknown field
        # next to "*" (e.g. "*, (SELECT sql FROM sqlite_master)") must not pass silently
        resolve_fields(table, [n for n in names if n != "*"], message, "outFields")
        return list(table.fields)
    return resolve_fields(table, names, message, "outFields")


def raw_attributes(table: FeatureTable, fields: Sequence[Field], i: int) -> dict[str, object]:
    return {f.name: table.value(f.name, i) for f in fields}
