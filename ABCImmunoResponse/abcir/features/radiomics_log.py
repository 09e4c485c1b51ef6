"""pyradiomics' log while abcir extracts: errors only, and only while abcir's own extraction runs.

pyradiomics logs every step of an extraction at INFO on the ``radiomics``
logger (level INFO by default), and the records propagate to the root logger:
into 3D Slicer's application log, or to the console when ``abcir --verbose``
configured it. For abcir's extraction they are noise: the steps are always the
same ones, and the warnings its settings can raise are either harmless ("GLCM
is symmetrical, therefore Sum Average = 2 * Joint Average", once per image;
shape eigenvalues between -1e-10 and 0 rounded to 0) or show in the values
themselves (a negative eigenvalue gives NaN axis lengths; a LoG sigma skipped
on a region too small leaves features missing, which abcir refuses, naming
them). Errors are not noise: when a feature's computation raises, pyradiomics
logs the traceback at ERROR and returns NaN for it, so errors pass.

So ``quiet_radiomics`` raises the ``radiomics`` logger to ERROR for the
duration of abcir's extraction and then gives it back the level it had, so
that SlicerRadiomics, or a script using pyradiomics in the same process, logs
as it configured. Every abcir entry point into pyradiomics holds it, in worker
processes too (``features.compute_input``).

Why a logger level and not a filter: a filter on the ``radiomics`` logger
would not see the records of its children (``radiomics.glcm`` ...), which
propagate to the handlers without passing the parent's filters; and a level
also spares formatting the messages that are dropped. pyradiomics' own stderr
handler (``radiomics.setVerbosity``) is left as it is.

A logger's level is process-wide: while abcir extracts, pyradiomics calls of
another thread are quietened too. Overlapping extractions (worker threads)
share one quiet period: the first to start saves the level, the last to finish
restores it.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

RADIOMICS_LOGGER = "radiomics"
#: Records below this level are dropped while abcir extracts.
QUIET_LEVEL = logging.ERROR


@dataclass
class _QuietPeriod:
    """How many extractions of this process are running, and the level to restore after the last one."""

    depth: int = 0
    saved_level: int = logging.NOTSET
    raised: bool = False


_lock = threading.Lock()
_period = _QuietPeriod()


@contextmanager
def quiet_radiomics() -> Iterator[None]:
    """Only ERROR and above from pyradiomics inside the block; the previous level afterwards, also on error.

    Usable as a decorator (``@quiet_radiomics()``).
    """
    logger = logging.getLogger(RADIOMICS_LOGGER)
    with _lock:
        if _period.depth == 0:
            _period.saved_level = logger.level
            _period.raised = logger.getEffectiveLevel() < QUIET_LEVEL
            if _period.raised:
                logger.setLevel(QUIET_LEVEL)
        _period.depth += 1
    try:
        yield
    finally:
        with _lock:
            _period.depth -= 1
            if _period.depth == 0 and _period.raised:
                logger.setLevel(_period.saved_level)
