"""Progression-free survival by risk group, as the paper's Figure 5 and Tables S5-S6.

Kaplan-Meier curves, the log-rank test and the Cox hazard ratio come from
lifelines, which agree with R's ``survfit``, ``survdiff`` and ``coxph`` (Efron
ties).  Two things lifelines does differently from R are computed here:

* the median follows ``survival:::survmean``: the first time the curve is
  below 0.5, except that when the curve sits exactly at 0.5 (within
  sqrt(machine epsilon)) the median is the midpoint between the time it got
  there and the time it next drops;
* Harrell's C-index and its standard error follow
  ``survival::concordance(Surv(time, event) ~ score)``: a higher score is
  concordant with a longer time, and the standard error is the infinitesimal
  jackknife of Somers' d (the ``var`` element that ``print`` shows as "se").

Times are in months; events are 1 for progression or death, 0 for censoring.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test

#: Tolerance R's survival package uses to decide that a curve equals 0.5.
_MEDIAN_TOLERANCE = np.finfo(float).eps ** 0.5


@dataclass(frozen=True)
class KaplanMeierCurve:
    """Step function S(t) with the time points where it is evaluated (months)."""

    label: str
    times: np.ndarray
    survival: np.ndarray
    n: int
    events: int
    median: float | None


@dataclass(frozen=True)
class RiskGroupComparison:
    """High-risk (score <= cut-off) versus low-risk (score > cut-off) survival.

    ``hazard_ratio`` is high versus low risk; it and its Wald CI are ``None``
    when the Cox estimate is infinite: a group without events, or every event
    of one group before every time of the other (R's coxph then warns that the
    coefficient "may be infinite" and prints a meaningless number).
    ``logrank_p`` is ``None`` when either group is empty.
    """

    cutoff: float
    low_risk: KaplanMeierCurve
    high_risk: KaplanMeierCurve
    logrank_p: float | None
    hazard_ratio: float | None
    hazard_ratio_ci: tuple[float, float] | None


@dataclass(frozen=True)
class Concordance:
    """Harrell's C with the pair counts that define it."""

    c_index: float
    std_err: float
    concordant: float
    discordant: float
    tied_score: float
    tied_time: float
    tied_both: float


def km_median(times: np.ndarray, survival: np.ndarray) -> float | None:
    """Median survival time of a step curve by R's rule; ``None`` when not reached.

    As ``survival:::survmean``: the first time the curve is below 0.5, or the
    midpoint to the next drop when it sits at 0.5 (within sqrt(machine eps)).

    Parameters
    ----------
    times : numpy.ndarray
        Increasing time points of the step curve, months.
    survival : numpy.ndarray
        Survival probability S(t) at each of ``times``, 0 to 1.

    Returns
    -------
    float or None
        Median time in months, or None when the curve never reaches 0.5.
    """
    times = np.asarray(times, dtype=float)
    survival = np.asarray(survival, dtype=float)
    keep = survival < 0.5 + _MEDIAN_TOLERANCE
    if not keep.any():
        return None
    kept_times = times[keep]
    kept_surv = survival[keep]
    if abs(kept_surv[0] - 0.5) < _MEDIAN_TOLERANCE and np.any(kept_surv < kept_surv[0]):
        next_drop = kept_times[np.flatnonzero(kept_surv < kept_surv[0])[0]]
        return float((kept_times[0] + next_drop) / 2)
    return float(kept_times[0])


