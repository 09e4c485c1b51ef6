"""Maximally selected log-rank statistic: the paper's optimal risk cut-off.

The paper split patients into high- and low-risk groups "based on log-rank
tests to find the optimal cut-off value" (Methods; cut-offs in Table S5).  In
R this is ``maxstat::maxstat.test(Surv(time, event) ~ score, smethod =
"LogRank", pmethod = "Lau94", minprop = 0.1, maxprop = 0.9)``.  This module
reproduces that function step by step, including its floating-point order of
operations, so the selected cut-off is the same value of the score:

1. log-rank scores (``exactRankTests::cscores.Surv``): with ``r_i`` the number
   of patients whose time is <= ``t_i`` (ties share the largest rank), each
   patient contributes ``event_i / (N - r_i + 1)`` to a running sum over the
   time-ordered patients, and ``score_i = event_i - (running sum at r_i)``;
2. patients sorted by the marker (stable, as R's ``order``); candidate splits
   are the numbers ``m`` of patients strictly below each distinct marker value,
   kept when ``max(1, floor(N minprop)) <= m <= floor(N maxprop)``;
3. for each split the standardized linear rank statistic
   ``|S_m - E_m| / sqrt(V_m)`` with ``S_m`` the sum of the first ``m`` scores,
   ``E_m = m/N sum(s)``, ``V_m = m (N - m) / (N^2 (N - 1)) (N sum(s^2) - sum(s)^2)``;
4. the statistic is the maximum, the cut-off the largest marker value in the
   lower group of the first split reaching it (so "marker <= cut-off" is that
   group), and the p-value Lausen & Schumacher's (1994) improved Bonferroni
   bound ``pLausen94``.

R accumulates ``sum`` and ``cumsum`` in long double; so does this module, so
that splits whose statistics are equal on paper break the tie the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from abcir.errors import InputError
from abcir.paper import MAXSTAT_MAX_PROPORTION, MAXSTAT_MIN_PROPORTION



@dataclass(frozen=True)
class MaxstatResult:
    """Outcome of the maximally selected log-rank test.

    ``cutoff`` is a value of the marker: patients with marker <= ``cutoff``
    form the lower group.  ``p_value`` is Lausen-Schumacher's bound, capped at
    1 (the bound itself can exceed 1 when the statistic is small; R prints it
    uncapped).  ``cuts`` and ``statistics`` hold every candidate split, for a
    plot of the statistic against the cut-off.
    """

    cutoff: float
    statistic: float
    p_value: float
    n: int
    cuts: np.ndarray
    statistics: np.ndarray


def _long_cumsum(values: np.ndarray) -> np.ndarray:
    """Cumulative sum accumulated in long double and rounded to double, as R's ``cumsum``."""
    return np.cumsum(values.astype(np.longdouble)).astype(np.float64)


def _long_sum(values: np.ndarray) -> float:
    """Sequential long-double sum rounded to double, as R's ``sum`` (numpy's is pairwise)."""
    if values.size == 0:
        return 0.0
    return float(np.cumsum(values.astype(np.longdouble))[-1])


