"""Tiny generated training sets and the weight bundles trained on them, for the model tests.

Not a cohort simulator: just enough signal (a few features shifted in
responders, lines of therapy tied to response) for the fitting code to have
something to find, generated in milliseconds.

Training needs torch, which Slicer's Python 3.12 (and CI's venv that stands in for it) does not
have: ``abcir.training`` is imported only when a bundle is fitted, and a test that needs one is
skipped there with the reason, while the module's other tests still run.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pytest
from abcir.bundle import Cutoff, TrainingData
from abcir.features import feature_names
from abcir.models import RadiomicsPreprocessing

if TYPE_CHECKING:
    from abcir.training import MLPSettings
    from abcir.training.export import ModelFit

NO_TORCH = "training a bundle needs torch (pip install 'abcir[train]'); not installed here, as in Slicer's Python"


def training() -> ModuleType:
    """``abcir.training``, or skip the calling test when torch is not installed."""
    pytest.importorskip("torch", reason=NO_TORCH)
    import abcir.training

    return abcir.training


def fast_settings() -> MLPSettings:
    """Fewer epochs than the defaults: the tests check mechanics, not model quality."""
    return training().MLPSettings(max_epochs=200, patience=20)

INFORMATIVE = (3, 40, 400, 900)  # columns shifted in responders
FIXED_CUTOFF = Cutoff(0.0, "fixed at 0 for the test")


def tiny_cohort(n: int = 90, seed: int = 0, center: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radiomics n x 1130, clinical n x 4, labels n) with signal in ``INFORMATIVE`` and in lines of therapy.

    With ``center`` (a real patient's vector) each feature varies by 20% around
    it, so that patient lies inside the training distribution; without, the
    features are standard normal.
    """
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    labels[:2], labels[2:4] = 1, 0
    noise = rng.normal(size=(n, len(feature_names())))
    if center is None:
        radiomics = noise
        radiomics[:, INFORMATIVE] += 1.5 * labels[:, None]
    else:
        scale = 0.2 * np.abs(center) + 1e-3
        radiomics = center + scale * noise
        radiomics[:, INFORMATIVE] += 1.5 * scale[list(INFORMATIVE)] * labels[:, None]
    clinical = (rng.random((n, 4)) < 0.5).astype(float)
    flip = rng.random(n) < 0.75
    clinical[flip, 0] = 1 - labels[flip]  # responders mostly had one prior line (paper: OR 0.35 for >= 2)
    return radiomics, clinical, labels


@cache
def tiny_preprocessing() -> RadiomicsPreprocessing:
    """Preprocessing selecting 20 features, for networks with hand-made weights."""
    radiomics, _, labels = tiny_cohort()
    return training().fit_preprocessing(radiomics, labels, feature_names(), "volume_weighted_mean")


def tiny_fit(kind: str, seed: int = 0, center: np.ndarray | None = None) -> ModelFit:
    """A fit of ``kind`` on ``tiny_cohort`` (cached when there is no ``center``: tests only read fits)."""
    if center is None:
        return _cached_fit(kind, seed)
    return _fit(kind, seed, center)


@cache
def _cached_fit(kind: str, seed: int) -> ModelFit:
    return _fit(kind, seed, None)


def _fit(kind: str, seed: int, center: np.ndarray | None) -> ModelFit:
    radiomics, clinical, labels = tiny_cohort(seed=seed, center=center)
    if kind == "clinical":
        return training().fit_clinical(clinical, labels)
    return training().fit_mlp(kind, radiomics, labels, clinical=clinical if kind == "combined" else None,
                              settings=fast_settings())


def tiny_training_data(seed: int = 0) -> TrainingData:
    labels = tiny_cohort(seed=seed)[2]
    return TrainingData(source="synthetic", site="tiny test set", n=labels.size, responders=int(labels.sum()))


def tiny_bundle(path: Path, kind: str, seed: int = 0, center: np.ndarray | None = None,
                cutoff: Cutoff = FIXED_CUTOFF, fit: ModelFit | None = None, **kwargs) -> Path:
    """Train (unless ``fit`` is given) and save a bundle of ``kind`` at ``path``."""
    fit = fit or tiny_fit(kind, seed, center)
    return training().save_bundle(path, fit, name=f"tiny-{kind}", training_data=tiny_training_data(seed),
                                  cutoff=cutoff, **kwargs)
