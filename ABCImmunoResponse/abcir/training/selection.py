"""Feature selection and standardisation, fitted on training patients only.

With about 1130 features and a few hundred patients at most, an MLP on all
features would learn the training set by heart. The selection is deliberately
simple and recorded in full (``FeatureSelection``): drop features that are not
finite or nearly constant, rank the rest by univariate AUC (how far from 0.5,
either direction), and walk down the ranking keeping a feature only when its
absolute Spearman correlation with every feature already kept is at most
``max_correlation`` (radiomics features come in highly correlated families:
the same statistic on several filters), until ``top_k`` are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from ..errors import InputError
from ..models.aggregation import AGGREGATIONS
from ..models.preprocessing import FeatureSelection, RadiomicsPreprocessing

SELECTION_METHOD = ("drop non-finite and near-constant features; rank by |univariate AUC - 0.5|; "
                    "keep greedily in rank order unless |Spearman rho| with a kept feature > max_correlation; "
                    "stop at top_k")


@dataclass(frozen=True)
class SelectionSettings:
    """Settings of the feature selection (see the module docstring for why these)."""

    top_k: int = 20
    max_correlation: float = 0.8
    max_mode_fraction: float = 0.9


def univariate_auc(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """AUC of each column as a score for label 1 (Mann-Whitney U / (n1 n0), ties counted one half).

    Parameters
    ----------
    values : np.ndarray
        Patients x features matrix, finite.
    labels : np.ndarray
        One response per patient, 1 = CR/PR, 0 = SD/PD; both classes present.

    Returns
    -------
    np.ndarray
        One AUC per column, in [0, 1]; below 0.5 when higher values go with label 0.
    """
    ranks = rankdata(values, axis=0)
    positive = labels == 1
    n1, n0 = int(positive.sum()), int((~positive).sum())
    return (ranks[positive].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _mode_fraction(column: np.ndarray) -> float:
    return float(np.unique(column, return_counts=True)[1].max() / column.size)


def fit_preprocessing(radiomics: np.ndarray, labels: np.ndarray, feature_names: Sequence[str], aggregation: str,
                      settings: SelectionSettings = SelectionSettings()) -> RadiomicsPreprocessing:
    """Select features and fit their means and SDs on these (training) patients only.

    Parameters
    ----------
    radiomics : np.ndarray
        Training patients x features matrix of aggregated feature values.
    labels : np.ndarray
        One response per patient, 1 = CR/PR, 0 = SD/PD.
    feature_names : sequence of str
        The names of ``radiomics``' columns.
    aggregation : str
        How lesions became the patient vector (one of ``AGGREGATIONS``), recorded.
    settings : SelectionSettings
        ``top_k``, ``max_correlation`` (absolute Spearman rho) and ``max_mode_fraction``.

    Returns
    -------
    RadiomicsPreprocessing
        The selected features in rank order, their means and SDs (population SD, in the features' units) and a
        record of the selection.

    Raises
    ------
    InputError
        When ``aggregation`` is unknown, the matrix does not match the labels and names, or every feature is
        non-finite or nearly constant.
    """
    if aggregation not in AGGREGATIONS:
        raise InputError(f"Aggregation '{aggregation}' is unknown; use one of {', '.join(AGGREGATIONS)}.")
    values = np.asarray(radiomics, dtype=np.float64)
    labels = np.asarray(labels)
    if values.ndim != 2 or values.shape != (labels.size, len(feature_names)):
        raise InputError(f"Feature selection: a {values.shape} matrix for {labels.size} labels and "
                         f"{len(feature_names)} feature names; rows are patients, columns the features.")
    finite = np.all(np.isfinite(values), axis=0)
    varied = np.array([finite[j] and _mode_fraction(values[:, j]) <= settings.max_mode_fraction
                       for j in range(values.shape[1])])
    candidates = np.flatnonzero(varied)
    if candidates.size == 0:
        raise InputError("Feature selection: every feature is non-finite or nearly constant in the training data.")
    auc = univariate_auc(values[:, candidates], labels)
    order = np.argsort(-np.abs(auc - 0.5), kind="stable")
    ranks = rankdata(values[:, candidates], axis=0)
    ranks = (ranks - ranks.mean(axis=0)) / ranks.std(axis=0)
    kept: list[int] = []  # positions in ``candidates``
    skipped = 0
    for position in order:
        if len(kept) == settings.top_k:
            break
        if kept and np.max(np.abs(ranks[:, kept].T @ ranks[:, position])) / len(labels) > settings.max_correlation:
            skipped += 1
            continue
        kept.append(int(position))
    columns = candidates[kept]
    selected = values[:, columns]
    return RadiomicsPreprocessing(
        aggregation=aggregation,
        selected=tuple(feature_names[j] for j in columns),
        means=tuple(float(v) for v in selected.mean(axis=0)),
        sds=tuple(float(v) for v in selected.std(axis=0)),
        selection=FeatureSelection(
            method=SELECTION_METHOD,
            top_k=settings.top_k,
            max_correlation=settings.max_correlation,
            max_mode_fraction=settings.max_mode_fraction,
            n_candidates=len(feature_names),
            n_nonfinite=int((~finite).sum()),
            n_near_constant=int((finite & ~varied).sum()),
            n_correlated_skipped=skipped,
            univariate_auc=tuple(float(auc[k]) for k in kept),
        ),
    )
