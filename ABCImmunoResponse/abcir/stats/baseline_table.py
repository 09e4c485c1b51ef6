"""Table 1-style comparison of baseline characteristics between two groups.

The paper (Statistical analysis) used "independent t-tests and Wilcoxon
rank-sum tests ... for continuous variables, and Pearson chi-square tests or
Fisher's exact tests for categorical variables".  The choice between each
pair is made per variable, by the usual rules, and shown in the table:

* continuous: Welch's t-test (R's ``t.test`` default) with mean (SD) when a
  Shapiro-Wilk test does not reject normality (p > 0.05) in either group,
  otherwise the Wilcoxon rank-sum test with median (IQR).  The Wilcoxon
  p-value is exact when both groups have fewer than 50 patients and there are
  no ties, else the normal approximation with continuity correction, as R's
  ``wilcox.test``;
* categorical: Pearson's chi-square (Yates-corrected for 2 x 2 tables, as R's
  ``chisq.test``) when every expected count is at least 5, otherwise Fisher's
  exact test.  scipy's Fisher test is exact for 2 x 2 tables only (larger
  tables get a Monte Carlo p-value), so 2 x C tables are enumerated here, with
  R ``fisher.test``'s rule that a table is "as extreme" when its probability is
  at most the observed one times 1 + 1e-7.

A numeric column with at most ``MAX_CATEGORICAL_LEVELS`` distinct values (a
0/1 flag, ECOG 0-2, lines of therapy 1-3) is treated as categorical.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

#: Numeric columns with this many distinct values or fewer are categories.
MAX_CATEGORICAL_LEVELS = 5
#: Shapiro-Wilk p-value above which a group is taken as normally distributed.
NORMALITY_ALPHA = 0.05
#: Smallest expected cell count for the chi-square approximation (Cochran's rule).
MIN_EXPECTED_COUNT = 5
#: R's wilcox.test uses the exact distribution below this group size (without ties).
EXACT_WILCOXON_LIMIT = 50
#: Largest number of 2 x C tables enumerated for Fisher's test; beyond it, Monte Carlo.
MAX_EXACT_TABLES = 2_000_000
#: Tables drawn for a Monte Carlo Fisher p-value, with a fixed seed for reproducible reports.
MONTE_CARLO_TABLES = 20_000
#: R fisher.test's relative tolerance when comparing table probabilities.
FISHER_RELATIVE_ERROR = 1e-7


@dataclass(frozen=True)
class BaselineRow:
    """One line of the table: a variable (``level`` None) or one level of a category."""

    label: str
    level: str | None
    summaries: tuple[str, ...]


@dataclass(frozen=True)
class BaselineVariable:
    """A compared variable: its lines, the test chosen and its two-sided p-value."""

    name: str
    kind: str
    test: str
    p_value: float | None
    missing: int
    rows: tuple[BaselineRow, ...]


@dataclass(frozen=True)
class BaselineTable:
    """Baseline characteristics of two groups, e.g. non-responders and responders."""

    group_labels: tuple[str, str]
    group_sizes: tuple[int, int]
    variables: tuple[BaselineVariable, ...]


def is_continuous(values: pd.Series) -> bool:
    """Numeric with more than ``MAX_CATEGORICAL_LEVELS`` distinct values.

    Parameters
    ----------
    values : pandas.Series
        One variable of the table; missing values are ignored.

    Returns
    -------
    bool
        True when every non-missing value is numeric and there are more than
        ``MAX_CATEGORICAL_LEVELS`` distinct ones; False for text or few levels.
    """
    numeric = pd.to_numeric(values.dropna(), errors="coerce")
    return bool(numeric.notna().all() and numeric.nunique() > MAX_CATEGORICAL_LEVELS)


def _is_normal(sample: np.ndarray) -> bool:
    if sample.size < 3 or np.ptp(sample) == 0:
        return False
    return bool(stats.shapiro(sample).pvalue > NORMALITY_ALPHA)


def wilcoxon_rank_sum(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon rank-sum p-value with R ``wilcox.test``'s choice of method.

    Exact when both groups have fewer than ``EXACT_WILCOXON_LIMIT`` values and
    there are no ties, otherwise the normal approximation with continuity
    correction.

    Parameters
    ----------
    a, b : numpy.ndarray
        Values of the two groups (1-D, no missing values), in the variable's unit.

    Returns
    -------
    float
        Two-sided p-value of the Mann-Whitney U / Wilcoxon rank-sum test.
    """
    pooled = np.concatenate([a, b])
    exact = (a.size < EXACT_WILCOXON_LIMIT and b.size < EXACT_WILCOXON_LIMIT
             and np.unique(pooled).size == pooled.size)
    method = "exact" if exact else "asymptotic"
    return float(stats.mannwhitneyu(a, b, alternative="two-sided", method=method,
                                    use_continuity=True).pvalue)


