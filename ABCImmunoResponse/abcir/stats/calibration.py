"""Calibration of predicted response probabilities, as ``rms::val.prob``.

The paper shows calibration curves (Figure 3G) made with rms.  ``val.prob``
summarises calibration by a logistic recalibration ``logit(P(y = 1)) = a + b
logit(p)``: the intercept ``a`` (0 when calibrated) and slope ``b`` (1 when
calibrated; < 1 means over-confident predictions), and by the Brier score
``mean((p - y)^2)``.  Following val.prob:

* predictions of exactly 0 or 1 (infinite logit) are left out of the
  logistic fit but kept in the Brier score;
* when every prediction is the same, the intercept is ``logit(mean(y))`` and
  the slope 0;
* when the outcome is perfectly separated by the logit the maximum
  likelihood fit does not exist; val.prob then reports whatever its iterations
  stopped at, this module reports ``None`` and says why.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import statsmodels.api as sm
from scipy.special import logit as logit_of
from statsmodels.nonparametric.smoothers_lowess import lowess
from statsmodels.tools.sm_exceptions import (
    PerfectSeparationError,
    PerfectSeparationWarning,
)


@dataclass(frozen=True)
class Calibration:
    """val.prob's intercept, slope and Brier score; ``note`` explains a missing fit."""

    intercept: float | None
    slope: float | None
    brier: float
    n: int
    note: str | None = None


@dataclass(frozen=True)
class CalibrationCurve:
    """Curves for a calibration plot: probabilities on both axes, 0 to 1."""

    predicted: np.ndarray
    logistic: np.ndarray | None
    smooth_predicted: np.ndarray
    smooth_observed: np.ndarray


def _separated(logits: np.ndarray, y: np.ndarray) -> bool:
    """True when a single threshold on the logit classifies every patient correctly."""
    cases = logits[y == 1]
    controls = logits[y == 0]
    if cases.size == 0 or controls.size == 0:
        return True
    return bool(cases.min() >= controls.max() or cases.max() <= controls.min())


def val_prob(probability: np.ndarray, response: np.ndarray) -> Calibration:
    """Calibration intercept, slope and Brier score of probabilities for 0/1 responses.

    As R's ``rms::val.prob``: a logistic fit of the response on logit(p) gives
    the intercept and slope.

    Parameters
    ----------
    probability : numpy.ndarray
        Predicted probability of response per patient, 0 to 1. Values of exactly
        0 or 1 are left out of the logistic fit but kept in the Brier score.
    response : numpy.ndarray
        Observed response per patient, 1 responder and 0 non-responder, same order.

    Returns
    -------
    Calibration
        Intercept (0 when calibrated), slope (1 when calibrated), Brier score and
        number of patients. When every probability is the same the intercept is
        logit(mean response) and the slope 0; when the outcome is (quasi-)
        perfectly separated, intercept and slope are None and ``note`` says why.
    """
    p = np.asarray(probability, dtype=float)
    y = np.asarray(response, dtype=float)
    brier = float(np.mean((p - y) ** 2))
    with np.errstate(divide="ignore"):
        logits = logit_of(p)
    if np.unique(p).size == 1:
        with np.errstate(divide="ignore"):
            intercept = float(logit_of(np.mean(y)))
        return Calibration(intercept, 0.0, brier, int(y.size))
    finite = np.isfinite(logits)
    logits = logits[finite]
    y_fit = y[finite]
    if _separated(logits, y_fit):
        return Calibration(
            None, None, brier, int(y.size),
            note="The scores separate responders from non-responders perfectly, so the "
                 "logistic calibration intercept and slope do not exist.",
        )
    design = sm.add_constant(logits, has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            fit = sm.Logit(y_fit, design).fit(disp=0, method="newton", tol=1e-12, maxiter=100)
        except (PerfectSeparationError, PerfectSeparationWarning):
            return Calibration(
                None, None, brier, int(y.size),
                note="Quasi-complete separation: the logistic calibration fit does not converge.",
            )
    intercept, slope = (float(v) for v in fit.params)
    return Calibration(intercept, slope, brier, int(y.size))


def calibration_curve(probability: np.ndarray, response: np.ndarray,
                      calibration: Calibration) -> CalibrationCurve:
    """Logistic recalibration curve and lowess smooth (val.prob's ``lowess(p, y, iter = 0)``).

    Parameters
    ----------
    probability : numpy.ndarray
        Predicted probability of response per patient, 0 to 1.
    response : numpy.ndarray
        Observed response per patient, 1 or 0, same order.
    calibration : Calibration
        The ``val_prob`` result for the same patients; its intercept and slope
        draw the logistic curve.

    Returns
    -------
    CalibrationCurve
        200 predicted probabilities from 0.001 to 0.999 with the logistic
        recalibration curve on them (None when ``calibration`` has no fit), and
        the lowess smooth (span 2/3) of observed response against prediction,
        clipped to 0-1.
    """
    p = np.asarray(probability, dtype=float)
    y = np.asarray(response, dtype=float)
    grid = np.linspace(0.001, 0.999, 200)
    logistic = None
    if calibration.intercept is not None and calibration.slope is not None:
        logistic = 1 / (1 + np.exp(-(calibration.intercept + calibration.slope * logit_of(grid))))
    smooth = lowess(y, p, frac=2 / 3, it=0, return_sorted=True)
    return CalibrationCurve(
        predicted=grid,
        logistic=logistic,
        smooth_predicted=smooth[:, 0],
        smooth_observed=np.clip(smooth[:, 1], 0.0, 1.0),
    )
