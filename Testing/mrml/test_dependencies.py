"""Dependencies inside Slicer: the panel loads without the prediction's packages; Predict checks them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from mrml_scene import SLICER_CORE_MISSING

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from ABCImmunoResponseLib.dependencies import PREDICTION_REQUIREMENTS, Requirement, unmetRequirements  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
#: Not in Slicer's own Python: the prediction needs them, the panel must not (checked on first Predict).
NOT_IN_SLICER = ("pandas", "nrrd", "yaml", "radiomics", "safetensors", "torch")
#: What the module file and its widgets import when Slicer loads them (the widgets import Qt, so they are
#: read here for their imports: a test below keeps this list complete).
PANEL_MODULES = ("ABCImmunoResponseLib.volumes", "ABCImmunoResponseLib.segments", "ABCImmunoResponseLib.lesion_table",
                 "ABCImmunoResponseLib.parameters", "ABCImmunoResponseLib.process", "ABCImmunoResponseLib.results",
                 "ABCImmunoResponseLib.case", "ABCImmunoResponseLib.case_logic", "ABCImmunoResponseLib.case_files",
                 "ABCImmunoResponseLib.consensus", "ABCImmunoResponseLib.dependencies",
                 "ABCImmunoResponseLib.dicom_export", "ABCImmunoResponseLib.i18n", "ABCImmunoResponseLib.sensitivity",
                 "abcir.errors", "abcir.models", "abcir.resources", "abcir.patient.sites")


def test_minimum_versions_are_those_of_pyproject():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11 or later")
    declared = {Requirement(text).name.lower(): Requirement(text).specifier
                for text in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]}
    for text in PREDICTION_REQUIREMENTS:
        requirement = Requirement(text)
        assert declared[requirement.name.lower()] == requirement.specifier, text


def test_unmet_requirements_name_the_missing_and_the_too_old():
    assert unmetRequirements() == []  # this environment has everything
    unmet = unmetRequirements(("numpy>=999", "surely-not-installed-abcir-test>=1"))
    assert [(item.requirement, item.installed is None) for item in unmet] == [
        ("numpy>=999", False), ("surely-not-installed-abcir-test>=1", True)]
    assert unmet[1].describe() == "surely-not-installed-abcir-test>=1 (missing)"


def test_the_panel_s_bridge_imports_without_the_prediction_s_packages():
    blocker = (
        "import sys\n"
        f"BLOCKED = {NOT_IN_SLICER!r}\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in BLOCKED:\n"
        "            raise ImportError(f'{name} is blocked: Slicer does not ship it')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.path.insert(0, {str(REPO / 'ABCImmunoResponse')!r})\n"
        f"for module in {PANEL_MODULES!r}:\n"
        "    __import__(module)\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]


def test_the_list_holds_every_project_module_the_gui_layer_imports_at_load_time():
    import ast

    gui = [REPO / "ABCImmunoResponse" / "ABCImmunoResponse.py",
           *sorted((REPO / "ABCImmunoResponse" / "ABCImmunoResponseWidgets").glob("*.py"))]
    imported = set()
    for path in gui:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:  # top level only: what loading runs
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in (
                    "abcir", "ABCImmunoResponseLib"):
                imported.add(node.module)
    assert imported <= set(PANEL_MODULES), sorted(imported - set(PANEL_MODULES))