def _continuous(name: str, a: np.ndarray, b: np.ndarray, missing: int) -> BaselineVariable:
    if a.size < 2 or b.size < 2:
        summaries = tuple(f"{np.median(g):.2f}" if g.size else "-" for g in (a, b))
        row = BaselineRow(name, None, summaries)
        return BaselineVariable(name, "continuous", "none (fewer than 2 per group)", None,
                                missing, (row,))
    if _is_normal(a) and _is_normal(b):
        p_value = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        summaries = tuple(f"{np.mean(g):.2f} ({np.std(g, ddof=1):.2f})" for g in (a, b))
        row = BaselineRow(f"{name}, mean (SD)", None, summaries)
        return BaselineVariable(name, "continuous", "Welch t-test", p_value, missing, (row,))
    p_value = wilcoxon_rank_sum(a, b)
    summaries = tuple(
        f"{np.median(g):.2f} ({np.percentile(g, 25):.2f}, {np.percentile(g, 75):.2f})"
        for g in (a, b)
    )
    row = BaselineRow(f"{name}, median (IQR)", None, summaries)
    return BaselineVariable(name, "continuous", "Wilcoxon rank-sum", p_value, missing, (row,))


def _log_choose(n: np.ndarray | int, k: np.ndarray | int) -> np.ndarray:
    return gammaln(np.add(n, 1)) - gammaln(np.add(k, 1)) - gammaln(np.subtract(n, k) + 1)


def fisher_exact_2xc(table: np.ndarray) -> float | None:
    """Exact Fisher p-value of a 2 x C table; ``None`` if it has too many arrangements.

    Every first row with the observed margins is enumerated column by column;
    its probability is multivariate hypergeometric. A table counts as "as
    extreme" when its probability is at most the observed one times 1 + 1e-7,
    as in R's ``fisher.test``.

    Parameters
    ----------
    table : numpy.ndarray
        Integer counts of shape (2, C): groups x levels.

    Returns
    -------
    float or None
        Two-sided exact p-value (at most 1), or None when more than
        ``MAX_EXACT_TABLES`` partial first rows would have to be enumerated.
    """
    columns = table.sum(axis=0)
    first_row = int(table[0].sum())
    sums = np.zeros(1, dtype=np.int64)
    log_p = np.zeros(1)
    remaining = int(columns.sum())
    for size in columns:
        remaining -= int(size)
        counts = np.arange(size + 1)
        sums = (sums[:, None] + counts[None, :]).ravel()
        log_p = (log_p[:, None] + _log_choose(size, counts)[None, :]).ravel()
        feasible = (sums <= first_row) & (sums + remaining >= first_row)
        sums, log_p = sums[feasible], log_p[feasible]
        if sums.size > MAX_EXACT_TABLES:
            return None
    normaliser = _log_choose(int(columns.sum()), first_row)
    observed = float(np.sum(_log_choose(columns, table[0])))
    extreme = log_p <= observed + np.log1p(FISHER_RELATIVE_ERROR)
    return float(min(1.0, np.exp(log_p[extreme] - normaliser).sum()))


