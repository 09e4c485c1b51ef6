"""The report's figures as PNG files, drawn without a display.

Each function draws one figure of the paper's Figures 3-6 from an
:class:`abcir.evaluation.results.Evaluation`, writes ``fig_<name>.png`` into the
output folder and returns the file name, so the HTML can refer to it with a
relative link and open offline.  Figures are sized for a 1000-pixel-wide page
at 110 dpi with 11-pt text, and every axis names its quantity and unit.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..evaluation.results import Evaluation, ModelEvaluation
from ..stats.survival import number_at_risk
from .text import auc_text, p_phrase, safe_name

DPI = 110
FIGURE_PREFIX = "fig_"
RESPONDER_COLOUR = "#1b7837"
NON_RESPONDER_COLOUR = "#c51b7d"
LOW_RISK_COLOUR = "#2166ac"
HIGH_RISK_COLOUR = "#b2182b"
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")

#: Text sizes and spines of every figure, applied only while the report is drawn.
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
         "axes.spines.top": False, "axes.spines.right": False}


def style() -> contextlib.AbstractContextManager:
    """Matplotlib settings for the report, restored afterwards (no global side effect)."""
    return matplotlib.rc_context(STYLE)


def _subplots(*grid: int, figsize: tuple[float, float], **options: Any) -> tuple[Figure, Any]:
    """A figure and its axes, with no pyplot state: the Agg canvas renders ``savefig``.

    Using ``Figure`` directly leaves the process's matplotlib backend alone, so
    the report can be drawn inside Slicer or a notebook as well as on a server.
    """
    figure = Figure(figsize=figsize)
    return figure, figure.subplots(*grid, **options)


def _colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _save(figure: Figure, out_dir: Path, name: str) -> str:
    file_name = f"{FIGURE_PREFIX}{name}.png"
    figure.savefig(out_dir / file_name, dpi=DPI, bbox_inches="tight")
    return file_name


def roc_figure(evaluation: Evaluation, out_dir: Path) -> str:
    """ROC curves of every model, AUC and DeLong 95% CI in the legend (Figure 3E/F).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``.
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str
        The file name written, ``fig_roc.png``.
    """
    figure, axes = _subplots(figsize=(7, 7))
    axes.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="Chance (AUC 0.5)")
    for index, model in enumerate(evaluation.models):
        axes.step(model.roc.false_positive_rate, model.roc.true_positive_rate, where="post",
                  color=_colour(index), linewidth=2,
                  label=f"{model.name}: AUC {auc_text(model)}, n={model.n}")
    axes.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal",
             xlabel="1 \u2212 specificity (false-positive rate)",
             ylabel="Sensitivity (true-positive rate)",
             title="ROC curves for response (CR/PR)")
    axes.legend(loc="lower right")
    return _save(figure, out_dir, "roc")


def calibration_figure(evaluation: Evaluation, out_dir: Path) -> str:
    """Predicted against observed response probability (Figure 3G).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``; each model's logistic calibration (intercept and slope in log-odds, Brier
        score) and lowess smooth are drawn.
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str
        The file name written, ``fig_calibration.png``.
    """
    figure, axes = _subplots(figsize=(7, 7))
    axes.plot([0, 1], [0, 1], color="0.75", linewidth=5, label="Ideal")
    for index, model in enumerate(evaluation.models):
        colour = _colour(index)
        curve = model.calibration_curve
        cal = model.calibration
        if curve.logistic is not None:
            axes.plot(curve.predicted, curve.logistic, color=colour, linewidth=2,
                      label=f"{model.name}: logistic (intercept {cal.intercept:.2f}, "
                            f"slope {cal.slope:.2f}, Brier {cal.brier:.3f})")
        else:
            axes.plot([], [], color=colour, label=f"{model.name}: Brier {cal.brier:.3f} "
                                                  "(logistic fit impossible)")
        axes.plot(curve.smooth_predicted, curve.smooth_observed, color=colour, linestyle="--",
                  linewidth=1.5, label=f"{model.name}: lowess smooth")
        axes.plot(model.probabilities, np.full(model.n, -0.02 - 0.02 * index), "|",
                  color=colour, markersize=8, alpha=0.6)
    axes.set(xlim=(0, 1), ylim=(-0.03 - 0.02 * len(evaluation.models), 1.0),
             xlabel="Predicted probability of response",
             ylabel="Observed proportion of responders",
             title="Calibration (ticks: each patient's prediction)")
    axes.legend(loc="upper left", fontsize=9)
    return _save(figure, out_dir, "calibration")


def decision_figure(evaluation: Evaluation, out_dir: Path) -> str | None:
    """Net benefit against threshold probability with treat-all and treat-none (Figure 3H).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``.
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str or None
        The file name written, ``fig_decision_curve.png``; None (nothing drawn) when the evaluation has no
        decision curves.
    """
    curves = evaluation.decision
    if curves is None:
        return None
    figure, axes = _subplots(figsize=(9, 6))
    axes.plot(curves.thresholds, curves.treat_all, color="0.55", linewidth=2,
              label="Treat all (everyone a responder)")
    axes.plot(curves.thresholds, curves.treat_none, color="black", linewidth=2,
              label="Treat none")
    for index, (name, benefit) in enumerate(curves.net_benefit.items()):
        axes.plot(curves.thresholds, benefit, color=_colour(index), linewidth=2, label=name)
    top = max(curves.prevalence, max(float(np.max(b)) for b in curves.net_benefit.values()))
    axes.set(xlim=(0, 1), ylim=(-0.05, top + 0.05), xlabel="Threshold probability of response",
             ylabel="Net benefit (true positives per patient)",
             title=f"Decision curves (n={curves.n}, prevalence {curves.prevalence:.0%})")
    axes.legend(loc="upper right")
    return _save(figure, out_dir, "decision_curve")


def clinical_impact_figure(evaluation: Evaluation, out_dir: Path) -> str | None:
    """Number called responder and number truly responding, per 1000 (Figure 3I/J).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``; one panel per model of its decision curves.
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str or None
        The file name written, ``fig_clinical_impact.png``; None (nothing drawn) when the evaluation has no
        decision curves.
    """
    curves = evaluation.decision
    if curves is None:
        return None
    names = list(curves.net_benefit)
    figure, axes_row = _subplots(1, len(names), figsize=(6.5 * len(names), 5.5), squeeze=False)
    for axes, name in zip(axes_row[0], names, strict=True):
        axes.plot(curves.thresholds, curves.high_risk_per_1000[name], color=HIGH_RISK_COLOUR,
                  linewidth=2, label="Predicted responders")
        axes.plot(curves.thresholds, curves.true_positive_per_1000[name], color=LOW_RISK_COLOUR,
                  linestyle="--", linewidth=2, label="Predicted responders who respond")
        axes.set(xlim=(0, 1), ylim=(0, 1000), title=name,
                 xlabel="Threshold probability of response",
                 ylabel="Number per 1000 patients")
        ratio = axes.secondary_xaxis(
            "top", functions=(lambda p: p / np.clip(1 - p, 1e-9, None),
                              lambda r: r / (1 + r)))
        ratio.set_xticks([0.25, 0.5, 1, 2, 4, 9], labels=["1:4", "1:2", "1:1", "2:1", "4:1", "9:1"])
        ratio.set_xlabel("Cost:benefit ratio")
        axes.legend(loc="upper right")
    return _save(figure, out_dir, "clinical_impact")


def km_figure(model: ModelEvaluation, out_dir: Path) -> str | None:
    """Kaplan-Meier PFS by risk group with the numbers at risk beneath (Figure 5).

    Parameters
    ----------
    model : ModelEvaluation
        One model's evaluation; its ``survival`` gives the PFS times (months), events, scores (log-odds) and the
        risk cut-off (high risk: score <= cut-off).
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str or None
        The file name written, ``fig_km_<model>.png``; None (nothing drawn) when the model has no survival
        analysis.
    """
    survival = model.survival
    if survival is None:
        return None
    groups = survival.groups
    figure, (axes, table) = _subplots(
        2, 1, figsize=(9, 7.5), gridspec_kw={"height_ratios": [4, 1]}, sharex=True)
    horizon = float(np.max(survival.times))
    ticks = np.linspace(0, horizon, 7)
    ticks = np.unique(np.round(ticks, 0 if horizon >= 12 else 1))
    high = survival.scores <= groups.cutoff
    for row, (curve, members, colour) in enumerate((
            (groups.low_risk, ~high, LOW_RISK_COLOUR),
            (groups.high_risk, high, HIGH_RISK_COLOUR))):
        if curve.n == 0:
            continue
        median = "not reached" if curve.median is None else f"{curve.median:.2f} mo"
        axes.step(curve.times, curve.survival, where="post",
                  color=colour, linewidth=2,
                  label=f"{curve.label}: n={curve.n}, events={curve.events}, median {median}")
        censored = survival.times[members & (survival.events == 0)]
        if censored.size:
            # The curve's time grid starts at 0 and holds every censoring time.
            level = curve.survival[np.searchsorted(curve.times, censored, side="right") - 1]
            axes.plot(censored, level, "+", color=colour, markersize=9, markeredgewidth=1.5)
        counts = number_at_risk(survival.times[members], ticks)
        for tick, count in zip(ticks, counts, strict=True):
            table.text(tick, 1 - row, str(count), ha="center", va="center", color=colour)
    hr = groups.hazard_ratio
    hr_text = ("HR not estimable (infinite)" if hr is None else
               f"HR (high vs low risk) {hr:.2f} (95% CI {groups.hazard_ratio_ci[0]:.2f}\u2013"
               f"{groups.hazard_ratio_ci[1]:.2f})")
    cut = "fixed" if survival.cutoff_method == "fixed" else "maxstat"
    axes.set(ylim=(0, 1.05), ylabel="Progression-free survival probability",
             title=f"{model.name}: PFS by risk group (high risk: score \u2264 "
                   f"{groups.cutoff:.3f}, {cut} cut-off)\n"
                   f"Log-rank {p_phrase(groups.logrank_p)}; {hr_text}")
    axes.legend(loc="upper right")
    table.set(ylim=(-0.5, 1.5), yticks=[1, 0], yticklabels=["Low risk", "High risk"],
              xlabel="Time (months)", xticks=ticks)
    table.set_title("Number at risk", fontsize=10, loc="left")
    for spine in ("left", "bottom"):
        table.spines[spine].set_visible(False)
    table.tick_params(axis="y", length=0)
    table.tick_params(axis="x", labelbottom=True)
    return _save(figure, out_dir, f"km_{safe_name(model.name)}")


def waterfall_figure(model: ModelEvaluation, out_dir: Path) -> str:
    """Each patient's score, sorted, coloured by observed response (Figure 3C/D).

    Parameters
    ----------
    model : ModelEvaluation
        One model's evaluation: scores (log-odds) and observed responses (1 = CR/PR).
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str
        The file name written, ``fig_waterfall_<model>.png``.
    """
    order = np.argsort(-model.scores, kind="stable")
    colours = np.where(model.response[order] == 1, RESPONDER_COLOUR, NON_RESPONDER_COLOUR)
    figure, axes = _subplots(figsize=(10, 5))
    axes.bar(np.arange(model.n), model.scores[order], color=colours, width=0.85)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.bar([0], [0], color=RESPONDER_COLOUR, label="Responder (CR/PR)")
    axes.bar([0], [0], color=NON_RESPONDER_COLOUR, label="Non-responder (SD/PD)")
    axes.set(xlabel="Patients, sorted by score", ylabel="Score (log-odds of response)",
             title=f"{model.name}: waterfall of scores", xticks=[])
    axes.legend(loc="upper right")
    return _save(figure, out_dir, f"waterfall_{safe_name(model.name)}")


def violin_figure(evaluation: Evaluation, out_dir: Path,
                  p_values: dict[str, float | None]) -> str:
    """Score distributions of responders and non-responders per model (Figure 3A/B).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``; one panel per model, scores in log-odds.
    out_dir : Path
        An existing folder; the PNG there is replaced.
    p_values : dict of str to float or None
        The Wilcoxon rank-sum p-value of each model by name, shown in its title; None or absent: 'n/a'.

    Returns
    -------
    str
        The file name written, ``fig_violin.png``.
    """
    models = evaluation.models
    figure, axes_row = _subplots(1, len(models), figsize=(4.5 * len(models), 5.5),
                                    squeeze=False)
    rng = np.random.default_rng(0)  # jitter only; fixed so reports are reproducible
    colours = (NON_RESPONDER_COLOUR, RESPONDER_COLOUR)
    for axes, model in zip(axes_row[0], models, strict=True):
        groups = [model.scores[model.response == 0], model.scores[model.response == 1]]
        parts = axes.violinplot(groups, positions=[0, 1], showmedians=True, widths=0.8)
        for key in ("cmedians", "cmins", "cmaxes", "cbars"):
            parts[key].set_color("black")
        for body, colour in zip(parts["bodies"], colours, strict=True):
            body.set_facecolor(colour)
            body.set_alpha(0.35)
        for position, (values, colour) in enumerate(zip(groups, colours, strict=True)):
            axes.plot(position + rng.uniform(-0.12, 0.12, values.size), values, "o",
                      color=colour, markersize=3.5, alpha=0.7)
        axes.set(xticks=[0, 1], xticklabels=[f"Non-responders\n(n={groups[0].size})",
                                             f"Responders\n(n={groups[1].size})"],
                 ylabel="Score (log-odds of response)",
                 title=f"{model.name}\nWilcoxon {p_phrase(p_values.get(model.name))}")
    return _save(figure, out_dir, "violin")


def forest_figure(evaluation: Evaluation, out_dir: Path) -> str | None:
    """Subgroup AUCs with DeLong 95% CIs, one marker per model (Figure 6).

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``; each model's subgroup AUCs are drawn (a cross where a subgroup has one
        response class only).
    out_dir : Path
        An existing folder; the PNG there is replaced.

    Returns
    -------
    str or None
        The file name written, ``fig_forest.png``; None (nothing drawn) when no model has subgroups.
    """
    labels: list[str] = []
    for model in evaluation.models:
        for sub in model.subgroups:
            label = f"{sub.column}: {sub.level}"
            if label not in labels:
                labels.append(label)
    if not labels:
        return None
    count = len(evaluation.models)
    figure, axes = _subplots(figsize=(9, 1.2 + 0.45 * len(labels) * max(count, 2)))
    offsets = np.linspace(-0.25, 0.25, count) if count > 1 else np.zeros(1)
    for index, model in enumerate(evaluation.models):
        for sub in model.subgroups:
            y = labels.index(f"{sub.column}: {sub.level}") + offsets[index]
            axes.text(1.04, y, f"n={sub.n}, {sub.n_responders} resp.", va="center",
                      fontsize=8, color=_colour(index))
            if sub.auc is None:
                axes.plot(0.5, y, "x", color=_colour(index), markersize=7)
                continue
            if sub.auc.ci_low is not None:
                axes.plot([sub.auc.ci_low, sub.auc.ci_high], [y, y], color=_colour(index),
                          linewidth=2)
            axes.plot(sub.auc.auc, y, "s", color=_colour(index), markersize=7)
        axes.plot([], [], "s-", color=_colour(index), label=model.name)
    axes.axvline(0.5, color="0.5", linestyle=":")
    axes.set(yticks=range(len(labels)), yticklabels=labels, xlim=(-0.02, 1.3),
             xticks=np.linspace(0, 1, 6),
             ylim=(len(labels) - 0.5, -0.5), xlabel="AUC (95% CI, DeLong)",
             title="Subgroup AUCs (\u00d7: one response class only, no AUC)")
    axes.legend(loc="lower left")
    return _save(figure, out_dir, "forest")
