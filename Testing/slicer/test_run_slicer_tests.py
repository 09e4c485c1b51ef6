"""Testing/slicer/run_slicer_tests.sh: runs the module's test in a real Slicer, or says clearly that none is given."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_slicer_tests.sh")


def run(slicer: str | None) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items() if key != "SLICER"}
    if slicer is not None:
        environment["SLICER"] = slicer
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=environment, timeout=3600)


def test_without_slicer_it_says_nothing_was_run():
    done = run(None)
    assert done.returncode == 0
    assert "SKIPPED - no Slicer executable given; nothing was run" in done.stderr
    assert "SLICER=/path/to/Slicer" in done.stderr


def test_a_wrong_slicer_path_is_an_error(tmp_path):
    done = run(str(tmp_path / "Slicer"))
    assert done.returncode == 2
    assert "is not an executable file" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SLICER"),
                    reason="set SLICER=/path/to/Slicer to run the module's test in Slicer")
def test_the_module_test_passes_in_slicer():
    done = run(os.environ["SLICER"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
