"""How well two readers agree: ICC(2,1) per feature, Cohen's kappa, Bland-Altman limits.

Feature reproducibility is the intraclass correlation ICC(2,1) of Shrout & Fleiss
(1979) -- McGraw & Wong's ICC(A,1): two-way random effects, absolute agreement,
single rater -- the form Koo & Li (J Chiropr Med 2016) recommend when the
readers are a sample of the readers who will use the model and a systematic
offset between them matters. Its 95% confidence interval is McGraw & Wong's
(1996), as R's ``psych::ICC`` computes it (checked against fixtures made by
``Testing/fixtures/icc/make_reference.R``). Agreement on the risk group is
Cohen's unweighted kappa with the large-sample variance of Fleiss, Cohen &
Everitt (1969), as ``psych::cohen.kappa`` reports it.

``abcir.consensus.feature_icc`` writes the per-feature table of
``feature_icc_frame`` into an agreement folder and reads it back when training
is restricted to reproducible features (``abcir train --min-icc 0.75 --agreement DIR``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError

#: Koo & Li (2016), "Cutoff values": below 0.5 poor, 0.5-0.75 moderate, 0.75-0.9 good, above 0.9 excellent.
KOO_LI_CLASSES = ((0.5, "poor"), (0.75, "moderate"), (0.9, "good"), (math.inf, "excellent"))
CONFIDENCE_LEVEL = 0.95
FEATURE_ICC_COLUMNS = ("feature", "icc", "ci_low", "ci_high", "f", "df1", "df2", "p_value", "n_lesions",
                       "n_readers", "koo_li_class")


@dataclass(frozen=True)
class IccResult:
    """ICC(2,1) of one variable with its 95% CI and F test (H0: ICC = 0).

    ``icc`` is NaN when the variable does not vary at all (every lesion, every
    reader the same value): agreement is then undefined, not perfect.
    """

    icc: float
    ci_low: float
    ci_high: float
    f: float
    df1: int
    df2: int
    p_value: float
    n_subjects: int
    n_raters: int


def icc_2_1(ratings: np.ndarray, confidence: float = CONFIDENCE_LEVEL) -> IccResult:
    """ICC(2,1) of an (n subjects x k raters) matrix without missing values.

    Mean squares from the two-way ANOVA without interaction: MSR (subjects),
    MSC (raters), MSE (residual); ICC = (MSR - MSE) / (MSR + (k-1) MSE + k (MSC - MSE) / n).
    Matches the ``ICC2`` ("Single_random_raters") row of R's ``psych::ICC``.

    Parameters
    ----------
    ratings : numpy.ndarray
        Matrix of shape (n subjects, k raters), in the variable's own unit
        (e.g. HU for a first-order feature, mm³ for a volume); no NaN or inf.
    confidence : float, optional
        Level of the two-sided confidence interval, between 0 and 1 (default 0.95).

    Returns
    -------
    IccResult
        ICC, its McGraw & Wong CI, the F test of ICC = 0 (F, df1, df2, p) and the
        matrix size. Every statistic is NaN when the subjects do not differ at
        all; ICC is exactly 1 (F inf, p 0) when every rater gave every subject
        the same value. CI bounds may be NaN for few subjects and a negative ICC.

    Raises
    ------
    InputError
        If ``ratings`` is not 2-D with at least 2 subjects and 2 raters, or holds
        missing or infinite values.
    """
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise InputError(f"ICC: ratings of shape {x.shape}; need a matrix of at least 2 subjects x 2 raters.")
    if not np.isfinite(x).all():
        raise InputError("ICC: the ratings contain missing or infinite values; drop those subjects first.")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    df1, df_cols, df2 = n - 1, k - 1, (n - 1) * (k - 1)
    msr, msc, mse = ss_rows / df1, ss_cols / df_cols, max(ss_error, 0.0) / df2
    # Rounding leaves a residual of ~1e-16 relative to the data when readers agree exactly.
    scale = max(float(np.sum((x - grand) ** 2)), np.finfo(float).tiny)
    if ss_rows <= 1e-12 * scale:
        return IccResult(math.nan, math.nan, math.nan, math.nan, df1, df2, math.nan, n, k)
    if ss_error <= 1e-12 * scale:
        if ss_cols <= 1e-12 * scale:  # every reader gave every subject the same value
            return IccResult(1.0, 1.0, 1.0, math.inf, df1, df2, 0.0, n, k)
        mse = 0.0
    icc = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    f_value = msr / mse if mse > 0 else math.inf
    p_value = float(stats.f.sf(f_value, df1, df2))
    alpha = 1.0 - confidence
    # McGraw & Wong (1996), Table 7, case 2A; Satterthwaite degrees of freedom v.
    a = k * icc / (n * (1 - icc)) if icc < 1 else math.inf
    b = 1 + k * icc * (n - 1) / (n * (1 - icc)) if icc < 1 else math.inf
    if math.isinf(a):
        v = float(df2)
    else:
        v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / df_cols + (b * mse) ** 2 / df2)
    f_lower = stats.f.ppf(1 - alpha / 2, df1, v)
    f_upper = stats.f.ppf(1 - alpha / 2, v, df1)
    denominator = k * msc + (k * n - k - n) * mse
    # With few subjects and a negative ICC the bounds can be undefined (0/0): NaN, as psych::ICC gives.
    with np.errstate(invalid="ignore", divide="ignore"):
        ci_low = np.float64(n * (msr - f_lower * mse)) / np.float64(f_lower * denominator + n * msr)
        ci_high = np.float64(n * (f_upper * msr - mse)) / np.float64(denominator + n * f_upper * msr)
    return IccResult(float(icc), float(ci_low), float(ci_high), float(f_value), df1, df2, p_value, n, k)


def koo_li_class(icc: float) -> str:
    """Koo & Li's (2016) reading of an ICC value: poor, moderate, good or excellent ("" when undefined).

    Parameters
    ----------
    icc : float
        An intraclass correlation (dimensionless); NaN or inf when undefined.

    Returns
    -------
    str
        "poor" (< 0.5), "moderate" (< 0.75), "good" (< 0.9), "excellent"
        (>= 0.9), or "" when ``icc`` is not finite.
    """
    if not math.isfinite(icc):
        return ""
    return next(label for limit, label in KOO_LI_CLASSES if icc < limit)


@dataclass(frozen=True)
class KappaResult:
    """Cohen's unweighted kappa of two raters' categories, with its 95% CI.

    ``kappa`` is NaN when both raters put every case in one and the same
    category (expected agreement 1): kappa is undefined, not perfect.
    """

    kappa: float
    ci_low: float
    ci_high: float
    variance: float
    observed_agreement: float
    expected_agreement: float
    n: int
    levels: tuple[str, ...]
    table: tuple[tuple[int, ...], ...]  # table[i][j]: rater A said levels[i], rater B levels[j]

    def text(self) -> str:
        """One line for reports: kappa with its CI, or why it is undefined."""
        if not math.isfinite(self.kappa):
            return (f"Cohen's kappa undefined: both raters put all {self.n} cases in one category "
                    f"(observed agreement {100 * self.observed_agreement:.0f}%)")
        return (f"Cohen's kappa {self.kappa:.3f} (95% CI {self.ci_low:.3f} to {self.ci_high:.3f}), observed "
                f"agreement {100 * self.observed_agreement:.0f}% of {self.n}")


def cohen_kappa(a: Sequence[str], b: Sequence[str], levels: Sequence[str] | None = None,
                confidence: float = CONFIDENCE_LEVEL) -> KappaResult:
    """Cohen's kappa between two raters' labels of the same cases (same order).

    Unweighted kappa with the Fleiss, Cohen & Everitt (1969) large-sample
    variance, as R's ``psych::cohen.kappa`` reports it.

    Parameters
    ----------
    a, b : sequence of str
        Categories given by rater A and rater B, one per case, in the same case
        order. Values are compared as strings.
    levels : sequence of str or None, optional
        The possible categories, in the order of the agreement table. None (the
        default) uses the sorted union of the categories seen in ``a`` and ``b``.
    confidence : float, optional
        Level of the two-sided normal confidence interval (default 0.95).

    Returns
    -------
    KappaResult
        Kappa with its CI and variance, observed and expected agreement and the
        levels x levels count table. Kappa, CI and variance are NaN when the
        expected agreement is 1 (both raters used one and the same category).

    Raises
    ------
    InputError
        If ``a`` and ``b`` differ in length or are empty, or a rating is not one
        of ``levels``.
    """
    a, b = [str(v) for v in a], [str(v) for v in b]
    if len(a) != len(b) or not a:
        raise InputError(f"Kappa: {len(a)} and {len(b)} ratings; both raters must rate the same cases.")
    levels = tuple(levels) if levels is not None else tuple(sorted(set(a) | set(b)))
    unknown = (set(a) | set(b)) - set(levels)
    if unknown:
        raise InputError(f"Kappa: ratings {sorted(unknown)} are not among the levels {list(levels)}.")
    index = {level: i for i, level in enumerate(levels)}
    counts = np.zeros((len(levels), len(levels)), dtype=np.int64)
    for x, y in zip(a, b):
        counts[index[x], index[y]] += 1
    n = len(a)
    p = counts / n
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    po, pe = float(np.trace(p)), float(rows @ cols)
    if pe >= 1.0:
        return KappaResult(math.nan, math.nan, math.nan, math.nan, po, pe, n, levels,
                           tuple(tuple(int(c) for c in row) for row in counts))
    kappa = (po - pe) / (1 - pe)
    # Fleiss, Cohen & Everitt (1969), eq. 13: large-sample variance of kappa.
    diagonal = np.sum(np.diag(p) * ((1 - pe) - (rows + cols) * (1 - po)) ** 2)
    pair_sums = cols[:, None] + rows[None, :]
    off_diagonal = (1 - po) ** 2 * (np.sum(p * pair_sums ** 2) - np.sum(np.diag(p) * np.diag(pair_sums) ** 2))
    variance = max((diagonal + off_diagonal - (po * pe - 2 * pe + po) ** 2) / (n * (1 - pe) ** 4), 0.0)
    z = stats.norm.ppf(1 - (1 - confidence) / 2)
    return KappaResult(float(kappa), float(kappa - z * math.sqrt(variance)), float(kappa + z * math.sqrt(variance)),
                       float(variance), po, pe, n, levels, tuple(tuple(int(c) for c in row) for row in counts))


@dataclass(frozen=True)
class BlandAltman:
    """Bland & Altman (1986) agreement of two measurements: mean difference (B - A) and 95% limits."""

    mean_difference: float
    sd_difference: float
    lower_limit: float
    upper_limit: float
    n: int


def bland_altman(a: np.ndarray, b: np.ndarray) -> BlandAltman:
    """Bias and 95% limits of agreement (mean +- 1.96 SD of B - A) of paired measurements.

    Parameters
    ----------
    a, b : numpy.ndarray
        The same quantity measured by method (or reader) A and B on the same
        cases, same shape and order, in one unit (e.g. mm for diameters, mm³ for
        volumes); the results are in that unit.

    Returns
    -------
    BlandAltman
        Mean difference B - A, its sample SD (n - 1), the lower and upper 95%
        limits of agreement and the number of pairs.

    Raises
    ------
    InputError
        If ``a`` and ``b`` differ in shape or hold fewer than 2 pairs.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        raise InputError(f"Bland-Altman: {a.size} and {b.size} values; need at least 2 pairs.")
    difference = b - a
    mean, sd = float(difference.mean()), float(difference.std(ddof=1))
    return BlandAltman(mean, sd, mean - 1.96 * sd, mean + 1.96 * sd, int(a.size))


