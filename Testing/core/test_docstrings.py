"""The core's public API is documented as lifelines documents its own (numpydoc; issue #16).

Every public class, function and method has a docstring; a public module-level
function that takes arguments says what they are, with units, in a numpydoc
``Parameters`` section. Read from the source, so nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "ABCImmunoResponse" / "abcir"


def _public(name: str) -> bool:
    return not name.startswith("_")


def _has_section(docstring: str, title: str) -> bool:
    lines = docstring.splitlines()
    return any(line.strip() == title and next_line.strip() == "-" * len(title)
               for line, next_line in zip(lines, lines[1:]))


def _problems() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        where = path.relative_to(PACKAGE.parent)
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(node.name):
                docstring = ast.get_docstring(node)
                if not docstring:
                    problems.append(f"{where}:{node.lineno} {node.name}: no docstring")
                elif (node.args.args or node.args.kwonlyargs) and not _has_section(docstring, "Parameters"):
                    problems.append(f"{where}:{node.lineno} {node.name}: no numpydoc Parameters section")
            elif isinstance(node, ast.ClassDef) and _public(node.name):
                if not ast.get_docstring(node):
                    problems.append(f"{where}:{node.lineno} class {node.name}: no docstring")
                problems += [f"{where}:{method.lineno} {node.name}.{method.name}: no docstring"
                             for method in node.body
                             if isinstance(method, (ast.FunctionDef, ast.AsyncFunctionDef)) and _public(method.name)
                             and not ast.get_docstring(method)]
    return problems


def test_public_api_is_documented():
    problems = _problems()
    assert not problems, f"{len(problems)} undocumented:\n" + "\n".join(problems)


def test_the_section_check_reads_numpydoc():
    assert _has_section("Why.\n\nParameters\n----------\nct : sitk.Image\n    The CT (HU).", "Parameters")
    assert not _has_section("Why.\n\nParameters: ct, the CT.", "Parameters")
