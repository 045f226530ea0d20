"""No import cycles inside the ``mapserver`` package.

Every module is read with :mod:`ast` (nothing is imported): module-level imports and imports
inside functions and classes count, imports under ``if TYPE_CHECKING:`` do not (they never run).
An edge goes from the importing module to the module it names:

* ``import mapserver.a.b`` and ``from mapserver.a.b import name`` import ``mapserver.a.b``;
* ``from mapserver.a import b`` imports the submodule ``mapserver.a.b`` when there is one,
  otherwise the name comes from ``mapserver.a``;
* importing a package means importing its ``__init__`` (module name = the package's name).

Relative imports are resolved against the importing module's package. A cycle is a strongly
connected component of more than one module, or a module that imports itself.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "mapserver"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> file, for every ``.py`` file under ``root`` (a package directory)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join([package, *parts])] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"
            or isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Imports(ast.NodeVisitor):
    """Collect the imports that can run, with their line numbers."""

    def __init__(self, module: str, is_package: bool, modules: set[str], package: str) -> None:
        self.module, self.modules, self.package = module, modules, package
        # the package a relative import starts from
        self.base = module if is_package else module.rpartition(".")[0]
        self.targets: list[tuple[str, int]] = []

    def _add(self, name: str, line: int) -> None:
        if name == self.package or name.startswith(self.package + "."):
            # the deepest existing module the dotted name designates
            while name and name not in self.modules:
                name = name.rpartition(".")[0]
            if name:
                self.targets.append((name, line))

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for child in node.orelse:  # only the ``else`` branch runs
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.base
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = f"{base}.{node.module}" if node.module else base
        else:
            source = node.module or ""
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            self._add(sub if sub in self.modules else source, node.lineno)


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> list[Edge]:
    files = module_files(root, package)
    modules = set(files)
    edges: list[Edge] = []
    for name, path in files.items():
        visitor = _Imports(name, path.name == "__init__.py", modules, package)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(Edge(name, target, line) for target, line in visitor.targets)
    return edges


def strongly_connected(nodes: set[str], edges: list[Edge]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), each sorted, in sorted order."""
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for e in edges:
        succ[e.source].append(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(set(succ[start]))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(set(succ[child])))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                out.append(sorted(component))
    return sorted(out)


def cycles(edges: list[Edge], nodes: set[str]) -> list[tuple[list[str], list[Edge]]]:
    """Each cycle: its modules and the imports between them."""
    found = []
    for component in strongly_connected(nodes, edges):
        members = set(component)
        inner = sorted({e for e in edges if e.source in members and e.target in members},
                       key=lambda e: (e.source, e.line, e.target))
        if len(component) > 1 or inner:  # a single module only when it imports itself
            found.append((component, inner))
    return found


def describe(found: list[tuple[list[str], list[Edge]]], files: dict[str, Path]) -> str:
    lines = [f"{len(found)} import cycle(s) in the {PACKAGE} package:"]
    for component, inner in found:
        lines.append("  cycle: " + " <-> ".join(component))
        for e in inner:
            where = files[e.source].relative_to(ROOT.parent)
            lines.append(f"    {e.source} -> {e.target}  ({where}:{e.line})")
    return "\n".join(lines)


# --- the package ---------------------------------------------------------------------------
def test_the_package_has_no_import_cycles():
    files = module_files(ROOT, PACKAGE)
    found = cycles(import_graph(), set(files))
    assert not found, describe(found, files)


# --- the checker itself, on a small package written for the purpose ----------------------------
def _package(tmp_path: Path, sources: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for rel, text in sources.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _edges(root: Path) -> set[tuple[str, str]]:
    return {(e.source, e.target) for e in import_graph(root, "pkg")}


def test_checker_follows_function_imports_but_not_type_checking_ones(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg.b import B\nelse:\n    import pkg.c\n"
                "def f():\n    from pkg.d import g\n    return g\n",
        "b.py": "", "c.py": "", "d.py": "",
    })
    assert _edges(root) == {("pkg.a", "pkg.c"), ("pkg.a", "pkg.d")}


def test_checker_resolves_submodules_packages_and_relative_imports(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "sub/__init__.py": "NAME = 1\n",
        "sub/x.py": "from . import y\nfrom .. import top\nfrom pkg.sub import NAME\n",
        "sub/y.py": "import pkg.sub\nfrom .x import nothing_here\n",
        "top.py": "from pkg.sub.x import something\nimport os\n",
    })
    assert _edges(root) == {("pkg.sub.x", "pkg.sub.y"), ("pkg.sub.x", "pkg.top"),
                            ("pkg.sub.x", "pkg.sub"), ("pkg.sub.y", "pkg.sub"),
                            ("pkg.sub.y", "pkg.sub.x"), ("pkg.top", "pkg.sub.x")}


def test_checker_reports_components_and_self_imports(tmp_path):
    root = _package(tmp_path, {
        "__init__.py": "",
        "a.py": "def f():\n    from pkg import b\n",
        "b.py": "from pkg.c import x\n",
        "c.py": "import pkg.a\n",
        "d.py": "import pkg.d\n",
        "e.py": "import pkg.a\n",
    })
    edges = import_graph(root, "pkg")
    found = cycles(edges, set(module_files(root, "pkg")))
    assert [c for c, _ in found] == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.d"]]
    assert [(e.source, e.target, e.line) for e in found[0][1]] == [
        ("pkg.a", "pkg.b", 2), ("pkg.b", "pkg.c", 1), ("pkg.c", "pkg.a", 1)]
