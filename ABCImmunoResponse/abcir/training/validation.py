"""Validation records for a bundle's manifest: AUC with DeLong CI and the Table 2 metrics."""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..models import sigmoid
from ..models.bundle import ValidationRecord
from ..stats.delong import delong_auc
from ..stats.roc import RESPONDER_PROBABILITY_THRESHOLD, threshold_metrics


def check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """Response labels as 0/1 ints, refused unless there are ``n`` of them with two of each class.

    Parameters
    ----------
    labels : np.ndarray
        One response per training patient: 1 = CR/PR, 0 = SD/PD (RECIST 1.1).
    n : int
        The number of patients (rows of the feature matrix).

    Returns
    -------
    np.ndarray
        ``labels`` as a 1-D int array.

    Raises
    ------
    InputError
        ``labels`` is not ``n`` values of 0 or 1, or has fewer than two responders
        or two non-responders (no model can be fitted).
    """
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.all(np.isin(labels, (0, 1))):
        raise InputError(f"Training labels: need {n} values of 0 (SD/PD) or 1 (CR/PR).")
    if labels.sum() < 2 or (labels == 0).sum() < 2:
        raise InputError(f"Training labels: {int(labels.sum())} responders and {int((labels == 0).sum())} "
                         "non-responders; a model needs at least two of each.")
    return labels.astype(int)


def validation_record(cohort: str, method: str, scores: np.ndarray, labels: np.ndarray) -> ValidationRecord:
    """Performance of log-odds ``scores`` against 0/1 ``labels`` on patients the weights were not fitted to.

    Parameters
    ----------
    cohort : str
        Which patients these are, as the manifest shows it (e.g. "validation split of site A").
    method : str
        How they were held out, as the manifest shows it.
    scores : np.ndarray
        The model's log-odds per patient.
    labels : np.ndarray
        The observed responses: 1 = CR/PR, 0 = SD/PD; both classes present.

    Returns
    -------
    ValidationRecord
        AUC with its DeLong 95% CI (``None`` where pROC gives none), and as
        ``metrics`` the log loss (nats per patient) and the Table 2 metrics
        (fractions in [0, 1]) at the responder probability threshold; a metric
        whose denominator is zero is left out.

    Raises
    ------
    InputError
        A score is not finite, a label is not 0 or 1, or one class is absent
        (from :func:`abcir.stats.delong.delong_auc`).
    ValueError
        ``scores`` and ``labels`` are not 1-D arrays of one length.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=int)
    estimate = delong_auc(scores, labels)
    # Binary cross-entropy from the logits, without overflow: -log sigmoid(+-s) = log(1 + exp(-+s)).
    log_loss = np.mean(np.where(labels == 1, np.logaddexp(0.0, -scores), np.logaddexp(0.0, scores)))
    at_half = threshold_metrics(sigmoid(scores), labels)
    metrics = {"log_loss": float(log_loss), "threshold_probability": RESPONDER_PROBABILITY_THRESHOLD}
    for name in ("sensitivity", "specificity", "accuracy", "ppv", "npv"):
        value = getattr(at_half, name)
        if value is not None:
            metrics[name] = float(value)
    ci = None if estimate.ci_low is None else (estimate.ci_low, estimate.ci_high)
    return ValidationRecord(cohort=cohort, method=method, n=int(labels.size), responders=int(labels.sum()),
                            auc=float(estimate.auc), auc_ci=ci, metrics=metrics)
