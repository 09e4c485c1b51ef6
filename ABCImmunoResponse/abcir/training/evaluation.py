"""Validation records for a bundle's manifest: AUC with DeLong CI and the Table 2 metrics."""

from __future__ import annotations

import numpy as np

from ..bundle import ValidationRecord
from ..errors import InputError
from ..models import sigmoid
from ..stats.delong import delong_auc
from ..stats.roc import RESPONDER_PROBABILITY_THRESHOLD, threshold_metrics


def check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """Response labels as 0/1 ints, refused unless there are ``n`` of them with two of each class."""
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.all(np.isin(labels, (0, 1))):
        raise InputError(f"Training labels: need {n} values of 0 (SD/PD) or 1 (CR/PR).")
    if labels.sum() < 2 or (labels == 0).sum() < 2:
        raise InputError(f"Training labels: {int(labels.sum())} responders and {int((labels == 0).sum())} "
                         "non-responders; a model needs at least two of each.")
    return labels.astype(int)


def validation_record(cohort: str, method: str, scores: np.ndarray, labels: np.ndarray) -> ValidationRecord:
    """Performance of log-odds ``scores`` against 0/1 ``labels`` on patients the weights were not fitted to."""
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
