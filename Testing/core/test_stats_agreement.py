"""ICC(2,1), Cohen's kappa and Bland-Altman against R's psych (fixtures) and known cases."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.consensus.feature_icc import read_feature_icc_csv, reproducible_features, write_feature_icc_csv
from abcir.errors import InputError
from abcir.options import FEATURE_ICC_FILE
from abcir.stats.agreement import bland_altman, cohen_kappa, feature_icc_frame, feature_icc_table, icc_2_1, koo_li_class

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "icc"


def _cases(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text())["cases"]


@pytest.mark.parametrize("case", _cases("icc_reference.json"), ids=lambda case: case["name"])
def test_icc_matches_psych(case):
    result = icc_2_1(np.array(case["ratings"]))
    assert result.icc == pytest.approx(case["icc"], rel=1e-10, abs=1e-12)
    assert result.ci_low == pytest.approx(case["ci_low"], rel=1e-8, abs=1e-10)
    assert result.ci_high == pytest.approx(case["ci_high"], rel=1e-8, abs=1e-10)
    assert result.f == pytest.approx(case["f"], rel=1e-7)
    assert result.p_value == pytest.approx(case["p"], rel=1e-7, abs=1e-15)
    assert (result.df1, result.df2) == (case["df1"], case["df2"])


def test_shrout_fleiss_published_value():
    """Shrout & Fleiss (1979), Table 4: ICC(2,1) = .29 for their Table 2 data."""
    case = next(c for c in _cases("icc_reference.json") if c["name"] == "shrout_fleiss_1979_table2")
    assert round(icc_2_1(np.array(case["ratings"])).icc, 2) == 0.29


def test_absolute_agreement_penalises_a_reader_offset():
    rng = np.random.default_rng(1)
    truth = rng.normal(100, 10, size=40)
    same = icc_2_1(np.column_stack([truth, truth + rng.normal(0, 1, 40)]))
    shifted = icc_2_1(np.column_stack([truth, truth + 15 + rng.normal(0, 1, 40)]))
    assert same.icc > 0.98
    assert shifted.icc < 0.5  # perfectly correlated, but reader B reads 15 higher


def test_icc_degenerate_cases():
    constant = icc_2_1(np.full((5, 2), 3.0))
    assert math.isnan(constant.icc)
    identical = icc_2_1(np.column_stack([np.arange(5.0), np.arange(5.0)]))
    assert (identical.icc, identical.ci_low, identical.ci_high) == (1.0, 1.0, 1.0)
    with pytest.raises(InputError, match="missing"):
        icc_2_1(np.array([[1.0, 2.0], [np.nan, 1.0], [3.0, 3.0]]))
    with pytest.raises(InputError, match="at least 2 subjects"):
        icc_2_1(np.array([[1.0, 2.0]]))


@pytest.mark.parametrize("value, label", [(0.49, "poor"), (0.5, "moderate"), (0.7499, "moderate"), (0.75, "good"),
                                          (0.9, "excellent"), (float("nan"), "")])
def test_koo_li_classes(value, label):
    assert koo_li_class(value) == label


@pytest.mark.parametrize("case", _cases("kappa_reference.json"), ids=lambda case: case["name"])
def test_kappa_matches_psych(case):
    result = cohen_kappa(case["a"], case["b"], case["levels"])
    assert result.kappa == pytest.approx(case["kappa"], rel=1e-12)
    assert result.variance == pytest.approx(case["variance"], rel=1e-10)
    assert result.ci_low == pytest.approx(case["ci_low"], rel=1e-10)
    assert result.ci_high == pytest.approx(case["ci_high"], rel=1e-10)
    assert sum(map(sum, result.table)) == len(case["a"])


def test_kappa_undefined_when_everyone_agrees_on_one_group():
    result = cohen_kappa(["high"] * 4, ["high"] * 4, ("high", "low"))
    assert math.isnan(result.kappa) and result.observed_agreement == 1.0
    assert "undefined" in result.text()
    with pytest.raises(InputError, match="not among the levels"):
        cohen_kappa(["high", "medium"], ["high", "low"], ("high", "low"))


def test_bland_altman_limits():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    b = a + np.array([0.0, 0.1, 0.0, 0.1])
    result = bland_altman(a, b)
    assert result.mean_difference == pytest.approx(0.05)
    assert result.sd_difference == pytest.approx(np.std([0, 0.1, 0, 0.1], ddof=1))
    assert result.upper_limit == pytest.approx(0.05 + 1.96 * result.sd_difference)


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(30, 4))
    values_a = truth.copy()
    values_b = truth + rng.normal(0, [0.05, 1.0, 0.3, 0.0], size=(30, 4))
    values_a[:, 3] = values_b[:, 3] = 7.0  # a constant feature: ICC undefined
    frame = feature_icc_frame(["f_good", "f_poor", "f_mid", "f_constant"], values_a, values_b)
    return write_feature_icc_csv(tmp_path, frame)


def test_reproducible_features_reads_the_table(tmp_path):
    _table(tmp_path)
    frame = read_feature_icc_csv(tmp_path)
    assert list(frame["feature"]) == ["f_good", "f_poor", "f_mid", "f_constant"]
    assert frame.loc[0, "icc"] > 0.99 and frame.loc[1, "icc"] < 0.75
    expected = [name for name, icc in zip(frame["feature"], frame["icc"]) if icc >= 0.75]
    assert reproducible_features(tmp_path, 0.75) == expected
    assert "f_constant" not in reproducible_features(tmp_path, 0.0)
    strict = reproducible_features(tmp_path, 0.75, use_lower_bound=True)
    assert set(strict) <= set(expected)
    assert strict == [n for n, low in zip(frame["feature"], frame["ci_low"]) if low >= 0.75]


def test_reproducibility_table_errors(tmp_path):
    _table(tmp_path)
    with pytest.raises(InputError, match="already exists"):
        write_feature_icc_csv(tmp_path, pd.DataFrame())
    with pytest.raises(InputError, match="between 0 and 1"):
        reproducible_features(tmp_path, 75)
    with pytest.raises(InputError, match=FEATURE_ICC_FILE):
        reproducible_features(tmp_path / "elsewhere", 0.75)


def test_feature_icc_table_takes_any_number_of_raters():
    """Three outlines per lesion: each feature's row is icc_2_1 (checked against psych::ICC) of its ratings."""
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(12, 1, 3)) * [1, 10, 0]
    ratings = truth + rng.normal(scale=0.3, size=(12, 3, 3))
    ratings[:, :, 2] = 0.0
    ratings[4, 1, 0] = np.nan  # a missing rating leaves that lesion out of that feature only
    frame = feature_icc_table(["f1", "f2", "constant"], ratings)
    for column in (0, 1):
        kept = ratings[:, :, column][np.isfinite(ratings[:, :, column]).all(axis=1)]
        assert frame.icc[column] == icc_2_1(kept).icc
    assert frame.n_lesions.tolist() == [11, 12, 12] and frame.n_readers.tolist() == [3, 3, 3]
    assert np.isnan(frame.icc[2])
    with pytest.raises(InputError, match="lesions x raters x features"):
        feature_icc_table(["f1", "f2", "constant"], ratings[:, 0])
