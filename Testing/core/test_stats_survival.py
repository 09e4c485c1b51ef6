"""PFS statistics against R (make_reference.R): maxstat 0.7-25 cut-off, survival 3.5
Kaplan-Meier, log-rank, Cox and C-index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.errors import InputError
from abcir.stats.maxstat import logrank_scores, maxstat_logrank, p_lausen94
from abcir.stats.survival import compare_risk_groups, concordance, kaplan_meier, number_at_risk

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stats"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())
CASES = [(d, m) for d in ("cohort", "ties", "tiny") for m in REFERENCE[d]["models"]]


def _survival_data(dataset: str, model: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(FIXTURES / f"{dataset}.csv", keep_default_na=False, na_values=[""])
    frame = frame.dropna(subset=[f"{model}_score", "pfs_months", "pfs_event"])
    return (frame[f"{model}_score"].to_numpy(float), frame["pfs_months"].to_numpy(float),
            frame["pfs_event"].to_numpy(int))


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_concordance_and_its_standard_error_match_survival(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]["survival"]
    score, time, event = _survival_data(dataset, model)
    result = concordance(time, event, score)
    assert result.c_index == pytest.approx(expected["c_index"], abs=1e-9)
    assert result.std_err == pytest.approx(expected["c_index_se"], abs=1e-9)
    counts = expected["counts"]
    assert (result.concordant, result.discordant, result.tied_score, result.tied_time,
            result.tied_both) == (counts["concordant"], counts["discordant"], counts["tied.x"],
                                  counts["tied.y"], counts["tied.xy"])


@pytest.mark.parametrize("which", ["auto", "fixed"])
@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_risk_groups_match_survdiff_coxph_survfit(dataset: str, model: str, which: str) -> None:
    expected = REFERENCE[dataset]["models"][model]["survival"][which]
    score, time, event = _survival_data(dataset, model)
    result = compare_risk_groups(score, time, event, expected["cutoff"])
    assert (result.high_risk.n, result.low_risk.n) == (expected["n_high"], expected["n_low"])
    assert result.logrank_p == pytest.approx(expected["logrank_p"], rel=1e-7)
    assert result.hazard_ratio == pytest.approx(expected["hr"], rel=1e-5)
    assert result.hazard_ratio_ci == pytest.approx(tuple(expected["hr_ci"]), rel=1e-5)
    assert result.low_risk.median == expected["median_low"]
    assert result.high_risk.median == expected["median_high"]


@pytest.mark.parametrize("case", REFERENCE["km_medians"], ids=lambda c: str(c["event"]))
def test_median_follows_survivals_midpoint_rule(case: dict) -> None:
    curve = kaplan_meier(np.array(case["time"], float), np.array(case["event"]), "x")
    assert curve.median == case["median"]


def test_median_not_reached_is_none() -> None:
    curve = kaplan_meier(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 0, 0]), "x")
    assert curve.median is None


def test_no_hazard_ratio_when_a_group_has_no_event() -> None:
    score = np.array([-1.0, -0.5, 0.5, 1.0, 1.5])
    result = compare_risk_groups(score, np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
                                 np.array([1, 1, 0, 0, 0]), cutoff=0.0)
    assert result.hazard_ratio is None and result.hazard_ratio_ci is None
    assert result.logrank_p is not None


def test_number_at_risk_counts_patients_still_followed() -> None:
    np.testing.assert_array_equal(
        number_at_risk(np.array([1.0, 2.0, 2.0, 5.0]), np.array([0.0, 2.0, 2.5, 6.0])),
        [4, 3, 1, 0])


def test_concordance_direction_higher_score_longer_survival() -> None:
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.ones(4)
    assert concordance(time, event, np.array([1.0, 2.0, 3.0, 4.0])).c_index == 1.0
    assert concordance(time, event, np.array([4.0, 3.0, 2.0, 1.0])).c_index == 0.0


@pytest.mark.parametrize(("dataset", "model"), CASES)
def test_cutoff_statistic_and_p_match_maxstat(dataset: str, model: str) -> None:
    expected = REFERENCE[dataset]["models"][model]["survival"]
    score, time, event = _survival_data(dataset, model)
    assert score.size == expected["n"]
    result = maxstat_logrank(score, time, event)
    assert result.cutoff == expected["maxstat_cutoff"]  # exactly the same value of the score
    assert result.statistic == pytest.approx(expected["maxstat_statistic"], rel=1e-12)
    assert result.p_value == pytest.approx(min(expected["maxstat_p"], 1.0), rel=1e-9)
    np.testing.assert_array_equal(result.cuts, expected["maxstat_cuts"])
    np.testing.assert_allclose(result.statistics, expected["maxstat_stats"], rtol=1e-12)


def test_lausen_bound_above_one_is_capped() -> None:
    expected = REFERENCE["cohort"]["models"]["clinical"]["survival"]
    assert expected["maxstat_p"] > 1  # R reports the raw bound
    result = maxstat_logrank(*_survival_data("cohort", "clinical"))
    assert result.p_value == 1.0


def test_logrank_scores_by_hand_with_tied_times() -> None:
    # Times 1, 2, 2, 3 with events 1, 1, 0, 1; ranks (ties share the largest) 1, 3, 3, 4.
    # Increments e/(N - r + 1): 1/4, 1/2, 0, 1; running sums at ranks: 1/4, 3/4, 3/4, 7/4.
    # (With tied times these scores need not sum to 0; that is exactRankTests' definition.)
    scores = logrank_scores(np.array([1.0, 2.0, 2.0, 3.0]), np.array([1, 1, 0, 1]))
    np.testing.assert_allclose(scores, [1 - 0.25, 1 - 0.75, 0 - 0.75, 1 - 1.75])


def test_lausen94_with_single_split_is_the_two_sided_normal_p() -> None:
    assert p_lausen94(1.96, 50, np.array([10])) == pytest.approx(0.04999579, abs=1e-7)


def test_lower_group_is_score_at_or_below_cutoff() -> None:
    rng = np.random.default_rng(1)
    score = np.round(rng.normal(size=60), 1)
    time = np.where(score > 0.2, 20.0, 3.0) + rng.uniform(0, 1, 60)
    result = maxstat_logrank(score, time, np.ones(60))
    lower = score <= result.cutoff
    assert 0.1 * 60 <= lower.sum() <= 0.9 * 60
    assert result.cutoff in score
    assert result.cutoff == pytest.approx(0.2, abs=0.11)


def test_no_events_and_constant_scores_are_input_errors() -> None:
    with pytest.raises(InputError, match="No progression events"):
        maxstat_logrank(np.arange(10.0), np.arange(1.0, 11.0), np.zeros(10))
    with pytest.raises(InputError):
        maxstat_logrank(np.ones(10), np.arange(1.0, 11.0), np.ones(10))


def test_infinite_hazard_ratio_is_none_rather_than_a_huge_number() -> None:
    # The only high-risk patient progresses before anyone else: the Cox likelihood has no maximum.
    result = compare_risk_groups(np.array([-1.0, 0.5, 1.5, 2.0]), np.array([1.0, 2.0, 3.0, 4.0]),
                                 np.array([1, 1, 1, 0]), cutoff=0.0)
    assert result.hazard_ratio is None and result.hazard_ratio_ci is None
    assert result.high_risk.median == 1.0
