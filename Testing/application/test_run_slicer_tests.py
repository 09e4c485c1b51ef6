"""Testing/application/run_slicer_tests.sh: runs the module's tests in a real Slicer, or says clearly that none is given.

Without Slicer, a stand-in launcher (a shell script that records its arguments and environment and
exits with a chosen code) shows what the script hands to Slicer: the module and extension paths,
PYTHONPATH, and Python code that counts a skipped test as "not tested".
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_slicer_tests.sh")
MODULE_DIR = SCRIPT.resolve().parents[2] / "ABCImmunoResponse"
NOT_TESTED = 3

STANDIN_LAUNCHER = """\
#!/bin/sh
# Stands in for the Slicer launcher: answers --version, otherwise records its arguments (NUL
# separated) and the environment the tests read, then exits with $STANDIN_EXIT_CODE.
if [ "$1" = "--version" ]; then echo "Slicer 5.10.0"; exit 0; fi
for argument in "$@"; do printf '%s\\0' "$argument"; done > "$STANDIN_RECORD/arguments"
printf '%s' "${PYTHONPATH-}" > "$STANDIN_RECORD/PYTHONPATH"
printf '%s' "${ABCIR_SLICER_TEST_MODULE-}" > "$STANDIN_RECORD/module"
printf '%s' "${ABCIR_SLICER_TEST_MODULE_DIR-}" > "$STANDIN_RECORD/module_dir"
exit "${STANDIN_EXIT_CODE:-0}"
"""


def run(slicer: str | None, **environment_changes: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("SLICER", "SLICER_EXTENSION_DIRS", "PYTHONPATH")}
    if slicer is not None:
        environment["SLICER"] = slicer
    environment.update(environment_changes)
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=environment, timeout=3600)


@pytest.fixture
def standin(tmp_path: Path) -> Path:
    """The stand-in launcher; what it records lands in tmp_path / 'record'."""
    launcher = tmp_path / "Slicer"
    launcher.write_text(STANDIN_LAUNCHER)
    launcher.chmod(0o755)
    (tmp_path / "record").mkdir()
    return launcher


def run_standin(standin: Path, exit_code: int = 0, **environment_changes: str) -> subprocess.CompletedProcess:
    return run(str(standin), STANDIN_RECORD=str(standin.parent / "record"), STANDIN_EXIT_CODE=str(exit_code),
               **environment_changes)


def recorded(standin: Path, name: str) -> str:
    return (standin.parent / "record" / name).read_text()


def recorded_arguments(standin: Path) -> list[str]:
    return recorded(standin, "arguments").split("\0")[:-1]


def option_values(arguments: list[str], option: str) -> list[str]:
    """The values given after `option`, up to the next option (how Slicer reads a string list)."""
    start = arguments.index(option) + 1
    end = next((i for i in range(start, len(arguments)) if arguments[i].startswith("--")), len(arguments))
    return arguments[start:end]


def installed_extension(root: Path, name: str) -> Path:
    """An extension folder laid out as the Extensions Manager installs it (Slicer 5.10, Linux), below a space."""
    folder = root / "slicer settings" / "Extensions-33333" / name
    (folder / "lib" / "Slicer-5.10" / "qt-scripted-modules").mkdir(parents=True)
    (folder / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    return folder


def test_without_slicer_it_says_nothing_was_run():
    done = run(None)
    assert done.returncode == 0
    assert "SKIPPED - no Slicer executable given; nothing was run" in done.stderr
    assert "SLICER=/path/to/Slicer" in done.stderr
    assert "5.10 or later" in done.stderr


def test_a_wrong_slicer_path_is_an_error(tmp_path):
    done = run(str(tmp_path / "Slicer"))
    assert done.returncode == 2
    assert "is not an executable file" in done.stderr


def test_it_hands_slicer_the_module_and_the_extensions_modules_and_python_packages(standin, tmp_path):
    radiomics = installed_extension(tmp_path, "SlicerRadiomics")
    effects = installed_extension(tmp_path, "SegmentEditorExtraEffects")
    done = run_standin(standin, SLICER_EXTENSION_DIRS=f"{radiomics}:{effects}", PYTHONPATH="/already/there")
    assert done.returncode == 0, done.stderr
    assert "PASSED" in done.stderr
    arguments = recorded_arguments(standin)
    # --testing (isolated settings, exit when done), as ctest runs a module's test.
    assert {"--testing", "--no-main-window", "--no-splash"} <= set(arguments)
    assert option_values(arguments, "--additional-module-paths") == [str(MODULE_DIR), str(radiomics), str(effects)]
    assert recorded(standin, "PYTHONPATH").split(":") == [
        str(radiomics / "lib" / "python3.12" / "site-packages"),
        str(effects / "lib" / "python3.12" / "site-packages"),
        "/already/there",
    ]
    assert recorded(standin, "module") == "ABCImmunoResponse"
    assert recorded(standin, "module_dir") == str(MODULE_DIR)
    [python_code] = option_values(arguments, "--python-code")
    compile(python_code, "--python-code", "exec")


def test_without_extension_folders_it_warns_that_extension_tests_will_not_run(standin):
    done = run_standin(standin)
    assert done.returncode == 0
    assert "SLICER_EXTENSION_DIRS is not set" in done.stderr
    assert option_values(recorded_arguments(standin), "--additional-module-paths") == [str(MODULE_DIR)]
    assert recorded(standin, "PYTHONPATH") == ""


def test_an_extension_folder_that_is_missing_or_not_an_extension_is_an_error(standin, tmp_path):
    missing = run_standin(standin, SLICER_EXTENSION_DIRS=str(tmp_path / "Extensions-33333" / "SlicerRadiomics"))
    assert missing.returncode == 2
    assert "which is not a folder" in missing.stderr
    # The extensions folder itself rather than one extension's folder in it.
    extensions = installed_extension(tmp_path, "SlicerRadiomics").parent
    wrong_level = run_standin(standin, SLICER_EXTENSION_DIRS=str(extensions))
    assert wrong_level.returncode == 2
    assert "give the extension's own folder" in wrong_level.stderr
    assert not (standin.parent / "record" / "arguments").exists()


@pytest.mark.parametrize("slicer_code, word", [(0, "PASSED"), (1, "FAILED"), (NOT_TESTED, "NOT TESTED")])
def test_it_exits_with_slicers_code_and_says_what_it_means(standin, slicer_code, word):
    done = run_standin(standin, exit_code=slicer_code)
    assert done.returncode == slicer_code
    assert f"run_slicer_tests.sh: {word}" in done.stderr


@pytest.fixture
def python_code(standin) -> str:
    """The Python code the script hands to Slicer with --python-code."""
    assert run_standin(standin).returncode == 0
    [code] = option_values(recorded_arguments(standin), "--python-code")
    return code


def test_as_slicers_main_code_it_needs_slicer_rather_than_doing_nothing(python_code):
    # Slicer runs --python-code in __main__; outside Slicer that path must fail loudly for want of
    # slicer.app (no slicer at all, or the slicer-core wheel's, which has no application), which
    # shows it is taken: a silent no-op would let --testing exit with 0 having run nothing.
    with pytest.raises((ImportError, AttributeError), match="slicer"):
        exec(compile(python_code, "--python-code", "exec"), {"__name__": "__main__"})


TEST_MODULES = {
    "passing": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self):
                self.assertEqual(1 + 1, 2)
        """,
    "skipping": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self):
                self.assertTrue(True)
            def test_b(self):
                self.skipTest("pyradiomics is missing in this Slicer")
        """,
    "failing": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self):
                self.assertEqual(1 + 1, 3)
            def test_b(self):
                self.skipTest("pyradiomics is missing in this Slicer")
        """,
    "raising": """
        import unittest
        class T(unittest.TestCase):
            def test_a(self):
                raise RuntimeError("no scene")
        """,
    "empty": """
        import unittest
        """,
    "unimportable": """
        import a_package_that_is_not_installed
        """,
}


