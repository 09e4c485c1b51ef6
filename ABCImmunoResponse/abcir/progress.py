"""Progress shown to the person at the terminal during long runs, on stderr so stdout stays machine-readable.

``stderr_progress`` prints one line per step (extraction, prediction, consensus, cohort generation,
training); ``TerminalProgress`` draws a batch's progress bar with the elapsed time and an ETA.
"""

from __future__ import annotations

import math
import sys
import time


def stderr_progress(done: int, total: int, what: str) -> None:
    """Progress for long runs, on stderr so stdout stays machine-readable.

    Parameters
    ----------
    done : int
        Steps finished so far.
    total : int
        Steps in all.
    what : str
        The step just finished (a lesion, a patient, ...).
    """
    print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)


class TerminalProgress:
    """A progress line on stderr with the elapsed time and an ETA; redrawn in place on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.failed = 0

    def __call__(self, done: int, total: int, patient_id: str, outcome: str) -> None:
        """Show that one more patient finished.

        Parameters
        ----------
        done : int
            Patients finished so far, this one included.
        total : int
            Patients to do in this run.
        patient_id : str
            The patient that just finished.
        outcome : str
            ``"done"`` or ``"failed"``; failures are counted on the line.
        """
        self.failed += outcome == "failed"
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * (total - done) if done else math.nan
        width = 24
        filled = int(width * done / total) if total else width
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} patients, elapsed {_clock(elapsed)}, "
                f"ETA {_clock(eta)}" + (f", {self.failed} failed" if self.failed else "") + f"  {patient_id}")
        if self.stream.isatty():
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    """A duration in seconds as ``mm:ss``, or ``h:mm:ss`` from one hour; ``--:--`` when unknown (NaN)."""
    if math.isnan(seconds):
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
