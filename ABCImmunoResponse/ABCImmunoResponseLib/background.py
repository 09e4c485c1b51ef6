"""Running the prediction on a worker thread inside Slicer's own Python, with progress and Cancel.

The work receives copies of everything it needs (voxels, masks, facts, the
verified bundle) and never touches the scene: MRML and VTK objects belong to
the main thread, and a cancelled run must leave the scene as it was. The main
thread polls the task (a Qt timer in the panel), shows progress and, when the
task has finished, writes the result into the scene.

Slicer's main thread holds Python's global interpreter lock while its Qt event
loop runs, so a Python worker thread only advances while the main thread runs
Python code that lets go of the lock. ``wait`` does exactly that: the panel's
timer calls it for most of each tick, the worker computes during that time,
and the main thread takes the lock back to process events between ticks.

Cancelling is cooperative: the progress callback raises ``TaskCancelled`` at
its next call, which the feature extraction makes as each lesion is done;
pyradiomics cannot be interrupted inside a lesion.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
ProgressCallback = Callable[[int, int, str], None]


class TaskCancelled(Exception):
    """The user cancelled; raised inside the worker to unwind the work."""


@dataclass(frozen=True)
class Progress:
    """Step ``done`` of ``total`` is under way; ``what`` names it (e.g. the lesion)."""

    done: int
    total: int
    what: str


class BackgroundTask(Generic[T]):
    """``work(progress)`` on a daemon thread; the caller polls ``progress()`` and ``finished``."""

    def __init__(self, work: Callable[[ProgressCallback], T], name: str = "ABCImmunoResponse prediction"):
        self._work = work
        self._cancel = threading.Event()
        self._updates: queue.SimpleQueue[Progress] = queue.SimpleQueue()
        self._result: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Ask the work to stop at its next progress report."""
        self._cancel.set()

    @property
    def cancelRequested(self) -> bool:
        return self._cancel.is_set()

    @property
    def finished(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive()

    def wait(self, timeoutSeconds: float) -> bool:
        """Let the worker run for up to ``timeoutSeconds`` (the lock is released meanwhile); True once finished."""
        self._thread.join(timeoutSeconds)
        return self.finished

    def progress(self) -> list[Progress]:
        """Progress reports since the last call, oldest first."""
        updates = []
        while True:
            try:
                updates.append(self._updates.get_nowait())
            except queue.Empty:
                return updates

    def result(self) -> T:
        """The work's return value; re-raises its exception (``TaskCancelled`` if it was cancelled)."""
        if not self.finished:
            raise RuntimeError("The background task has not finished; poll 'finished' first.")
        if self._error is not None:
            raise self._error
        return self._result

    def _report(self, done: int, total: int, what: str) -> None:
        if self._cancel.is_set():
            raise TaskCancelled()
        self._updates.put(Progress(done, total, what))

    def _run(self) -> None:
        try:
            self._result = self._work(self._report)
            if self._cancel.is_set():
                # Cancelled after the last report: the result is dropped, as the user asked.
                raise TaskCancelled()
        except BaseException as error:  # handed to the main thread, which shows it
            self._error = error