@pytest.mark.parametrize("kind, expected_code", [
    ("passing", 0), ("skipping", NOT_TESTED), ("failing", 1), ("raising", 1), ("empty", NOT_TESTED),
    ("unimportable", 1),
])
def test_the_python_code_counts_a_skipped_test_as_not_tested(python_code, tmp_path, monkeypatch, kind, expected_code):
    module_name = f"standin_{kind}_module_tests"
    (tmp_path / f"{module_name}.py").write_text(textwrap.dedent(TEST_MODULES[kind]))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, module_name, raising=False)
    namespace = {"__name__": "run_slicer_tests_code"}
    exec(compile(python_code, "--python-code", "exec"), namespace)
    output = io.StringIO()
    assert namespace["run_module_tests"](module_name, str(tmp_path), stream=output) == expected_code
    if kind == "skipping":
        assert "NOT TESTED: 1 of the 2 tests" in output.getvalue()
        assert "pyradiomics is missing in this Slicer" in output.getvalue()


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SLICER"),
                    reason="set SLICER=/path/to/Slicer (and SLICER_EXTENSION_DIRS) to run the module's test in Slicer")
def test_the_module_test_passes_in_slicer():
    extensions = {key: value for key, value in os.environ.items() if key == "SLICER_EXTENSION_DIRS"}
    done = run(os.environ["SLICER"], **extensions)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
