"""The clinical model: logistic regression on the four binary clinical facts.

Paper, Results "Clinical characteristics": lines of previous therapy and
tumour metastatic burden were significant in multivariable logistic
regression, and with visceral metastasis and molecular subtype they make the
clinical model. Its score is the linear predictor, the log-odds of response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class LogisticArchitecture:
    """A logistic regression on ``inputs`` (clinical facts in ``CLINICAL_ENCODING`` order, coded 0/1)."""

    inputs: tuple[str, ...]

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor the weights file must hold, with its shape."""
        return {"coef": (len(self.inputs),), "intercept": (1,)}


class LogisticModel:
    """Clinical vector in, log-odds of response out: ``intercept + coef . x``."""

    kind = "clinical"

    def __init__(self, architecture: LogisticArchitecture, tensors: dict[str, np.ndarray]):
        self.architecture = architecture
        self.coef = np.asarray(tensors["coef"], dtype=np.float64)
        self.intercept = float(np.asarray(tensors["intercept"], dtype=np.float64)[0])

    def score(self, radiomics: np.ndarray | None, clinical: np.ndarray | None) -> np.ndarray:
        """Log-odds for each row of 0/1 clinical vectors; the radiomics vector is not used."""
        if clinical is None:
            raise InputError("The clinical model needs the four clinical facts (lines, sites, visceral, tnbc).")
        matrix = np.atleast_2d(np.asarray(clinical, dtype=np.float64))
        if matrix.shape[1] != self.coef.size:
            raise InputError(f"Clinical input has {matrix.shape[1]} values; the clinical model needs {self.coef.size}.")
        return self.intercept + matrix @ self.coef
