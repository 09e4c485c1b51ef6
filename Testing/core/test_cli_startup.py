"""``abcir --help`` and ``abcir COMMAND --help`` import only the standard library and abcir's light modules.

Every invocation of ``abcir`` builds the whole parser, so this is what every command pays before it starts
(issue #15: importing every command's modules took 2-3 s). Each case runs in a fresh interpreter, as a user
runs ``abcir``; ``Testing/benchmarks/bench_cli_startup.py`` times them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from abcir.cli import COMMAND_MODULES

# Modules that take from tens of milliseconds to seconds to import; none may be needed to show a help text.
HEAVY = ("numpy", "scipy", "pandas", "SimpleITK", "radiomics", "pywt", "matplotlib", "statsmodels", "highdicom",
         "pydicom", "nrrd", "torch", "dask", "threadpoolctl", "abcir.imaging", "abcir.patient.lesions",
         "abcir.features", "abcir.prediction", "abcir.models", "abcir.evaluation", "abcir.report", "abcir.batch",
         "abcir.dicom", "abcir.consensus.cohort_report", "abcir.consensus.building")
SCRIPT = """
import json, sys
before = set(sys.modules)
from abcir.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": sorted(set(sys.modules) - before)}))
"""


def _commands() -> list[str]:
    from abcir.cli import build_parser

    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    return list(subparsers.choices)


def _help_imports(*args: str) -> tuple[str, list[str]]:
    result = subprocess.run([sys.executable, "-c", SCRIPT, *args, "--help"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    *shown, last = result.stdout.strip().splitlines()
    outcome = json.loads(last)
    assert outcome["code"] == 0
    return "\n".join(shown), outcome["modules"]


def test_every_command_module_is_listed():
    assert len(_commands()) == len(COMMAND_MODULES) == 11
    assert "evaluate" in _commands()


@pytest.mark.parametrize("command", [None, *_commands()], ids=lambda command: command or "abcir")
def test_help_imports_nothing_heavy(command):
    text, modules = _help_imports(*([command] if command else []))
    assert text.startswith(f"usage: abcir {command or ''}".rstrip())
    assert sorted(m for m in modules if any(m == heavy or m.startswith(heavy + ".") for heavy in HEAVY)) == []
    # Nothing outside the standard library and abcir at all: a new dependency of a declaration shows up here.
    assert sorted({m.split(".")[0] for m in modules} - set(sys.stdlib_module_names) - {"abcir"}) == []