def feature_icc_frame(names: Sequence[str], values_a: np.ndarray, values_b: np.ndarray) -> pd.DataFrame:
    """ICC(2,1) of each feature from two (lesions x features) matrices, rows in the same lesion order.

    Parameters
    ----------
    names : sequence of str
        Feature names, one per column of the matrices.
    values_a, values_b : numpy.ndarray
        Feature values of reader A and reader B, shape (lesions, features), in
        each feature's own unit. A lesion with a NaN or inf value for a feature
        is left out of that feature's ICC only.

    Returns
    -------
    pandas.DataFrame
        One row per feature with the columns of ``FEATURE_ICC_COLUMNS``: ICC, CI,
        F test, numbers of lesions and readers and the Koo & Li class. A feature
        with fewer than 2 complete lesions has NaN statistics and an empty class.

    Raises
    ------
    InputError
        If the two matrices differ in shape or their number of columns is not
        ``len(names)``; also as ``icc_2_1`` raises.
    """
    values_a, values_b = np.asarray(values_a, dtype=float), np.asarray(values_b, dtype=float)
    if values_a.shape != values_b.shape or values_a.ndim != 2 or values_a.shape[1] != len(names):
        raise InputError(f"Feature ICC: reader matrices {values_a.shape} and {values_b.shape} for {len(names)} "
                         "features; both readers need the same lesions and features.")
    return feature_icc_table(names, np.stack([values_a, values_b], axis=1))


