"""Table 1 tests against R's t.test, wilcox.test, chisq.test and fisher.test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.stats.baseline_table import baseline_table, contingency_test, fisher_exact_2xc, wilcoxon_rank_sum

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stats"
REFERENCE = json.loads((FIXTURES / "reference.json").read_text())["cohort"]["baseline"]
EXPECTED_TEST = {"age": "Welch t-test", "ldh": "Wilcoxon rank-sum",
                 "lines": "Pearson chi-square", "cps": "Pearson chi-square",
                 "subtype": "Fisher exact", "center": "Fisher exact"}
R_P_VALUE = {"Welch t-test": "welch_p", "Wilcoxon rank-sum": "wilcoxon_p",
             "Pearson chi-square": "chisq_p", "Fisher exact": "fisher_p"}


@pytest.fixture(scope="module")
def table():
    frame = pd.read_csv(FIXTURES / "cohort.csv", dtype=str, keep_default_na=False,
                        na_values=[""])
    frame = frame[frame["response"].notna()]
    return baseline_table(frame, frame["response"].astype(float), list(EXPECTED_TEST))


def test_each_variable_gets_the_test_the_rules_pick(table) -> None:
    chosen = {v.name: v.test for v in table.variables}
    assert chosen == EXPECTED_TEST
    # The rules themselves, on R's numbers: Shapiro p > 0.05 in both groups for age only,
    # and an expected count below 5 for subtype and center only.
    assert min(REFERENCE["age"]["shapiro_p"]) > 0.05 > min(REFERENCE["ldh"]["shapiro_p"])
    assert REFERENCE["subtype"]["expected_min"] < 5 <= REFERENCE["lines"]["expected_min"]


@pytest.mark.parametrize("name", list(EXPECTED_TEST))
def test_p_values_match_r(table, name: str) -> None:
    variable = next(v for v in table.variables if v.name == name)
    assert variable.p_value == pytest.approx(REFERENCE[name][R_P_VALUE[variable.test]],
                                             rel=1e-6)


def test_group_sizes_and_level_rows(table) -> None:
    assert sum(table.group_sizes) == 119
    subtype = next(v for v in table.variables if v.name == "subtype")
    assert [row.level for row in subtype.rows[1:]] == ["HER2+", "HR+", "TNBC"]


def test_exact_wilcoxon_for_small_groups_without_ties() -> None:
    # R: wilcox.test(c(1.1, 2.3, 3.2), c(4.5, 5.1, 6.7, 7.2))$p.value == 2/35
    assert wilcoxon_rank_sum(np.array([1.1, 2.3, 3.2]),
                             np.array([4.5, 5.1, 6.7, 7.2])) == pytest.approx(2 / 35)


def test_table_with_one_level_has_no_test() -> None:
    assert contingency_test(np.array([[3, 0], [4, 0]])) == ("none (one level)", None)


@pytest.mark.parametrize(("table", "r_p_value"), [
    # R: fisher.test(matrix(c(3, 0, 1, 5, 2, 4), 2))$p.value
    ([[3, 1, 2], [0, 5, 4]], 0.083916083916084),
    # R: fisher.test(matrix(c(10, 14, 12, 8, 9, 10, 3, 1), 2))$p.value
    ([[10, 12, 9, 3], [14, 8, 10, 1]], 0.480888906986092),
])
def test_fisher_2xc_is_exact_like_r(table: list, r_p_value: float) -> None:
    assert fisher_exact_2xc(np.array(table)) == pytest.approx(r_p_value, rel=1e-9)


def test_fisher_falls_back_to_monte_carlo_for_huge_tables() -> None:
    table = np.array([[40, 40, 40, 40, 40, 1], [40, 40, 40, 40, 40, 3]])
    assert fisher_exact_2xc(table) is None
