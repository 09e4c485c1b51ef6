"""What ``abcir evaluate`` computes: one result per model, per model pair, and for the whole file.

These types are the contract between :mod:`abcir.evaluation.analysis`, which
fills them, and their readers: :mod:`abcir.evaluation.metrics` (``metrics.json``)
and :mod:`abcir.report` (figures and ``report.html``). Arrays keep the
patients' data the report plots: scores in log-odds, probabilities in [0, 1],
times in months, responses and events as 0/1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..stats.baseline_table import BaselineTable
from ..stats.calibration import Calibration, CalibrationCurve
from ..stats.decision import DecisionCurves
from ..stats.delong import AucEstimate, PairedDelongTest
from ..stats.maxstat import MaxstatResult
from ..stats.roc import RocCurve, ThresholdMetrics
from ..stats.survival import Concordance, RiskGroupComparison


@dataclass(frozen=True)
class SurvivalEvaluation:
    """PFS by risk group for one model: cut-off, KM, log-rank, Cox and C-index.

    ``maxstat`` is ``None`` when the cut-off was fixed on the command line.
    """

    n: int
    n_excluded: int
    cutoff_method: str
    maxstat: MaxstatResult | None
    groups: RiskGroupComparison
    concordance: Concordance
    scores: np.ndarray
    times: np.ndarray
    events: np.ndarray


@dataclass(frozen=True)
class SubgroupAuc:
    """AUC of a model within one level of a subgroup column; ``auc`` None with one class."""

    column: str
    level: str
    n: int
    n_responders: int
    auc: AucEstimate | None


@dataclass(frozen=True)
class OutlineStability:
    """Patients whose risk group holds under plausible outline changes (``<model>_stable``), by outcome.

    Counts patients with a value in ``<model>_stable`` and ``response``; shares are None without patients.
    """

    n: int
    n_stable: int
    n_responders: int
    n_stable_responders: int

    @staticmethod
    def _share(stable: int, total: int) -> float | None:
        return stable / total if total else None

    @property
    def share(self) -> float | None:
        """Share of stable patients (0 to 1)."""
        return self._share(self.n_stable, self.n)

    @property
    def share_responders(self) -> float | None:
        """Share of stable patients among responders (CR/PR)."""
        return self._share(self.n_stable_responders, self.n_responders)

    @property
    def share_non_responders(self) -> float | None:
        """Share of stable patients among non-responders (SD/PD)."""
        return self._share(self.n_stable - self.n_stable_responders, self.n - self.n_responders)


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything computed for one model, with the data the report plots."""

    name: str
    n: int
    n_excluded: int
    n_responders: int
    auc: AucEstimate
    metrics: ThresholdMetrics
    calibration: Calibration
    calibration_curve: CalibrationCurve
    roc: RocCurve
    survival: SurvivalEvaluation | None
    survival_note: str | None
    subgroups: tuple[SubgroupAuc, ...]
    patient_ids: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    response: np.ndarray
    stability: OutlineStability | None = None


@dataclass(frozen=True)
class ModelComparison:
    """Paired DeLong test of two models on the patients both scored; ``test`` None if impossible."""

    a: str
    b: str
    n: int
    test: PairedDelongTest | None


@dataclass(frozen=True)
class Evaluation:
    """The whole evaluation of a predictions file."""

    source: Path
    models: tuple[ModelEvaluation, ...]
    comparisons: tuple[ModelComparison, ...]
    decision: DecisionCurves | None
    baseline: BaselineTable | None
    has_survival: bool
    subgroup_columns: tuple[str, ...]
    notes: tuple[str, ...]
    # Per model, where the weights behind its probabilities came from (or that the file does not say).
    weights: tuple[str, ...] = ()
