"""``mapserver validate [PATH ...]``: check service definitions as the server would load them.

Each file goes through the server's own loader (``catalog/loader.py``: the JSON Schema, then
every data file, field, renderer and SR), so a file that validates is a file the server
serves, and a file the server rejects fails here with the same message. Prints one
``file: field: problem`` line per finding (every schema finding of a file, not only the
first); exit status 1 if any file is invalid, else 0 with a one-line summary.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate", help="check service definitions as the server loads them",
        description="Check service definition files (or folders of them) with the server's "
        "own loader: schema, data files, fields, renderers, spatial references. Prints "
        "'file: field: problem' lines; exit status 1 when a file is invalid.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="definition files or services folders "
                   "(default: the configured services folders, MAPSERVER_SERVICES)")
    p.add_argument("--data", metavar="DIR",
                   help="where relative data sources are looked up "
                   "(default: MAPSERVER_DATA, else the clone's data/)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mapserver.settings import Settings

    settings = Settings.from_env()
    data_dir = Path(args.data) if args.data else settings.data_dir
    paths = [Path(p) for p in args.paths] or list(settings.service_dirs)
    lines, checked, services, layers = validate_paths(paths, data_dir, settings.service_dirs)
    for line in lines:
        print(line)
    bad = len({line.split(": ", 1)[0] for line in lines})
    if lines:
        print(f"{bad} of {max(checked, bad)} definition(s) invalid", file=sys.stderr)
        return 1
    print(f"ok: {checked} definition(s) valid ({services} service(s), {layers} layer(s))")
    return 0


def validate_paths(paths: list[Path], data_dir: Path, service_dirs: tuple[Path, ...] = ()
                   ) -> tuple[list[str], int, int, int]:
    """``(problem lines, files checked, services loaded, layers loaded)``."""
    from mapserver.catalog import definitions

    lines: list[str] = []
    files: list[tuple[Path, str]] = []
    for p in paths:
        if p.is_dir():
            found, problems = definitions.scan([p])
            lines.extend(problems)
            files.extend((f.path, f.name) for f in found)
        elif p.is_file():
            files.append((p, _service_name(p, service_dirs)))
        else:
            lines.append(f"{p}: (file): does not exist")
    services = layers = 0
    names: dict[str, Path] = {}
    for path, name in files:
        found = check_file(path, name, data_dir)
        if isinstance(found, list):
            lines.extend(found)
            continue
        if name in names and names[name] != path:
            lines.append(f"{path}: (file): duplicate service name {name!r} "
                         f"(also {names[name]})")
            continue
        names[name] = path
        services += 1
        layers += found
    return lines, len(files), services, layers


def check_file(path: Path, name: str, data_dir: Path) -> int | list[str]:
    """The number of layers of a valid definition, else its problem lines."""
    from mapserver.catalog.loader import DefinitionProblems, load_service, unexpected
    from mapserver.errors import ServiceDefinitionError

    try:
        svc = load_service(path, name, data_dir)
    except DefinitionProblems as exc:
        return [f"{path}: {p.field}: {p.problem}" for p in exc.problems]
    except ServiceDefinitionError as exc:
        return [str(exc)]
    except Exception as exc:  # noqa: BLE001 - the server skips such a file too
        return [unexpected(path, exc)]
    return len(svc.layers)


def _service_name(path: Path, service_dirs: tuple[Path, ...]) -> str:
    """``Folder/Name`` when the file lies in a services folder, else its stem."""
    for root in service_dirs:
        try:
            rel = path.resolve().relative_to(Path(root).resolve()).with_suffix("")
        except ValueError:
            continue
        return "/".join(rel.parts)
    return path.stem