def kaplan_meier(time: np.ndarray, event: np.ndarray, label: str) -> KaplanMeierCurve:
    """Kaplan-Meier estimate of PFS (months) with R's median.

    The curve is lifelines' ``KaplanMeierFitter`` (as R's ``survfit``); the
    median is ``km_median``.

    Parameters
    ----------
    time : numpy.ndarray
        Progression-free survival time per patient, months.
    event : numpy.ndarray
        1 for progression or death, 0 for censoring, per patient.
    label : str
        Name of the curve, e.g. "High risk".

    Returns
    -------
    KaplanMeierCurve
        Time points (months) and S(t), number of patients and events, and the
        median (None when not reached).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    fitter = KaplanMeierFitter().fit(time, event, label=label)
    curve = fitter.survival_function_
    times = curve.index.to_numpy(dtype=float)
    survival = curve.iloc[:, 0].to_numpy(dtype=float)
    return KaplanMeierCurve(
        label=label,
        times=times,
        survival=survival,
        n=int(time.size),
        events=int(event.sum()),
        median=km_median(times, survival),
    )


def number_at_risk(time: np.ndarray, at_times: np.ndarray) -> np.ndarray:
    """Patients still followed (time >= t) at each of ``at_times``: the table under a KM plot.

    Parameters
    ----------
    time : numpy.ndarray
        Follow-up time (event or censoring) per patient, months.
    at_times : numpy.ndarray
        Time points at which to count, months.

    Returns
    -------
    numpy.ndarray
        Integer number at risk at each of ``at_times``.
    """
    time = np.sort(np.asarray(time, dtype=float))
    return time.size - np.searchsorted(time, np.asarray(at_times, dtype=float), side="left")


def _cox_hazard_ratio(
    time: np.ndarray, event: np.ndarray, high_risk: np.ndarray
) -> tuple[float, tuple[float, float]] | None:
    """Cox HR of high versus low risk, Efron ties, Wald 95% CI (R ``coxph`` defaults).

    ``None`` when the CI is unbounded, i.e. the likelihood has no maximum.
    """
    frame = pd.DataFrame({"time": time, "event": event, "high_risk": high_risk.astype(float)})
    fitter = CoxPHFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter.fit(frame, "time", "event", fit_options={"precision": 1e-12, "max_steps": 200})
    summary = fitter.summary.loc["high_risk"]
    estimate = [float(summary[key]) for key in
                ("exp(coef)", "exp(coef) lower 95%", "exp(coef) upper 95%")]
    if not all(np.isfinite(value) and value > 0 for value in estimate):
        return None
    return estimate[0], (estimate[1], estimate[2])


def compare_risk_groups(
    score: np.ndarray, time: np.ndarray, event: np.ndarray, cutoff: float
) -> RiskGroupComparison:
    """Split at ``cutoff`` (high risk = score <= cutoff) and compare PFS of the two groups.

    Log-rank test as R's ``survdiff`` and Cox hazard ratio (Efron ties, Wald 95%
    CI) as R's ``coxph``, both from lifelines.

    Parameters
    ----------
    score : numpy.ndarray
        Score per patient (e.g. a model's log-odds of response); higher = lower risk.
    time : numpy.ndarray
        Progression-free survival time per patient, months.
    event : numpy.ndarray
        1 for progression or death, 0 for censoring, per patient.
    cutoff : float
        Score at or below which a patient is high risk, e.g. from ``maxstat_logrank``.

    Returns
    -------
    RiskGroupComparison
        Kaplan-Meier curves of both groups, the log-rank p-value (None when a
        group is empty) and the high- versus low-risk hazard ratio with its CI
        (None when a group has no events or the estimate is infinite).
    """
    score = np.asarray(score, dtype=float)
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    high = score <= cutoff
    low_curve = kaplan_meier(time[~high], event[~high], "Low risk")
    high_curve = kaplan_meier(time[high], event[high], "High risk")
    logrank_p = None
    if high.any() and (~high).any():
        logrank_p = float(
            logrank_test(time[high], time[~high], event[high], event[~high]).p_value
        )
    cox = None
    if event[high].any() and event[~high].any():
        cox = _cox_hazard_ratio(time, event, high)
    hazard_ratio, hazard_ratio_ci = cox if cox is not None else (None, None)
    return RiskGroupComparison(
        cutoff=float(cutoff),
        low_risk=low_curve,
        high_risk=high_curve,
        logrank_p=logrank_p,
        hazard_ratio=hazard_ratio,
        hazard_ratio_ci=hazard_ratio_ci,
    )


def concordance(time: np.ndarray, event: np.ndarray, score: np.ndarray) -> Concordance:
    """Harrell's C-index of ``score`` for PFS, higher score = longer PFS.

    A pair is comparable when the patient with the shorter time progressed; a
    censored patient whose time equals a progression time counts as the longer
    one.  Pairs progressing at the same time are tied in time and left out of
    C, as are pairs with tied times and scores.  Each patient's share of the
    concordant, discordant and tied-score pairs is its influence on Somers' d
    (``survival:::concordancefit``), whose sum of squares / 4 is the variance.
    Matches R's ``survival::concordance(Surv(time, event) ~ score)``.

    Parameters
    ----------
    time : numpy.ndarray
        Progression-free survival time per patient, months.
    event : numpy.ndarray
        1 for progression or death, 0 for censoring, per patient.
    score : numpy.ndarray
        Score per patient; a higher score predicts a longer time.

    Returns
    -------
    Concordance
        C-index (tied scores count 1/2), its standard error (R's "se") and the
        numbers of concordant, discordant, tied-score, tied-time and tied-both pairs.

    Raises
    ------
    ValueError
        If there is no comparable pair (no progression before another
        patient's last follow-up).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=int)
    score = np.asarray(score, dtype=float)
    n = time.size
    influence = np.zeros((n, 3))  # concordant, discordant, tied score
    tied_time = 0.0
    tied_both = 0.0
    for i in np.flatnonzero(event == 1):
        later = (time > time[i]) | ((time == time[i]) & (event == 0))
        same_time = (time == time[i]) & (event == 1)
        same_time[i] = False
        equal_score = score == score[i]
        # Pairs of two progressions at one time are seen from both sides: count half each time.
        tied_both += 0.5 * np.sum(same_time & equal_score)
        tied_time += 0.5 * np.sum(same_time & ~equal_score)
        for column, member in enumerate(
            (later & (score > score[i]), later & (score < score[i]), later & equal_score)
        ):
            influence[member, column] += 1
            influence[i, column] += member.sum()
    concordant, discordant, tied_score = influence.sum(axis=0) / 2
    pairs = concordant + discordant + tied_score
    if pairs == 0:
        raise ValueError("No comparable pairs: the C-index needs at least one progression "
                         "before another patient's last follow-up.")
    somers_d = (concordant - discordant) / pairs
    dfbeta = (influence[:, 0] - influence[:, 1]) / pairs - somers_d / pairs * influence.sum(axis=1)
    return Concordance(
        c_index=float((somers_d + 1) / 2),
        std_err=float(np.sqrt(np.sum(dfbeta**2) / 4)),
        concordant=float(concordant),
        discordant=float(discordant),
        tied_score=float(tied_score),
        tied_time=float(tied_time),
        tied_both=float(tied_both),
    )
