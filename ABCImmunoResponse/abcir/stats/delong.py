"""Area under the ROC curve with DeLong's variance, as R's pROC computes it.

The paper reports every AUC with a 95% CI from pROC (``ci.auc(method =
"delong")``) and compares models with DeLong's test for correlated ROC curves
(``roc.test(method = "delong", paired = TRUE)``).  Python has no maintained
package for either, so this module re-implements pROC's formulas:

* placements (DeLong, DeLong & Clarke-Pearson 1988): for each case the share of
  controls it outranks, for each control the share of cases that outrank it,
  a tie counting one half;
* AUC = mean case placement; variance = var(case placements)/m +
  var(control placements)/n with sample (n - 1) variances;
* CI = qnorm((1 -/+ level)/2, AUC, sqrt(variance)), clipped to [0, 1]
  (``pROC:::ci.auc.delong``), and no CI when there is one case or one control;
* paired test: z = (AUC_a - AUC_b) / sqrt(L S L') with S the 2 x 2 placement
  covariance, two-sided p = 2 pnorm(-|z|), z = 0 when both difference and
  standard error are 0 (``pROC:::delong.paired.test``).

Cases are responders (label 1), controls non-responders (label 0), and a higher
score means more likely to respond: pROC's ``direction = "<"``.  The direction
is never chosen from the data, so an AUC below 0.5 stays below 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from abcir.errors import InputError


@dataclass(frozen=True)
class Placements:
    """DeLong placement values of one score vector against one labelling."""

    auc: float
    cases: np.ndarray
    controls: np.ndarray


@dataclass(frozen=True)
class AucEstimate:
    """AUC with its DeLong variance and confidence interval.

    ``ci_low``/``ci_high`` are ``None`` when pROC returns ``NA``: with fewer
    than two cases or two controls the sample variances are undefined.
    """

    auc: float
    variance: float | None
    ci_low: float | None
    ci_high: float | None
    n_cases: int
    n_controls: int
    conf_level: float


@dataclass(frozen=True)
class PairedDelongTest:
    """DeLong's test of two AUCs measured on the same patients."""

    auc_a: float
    auc_b: float
    z: float
    p_value: float
    n: int


