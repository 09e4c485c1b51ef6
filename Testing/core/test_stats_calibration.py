"""Calibration intercept, slope and Brier score against rms 6.5 val.prob (make_reference.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.stats.calibration import calibration_curve, val_prob

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stats"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
CASES = [(d, m) for d in ("cohort", "ties", "tiny") for m in REFERENCE[d]["models"]]


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_val_prob_intercept_slope_brier(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]["calibration"]
    frame = pd.read_csv(FIXTURES / f"{dataset}.csv", keep_default_na=False, na_values=[""])
    probability = f"{model}_probability"
    needed = ["response", f"{model}_score"] + ([probability] if probability in frame else [])
    frame = frame.dropna(subset=needed)
    p = (frame[probability].to_numpy(float) if probability in frame
         else 1 / (1 + np.exp(-frame[f"{model}_score"].to_numpy(float))))
    result = val_prob(p, frame["response"].to_numpy(int))
    # The maximum likelihood estimate (R glm, tight tolerance) to 1e-9; val.prob's own
    # lrm.fit stops up to ~1e-6 short of it on small data.
    mle = REFERENCE[dataset]["models"][model]["calibration_mle"]
    assert result.intercept == pytest.approx(mle["intercept"], abs=1e-9)
    assert result.slope == pytest.approx(mle["slope"], abs=1e-9)
    assert result.intercept == pytest.approx(expected["intercept"], abs=1e-5)
    assert result.slope == pytest.approx(expected["slope"], abs=1e-5)
    assert result.brier == pytest.approx(expected["brier"], abs=1e-12)


def test_perfect_separation_has_no_fit_but_a_brier_score() -> None:
    result = val_prob(np.array([0.1, 0.2, 0.7, 0.9]), np.array([0, 0, 1, 1]))
    assert result.intercept is None and result.slope is None
    assert result.brier == pytest.approx((0.01 + 0.04 + 0.09 + 0.01) / 4)
    assert "separate" in result.note


def test_constant_prediction_gives_logit_of_prevalence_and_zero_slope() -> None:
    result = val_prob(np.full(4, 0.3), np.array([0, 1, 1, 0]))
    assert result.intercept == pytest.approx(0.0)
    assert result.slope == 0.0


def test_probabilities_of_zero_or_one_are_left_out_of_the_fit_only() -> None:
    p = np.array([0.0, 0.2, 0.4, 0.35, 0.6, 0.8, 1.0, 0.55])
    y = np.array([0, 0, 1, 0, 0, 1, 1, 1])
    with_extremes = val_prob(p, y)
    inside = (p > 0) & (p < 1)
    without = val_prob(p[inside], y[inside])
    assert with_extremes.slope == pytest.approx(without.slope)
    assert with_extremes.brier == pytest.approx(np.mean((p - y) ** 2))


def test_well_calibrated_data_has_intercept_near_zero_and_slope_near_one() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0.05, 0.95, 4000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    result = val_prob(p, y)
    assert abs(result.intercept) < 0.15 and abs(result.slope - 1) < 0.15
    curve = calibration_curve(p, y, result)
    assert np.max(np.abs(curve.logistic - curve.predicted)) < 0.05
