"""The panel's one runner of long work: a run in its own process, polled by a Qt timer, Cancel kills it.

Both the prediction and the predictions under each reader use it, one at a
time, with an explicit state (idle, running, cancel requested), in the manner
of MONAIAuto3DSeg. Each timer tick only reads what the child has written
(``Run.poll`` never waits), so Slicer's event loop is never held up.
"""

from __future__ import annotations

import logging
from typing import Callable

import qt

import slicer
from slicer.i18n import tr as _

from abcir.errors import InputError
from ABCImmunoResponseLib.case_logic import POLL_INTERVAL_S, Run, RunCancelled, RunFailed, valueOf
from ABCImmunoResponseLib.process import TaskState


class TaskRunner:
    """Runs one ``Run`` at a time and reports it in a progress bar and a status label."""

    def __init__(self, progressBar, statusLabel, onStateChanged: Callable[[], None]) -> None:
        self._progressBar, self._statusLabel = progressBar, statusLabel
        self._onStateChanged = onStateChanged
        self._run: Run | None = None
        self.owner = None  # the section whose run it is (its button turns into Cancel)
        self._onDone: Callable[[object], None] | None = None
        self._doneText = ""
        self._timer = qt.QTimer()
        self._timer.setInterval(int(POLL_INTERVAL_S * 1000))
        self._timer.connect("timeout()", self._poll)

    @property
    def state(self) -> TaskState:
        return self._run.task.state if self._run is not None else TaskState.IDLE

    @property
    def busy(self) -> bool:
        return self.state != TaskState.IDLE

    def buttonState(self, owner: object, idleText: str) -> tuple[str, bool]:
        """(text, enabled) of a section's start button: its idle text, or Cancel while its own run goes on."""
        if not self.busy:
            return idleText, True
        if self.owner is not owner:
            return idleText, False
        if self.state == TaskState.CANCEL_REQUESTED:
            return _("Cancelling..."), False
        return _("Cancel"), True

    def start(self, run: Run, owner: object, startText: str, doneText: str, onDone: Callable[[object], None]) -> None:
        """Watch ``run`` for ``owner``; ``onDone(value)`` gets what a successful run put in the scene."""
        if self._run is not None:
            run.cancel()
            raise InputError(_("Another run is still going; wait for it or cancel it first."))
        self._run, self.owner, self._onDone, self._doneText = run, owner, onDone, doneText
        self._progressBar.visible = True
        self._progressBar.setRange(0, 0)  # busy until the child reports its first step
        self._statusLabel.text = startText
        self._timer.start()
        self._onStateChanged()

    def cancel(self) -> None:
        """Stop the child and all it started (within a second); the next tick reports it."""
        if self._run is not None:
            self._run.cancel()
            self._statusLabel.text = _("Cancelling...")
            self._onStateChanged()

    def _poll(self) -> None:
        run = self._run
        if run is None:
            self._timer.stop()
            return
        try:
            update = run.poll()
        except Exception as error:  # applying the result failed: the run is over all the same
            self._finish()
            slicer.util.errorDisplay(_("The result could not be shown: {error}").format(error=error))
            return
        for text in update.statuses:
            self._statusLabel.text = text
            self._progressBar.setRange(0, 0)  # a new step: busy until it reports how far it is
        for progress in update.progress:
            self._progressBar.setRange(0, progress.total)
            self._progressBar.value = progress.done
            self._statusLabel.text = _("Step {done} of {total} done ({what})...").format(
                done=progress.done, total=progress.total, what=progress.what)
        if update.outcome is not None:
            onDone = self._onDone
            self._finish()
            self._report(update, onDone)

    def _finish(self) -> None:
        self._timer.stop()
        self._run = self.owner = self._onDone = None
        self._progressBar.visible = False
        self._onStateChanged()

    def _report(self, update, onDone: Callable[[object], None]) -> None:
        try:
            value = valueOf(update.outcome, update.value)
        except RunCancelled as cancelled:
            self._statusLabel.text = str(cancelled)
        except InputError as error:
            self._statusLabel.text = _("Stopped: see the message. The scene was not changed.")
            slicer.util.errorDisplay(str(error))
        except RunFailed as failure:  # a bug rather than an input problem: with the child's log
            logging.error("ABCImmunoResponse: %s\n%s", failure, failure.details)
            self._statusLabel.text = _("Failed. The scene was not changed.")
            slicer.util.errorDisplay(_("The run failed: {error}").format(error=failure), detailedText=failure.details)
        else:
            self._statusLabel.text = self._doneText
            onDone(value)