def logrank_scores(time: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Log-rank scores of right-censored times (``exactRankTests::cscores.Surv``).

    Parameters
    ----------
    time : numpy.ndarray
        Follow-up time per patient (months; any unit gives the same scores).
    event : numpy.ndarray
        1 for progression or death, 0 for censoring, per patient.

    Returns
    -------
    numpy.ndarray
        One log-rank score per patient, in input order (float64).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    n = time.size
    order = np.argsort(time, kind="stable")
    sorted_time = time[order]
    # Rank of each patient = number of patients with time <= theirs (ties share the largest).
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.searchsorted(sorted_time, sorted_time, side="right")
    increments = event / (n - rank + 1.0)
    running = _long_cumsum(increments[order])
    return event - running[rank - 1]


def p_lausen94(statistic: float, n: int, splits: np.ndarray) -> float:
    """Lausen & Schumacher (1994) p-value bound for a maximally selected statistic.

    ``splits`` are the lower-group sizes that were examined (``m`` in maxstat).
    R's ``maxstat::pLausen94`` as called by ``maxstat.test(pmethod = "Lau94")``.

    Parameters
    ----------
    statistic : float
        The maximal standardized log-rank statistic (absolute value).
    n : int
        Number of patients.
    splits : numpy.ndarray
        Lower-group sizes of the candidate splits, increasing.

    Returns
    -------
    float
        The improved Bonferroni bound; not capped, so it can exceed 1 for a small
        statistic (as R's).
    """
    b = statistic
    m = np.asarray(splits, dtype=float)
    if m.size <= 1:
        correction = 0.0
    else:
        m1 = m[:-1]
        m2 = m[1:]
        t = np.sqrt(1 - m1 * (n - m2) / ((n - m1) * m2))
        terms = 1 / math.pi * math.exp(-(b**2) / 2) * (t - (b**2 / 4 - 1) * (t**3) / 6)
        correction = _long_sum(terms)
    return 1 - (norm.cdf(b) - norm.cdf(-b)) + correction


def maxstat_logrank(
    marker: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    min_proportion: float = MAXSTAT_MIN_PROPORTION,
    max_proportion: float = MAXSTAT_MAX_PROPORTION,
) -> MaxstatResult:
    """Choose the cut-off of ``marker`` that best separates survival (months, 0/1 events).

    R's ``maxstat::maxstat.test(Surv(time, event) ~ marker, smethod = "LogRank",
    pmethod = "Lau94", minprop, maxprop)``, reproduced step by step.

    Parameters
    ----------
    marker : numpy.ndarray
        1-D score per patient (e.g. a model's log-odds of response).
    time : numpy.ndarray
        Progression-free survival time per patient, months.
    event : numpy.ndarray
        1 for progression or death, 0 for censoring, per patient.
    min_proportion, max_proportion : float, optional
        Smallest and largest share of patients allowed in the lower group
        (R's ``minprop`` and ``maxprop``; default 0.1 and 0.9).

    Returns
    -------
    MaxstatResult
        The cut-off (a marker value; marker <= cut-off is the lower group), the
        maximal statistic, its p-value capped at 1, the number of patients and
        every candidate cut-off with its statistic.

    Raises
    ------
    ValueError
        If the three arrays differ in shape or hold fewer than 2 patients.
    InputError
        If there are no events, too few distinct marker values, no split within
        the proportions, or the log-rank scores do not vary.
    """
    marker = np.asarray(marker, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    n = marker.size
    if not (marker.shape == time.shape == event.shape) or n < 2:
        raise ValueError("marker, time and event must be 1-D arrays of the same length >= 2")
    if event.sum() == 0:
        raise InputError("No progression events: a log-rank cut-off cannot be chosen.")

    scores = logrank_scores(time, event)
    order = np.argsort(marker, kind="stable")
    y = scores[order]
    x = marker[order]
    first_of_value = np.r_[True, x[1:] != x[:-1]]
    m = np.flatnonzero(first_of_value)
    lowest = math.floor(n * min_proportion)
    highest = math.floor(n * max_proportion)
    if np.all(m < lowest):
        raise InputError(
            f"Too few distinct scores to keep {min_proportion:.0%} of patients in each group."
        )
    m = m[(m >= max(1, lowest)) & (m <= highest)]
    if m.size < 1:
        raise InputError(
            "No cut-off leaves between "
            f"{min_proportion:.0%} and {max_proportion:.0%} of patients in the lower group."
        )

    total = _long_sum(y)
    total_sq = _long_sum(y * y)
    expected = m / n * total
    variance = (m * (n - m)) / (float(n) ** 2 * (n - 1)) * (n * total_sq - total**2)
    if not np.all(variance > 0):
        raise InputError("The log-rank scores do not vary: every patient has the same outcome.")
    statistics = np.abs((_long_cumsum(y)[m - 1] - expected) / np.sqrt(variance))
    best = int(np.flatnonzero(statistics == statistics.max())[0])
    statistic = float(statistics[best])
    return MaxstatResult(
        cutoff=float(x[m[best] - 1]),
        statistic=statistic,
        p_value=min(p_lausen94(statistic, n, m), 1.0),
        n=n,
        cuts=x[m - 1],
        statistics=statistics,
    )
