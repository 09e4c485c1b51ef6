"""Running a job in a separate process that the panel watches without blocking and can kill.

Why a process: Slicer's Qt event loop holds Python's GIL, so feature
extraction on the main thread freezes the application and on a Python thread
it barely advances. A child process computes at full speed while the panel
stays responsive (SlicerNNUnet, TotalSegmentator and MONAIAuto3DSeg do the
same).

Why a process group: inside Slicer the child is ``PythonSlicer``, a CTK
launcher that starts ``python-real``, which starts extraction workers
(``abcir.features.parallel``, multiprocessing spawn). Killing the launcher alone would
leave the others computing. The child therefore starts in a new session
(POSIX) or process group (Windows), and Cancel kills the whole group or tree.

Why files, not pipes: the child's output goes to ``FOLDER/child.log`` and its
events to ``FOLDER/events.jsonl``. A pipe that nobody drains fills up and
stalls the child, and draining it needs a reader thread, which in Slicer
competes with the Qt loop for the GIL. A file is read from where the last
look ended, only when the panel's timer fires, and never blocks.

This module imports neither ``slicer`` nor Qt: plain ``subprocess``, so it is
tested anywhere. The panel calls ``poll`` from a Qt timer (every 100 ms).
"""

from __future__ import annotations

import enum
import json
import logging
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from abcir.jobs.events import EVENTS_FILE, DoneEvent, ErrorEvent, Event, ProgressEvent, StatusEvent, parse_lines
from abcir.jobs.spec import RESULT_FILE

LOG_FILE = "child.log"
LOG_TAIL_BYTES = 8000  # the end of the child's log shown with an unexpected failure (a traceback fits)
REAP_TIMEOUT_SECONDS = 1.0  # how long cancel waits for the killed child to be reaped

log = logging.getLogger(__name__)


class TaskState(enum.Enum):
    """Where a task is; Apply shows Cancel while it is RUNNING or CANCEL_REQUESTED."""

    IDLE = "idle"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel requested"
    FINISHED = "finished"


# Lesion ``done`` of ``total`` is finished; ``what`` is its lesion id (the child's event, passed on as it is).
Progress = ProgressEvent


@dataclass(frozen=True)
class Outcome:
    """How a task ended: "succeeded", "failed" or "cancelled".

    ``result`` is the child's ``result.json`` (succeeded only). ``message`` is
    one line for the user (the child's own for a failure). ``details`` is the
    end of the child's log when the failure is a bug or a crash, for the
    message box's details. ``folder`` is the job folder, which remains only
    after success (the caller reads what it needs, then calls ``cleanup``).
    """

    status: str
    result: dict | None
    message: str
    details: str
    folder: Path


