"""ROC curve coordinates and the fixed-threshold metrics of the paper's Table 2.

Table 2 reports SEN, SPE, ACC, PPV and NPV of each model with a patient called
a responder when the model's predicted probability is at least 0.5 (the
decision rule of a logistic or softmax output).  The ROC curve itself is drawn
from every distinct score, ties moving sensitivity and specificity together
(pROC's empirical curve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Probability at or above which a patient is predicted to respond (Table 2).
RESPONDER_PROBABILITY_THRESHOLD = 0.5


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC curve, from (0, 0) to (1, 1), one point per distinct score."""

    false_positive_rate: np.ndarray
    true_positive_rate: np.ndarray


@dataclass(frozen=True)
class ThresholdMetrics:
    """Confusion-matrix summaries at one probability threshold.

    A ratio whose denominator is zero (for example PPV when nobody is
    predicted to respond) is ``None`` rather than a made-up 0.
    """

    threshold_probability: float
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    sensitivity: float | None
    specificity: float | None
    accuracy: float | None
    ppv: float | None
    npv: float | None


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> RocCurve:
    """ROC curve of ``scores`` (higher = more likely responder) for 0/1 ``labels``.

    The empirical curve of pROC's ``roc(labels, scores, direction = "<")``.

    Parameters
    ----------
    scores : numpy.ndarray
        Score per patient, higher = more likely to respond.
    labels : numpy.ndarray
        1 (responder) or 0 (non-responder) per patient, same order.

    Returns
    -------
    RocCurve
        False- and true-positive rates from (0, 0) to (1, 1), one point per
        distinct score. With no responders (or no non-responders) the
        corresponding rate stays 0.
    """
    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=int)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    sorted_labels = labels[order]
    # Only the last index of a run of tied scores is a cut point.
    last_of_run = np.r_[np.diff(sorted_scores) != 0, True]
    tp = np.cumsum(sorted_labels == 1)[last_of_run]
    fp = np.cumsum(sorted_labels == 0)[last_of_run]
    n_cases = max(int(np.sum(labels == 1)), 1)
    n_controls = max(int(np.sum(labels == 0)), 1)
    return RocCurve(
        false_positive_rate=np.r_[0.0, fp / n_controls],
        true_positive_rate=np.r_[0.0, tp / n_cases],
    )


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def threshold_metrics(
    probabilities: np.ndarray,
    labels: np.ndarray,
    threshold: float = RESPONDER_PROBABILITY_THRESHOLD,
) -> ThresholdMetrics:
    """SEN, SPE, ACC, PPV, NPV with "responder" meaning probability >= ``threshold``.

    Parameters
    ----------
    probabilities : numpy.ndarray
        Predicted probability of response per patient, 0 to 1.
    labels : numpy.ndarray
        1 (responder) or 0 (non-responder) per patient, same order.
    threshold : float, optional
        Probability at or above which a patient is called a responder
        (default 0.5, as the paper's Table 2).

    Returns
    -------
    ThresholdMetrics
        The four confusion-matrix counts and the five ratios; a ratio whose
        denominator is 0 is None.
    """
    predicted = np.asarray(probabilities, dtype=float) >= threshold
    actual = np.asarray(labels, dtype=int) == 1
    tp = int(np.sum(predicted & actual))
    fp = int(np.sum(predicted & ~actual))
    tn = int(np.sum(~predicted & ~actual))
    fn = int(np.sum(~predicted & actual))
    return ThresholdMetrics(
        threshold_probability=threshold,
        true_positives=tp,
        false_positives=fp,
        true_negatives=tn,
        false_negatives=fn,
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        accuracy=_ratio(tp + tn, tp + tn + fp + fn),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
    )
