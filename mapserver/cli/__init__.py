"""The ``mapserver`` command: one entry point, a sub-command per module of this package.

    mapserver serve [--services DIR ...] [--data DIR] [--bind HOST:PORT] [--workers N]
    mapserver validate [PATH ...]
    mapserver init DATAFILE [-o services/Name.json]
    mapserver seed SERVICE --levels 0-4 [--bbox …]   /   mapserver truncate SERVICE …
    mapserver jobs submit|status|worker …            (also installed as ``mapserver-jobs``)

Each sub-command module exposes ``add_parser(subparsers)``, which registers its parser and
sets ``func`` (``args -> exit status``), so sub-commands are added without touching this file's
logic, and a module's heavy imports happen only when its command runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module name (in this package) of each sub-command group, in help order
COMMANDS = ("serve", "validate", "init", "seed", "jobs")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mapserver",
                                 description="An ArcGIS REST MapServer in Python.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["jobs"]:  # its own parser, options (--help too) untouched
        from mapserver.cli import jobs

        return jobs.main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
