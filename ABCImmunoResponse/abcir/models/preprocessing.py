"""From a patient's 1130-feature radiomics vector to a model's standardised inputs.

Everything here was fitted on the training data only (``abcir.training``) and
travels in the weight bundle's manifest: which lesion aggregation made the
patient vector, which features the model reads, and their training means and
standard deviations. Applying it needs numpy alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class FeatureSelection:
    """How the model's features were chosen from the extractor's list, on training data.

    Features with a non-finite value in any training patient, or whose most
    common value covers more than ``max_mode_fraction`` of the patients, are
    dropped; the rest are ranked by univariate AUC distance from 0.5, and taken
    in that order, skipping any whose absolute Spearman correlation with one
    already taken exceeds ``max_correlation``, until ``top_k`` are taken.
    """

    method: str
    top_k: int
    max_correlation: float
    max_mode_fraction: float
    n_candidates: int
    n_nonfinite: int
    n_near_constant: int
    n_correlated_skipped: int
    univariate_auc: tuple[float, ...]


@dataclass(frozen=True)
class RadiomicsPreprocessing:
    """Aggregation, selected features (model input order), and their training means and SDs (ddof 0)."""

    aggregation: str
    selected: tuple[str, ...]
    means: tuple[float, ...]
    sds: tuple[float, ...]
    selection: FeatureSelection

    def columns(self, feature_names: Sequence[str]) -> np.ndarray:
        """Positions of the selected features in a vector ordered as ``feature_names``."""
        position = {name: index for index, name in enumerate(feature_names)}
        missing = [name for name in self.selected if name not in position]
        if missing:
            raise InputError(f"Preprocessing: selected features {missing[:3]} are not in the feature list; "
                             "the weights were trained on other features.")
        return np.array([position[name] for name in self.selected], dtype=np.intp)

    def transform(self, radiomics: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """z-scores of the selected features, rows = patients; non-finite inputs are an error."""
        values = np.atleast_2d(np.asarray(radiomics, dtype=np.float64))[:, columns]
        bad = ~np.isfinite(values)
        if bad.any():
            names = [self.selected[i] for i in np.flatnonzero(bad.any(axis=0))]
            raise InputError(f"Radiomics: {len(names)} model input feature(s) are not finite ({', '.join(names[:3])}); "
                             "pyradiomics could not compute them for these lesions. Check the segmentation.")
        return (values - np.asarray(self.means)) / np.asarray(self.sds)
