"""The bridge's process runner (``ABCImmunoResponseLib/process.py``) with the real child, ``python -m abcir.jobs``.

Needs no slicer-core: the runner is plain ``subprocess``. The job is the
generated example patient with the bundled combined weights (no torch), polled
every 100 ms as the panel's timer polls it. One full run is shared by the
tests that look at a finished prediction.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest
import SimpleITK as sitk

from abcir.models.bundle import BundleError, bundled_bundle
from abcir.patient.clinical_facts import parse_clinical
from abcir.cohort import make_example_patient
from abcir.features.cache import CACHE_ENVIRONMENT_VARIABLE
from abcir.features.table import provenance_path, read_features_csv
from abcir.features.extract import extract_lesions
from abcir.features.catalogue import feature_names
from abcir.imaging.ct import check_ct
from abcir.jobs import FEATURES_FILE, JobLesion, PredictJob, write_job
from abcir.patient.lesions import Lesion, align_to_ct
from abcir.patient.measurements import measure_lesion
from abcir.features.parallel import extraction_workers
from abcir.prediction.result import CTIdentity, Prediction
from abcir.prediction.predict import predict_features
from abcir.imaging.segfile import SITE_TAG, read_seg_nrrd
from ABCImmunoResponseLib.process import Outcome, ProcessTask, Progress, TaskState

MODULE_FOLDER = Path(__file__).resolve().parents[2] / "ABCImmunoResponse"  # the child imports this abcir
POLL_INTERVAL_S = 0.1  # the panel's timer
RUN_TIMEOUT_S = 300
STUDY_UID, SERIES_UID = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
EXAMPLE_LESIONS = ("liver_1", "lung_1", "lymph_node_1")


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The generated example patient: CT file, its segments (masks as read from the .seg.nrrd), clinical words."""
    try:
        bundled_bundle("combined")
    except BundleError as error:
        pytest.skip(f"no bundled combined weights in this checkout: {error}")
    patient = make_example_patient(tmp_path_factory.mktemp("example"), seed=0)
    return {"ct": patient.ct, "segments": read_seg_nrrd(patient.lesions),
            "clinical": tuple(patient.clinical.to_tokens())}


def write_example_job(folder: Path, example: dict, jobs: int, clinical="given", shift_mm: float = 0.0) -> Path:
    """The example patient as a job folder, as the panel writes one (CT and one NRRD mask per lesion)."""
    folder.mkdir()
    shutil.copy(example["ct"], folder / "ct.nrrd")
    lesions = []
    for index, segment in enumerate(example["segments"]):
        mask = sitk.Image(segment.mask)
        mask.SetOrigin(tuple(value + shift_mm for value in mask.GetOrigin()))
        sitk.WriteImage(mask, str(folder / f"lesion{index:03d}.nrrd"))
        lesions.append(JobLesion(segment.name, segment.tags.get(SITE_TAG), f"lesion{index:03d}.nrrd"))
    write_job(folder, PredictJob("SYN-EXAMPLE", "ct.nrrd", tuple(lesions),
                                 example["clinical"] if clinical == "given" else clinical, "combined", None, jobs,
                                 None, STUDY_UID, SERIES_UID))
    return folder


def new_task(folder: Path) -> ProcessTask:
    # Without a feature cache from the environment: every run extracts for real.
    environment = {key: value for key, value in os.environ.items() if key != CACHE_ENVIRONMENT_VARIABLE}
    return ProcessTask(folder, sys.executable, [str(MODULE_FOLDER)], environment)


