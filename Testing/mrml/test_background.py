"""The worker thread: result, progress in order, cooperative cancel, errors handed to the main thread."""

from __future__ import annotations

import threading

import pytest
from mrml_scene import SLICER_CORE_MISSING

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.errors import InputError  # noqa: E402
from ABCImmunoResponseLib.background import BackgroundTask, Progress, TaskCancelled  # noqa: E402


def finish(task: BackgroundTask) -> None:
    for _ in range(200):
        if task.wait(0.05):
            return
    raise AssertionError("the task did not finish within 10 s")


def test_result_and_progress_arrive_on_the_polling_thread():
    def work(progress):
        for step in range(1, 4):
            progress(step, 3, f"lesion {step}")
        return threading.current_thread().name

    task = BackgroundTask(work, name="worker under test")
    task.start()
    finish(task)
    assert task.result() == "worker under test"  # the work ran on the worker thread
    assert task.progress() == [Progress(1, 3, "lesion 1"), Progress(2, 3, "lesion 2"), Progress(3, 3, "lesion 3")]
    assert task.progress() == []


def test_cancel_stops_at_the_next_progress_report_and_drops_the_result():
    reached = threading.Event()
    release = threading.Event()
    steps = []

    def work(progress):
        progress(1, 3, "first")
        steps.append(1)
        reached.set()
        release.wait(5)
        progress(2, 3, "second")  # raises: cancelled meanwhile
        steps.append(2)
        return "not wanted"

    task = BackgroundTask(work)
    task.start()
    assert reached.wait(5)
    task.cancel()
    release.set()
    finish(task)
    assert steps == [1]
    with pytest.raises(TaskCancelled):
        task.result()


def test_cancel_after_the_last_report_still_drops_the_result():
    release = threading.Event()

    def work(progress):
        progress(1, 1, "only")
        release.wait(5)
        return 42

    task = BackgroundTask(work)
    task.start()
    task.cancel()
    release.set()
    finish(task)
    with pytest.raises(TaskCancelled):
        task.result()


def test_an_input_error_reaches_the_main_thread_with_its_message():
    def work(progress):
        raise InputError("Lesion 'liver_1': the mask is empty (no voxels).")

    task = BackgroundTask(work)
    task.start()
    finish(task)
    with pytest.raises(InputError, match="Lesion 'liver_1': the mask is empty"):
        task.result()


def test_asking_for_the_result_too_early_is_a_programming_error():
    task = BackgroundTask(lambda progress: 1)
    with pytest.raises(RuntimeError, match="has not finished"):
        task.result()
