"""``mapserver validate``: not written yet (issue 11)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="(not written yet)")
    p.set_defaults(func=lambda args: print("mapserver validate: not written yet") or 2)