def feature_icc_table(names: Sequence[str], ratings: np.ndarray) -> pd.DataFrame:
    """ICC(2,1) of each feature over subjects (lesions) and any number of raters (readers or outlines).

    Parameters
    ----------
    names : sequence of str
        Feature names, one per entry of the last axis of ``ratings``.
    ratings : numpy.ndarray
        Shape (lesions, raters, features), each feature in its own unit; a lesion
        with a NaN or inf rating for a feature is left out of that feature's ICC only.

    Returns
    -------
    pandas.DataFrame
        One row per feature with the columns of ``FEATURE_ICC_COLUMNS``; a feature
        with fewer than 2 complete lesions has NaN statistics and an empty class.

    Raises
    ------
    InputError
        If ``ratings`` is not (lesions, raters, features) with one feature per name;
        also as ``icc_2_1`` raises.
    """
    ratings = np.asarray(ratings, dtype=float)
    if ratings.ndim != 3 or ratings.shape[2] != len(names):
        raise InputError(f"Feature ICC: ratings of shape {ratings.shape} for {len(names)} features; give "
                         "(lesions x raters x features).")
    rows = []
    for column, name in enumerate(names):
        matrix = ratings[:, :, column]
        matrix = matrix[np.isfinite(matrix).all(axis=1)]
        if matrix.shape[0] < 2:
            result = IccResult(math.nan, math.nan, math.nan, math.nan, 0, 0, math.nan, matrix.shape[0],
                               ratings.shape[1])
        else:
            result = icc_2_1(matrix)
        rows.append({"feature": name, "icc": result.icc, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "f": result.f, "df1": result.df1, "df2": result.df2, "p_value": result.p_value,
                     "n_lesions": result.n_subjects, "n_readers": result.n_raters,
                     "koo_li_class": koo_li_class(result.icc)})
    return pd.DataFrame(rows, columns=list(FEATURE_ICC_COLUMNS))