class ProcessTask:
    """``python -m abcir.jobs FOLDER`` in its own process group, polled without blocking.

    ``folder`` holds the job (``abcir.jobs.write_job``); ``python`` is the
    interpreter to run (``sys.executable``: PythonSlicer inside Slicer);
    ``pythonPath`` entries go before the environment's PYTHONPATH (the module
    folder, so the child imports this very ``abcir``); ``environment`` replaces
    ``os.environ`` for the child.
    """

    def __init__(self, folder: Path, python: str, pythonPath: Sequence[str] = (),
                 environment: Mapping[str, str] | None = None):
        self.folder = Path(folder)
        self._python = python
        self._pythonPath = list(pythonPath)
        self._environment = dict(os.environ if environment is None else environment)
        self._process: subprocess.Popen | None = None
        self._state = TaskState.IDLE
        self._offset = 0  # bytes of events.jsonl already read
        self._events: list[DoneEvent | ErrorEvent] = []  # the done / error events seen so far

    @property
    def state(self) -> TaskState:
        return self._state

    @property
    def running(self) -> bool:
        """True from ``start`` until ``poll`` has reported the outcome."""
        return self._state in (TaskState.RUNNING, TaskState.CANCEL_REQUESTED)

    @property
    def pid(self) -> int | None:
        """The child's process id (the launcher's inside Slicer), None before ``start``."""
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """The child's exit code once it has ended (0 done, 2 bad input, 1 bug; negative: killed by that signal)."""
        return None if self._process is None else self._process.returncode

    def start(self) -> None:
        """Launch the child; its stdout and stderr go to ``FOLDER/child.log``."""
        if self._state is not TaskState.IDLE:
            raise RuntimeError(f"Job '{self.folder}' was started already; make a new task for a new run.")
        environment = dict(self._environment)
        if self._pythonPath:
            environment["PYTHONPATH"] = os.pathsep.join(
                [*self._pythonPath, *filter(None, [environment.get("PYTHONPATH")])])
        if os.name == "nt":
            isolation = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW}
        else:
            isolation = {"start_new_session": True}  # its own process group, with the same id as the child
        with open(self.folder / LOG_FILE, "wb") as childLog:  # the child keeps its own handle
            self._process = subprocess.Popen([self._python, "-m", "abcir.jobs", str(self.folder)],
                                             cwd=self.folder, stdin=subprocess.DEVNULL, stdout=childLog,
                                             stderr=subprocess.STDOUT, env=environment, **isolation)
        self._state = TaskState.RUNNING

    def poll(self) -> tuple[list[Progress], list[str], Outcome | None]:
        """Progress and status texts since the last call, and the outcome once the child has ended.

        Never waits: reads the new complete lines of the events file and asks
        the OS whether the child has exited. The outcome is reported once;
        after it the task is FINISHED and its folder gone unless it succeeded.
        """
        if not self.running:
            return [], [], None
        # Exit status first, events second: a child that has exited has written all its events.
        returncode = self._process.poll()
        try:
            events = self._newEvents()
        except ValueError as error:  # a corrupt events file: the child cannot be trusted any more
            self._killGroup()
            return [], [], self._finish("failed", None, f"Job '{self.folder}': {error}.", self._logTail())
        progress = [event for event in events if isinstance(event, Progress)]
        texts = [event.text for event in events if isinstance(event, StatusEvent)]
        self._events += [event for event in events if isinstance(event, (DoneEvent, ErrorEvent))]
        if returncode is None:
            return progress, texts, None
        return progress, texts, self._outcome(returncode)

    def cancel(self) -> None:
        """Kill the child and every process it started; ``poll`` then reports the cancelled outcome."""
        if self._state is not TaskState.RUNNING:
            return
        self._state = TaskState.CANCEL_REQUESTED
        self._killGroup()
        try:
            self._process.wait(REAP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("Job '%s': process %d has not ended %.0f s after it was killed.", self.folder,
                        self._process.pid, REAP_TIMEOUT_SECONDS)

    def cleanup(self) -> None:
        """Remove the job folder (killing the child first if it still runs)."""
        self.cancel()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _newEvents(self) -> list[Event]:
        try:
            with open(self.folder / EVENTS_FILE, "rb") as stream:
                stream.seek(self._offset)
                data = stream.read()
        except FileNotFoundError:  # the child has not opened it yet
            return []
        events, consumed = parse_lines(data)
        self._offset += consumed
        return events

    def _outcome(self, returncode: int) -> Outcome:
        if self._state is TaskState.CANCEL_REQUESTED:
            return self._finish("cancelled", None, "Cancelled.", "")
        errors = [event for event in self._events if isinstance(event, ErrorEvent)]
        if errors:
            details = self._logTail() if errors[-1].kind == "bug" else ""
            return self._finish("failed", None, errors[-1].message, details)
        if any(isinstance(event, DoneEvent) for event in self._events):
            try:
                result = json.loads((self.folder / RESULT_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                return self._finish("failed", None, f"Job '{self.folder}': its result cannot be read ({error}).",
                                    self._logTail())
            return self._finish("succeeded", result, "", "")
        # Ended without a word: a crash, or killed from outside. Its workers may outlive it.
        self._killGroup()
        how = f"was killed by signal {-returncode}" if returncode < 0 else f"ended with exit code {returncode}"
        return self._finish("failed", None, f"The computation {how} without a result; the details show the end "
                                            "of its log.", self._logTail())

    def _finish(self, status: str, result: dict | None, message: str, details: str) -> Outcome:
        self._state = TaskState.FINISHED
        if status != "succeeded":
            shutil.rmtree(self.folder, ignore_errors=True)
        return Outcome(status, result, message, details, self.folder)

    def _logTail(self) -> str:
        try:
            with open(self.folder / LOG_FILE, "rb") as stream:
                stream.seek(max(0, stream.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
                tail = stream.read().decode("utf-8", errors="replace").strip()
        except OSError as error:
            return f"({LOG_FILE} cannot be read: {error})"
        return tail or f"({LOG_FILE} is empty)"

    def _killGroup(self) -> None:
        """SIGKILL the child's process group (POSIX) or its process tree (Windows)."""
        if os.name == "nt":
            if self._process.poll() is None:  # taskkill finds the tree through the living parent
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(self._process.pid)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               creationflags=subprocess.CREATE_NO_WINDOW, check=False)
            return
        try:
            # The group outlives the child while any member lives, so its id cannot be reused meanwhile.
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:  # nothing of the group left
            pass
