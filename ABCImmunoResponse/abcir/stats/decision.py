"""Decision curve analysis and clinical impact curves (paper Figure 3H-J).

The paper drew both with R's rmda.  Net benefit at a threshold probability
``pt`` is ``TP/n - FP/n * pt / (1 - pt)`` with "treat" meaning predicted
probability >= ``pt``; treat-all uses every patient, treat-none has net
benefit 0.  The numbers come from the ``dcurves`` package (Memorial Sloan
Kettering's Python port of the R/Stata dca, tested against their output).

The clinical impact curve (Kerr et al.; rmda ``plot_clinical_impact``) shows,
out of 1000 patients, how many a model would call responders at each
threshold and how many of those truly respond: ``1000 x test-positive rate``
and ``1000 x true-positive rate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from dcurves import dca

#: Threshold probabilities at which curves are evaluated: 1% to 99% in 1% steps.
DEFAULT_THRESHOLDS = np.round(np.arange(0.01, 1.0, 0.01), 2)

#: Population size of the clinical impact curve, as rmda's default.
IMPACT_POPULATION = 1000


@dataclass(frozen=True)
class DecisionCurves:
    """Net benefit and clinical impact per model on one set of patients."""

    thresholds: np.ndarray
    n: int
    prevalence: float
    net_benefit: dict[str, np.ndarray]
    treat_all: np.ndarray
    treat_none: np.ndarray
    high_risk_per_1000: dict[str, np.ndarray]
    true_positive_per_1000: dict[str, np.ndarray]


def decision_curves(
    response: np.ndarray,
    probabilities: Mapping[str, np.ndarray],
    thresholds: np.ndarray = DEFAULT_THRESHOLDS,
) -> DecisionCurves:
    """Decision curves of each model's response probability for the 0/1 ``response``.

    All models must be scored on the same patients, so that treat-all and the
    prevalence are shared. Net benefit as R's rmda/dca (via ``dcurves.dca``);
    clinical impact as rmda's ``plot_clinical_impact``.

    Parameters
    ----------
    response : numpy.ndarray
        Observed response per patient, 1 responder and 0 non-responder.
    probabilities : mapping of str to numpy.ndarray
        Model name -> predicted probability of response (0 to 1) per patient,
        in the order of ``response``.
    thresholds : numpy.ndarray, optional
        Threshold probabilities (0 to 1, exclusive) at which curves are
        evaluated; default 0.01 to 0.99 in steps of 0.01.

    Returns
    -------
    DecisionCurves
        Per threshold: each model's net benefit, treat-all and treat-none net
        benefit, and per 1000 patients the number a model calls high-risk and the
        number of those who truly respond; with the patient count and prevalence.
    """
    y = np.asarray(response, dtype=int)
    # dcurves adds columns named "all" and "none"; neutral names avoid clashing with a model.
    columns = {name: f"model_{index}" for index, name in enumerate(probabilities)}
    frame = pd.DataFrame({"response": y})
    for name, column in columns.items():
        frame[column] = np.asarray(probabilities[name], dtype=float)
    table = dca(
        data=frame,
        outcome="response",
        modelnames=list(columns.values()),
        thresholds=list(np.asarray(thresholds, dtype=float)),
    )

    def curve(model: str, quantity: str) -> np.ndarray:
        rows = table[table["model"] == model].sort_values("threshold")
        return rows[quantity].to_numpy(dtype=float)

    return DecisionCurves(
        thresholds=np.asarray(thresholds, dtype=float),
        n=int(y.size),
        prevalence=float(y.mean()),
        net_benefit={name: curve(column, "net_benefit") for name, column in columns.items()},
        treat_all=curve("all", "net_benefit"),
        treat_none=curve("none", "net_benefit"),
        high_risk_per_1000={
            name: IMPACT_POPULATION * curve(column, "test_pos_rate")
            for name, column in columns.items()
        },
        true_positive_per_1000={
            name: IMPACT_POPULATION * curve(column, "tp_rate") for name, column in columns.items()
        },
    )
