"""Mistakes users make with any ``abcir`` command: a process count or seed no command can use, an output place
that cannot take the result. Each is refused in one line naming the option, exit code 2, before any work and
without writing anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from abcir.cli import build_parser, main

TINY_PREDICTIONS = Path(__file__).resolve().parents[1] / "fixtures" / "stats" / "tiny.csv"
CLINICAL = ["--clinical", "lines=1", "sites=1-2", "visceral=yes", "tnbc=yes"]


def _command_lines(folder: Path, out: Path) -> dict[str, list[str]]:
    """Each command with inputs that are read only after its output place is checked (or are valid, for the
    commands that read them first), writing to ``out``."""
    cohort = folder / "cohort.csv"
    cohort.write_text("patient_id,ct,lesions\nP1,ct.nrrd,lesions.seg.nrrd\n", encoding="utf-8")
    missing = str(folder / "missing.nrrd")
    return {
        "extract": ["extract", "--ct", missing, "--lesions", missing, "--out", str(out / "features.csv")],
        "predict": ["predict", "--ct", missing, "--lesions", missing, *CLINICAL, "--json", str(out / "r.json")],
        "consensus": ["consensus", "--ct", missing, "--reader-a", missing, "--reader-b", missing, "--out", str(out)],
        "agreement": ["agreement", "--cohort", str(folder / "readers.csv"), "--out", str(out)],
        "demo": ["demo", "--out", str(out)],
        "train": ["train", "--cohort", str(cohort), "--out", str(out)],
        "evaluate": ["evaluate", str(TINY_PREDICTIONS), "--out", str(out)],
        "export-dicom": ["export-dicom", "--result", str(folder / "r.json"), "--ct", str(folder), "--lesions", missing,
                         "--out", str(out)],
        "batch": ["batch", "--cohort", str(cohort), "--out", str(out)],
        "make-cohort": ["make-cohort", "--n", "1", "--out", str(out)],
    }


COMMANDS = ["extract", "predict", "consensus", "agreement", "demo", "train", "evaluate", "export-dicom", "batch",
            "make-cohort"]


def _one_line_error(capsys: pytest.CaptureFixture, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"abcir {command}: error: "), err
    return err


@pytest.mark.parametrize("command", COMMANDS)
def test_output_below_a_file_is_refused_in_one_line(tmp_path, capsys, command):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    out = blocker / "results"
    assert main(_command_lines(tmp_path, out)[command]) == 2
    error = _one_line_error(capsys, command)
    assert f"'{blocker}' is a file, not a folder" in error
    assert blocker.read_text(encoding="utf-8") == "a file, not a folder"


@pytest.mark.parametrize("command", ["consensus", "agreement", "demo", "train", "export-dicom"])
def test_output_folder_that_is_a_file_is_refused_in_one_line(tmp_path, capsys, command):
    out = tmp_path / "results"
    out.write_text("earlier results", encoding="utf-8")
    assert main(_command_lines(tmp_path, out)[command]) == 2
    assert f"'{out}' is a file; give a folder." in _one_line_error(capsys, command)
    assert out.read_text(encoding="utf-8") == "earlier results"


@pytest.mark.parametrize("command", COMMANDS)
def test_output_in_a_read_only_folder_is_refused_in_one_line(tmp_path, capsys, monkeypatch, command):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_access = os.access
    # As a read-only mount or a folder without write permission answers (root ignores chmod, so it is mimicked).
    monkeypatch.setattr(os, "access", lambda path, mode, **kwargs: (
        False if Path(path) == read_only and mode & os.W_OK else real_access(path, mode, **kwargs)))
    assert main(_command_lines(tmp_path, read_only / "results")[command]) == 2
    assert f"cannot write in '{read_only}' (read-only or no permission)" in _one_line_error(capsys, command)
    assert list(read_only.iterdir()) == []


@pytest.mark.parametrize("command", ["extract", "predict", "agreement", "train", "demo", "batch", "make-cohort"])
@pytest.mark.parametrize("jobs, problem", [("0", "0 processes; give 1 or more"),
                                           ("-2", "-2 processes; give 1 or more"),
                                           ("two", "'two' is not a whole number")])
def test_jobs_below_one_or_not_a_number_is_a_usage_error(tmp_path, capsys, command, jobs, problem):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit:
        main([*_command_lines(tmp_path, out)[command], "--jobs", jobs])
    assert exit.value.code == 2
    assert f"argument --jobs: {problem}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("command, option", [("make-cohort", "--seed"), ("demo", "--seed"), ("train", "--seed"),
                                             ("batch", "--sensitivity-seed"), ("predict", "--seed")])
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_seed_out_of_range_is_a_usage_error_not_a_traceback(tmp_path, capsys, command, option, seed):
    out = tmp_path / "out"
    extra = ["--sensitivity"] if command in ("predict", "batch") else []
    with pytest.raises(SystemExit) as exit:
        main([*_command_lines(tmp_path, out)[command], *extra, option, seed])
    assert exit.value.code == 2
    assert f"argument {option}: seed {seed} is out of range; give a whole number from 0 to 4294967295" in \
        capsys.readouterr().err
    assert not out.exists()


def test_many_more_jobs_than_cores_are_allowed(tmp_path):
    from abcir.commands import jobs_argument

    assert jobs_argument("1000") == 1000  # the pools clip it to the cores there are


@pytest.mark.parametrize("command, option", [("agreement", "--reader-a-name"), ("agreement", "--reader-b-name"),
                                             ("train", "--date-from"), ("train", "--date-to")])
def test_names_typed_in_an_ascii_locale_are_read_as_utf8(tmp_path, command, option):
    """Python keeps the bytes of 'Müller' as lone surrogates there; written to a UTF-8 file they were a traceback
    after the whole agreement had been computed."""
    typed = "Dr M\udcc3\udcbcller"  # how sys.argv holds 'Dr Müller' under LC_ALL=C without UTF-8 mode
    args = build_parser().parse_args([*_command_lines(tmp_path, tmp_path / "out")[command], option, typed])
    assert getattr(args, option[2:].replace("-", "_")) == "Dr Müller"


def test_train_without_torch_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    """Prediction needs no torch, so a Slicer or a prediction-only install has none; training says what to install
    (as the Python 3.12 CI part without torch sees it) instead of a traceback."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: (
        None if name == "torch" else real_find_spec(name, *args)))
    out = tmp_path / "bundles"
    assert main(_command_lines(tmp_path, out)["train"]) == 2
    assert "training needs torch, which is not installed here" in _one_line_error(capsys, "train")
    assert not out.exists()
