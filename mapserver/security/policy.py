"""Who may use a service: the ``access`` block of a service definition.

A service without ``access`` is public (no configuration needed, as before). With it, only
signed-in users named in ``users`` or holding one of ``roles`` may see or use it::

    "access": {"users": ["alice"], "roles": ["analysts"]}

Validated when the catalog loads (``catalog/loader.py``), like every other field: a bad block
names the file and field and that one service is not loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NAME_MAX = 128


class AccessError(ValueError):
    """A malformed ``access`` block: ``field`` (e.g. ``access.users[1]``) and the problem."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class Access:
    users: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def allows(self, user: str | None, roles: Iterable[str] = ()) -> bool:
        if user is None:
            return False
        return user in self.users or not self.roles.isdisjoint(roles)

    def to_json(self) -> dict:
        return {"users": sorted(self.users), "roles": sorted(self.roles)}


def parse_access(value: object) -> Access | None:
    """The ``access`` value of a definition; ``None`` (absent) is a public service."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise AccessError("access", 'must be an object such as {"users": [...], "roles": [...]}')
    unknown = sorted(set(value) - {"users", "roles"})
    if unknown:
        raise AccessError(f"access.{unknown[0]}", "unknown key (allowed: users, roles)")
    out: dict[str, frozenset[str]] = {}
    for key in ("users", "roles"):
        items = value.get(key, [])
        if not isinstance(items, list):
            raise AccessError(f"access.{key}", "must be a list of names")
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item.strip() or len(item) > NAME_MAX:
                raise AccessError(f"access.{key}[{i}]",
                                  f"must be a non-empty name of at most {NAME_MAX} characters")
        out[key] = frozenset(item.strip() for item in items)
    if not out["users"] and not out["roles"]:
        raise AccessError("access", "names no user and no role: nobody could use the service "
                          "(leave 'access' out for a public service)")
    return Access(users=out["users"], roles=out["roles"])
