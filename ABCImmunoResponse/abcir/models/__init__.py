"""The three response models, inference in numpy (training, in torch, is in ``abcir.training``).

``clinical``: logistic regression on the four clinical facts; ``radiomics``:
an MLP on the radiomics vector; ``combined``: the MLP with the clinical vector
entering at its fourth layer (paper, Figure 2). Each returns the log-odds of
response (CR/PR vs SD/PD by RECIST 1.1).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..options import MODEL_KINDS
from .clinical import LogisticArchitecture, LogisticModel
from .mlp import MLPArchitecture, MLPModel
from .preprocessing import FeatureSelection, RadiomicsPreprocessing

__all__ = ["MODEL_KINDS", "FeatureSelection", "LogisticArchitecture", "LogisticModel", "MLPArchitecture",
           "MLPModel", "RadiomicsPreprocessing", "ResponseModel", "build_model", "sigmoid"]


class ResponseModel(Protocol):
    """What prediction needs of a model: its kind and a score (log-odds) per patient."""

    kind: str

    def score(self, radiomics: np.ndarray | None, clinical: np.ndarray | None) -> np.ndarray:
        """Log-odds of response per row: raw radiomics vectors and/or 0/1 clinical vectors, as the kind needs."""
        ...


def sigmoid(score: np.ndarray | float) -> np.ndarray:
    """Probability from log-odds, without overflow for large |score|.

    Parameters
    ----------
    score : np.ndarray or float
        Log-odds of response (any shape).

    Returns
    -------
    np.ndarray
        1 / (1 + exp(-score)) in [0, 1], float64, same shape (0-d for a float).
    """
    score = np.asarray(score, dtype=np.float64)
    positive = score >= 0
    exp = np.exp(-np.abs(score))
    return np.where(positive, 1.0 / (1.0 + exp), exp / (1.0 + exp))


def build_model(architecture: MLPArchitecture | LogisticArchitecture, preprocessing: RadiomicsPreprocessing | None,
                tensors: dict[str, np.ndarray], feature_names: tuple[str, ...] | None) -> ResponseModel:
    """The numpy model for an architecture and its tensors (a bundle's, or a fresh fit's).

    Parameters
    ----------
    architecture : MLPArchitecture or LogisticArchitecture
        The model's layout; a logistic one makes the clinical model.
    preprocessing : RadiomicsPreprocessing or None
        Selected features and their training means and SDs (MLP only; None for logistic).
    tensors : dict of str to np.ndarray
        The weights by name, of the shapes ``architecture.tensor_shapes()`` gives.
    feature_names : tuple of str or None
        The columns of the raw radiomics vector (MLP only; None for logistic).

    Returns
    -------
    ResponseModel
        A ``LogisticModel`` or an ``MLPModel`` giving log-odds of response.

    Raises
    ------
    KeyError
        A tensor the architecture needs is missing (bundles are checked before this).
    """
    if isinstance(architecture, LogisticArchitecture):
        return LogisticModel(architecture, tensors)
    return MLPModel(architecture, preprocessing, tensors, feature_names)
