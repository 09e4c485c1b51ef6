"""The Slicer side's shape, read from the source (the module file needs a real Slicer to import).

Three layers, dependencies pointing down: only the module file and the widget
folder import Qt, CTK or ``slicer.ScriptedLoadableModule``; the bridge imports
no Qt and the core no ``slicer`` at all. The module file stays thin, holds the
four classes Slicer looks for, and its widget keeps the Logic where
``slicer.util.getModuleLogic`` finds it (``widget.logic``).
"""

from __future__ import annotations

import ast
from pathlib import Path

MODULE_DIR = Path(__file__).resolve().parents[2] / "ABCImmunoResponse"
MODULE_FILE = MODULE_DIR / "ABCImmunoResponse.py"
GUI_ONLY = ("qt", "ctk", "slicer.ScriptedLoadableModule", "slicer.parameterNodeWrapper", "slicer.util")
MAX_MODULE_LINES = 350


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_the_module_file_is_thin_and_holds_the_four_classes():
    source = MODULE_FILE.read_text(encoding="utf-8")
    assert len(source.splitlines()) <= MAX_MODULE_LINES
    classes = {node.name: [ast.unparse(base) for base in node.bases]
               for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}
    assert classes["ABCImmunoResponse"] == ["ScriptedLoadableModule"]
    assert classes["ABCImmunoResponseWidget"][0] == "ScriptedLoadableModuleWidget"
    assert classes["ABCImmunoResponseLogic"][0] == "ScriptedLoadableModuleLogic"
    assert classes["ABCImmunoResponseTest"] == ["ScriptedLoadableModuleTest"]


def test_the_widget_keeps_the_logic_where_get_module_logic_looks():
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    widget = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name.endswith("Widget"))
    setup = next(node for node in widget.body if isinstance(node, ast.FunctionDef) and node.name == "setup")
    assigned = [ast.unparse(target) for node in ast.walk(setup) if isinstance(node, ast.Assign)
                for target in node.targets]
    assert "self.logic" in assigned


def test_dependencies_point_down():
    gui = [MODULE_FILE, *(MODULE_DIR / "ABCImmunoResponseWidgets").glob("*.py")]
    bridge = list((MODULE_DIR / "ABCImmunoResponseLib").glob("*.py"))
    core = list((MODULE_DIR / "abcir").rglob("*.py"))
    for path in bridge:
        bad = {name for name in imported_modules(path) if name.split(".")[0] in ("qt", "ctk")
               or name in GUI_ONLY or name.startswith("ABCImmunoResponseWidgets")}
        assert not bad, f"{path.name} (bridge) imports {bad}"
    for path in core:
        bad = {name for name in imported_modules(path)
               if name.split(".")[0] in ("slicer", "qt", "ctk", "ABCImmunoResponseLib", "ABCImmunoResponseWidgets")}
        assert not bad, f"{path.relative_to(MODULE_DIR)} (core) imports {bad}"
    for path in gui:
        assert "ABCImmunoResponseLib" in " ".join(imported_modules(path)) or path.name == "__init__.py"


def test_every_ui_widget_the_gui_uses_is_in_the_ui_file():
    """``slicer.util.childWidgetVariables`` gives the ``.ui`` file's named objects: the GUI reads no other ``ui.NAME``.

    Without a real Slicer here, a widget added in code but missing from the ``.ui`` file (or a typo) would only
    show as an AttributeError when the panel opens.
    """
    import re
    import xml.etree.ElementTree as ElementTree

    ui_file = MODULE_DIR.parent / "Resources" / "UI" / "ABCImmunoResponse.ui"
    declared = {element.get("name") for element in ElementTree.parse(ui_file).iter()
                if element.tag in ("widget", "layout") and element.get("name")}
    used = set()
    for path in [MODULE_FILE, *(MODULE_DIR / "ABCImmunoResponseWidgets").glob("*.py")]:
        used.update(re.findall(r"\bui\.([A-Za-z_]\w*)", path.read_text(encoding="utf-8")))
    assert used, "the GUI reads no ui.NAME at all: the pattern is wrong"
    assert used <= declared, f"not in {ui_file.name}: {sorted(used - declared)}"


def test_ctest_runs_the_test_bodies_from_the_source_tree():
    """The ctest that ``slicer_add_python_unittest`` registers imports a file that exists and holds one test case.

    ctest's Slicer loads the module from the build tree, where the module file cannot find
    ``Testing/application``; so ctest gets the bodies' own file, and ``slicer.testing.runUnitTest`` loads
    every ``unittest.TestCase`` of the module named after it (Slicer's CMake/SlicerMacroPythonTesting.cmake).
    """
    import re

    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = re.findall(r"slicer_add_python_unittest\(\s*SCRIPT\s+(\S+)", cmake)
    assert len(scripts) == 1, scripts
    script = Path(scripts[0].replace("${PROJECT_SOURCE_DIR}", str(MODULE_DIR.parent)))
    assert script.is_file(), f"ctest would import {script}, which does not exist"
    tree = ast.parse(script.read_text(encoding="utf-8"))
    cases = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    assert [(node.name, [ast.unparse(base) for base in node.bases]) for node in cases] == [
        (script.stem, ["scriptedModule.ScriptedLoadableModuleTest"])]
    run_test = next(node for node in cases[0].body if isinstance(node, ast.FunctionDef) and node.name == "runTest")
    assert ast.unparse(run_test.body[0]) == "runAll(self)"


def test_no_test_folder_is_called_slicer():
    """The ``slicer-core`` wheel's ``slicer`` package extends its path with every ``slicer`` folder on ``sys.path``
    and imports each module it finds there, copying their names onto ``slicer`` (pytest puts ``Testing`` on the
    path): a ``Testing/slicer`` would be imported as part of Slicer's own namespace."""
    testing = MODULE_DIR.parent / "Testing"
    assert not [path for path in testing.rglob("slicer") if path.is_dir()]
