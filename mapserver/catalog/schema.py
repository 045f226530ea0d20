"""The JSON Schema of service definitions (``service.schema.json``) and its error messages.

The schema is what editors validate against while an author types; the loader checks every file
against the same schema, so a key the server does not know (``"strech"``) is refused with a
"did you mean" hint instead of being silently ignored. Messages follow the loader's
``<file>: <field path>: <problem>`` form, with the field path written as the loader writes it
(``layers[0].raster.stretch``).
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

SCHEMA_PATH = Path(__file__).with_name("service.schema.json")
# where the server publishes it (mapserver/rest/schema.py); the file's $id uses the default bind
SCHEMA_URL_PATH = "/mapserver/schema/service.json"

_JSON_TYPES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "array": "a list", "object": "an object",
               "null": "null"}


@dataclass(frozen=True)
class SchemaProblem:
    """One schema violation: the field path (loader style) and what is wrong with it."""

    field: str
    problem: str
    unknown_key: bool = False  # an additionalProperties violation (checked before any data)


@functools.cache
def schema() -> dict:
    """The schema document (read once per process)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def field_path(parts: Iterable[Any]) -> str:
    """``["layers", 0, "raster"]`` -> ``layers[0].raster`` (the loader's spelling)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def schema_problems(doc: Any) -> list[SchemaProblem]:
    """Every schema violation of one definition document: unknown keys first, then the rest,
    each sorted by field and reported at the deepest field it concerns (a typo inside
    ``drawingInfo`` names that key, not the whole ``drawingInfo``)."""
    out: list[SchemaProblem] = []
    for top in _validator().iter_errors(doc):
        for leaf in _leaves(top):
            out.extend(_describe(leaf))
    seen: set[tuple[str, str]] = set()
    unique = []
    # a misspelt key first: it usually explains the rest ("feild" -> field is required)
    for p in sorted(out, key=lambda p: (not p.unknown_key, p.field)):
        if (p.field, p.problem) not in seen:
            seen.add((p.field, p.problem))
            unique.append(p)
    return unique


def _leaves(err: ValidationError) -> list[ValidationError]:
    """The errors to report for ``err``. For an ``anyOf`` (a nullable object, an SR given as
    a number or an object) that is every error of the branch the value was meant for (the
    one holding jsonschema's best match), so two typos in one ``drawingInfo`` are both
    named; the other branches' complaints ("is not null") are noise."""
    if err.validator not in ("anyOf", "oneOf") or not err.context:
        return [err]
    best = best_match([err])  # descends into the context, knowing which branch fits
    while best is not None and best.parent is not None and best.parent is not err:
        best = best.parent
    if best is None or not best.relative_schema_path:
        return [err]
    branch = best.relative_schema_path[0]
    chosen = [e for e in err.context if e.relative_schema_path and
              e.relative_schema_path[0] == branch]
    return [leaf for e in chosen for leaf in _leaves(e)]


def _describe(err: ValidationError) -> list[SchemaProblem]:
    path = list(err.absolute_path)
    here = field_path(path)
    kind = err.validator
    if kind == "additionalProperties" and isinstance(err.instance, dict):
        allowed = sorted((err.schema.get("properties") or {}).keys())
        return [SchemaProblem(field_path([*path, key]), unknown_key_message(key, allowed), True)
                for key in err.instance if key not in allowed]
    if kind == "required":
        missing = str(err.message).split("'")[1] if "'" in err.message else "?"
        return [SchemaProblem(field_path([*path, missing]), "is required")]
    if kind == "type":
        types = err.validator_value if isinstance(err.validator_value, list) \
            else [err.validator_value]
        names = [_JSON_TYPES.get(t, t) for t in types if t != "null"]
        return [SchemaProblem(here or "(file)", f"must be {' or '.join(names) or 'null'}")]
    if kind in ("enum", "const"):
        choices = err.validator_value if kind == "enum" else [err.validator_value]
        shown = ", ".join(str(c) for c in choices if c is not None)
        return [SchemaProblem(here, f"{_short(err.instance)} is not one of {shown}")]
    if kind == "minItems":
        return [SchemaProblem(here, f"must have at least {err.validator_value} item(s)")]
    if kind == "maxItems":
        return [SchemaProblem(here, f"must have at most {err.validator_value} item(s)")]
    if kind == "minimum":
        return [SchemaProblem(here, f"must be at least {err.validator_value}")]
    if kind == "maximum":
        return [SchemaProblem(here, f"must be at most {err.validator_value}")]
    return [SchemaProblem(here or "(file)", str(err.message)[:300])]


def unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    """``unknown key; did you mean 'stretch'?`` (or the allowed keys when nothing is close)."""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:  # case slips ("Stretch") and prefixes difflib scores low
        close = [a for a in allowed if a.lower() == key.lower()][:1]
    if close:
        return f"unknown key; did you mean '{close[0]}'?"
    return f"unknown key (allowed here: {', '.join(allowed)})"


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
