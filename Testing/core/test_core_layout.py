"""The core's layout stays navigable (issue #16): few top-level modules, short files, no import cycles.

Read from the source (``ast``), not by importing, so that an import hidden behind
``TYPE_CHECKING`` or inside a function counts as an edge too.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "ABCImmunoResponse"
PACKAGE = CORE / "abcir"
MAX_TOP_LEVEL_MODULES = 8
MAX_LINES = 450


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(CORE).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _imports(module: str, path: Path, is_package: bool, modules: dict) -> set[str]:
    """The abcir modules that ``module`` imports anywhere in its file, resolved to files that exist."""

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(resolved for target in targets
                     if target.startswith("abcir") and (resolved := resolve(target)) is not None)
    found.discard(module)
    return found


def test_no_import_cycle():
    modules = _modules()
    graph = {name: _imports(name, path, is_package, modules) for name, (path, is_package) in modules.items()}
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_at_most_eight_top_level_modules():
    top = sorted(path.name for path in PACKAGE.glob("*.py") if path.name != "__init__.py")
    assert len(top) <= MAX_TOP_LEVEL_MODULES, f"{len(top)} top-level modules in abcir/: {top}"


def test_no_long_file():
    long = {str(path.relative_to(CORE)): n for path in PACKAGE.rglob("*.py")
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """The check itself: two modules importing each other (one only for type checking) make a cycle."""
    (tmp_path / "abcir").mkdir()
    (tmp_path / "abcir" / "__init__.py").write_text("")
    (tmp_path / "abcir" / "a.py").write_text("from .b import B\n")
    (tmp_path / "abcir" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                             "    from abcir.a import A\n")
    modules = {"abcir": (tmp_path / "abcir" / "__init__.py", True), "abcir.a": (tmp_path / "abcir" / "a.py", False),
               "abcir.b": (tmp_path / "abcir" / "b.py", False)}
    graph = {name: _imports(name, path, is_package, modules) for name, (path, is_package) in modules.items()}
    assert graph["abcir.a"] == {"abcir.b"} and graph["abcir.b"] == {"abcir.a"}
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter(graph).prepare()
