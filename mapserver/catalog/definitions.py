"""Which files are service definitions, and how loaded definitions become a :class:`Catalog`.

Shared by the one-shot loader (``load_catalog``) and the hot reloader (``catalog/live.py``), so
both name services, skip files and report duplicates and folder problems identically.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mapserver.catalog.model import Catalog, Service


@dataclass(frozen=True)
class DefinitionFile:
    """A definition file: ``name`` is the service name (``Folder/Name``); ``stamp`` tells a
    changed file from an unchanged one without reading it (mtime, ctime, size, inode)."""

    path: Path
    root: Path
    name: str
    stamp: tuple[int, ...]


def stamp_of(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


def scan(service_dirs: Sequence[Path]) -> tuple[list[DefinitionFile], list[str]]:
    """Every ``*.json`` under each services folder (names starting with ``.`` or ``_`` are
    skipped, sub-folders are ArcGIS folders, one level deep), plus the folder problems."""
    files: list[DefinitionFile] = []
    problems: list[str] = []
    for root in service_dirs:
        if not root.is_dir():
            problems.append(f"{root}: services folder does not exist")
            continue
        for path in sorted(root.rglob("*.json")):
            rel = path.relative_to(root).with_suffix("")
            if any(part.startswith((".", "_")) for part in rel.parts):
                continue
            if len(rel.parts) > 2:
                problems.append(f"{path}: folders may only be one level deep")
                continue
            stamp = stamp_of(path)
            if stamp is None:  # removed between the listing and the stat
                continue
            files.append(DefinitionFile(path, root, "/".join(rel.parts), stamp))
    return files, problems


def assemble(loaded: Iterable[tuple[DefinitionFile, Service | None, str | None]],
             problems: Sequence[str] = ()) -> Catalog:
    """A catalog from ``(file, service or None, problem or None)`` in scan order (the first
    file of a name wins; a later one is a duplicate)."""
    services: dict[str, Service] = {}
    folders: set[str] = set()
    out = list(problems)
    files: dict[str, tuple[int, ...]] = {}
    for f, svc, problem in loaded:
        files[str(f.path)] = f.stamp
        if problem:
            out.append(problem)
        if svc is None:
            continue
        if f.name in services:
            out.append(f"{f.path}: duplicate service name {f.name!r}")
            continue
        services[f.name] = svc
        if "/" in f.name:
            folders.add(f.name.split("/", 1)[0])
    return Catalog(services=services, folders=tuple(sorted(folders)), problems=tuple(out),
                   files=files)


def display_path(text: str, service_dirs: Sequence[Path], data_dir: Path | None = None) -> str:
    """A problem line with the services (and data) folders written as their own names
    (``/srv/app/services/World.json`` -> ``services/World.json``), for pages anyone may see."""
    roots = [(Path(r), Path(r).name or str(r)) for r in service_dirs]
    if data_dir is not None:
        roots.append((Path(data_dir), Path(data_dir).name or str(data_dir)))
    for root, label in sorted(roots, key=lambda r: -len(str(r[0]))):
        for form in {str(root), str(root.resolve())}:
            text = text.replace(form.rstrip("/") + "/", label + "/")
    return text