def poll_until(task: ProcessTask, stop=lambda progress, texts: False) -> dict:
    """Poll every 100 ms until the outcome (or ``stop`` says so); everything seen, and the number of polls."""
    seen = {"progress": [], "texts": [], "outcome": None, "polls": 0}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        progress, texts, outcome = task.poll()
        seen["polls"] += 1
        seen["progress"] += progress
        seen["texts"] += texts
        if outcome is not None:
            seen["outcome"] = outcome
            return seen
        if stop(seen["progress"], seen["texts"]):
            return seen
        time.sleep(POLL_INTERVAL_S)
    task.cancel()
    raise AssertionError(f"the job did not end within {RUN_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def finished(example, tmp_path_factory):
    """One whole prediction in the child process (1 worker), polled as the panel polls it."""
    task = new_task(write_example_job(tmp_path_factory.mktemp("run") / "job", example, jobs=1))
    assert task.state is TaskState.IDLE and task.poll() == ([], [], None)
    task.start()
    assert task.running and task.pid is not None
    seen = poll_until(task)
    yield {**seen, "task": task}
    task.cleanup()


def in_process_prediction(example: dict):
    """The same case computed in this process, as ``case.runCase`` computes it."""
    ct = sitk.ReadImage(str(example["ct"]))
    ct.SetMetaData("0020|000d", STUDY_UID)
    ct.SetMetaData("0020|000e", SERIES_UID)
    check_ct(ct, "SYN-EXAMPLE")
    lesions = []
    for segment in example["segments"]:
        aligned = align_to_ct(segment.name, segment.mask, ct)
        lesions.append(Lesion(segment.name, segment.tags.get(SITE_TAG), aligned, measure_lesion(aligned)))
    rows = extract_lesions(ct, lesions, "SYN-EXAMPLE", jobs=1)
    prediction = predict_features(rows, parse_clinical(example["clinical"]), "combined", None,
                                  CTIdentity.from_image(ct))
    return prediction, rows


def test_child_prediction_equals_the_in_process_prediction(finished, example):
    outcome = finished["outcome"]
    assert outcome.status == "succeeded", (outcome.message, outcome.details)
    assert finished["task"].state is TaskState.FINISHED and not finished["task"].running
    assert finished["task"].returncode == 0
    assert finished["progress"] == [Progress(index + 1, 3, name) for index, name in enumerate(EXAMPLE_LESIONS)]
    assert "Extracting radiomics features of 3 lesions" in finished["texts"]

    prediction = Prediction.from_dict(outcome.result["prediction"], "result.json")
    expected, rows = in_process_prediction(example)
    assert prediction.probability == expected.probability and prediction.score == expected.score
    assert prediction == expected  # and everything else: lesions, warnings, weights, CT identity with the UIDs
    assert (prediction.ct.study_instance_uid, prediction.ct.series_instance_uid) == (STUDY_UID, SERIES_UID)

    assert outcome.result["features_files"] == [FEATURES_FILE, provenance_path(FEATURES_FILE).name]
    features = outcome.folder / FEATURES_FILE
    assert features.is_file() and provenance_path(features).is_file()
    table = read_features_csv(features)
    assert list(table["lesion_id"]) == list(EXAMPLE_LESIONS)
    assert (table[list(feature_names())].to_numpy() == [row.values for row in rows]).all()
    finished["task"].cleanup()  # the caller took what it needed
    assert not outcome.folder.exists()


def test_poll_never_waits_for_the_child(finished):
    """Every poll but the last returned while the child was still running: the run lasted several timer ticks,
    the last one with the result. (How long a poll takes, against its 20 ms budget: ``bench_panel_poll.py``.)"""
    assert finished["polls"] >= 5


def test_a_finished_task_ignores_cancel_and_starts_once(finished):
    task = finished["task"]
    task.cancel()
    assert task.state is TaskState.FINISHED and task.poll() == ([], [], None)
    with pytest.raises(RuntimeError, match="was started already"):
        task.start()


@pytest.mark.parametrize("clinical, shift_mm, message", [
    (None, 0.0, "Clinical facts: none given, but the combined model needs all four (lines=1|2+"),
    ("given", 5000.0, "Lesion 'liver_1': the mask does not overlap the CT in physical space"),
])
def test_bad_input_fails_with_the_one_line_message_and_removes_the_folder(example, tmp_path, clinical, shift_mm,
                                                                         message):
    folder = write_example_job(tmp_path / "job", example, jobs=1, clinical=clinical, shift_mm=shift_mm)
    task = new_task(folder)
    task.start()
    outcome = poll_until(task)["outcome"]
    assert outcome == Outcome("failed", None, outcome.message, "", folder)
    assert message in outcome.message and "\n" not in outcome.message
    assert task.returncode == 2
    assert not folder.exists()


def alive(process: psutil.Process) -> bool:
    """Running code: a zombie is dead, only not yet reaped by its (new) parent."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def spawned_workers(pid: int) -> list[psutil.Process]:
    """The multiprocessing spawn workers below a process (not its resource tracker)."""
    workers = []
    for process in psutil.Process(pid).children(recursive=True):
        try:
            if any("spawn_main" in part for part in process.cmdline()):
                workers.append(process)
        except psutil.NoSuchProcess:
            pass
    return workers


def test_cancel_mid_extraction_kills_the_child_and_its_workers(example, tmp_path):
    folder = write_example_job(tmp_path / "job", example, jobs=2)
    task = new_task(folder)
    task.start()
    # Extraction has started and its worker is up: the moment a user would press Cancel.
    seen = poll_until(task, stop=lambda progress, texts: "Extracting radiomics features of 3 lesions" in texts
                      and len(spawned_workers(task.pid)) == extraction_workers(2))
    assert seen["outcome"] is None and len(seen["progress"]) < 3
    child = psutil.Process(task.pid)
    descendants = child.children(recursive=True)  # the workers and multiprocessing's resource tracker

    cancelled = time.perf_counter()
    task.cancel()
    assert task.state is TaskState.CANCEL_REQUESTED and task.running
    while any(alive(process) for process in (child, *descendants)) and time.perf_counter() - cancelled < 1.0:
        time.sleep(0.01)
    assert not [process.pid for process in (child, *descendants) if alive(process)]

    outcome = poll_until(task)["outcome"]
    assert (outcome.status, outcome.result) == ("cancelled", None)
    assert task.state is TaskState.FINISHED and not task.running
    assert not folder.exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX signals")
def test_a_child_killed_from_outside_fails_with_its_exit_and_log(example, tmp_path):
    """No event at all (the OOM killer, a crash in C): the failure names how it ended and shows the log."""
    folder = write_example_job(tmp_path / "job", example, jobs=1)
    task = new_task(folder)
    task.start()
    poll_until(task, stop=lambda progress, texts: "Extracting radiomics features of 3 lesions" in texts)
    os.kill(task.pid, signal.SIGKILL)
    outcome = poll_until(task)["outcome"]
    assert outcome.status == "failed" and "was killed by signal 9 without a result" in outcome.message
    assert outcome.details  # the log's end, or that it is empty
    assert task.returncode == -signal.SIGKILL and not folder.exists()