def _split(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (case scores, control scores) after checking both classes exist."""
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError("scores and labels must be 1-D arrays of the same length")
    if not np.all(np.isfinite(scores)):
        raise InputError("Scores contain missing or infinite values; drop those rows first.")
    if not np.all(np.isin(labels, (0, 1))):
        raise InputError("Labels must be 0 (non-responder) or 1 (responder).")
    cases = scores[labels == 1]
    controls = scores[labels == 0]
    if cases.size == 0 or controls.size == 0:
        raise InputError(
            f"An AUC needs responders and non-responders; got {cases.size} responder(s) "
            f"and {controls.size} non-responder(s)."
        )
    return cases, controls


def delong_placements(scores: np.ndarray, labels: np.ndarray) -> Placements:
    """Placement values of cases and controls (pROC ``delongPlacements``).

    Computed by binary search on the sorted opposite class, so the cost is
    O(n log n) instead of pROC's O(m n) loop; the values are the same counts.

    Parameters
    ----------
    scores : numpy.ndarray
        1-D model score per patient, higher = more likely to respond (any
        monotone transform of the predicted probability); all finite.
    labels : numpy.ndarray
        1 (responder, case) or 0 (non-responder, control) per patient, same length.

    Returns
    -------
    Placements
        The AUC (mean case placement), each case's share of controls it
        outranks and each control's share of cases that outrank it, ties 1/2.

    Raises
    ------
    ValueError
        If ``scores`` and ``labels`` are not 1-D arrays of the same length.
    InputError
        If a score is NaN or infinite, a label is not 0 or 1, or there is no
        responder or no non-responder.
    """
    cases, controls = _split(scores, labels)
    sorted_controls = np.sort(controls)
    sorted_cases = np.sort(cases)
    below = np.searchsorted(sorted_controls, cases, side="left")
    tied = np.searchsorted(sorted_controls, cases, side="right") - below
    case_placements = (below + 0.5 * tied) / controls.size
    not_above = np.searchsorted(sorted_cases, controls, side="right")
    tied_c = not_above - np.searchsorted(sorted_cases, controls, side="left")
    control_placements = (cases.size - not_above + 0.5 * tied_c) / cases.size
    return Placements(
        auc=float(np.mean(case_placements)),
        cases=case_placements,
        controls=control_placements,
    )


def delong_auc(scores: np.ndarray, labels: np.ndarray, conf_level: float = 0.95) -> AucEstimate:
    """AUC and DeLong CI of ``scores`` for the 0/1 ``labels`` (pROC ``ci.auc``).

    ``scores`` are any monotone transform of the predicted probability of
    response (log-odds or probability give the same AUC). Matches
    ``pROC::ci.auc(roc(labels, scores, direction = "<"), method = "delong")``.

    Parameters
    ----------
    scores : numpy.ndarray
        1-D score per patient, higher = more likely to respond; all finite.
    labels : numpy.ndarray
        1 (responder) or 0 (non-responder) per patient, same length.
    conf_level : float, optional
        Level of the two-sided confidence interval (default 0.95).

    Returns
    -------
    AucEstimate
        AUC, DeLong variance and CI clipped to [0, 1], with the numbers of cases
        and controls. Variance and CI are None (pROC's NA) when there are fewer
        than two responders or two non-responders.

    Raises
    ------
    ValueError
        If ``scores`` and ``labels`` are not 1-D arrays of the same length.
    InputError
        If a score is NaN or infinite, a label is not 0 or 1, or one class is absent.
    """
    placements = delong_placements(scores, labels)
    m = placements.cases.size
    n = placements.controls.size
    if m <= 1 or n <= 1:
        return AucEstimate(placements.auc, None, None, None, m, n, conf_level)
    variance = float(
        np.var(placements.cases, ddof=1) / m + np.var(placements.controls, ddof=1) / n
    )
    alpha = 1.0 - conf_level
    # qnorm(p, mean, sd = 0) is the mean in R; scipy would return NaN.
    half_width = norm.ppf(1 - alpha / 2) * np.sqrt(variance)
    low, high = placements.auc - half_width, placements.auc + half_width
    return AucEstimate(
        auc=placements.auc,
        variance=variance,
        ci_low=float(min(max(low, 0.0), 1.0)),
        ci_high=float(min(max(high, 0.0), 1.0)),
        n_cases=m,
        n_controls=n,
        conf_level=conf_level,
    )


def delong_paired_test(
    scores_a: np.ndarray, scores_b: np.ndarray, labels: np.ndarray
) -> PairedDelongTest:
    """Two-sided DeLong test that two models have the same AUC on the same patients.

    Matches ``pROC::roc.test(method = "delong", paired = TRUE)``
    (``pROC:::delong.paired.test``).

    Parameters
    ----------
    scores_a, scores_b : numpy.ndarray
        1-D scores of model A and model B per patient, higher = more likely to
        respond; all finite, same patients in the same order.
    labels : numpy.ndarray
        1 (responder) or 0 (non-responder) per patient.

    Returns
    -------
    PairedDelongTest
        Both AUCs, z = (AUC_a - AUC_b) / SE, the two-sided p-value and the number
        of patients. z is 0 when difference and SE are both 0, and +-inf when
        only the SE is 0.

    Raises
    ------
    ValueError
        If a score vector and ``labels`` are not 1-D arrays of the same length.
    InputError
        If a score is NaN or infinite, a label is not 0 or 1, or there are fewer
        than two responders or two non-responders.
    """
    a = delong_placements(scores_a, labels)
    b = delong_placements(scores_b, labels)
    m = a.cases.size
    n = a.controls.size
    if m <= 1 or n <= 1:
        raise InputError(
            "DeLong's test needs at least two responders and two non-responders; "
            f"got {m} and {n}."
        )
    dx = np.vstack([a.cases - a.auc, b.cases - b.auc])
    dy = np.vstack([a.controls - a.auc, b.controls - b.auc])
    covariance = (dx @ dx.T) / (m - 1) / m + (dy @ dy.T) / (n - 1) / n
    contrast = np.array([1.0, -1.0])
    sigma = float(np.sqrt(contrast @ covariance @ contrast))
    difference = a.auc - b.auc
    if sigma == 0.0:
        z = 0.0 if difference == 0.0 else float(np.copysign(np.inf, difference))
    else:
        z = difference / sigma
    return PairedDelongTest(
        auc_a=a.auc, auc_b=b.auc, z=z, p_value=float(2 * norm.cdf(-abs(z))), n=m + n
    )
