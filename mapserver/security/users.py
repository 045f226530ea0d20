"""The users file: names, argon2 password hashes and roles.

``MAPSERVER_USERS`` points at a JSON file::

    {"users": {"alice": {"password": "$argon2id$v=19$m=65536,t=3,p=4$...",
                         "roles": ["analysts"]}}}

Passwords are stored only as argon2id hashes (argon2-cffi; the PHC winner, salted, memory-hard).
Make one with ``python -m mapserver.security.users hash`` (reads the password from stdin) or
add a user with ``python -m mapserver.security.users add FILE NAME --role analysts``.
The file is read once at start-up (restart or HUP gunicorn after editing it); a malformed file
stops the app from starting rather than leaving services open.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import hashlib
import hmac
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so that unknown names take as long as
    wrong passwords (no user enumeration by timing)."""
    return _hasher.hash("not a password of anybody")


class UsersFileError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    roles: frozenset[str]

    def fingerprint(self, secret: bytes) -> str:
        """Changes when the password does: tokens carry it, so a new password revokes them."""
        return hmac.new(secret, self.password_hash.encode(), hashlib.sha256).hexdigest()[:12]


class UserStore:
    def __init__(self, users: dict[str, User]) -> None:
        self.users = users

    @classmethod
    def load(cls, path: Path) -> UserStore:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise UsersFileError(f"users file {path}: cannot be read ({exc.strerror})") from exc
        except ValueError as exc:
            raise UsersFileError(f"users file {path}: not valid JSON ({exc})") from exc
        entries = doc.get("users") if isinstance(doc, dict) else None
        if not isinstance(entries, dict):
            raise UsersFileError(f'users file {path}: must hold {{"users": {{name: {{...}}}}}}')
        users = {}
        for name, entry in entries.items():
            where = f"users file {path}: users.{name}"
            if not name.strip() or len(name) > 128:
                raise UsersFileError(f"{where}: a user name must be 1 to 128 characters")
            if not isinstance(entry, dict):
                raise UsersFileError(f"{where}: must be an object")
            pw = entry.get("password")
            if not isinstance(pw, str) or not pw.startswith("$argon2"):
                raise UsersFileError(f"{where}.password: must be an argon2 hash (make one with "
                                     "python -m mapserver.security.users hash)")
            roles = entry.get("roles", [])
            if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
                raise UsersFileError(f"{where}.roles: must be a list of role names")
            users[name] = User(name, pw, frozenset(roles))
        return cls(users)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches its hash, else None (constant work either way)."""
        user = self.users.get(name)
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user

    def get(self, name: str) -> User | None:
        return self.users.get(name)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mapserver.security.users",
                                     description="Manage the mapserver users file.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("hash", help="print the argon2 hash of a password read from stdin")
    add = sub.add_parser("add", help="add or replace a user in a users file")
    add.add_argument("file", type=Path)
    add.add_argument("name")
    add.add_argument("--role", action="append", default=[])
    args = parser.parse_args(argv)
    password = (getpass.getpass("password: ") if sys.stdin.isatty()
                else sys.stdin.readline().rstrip("\n"))
    if not password:
        parser.error("empty password")
    if args.cmd == "hash":
        print(hash_password(password))
        return 0
    doc = json.loads(args.file.read_text()) if args.file.exists() else {"users": {}}
    doc.setdefault("users", {})[args.name] = {"password": hash_password(password),
                                              "roles": sorted(set(args.role))}
    args.file.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
