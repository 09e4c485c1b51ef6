"""The generated cohort's clinical table carries what its model claims (no images; fast).

A large clinical-only draw must reproduce the training cohort's frequencies
(paper, Table 1), give back the odds ratios put into the response model when a
clinical logistic regression is fitted to it (the paper's multivariable ORs), and
have PFS medians and event fractions like Table S6.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import KaplanMeierFitter
from scipy.stats import mannwhitneyu

from abcir.patient.clinical_facts import CLINICAL_ENCODING
from abcir.cohort import patients as model
from abcir.patient.sites import SITES

LARGE_N = 20000


@pytest.fixture(scope="module")
def large() -> pd.DataFrame:
    patients = model.draw_clinical_cohort(LARGE_N, seed=2023)
    return pd.DataFrame([{
        **{name: int(value) for name, value in patient.clinical.to_dict().items()},
        "response": int(patient.response), "best": patient.best_response, "phenotype": patient.phenotype,
        "pfs": patient.pfs_months, "event": int(patient.pfs_event), "center": patient.center,
        "split": patient.split, "sites": patient.metastatic_sites,
    } for patient in patients])


@pytest.fixture(scope="module")
def clinical_fit(large: pd.DataFrame):
    design = sm.add_constant(large[list(CLINICAL_ENCODING)].astype(float))
    return sm.Logit(large["response"].astype(float), design).fit(disp=0)


@pytest.mark.parametrize("name, expected", [
    ("prior_lines_ge2", 112 / 171), ("metastatic_sites_ge3", 84 / 171), ("visceral", 94 / 171),
    ("tnbc", 133 / 171), ("response", 61 / 171),
])
def test_frequencies_are_the_training_cohorts(large, name, expected):
    standard_error = np.sqrt(expected * (1 - expected) / LARGE_N)
    assert abs(large[name].mean() - expected) < 4 * standard_error


@pytest.mark.parametrize("name", list(CLINICAL_ENCODING))
def test_clinical_logistic_regression_recovers_the_odds_ratios(clinical_fit, name):
    low, high = np.exp(clinical_fit.conf_int().loc[name])
    assert low < model.ODDS_RATIOS[name] < high, (name, np.exp(clinical_fit.params[name]), low, high)


@pytest.mark.parametrize("name", list(model.PAPER_OR_95CI))
def test_recovered_odds_ratios_lie_in_the_papers_confidence_intervals(clinical_fit, name):
    low, high = model.PAPER_OR_95CI[name]
    assert low < np.exp(clinical_fit.params[name]) < high


def test_clinical_model_discriminates_about_as_weakly_as_the_papers(large, clinical_fit):
    score = clinical_fit.predict()
    responders = large["response"].to_numpy() == 1
    auc = mannwhitneyu(score[responders], score[~responders]).statistic / (responders.sum() * (~responders).sum())
    assert 0.62 < auc < 0.71  # paper, Table 2: 0.672 in training


def test_phenotype_separates_responders_and_depends_on_nothing_else(large):
    responders = large["response"] == 1
    difference = large.loc[responders, "phenotype"].mean() - large.loc[~responders, "phenotype"].mean()
    assert abs(difference - model.PHENOTYPE_SEPARATION) < 0.06
    # Given response, the phenotype carries no clinical fact (it is drawn from response alone).
    design = sm.add_constant(large[list(CLINICAL_ENCODING) + ["response"]].astype(float))
    fit = sm.OLS(large["phenotype"], design).fit()
    assert (fit.pvalues[list(CLINICAL_ENCODING)] > 0.001).all()


def test_pfs_medians_and_events_follow_table_s6(large):
    medians, events = {}, {}
    for responded in (1, 0):
        group = large[large["response"] == responded]
        medians[responded] = KaplanMeierFitter().fit(group["pfs"], group["event"]).median_survival_time_
        events[responded] = group["event"].mean()
    assert medians[1] == pytest.approx(10.12, rel=0.08)
    assert medians[0] == pytest.approx(3.75, rel=0.08)
    assert 0.45 < events[1] < 0.70  # Table S6: 30/52 in the low-risk group
    assert 0.70 < events[0] < 0.88  # Table S6: 89/119 in the high-risk group


def test_pfs_agrees_with_best_response(large):
    assert (large.loc[large["best"] == "PD", "pfs"] <= model.PD_PROGRESSION_MONTHS[1]).all()
    assert (large.loc[large["best"].isin(["CR", "PR"]), "pfs"] >= model.FIRST_ASSESSMENT_MONTHS).all()
    assert set(large.loc[large["response"] == 1, "best"]) == {"CR", "PR"}
    assert set(large.loc[large["response"] == 0, "best"]) == {"SD", "PD"}
    assert (large["pfs"] > 0).all()


def test_metastatic_sites_agree_with_the_clinical_facts(large):
    n_sites = large["sites"].map(len)
    has_visceral = large["sites"].map(lambda sites: any(SITES[site].visceral for site in sites))
    assert (has_visceral == (large["visceral"] == 1)).all()
    assert ((n_sites >= 3) == (large["metastatic_sites_ge3"] == 1)).all()
    assert large["sites"].map(lambda sites: len(set(sites)) == len(sites)).all()


def test_centres_and_split_repeat_figure_1():
    patients = model.draw_clinical_cohort(240, seed=7)
    centers = pd.Series([patient.center for patient in patients])
    split = pd.Series([patient.split for patient in patients])
    assert centers.value_counts().to_dict() == {"center_B": 128, "center_A": 107, "center_C": 5}
    assert split.value_counts().to_dict() == {"train": 171, "validation": 69}
    assert (split[centers == "center_A"] == "train").all()
    assert (split[centers == "center_C"] == "validation").all()
    assert (split[centers == "center_B"] == "train").sum() == 64


def test_same_seed_same_patients_other_seed_other_patients():
    first = model.draw_clinical_cohort(50, seed=3)
    assert first == model.draw_clinical_cohort(50, seed=3)
    assert first != model.draw_clinical_cohort(50, seed=4)
    assert [patient.patient_id for patient in first[:2]] == ["SYN0001", "SYN0002"]


def test_response_intercept_gives_the_response_rate():
    combos, probabilities = model._fact_combinations()
    assert probabilities.sum() == pytest.approx(1.0)
    assert probabilities @ model.response_probability(combos) == pytest.approx(model.RESPONSE_RATE)
