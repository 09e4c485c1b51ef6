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

    def score(self, radiomics: np.ndarray | None, clinical: np.ndarray | None) -> np.ndarray: ...


def sigmoid(score: np.ndarray | float) -> np.ndarray:
    """Probability from log-odds, without overflow for large |score|."""
    score = np.asarray(score, dtype=np.float64)
    positive = score >= 0
    exp = np.exp(-np.abs(score))
    return np.where(positive, 1.0 / (1.0 + exp), exp / (1.0 + exp))


def build_model(architecture: MLPArchitecture | LogisticArchitecture, preprocessing: RadiomicsPreprocessing | None,
                tensors: dict[str, np.ndarray], feature_names: tuple[str, ...] | None) -> ResponseModel:
    """The numpy model for an architecture and its tensors (a bundle's, or a fresh fit's)."""
    if isinstance(architecture, LogisticArchitecture):
        return LogisticModel(architecture, tensors)
    return MLPModel(architecture, preprocessing, tensors, feature_names)
