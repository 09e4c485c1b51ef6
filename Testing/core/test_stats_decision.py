"""Net benefit and clinical impact, checked against the definitions by hand."""

from __future__ import annotations

import numpy as np
import pytest
from abcir.stats.decision import decision_curves

RESPONSE = np.array([1, 1, 0, 1, 0, 0, 0, 1, 0, 0])
PROBABILITY = np.array([0.9, 0.7, 0.6, 0.55, 0.4, 0.3, 0.3, 0.25, 0.2, 0.05])


def _net_benefit(p: np.ndarray, y: np.ndarray, threshold: float) -> float:
    treated = p >= threshold
    n = y.size
    return (np.sum(treated & (y == 1)) / n
            - np.sum(treated & (y == 0)) / n * threshold / (1 - threshold))


def test_net_benefit_treat_all_and_none_follow_the_definition() -> None:
    thresholds = np.array([0.1, 0.25, 0.3, 0.5, 0.8])
    curves = decision_curves(RESPONSE, {"m": PROBABILITY}, thresholds)
    expected = [_net_benefit(PROBABILITY, RESPONSE, t) for t in thresholds]
    np.testing.assert_allclose(curves.net_benefit["m"], expected, atol=1e-12)
    prevalence = RESPONSE.mean()
    np.testing.assert_allclose(curves.treat_all,
                               prevalence - (1 - prevalence) * thresholds / (1 - thresholds))
    np.testing.assert_array_equal(curves.treat_none, np.zeros(thresholds.size))
    assert curves.prevalence == pytest.approx(0.4) and curves.n == 10


def test_clinical_impact_counts_per_1000() -> None:
    thresholds = np.array([0.3, 0.6])
    curves = decision_curves(RESPONSE, {"m": PROBABILITY}, thresholds)
    # >= 0.3: 7 patients, 3 responders; >= 0.6: 3 patients, 2 responders.
    np.testing.assert_allclose(curves.high_risk_per_1000["m"], [700, 300])
    np.testing.assert_allclose(curves.true_positive_per_1000["m"], [300, 200])


def test_models_named_like_dcurves_reserved_columns_are_kept_apart() -> None:
    curves = decision_curves(RESPONSE, {"all": PROBABILITY, "none": 1 - PROBABILITY},
                             np.array([0.5]))
    assert curves.net_benefit["all"][0] == pytest.approx(_net_benefit(PROBABILITY, RESPONSE, 0.5))
    assert curves.treat_all[0] == pytest.approx(0.4 - 0.6)