def contingency_test(table: np.ndarray) -> tuple[str, float | None]:
    """Chi-square or Fisher test of a groups x levels count table, by Cochran's rule.

    Pearson's chi-square (Yates-corrected for 2 x 2, as R's ``chisq.test``)
    when every expected count is at least ``MIN_EXPECTED_COUNT``, otherwise
    Fisher's exact test (R's ``fisher.test``): scipy's for 2 x 2, enumerated for
    2 x C, Monte Carlo with a fixed seed for larger tables or too many
    arrangements. Levels no one has are dropped first.

    Parameters
    ----------
    table : numpy.ndarray
        Integer counts of shape (groups, levels).

    Returns
    -------
    tuple of (str, float or None)
        The name of the test used and its two-sided p-value; ("none (one
        level)", None) when fewer than two levels are seen or a group is empty.
        With scipy older than 1.15 the chi-square test replaces the Monte Carlo
        Fisher test, and the name says so.
    """
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return "none (one level)", None
    expected = stats.contingency.expected_freq(table)
    if np.all(expected >= MIN_EXPECTED_COUNT):
        return "Pearson chi-square", float(stats.chi2_contingency(table, correction=True).pvalue)
    if table.shape == (2, 2):
        return "Fisher exact", float(stats.fisher_exact(table).pvalue)
    if table.shape[0] == 2:
        p_value = fisher_exact_2xc(table)
        if p_value is not None:
            return "Fisher exact", p_value
    if not hasattr(stats, "MonteCarloMethod"):  # scipy < 1.15 (as in Slicer 5.8) has no R x C Fisher test
        return ("Pearson chi-square (some expected counts < 5; this scipy has no Monte Carlo Fisher test)",
                float(stats.chi2_contingency(table, correction=True).pvalue))
    method = stats.MonteCarloMethod(n_resamples=MONTE_CARLO_TABLES, rng=np.random.default_rng(0))
    return ("Fisher exact (Monte Carlo)",
            float(stats.fisher_exact(table, method=method).pvalue))


def _categorical(name: str, a: pd.Series, b: pd.Series, missing: int) -> BaselineVariable:
    levels = sorted(set(a) | set(b), key=str)
    table = np.array([[int((g == level).sum()) for level in levels] for g in (a, b)])
    test, p_value = contingency_test(table)
    rows = [BaselineRow(f"{name}, n (%)", None, ("", ""))]
    for j, level in enumerate(levels):
        summaries = tuple(
            f"{table[i, j]} ({100 * table[i, j] / max(table[i].sum(), 1):.1f}%)" for i in (0, 1)
        )
        rows.append(BaselineRow(str(level), str(level), summaries))
    return BaselineVariable(name, "categorical", test, p_value, missing, tuple(rows))


def baseline_table(
    frame: pd.DataFrame,
    group: pd.Series,
    variables: list[str],
    group_labels: tuple[str, str] = ("Non-responders", "Responders"),
) -> BaselineTable:
    """Compare ``variables`` of ``frame`` between rows with ``group`` 0 and 1.

    Rows missing a variable are left out of that variable's test and counted
    in ``missing``.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per patient; the columns hold the variables in their own units
        (e.g. age in years).
    group : pandas.Series
        0 or 1 per row of ``frame`` (e.g. non-responder / responder), aligned to
        ``frame.index``; rows with a missing group are counted as missing.
    variables : list of str
        Columns of ``frame`` to compare, in table order. Each is continuous or
        categorical by ``is_continuous``.
    group_labels : tuple of (str, str), optional
        Column headings for group 0 and group 1.

    Returns
    -------
    BaselineTable
        Group labels and sizes and, per variable, its summary lines (mean (SD),
        median (IQR) or n (%) per level), the test chosen and its p-value.

    Raises
    ------
    KeyError
        If a name in ``variables`` is not a column of ``frame``.
    """
    group = pd.Series(group, index=frame.index)
    compared = []
    for name in variables:
        column = frame[name]
        keep = column.notna() & group.notna()
        missing = int((~keep).sum())
        first = column[keep & (group == 0)]
        second = column[keep & (group == 1)]
        if is_continuous(column):
            compared.append(_continuous(
                name,
                pd.to_numeric(first).to_numpy(dtype=float),
                pd.to_numeric(second).to_numpy(dtype=float),
                missing,
            ))
        else:
            compared.append(_categorical(name, first, second, missing))
    sizes = (int((group == 0).sum()), int((group == 1).sum()))
    return BaselineTable(group_labels, sizes, tuple(compared))
