"""DeLong AUC, CI and paired test against pROC 1.18 (fixtures from make_reference.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.errors import InputError
from abcir.stats.delong import delong_auc, delong_paired_test, delong_placements
from abcir.stats.roc import roc_curve, threshold_metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stats"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
DATASETS = ("cohort", "ties", "tiny")


def _model_data(dataset: str, model: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(FIXTURES / f"{dataset}.csv", keep_default_na=False, na_values=[""])
    probability = f"{model}_probability"
    needed = ["response", f"{model}_score"] + ([probability] if probability in frame else [])
    frame = frame.dropna(subset=needed)
    return frame, frame[f"{model}_score"].to_numpy(float), frame["response"].to_numpy(int)


CASES = [(d, m) for d in DATASETS for m in REFERENCE[d]["models"]]


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_auc_and_ci_match_proc(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]
    _, scores, labels = _model_data(dataset, model)
    estimate = delong_auc(scores, labels)
    assert estimate.auc == pytest.approx(expected["auc"], abs=1e-9)
    assert estimate.ci_low == pytest.approx(expected["ci"][0], abs=1e-6)
    assert estimate.ci_high == pytest.approx(expected["ci"][1], abs=1e-6)


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_subgroup_auc_including_one_class_and_single_case_levels(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]["subgroups"]
    frame, scores, labels = _model_data(dataset, model)
    checked = 0
    for column, levels in expected.items():
        for level, reference in levels.items():
            inside = frame[column].astype(str).to_numpy() == level
            assert int(inside.sum()) == reference["n"]
            if reference["auc"] is None:
                assert len(set(labels[inside])) == 1
                with pytest.raises(InputError):
                    delong_auc(scores[inside], labels[inside])
                continue
            estimate = delong_auc(scores[inside], labels[inside])
            assert estimate.auc == pytest.approx(reference["auc"], abs=1e-9)
            if reference["ci"] is None:
                assert estimate.ci_low is None and estimate.ci_high is None
            else:
                assert [estimate.ci_low, estimate.ci_high] == pytest.approx(reference["ci"],
                                                                            abs=1e-6)
            checked += 1
    assert checked >= 2


@pytest.mark.parametrize("dataset", ["cohort", "ties"])
def test_paired_delong_matches_roc_test(dataset: str) -> None:
    frame = pd.read_csv(FIXTURES / f"{dataset}.csv", keep_default_na=False, na_values=[""])
    for expected in REFERENCE[dataset]["comparisons"]:
        a, b = expected["a"], expected["b"]
        needed = ["response", f"{a}_score", f"{b}_score"]
        needed += [c for c in (f"{a}_probability", f"{b}_probability") if c in frame]
        rows = frame.dropna(subset=needed)
        assert len(rows) == expected["n"]
        test = delong_paired_test(rows[f"{a}_score"].to_numpy(float),
                                  rows[f"{b}_score"].to_numpy(float),
                                  rows["response"].to_numpy(int))
        assert test.z == pytest.approx(expected["z"], rel=1e-9)
        assert test.p_value == pytest.approx(expected["p"], rel=1e-7)


def test_direction_is_fixed_so_a_bad_model_stays_below_half() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([3.0, 2.0, 1.5, 0.0, -1.0, 1.5])
    estimate = delong_auc(scores, labels)
    # Cases outrank 0 of 9 control pairs, tie once: (0 + 0.5) / 9.
    assert estimate.auc == pytest.approx(0.5 / 9)


def test_placements_count_ties_as_half() -> None:
    placements = delong_placements(np.array([1.0, 2.0, 2.0, 3.0]), np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(placements.cases, [0.75, 1.0])
    np.testing.assert_allclose(placements.controls, [1.0, 0.75])
    assert placements.auc == pytest.approx(0.875)


def test_single_case_gives_auc_without_ci_and_perfect_separation_a_zero_width_ci() -> None:
    single = delong_auc(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1]))
    assert single.auc == 1.0 and single.ci_low is None and single.variance is None
    perfect = delong_auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert (perfect.ci_low, perfect.ci_high) == (1.0, 1.0)


def test_identical_models_have_z_zero_and_p_one() -> None:
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.7, 0.2])
    labels = np.array([0, 0, 1, 1, 1, 0])
    test = delong_paired_test(scores, scores, labels)
    assert test.z == 0.0 and test.p_value == 1.0


def test_one_class_is_an_input_error() -> None:
    with pytest.raises(InputError, match="responders and non-responders"):
        delong_auc(np.array([0.1, 0.2]), np.array([1, 1]))


def test_roc_curve_steps_through_tied_scores_together() -> None:
    curve = roc_curve(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    np.testing.assert_allclose(curve.false_positive_rate, [0, 0, 0.5, 1])
    np.testing.assert_allclose(curve.true_positive_rate, [0, 0.5, 1, 1])
    fpr, tpr = curve.false_positive_rate, curve.true_positive_rate
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(delong_auc(np.array([0.9, 0.5, 0.5, 0.1]),
                                            np.array([1, 1, 0, 0])).auc)


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_table2_metrics_match_r(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]
    frame, scores, labels = _model_data(dataset, model)
    probability = f"{model}_probability"
    p = frame[probability].to_numpy(float) if probability in frame else 1 / (1 + np.exp(-scores))
    metrics = threshold_metrics(p, labels)
    for key in ("sensitivity", "specificity", "accuracy", "ppv", "npv"):
        assert getattr(metrics, key) == pytest.approx(expected[key], abs=1e-12), key


def test_undefined_ratios_are_none_not_zero() -> None:
    metrics = threshold_metrics(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 0]))
    assert metrics.ppv is None and metrics.sensitivity == 0.0
    assert metrics.npv == pytest.approx(2 / 3)
