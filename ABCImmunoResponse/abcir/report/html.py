"""``report.html``: one self-contained page for clinicians and statisticians.

The page follows the paper's order: performance (Table 2, ROC, model
comparisons), calibration and clinical usefulness (calibration, decision and
clinical impact curves), score distributions (Table S4, violins, waterfalls),
survival (Tables S5-S6, Kaplan-Meier), subgroups (Tables S7-S12, forest plot)
and baseline characteristics (Table 1).  It uses inline CSS and relative links
to the PNGs beside it: no script, font or style sheet from the network, so it
opens offline and prints cleanly.
"""

from __future__ import annotations

import datetime
import html
from pathlib import Path

import numpy as np

from .. import __version__
from ..evaluation.results import Evaluation
from ..stats.baseline_table import wilcoxon_rank_sum
from . import figures
from .figures import FIGURE_PREFIX
from .text import auc_text, format_p, p_phrase

REPORT_FILE = "report.html"
#: Two-sided normal quantile for the C-index 95% CI shown next to its SE (Table S5).
Z_95 = 1.959963984540054

STYLE = """
body { font-family: "DejaVu Sans", Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0 1.2em; font-size: 0.95em; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.4em; }
th, td { border-top: 1px solid #ddd; border-bottom: 1px solid #ddd; padding: 0.3em 0.8em;
         text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #888; background: #f4f4f4; }
td.level { padding-left: 2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
.notes { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.5em 1em; }
.small { font-size: 0.85em; color: #555; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _table(caption: str, header: list[str], rows: list[list[str]],
           level_rows: set[int] | None = None) -> str:
    """An HTML table; cells are escaped here, so callers pass plain text."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        first_class = ' class="level"' if level_rows and index in level_rows else ""
        cells = [f"<td{first_class}>{_esc(row[0])}</td>"] + [f"<td>{_esc(c)}</td>" for c in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table><caption>{_esc(caption)}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _figure(file_name: str | None, caption: str) -> str:
    if file_name is None:
        return ""
    return (f'<figure><img src="{_esc(file_name)}" alt="{_esc(caption)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _performance(evaluation: Evaluation) -> str:
    models = evaluation.models
    header = ["Value"] + [m.name for m in models]
    rows = [
        ["AUC (95% CI)"] + [auc_text(m).replace("95% CI ", "") for m in models],
        ["SEN"] + [_fmt(m.metrics.sensitivity) for m in models],
        ["SPE"] + [_fmt(m.metrics.specificity) for m in models],
        ["ACC"] + [_fmt(m.metrics.accuracy) for m in models],
        ["PPV"] + [_fmt(m.metrics.ppv) for m in models],
        ["NPV"] + [_fmt(m.metrics.npv) for m in models],
        ["Patients (responders / non-responders)"]
        + [f"{m.n} ({m.n_responders} / {m.n - m.n_responders})" for m in models],
        ["Calibration intercept"] + [_fmt(m.calibration.intercept) for m in models],
        ["Calibration slope"] + [_fmt(m.calibration.slope) for m in models],
        ["Brier score"] + [_fmt(m.calibration.brier) for m in models],
    ]
    table = _table("Table 2 layout: performance for predicting response (CR/PR)", header, rows)
    note = ("<p class='small'>AUC with DeLong 95% CI (as pROC). SEN, SPE, ACC, PPV, NPV call a "
            "patient a responder when the predicted probability is at least 0.5. Calibration "
            "intercept and slope from the logistic recalibration of rms val.prob (ideal 0 and "
            "1); Brier score = mean squared error of the probability (lower is better).</p>")
    comparison_rows = [
        [f"{c.a} vs {c.b}", str(c.n),
         _fmt(c.test.auc_a - c.test.auc_b) if c.test else "n/a",
         _fmt(c.test.z, 2) if c.test else "n/a",
         format_p(c.test.p_value) if c.test else "n/a (fewer than 2 per class)"]
        for c in evaluation.comparisons
    ]
    comparisons = ""
    if comparison_rows:
        comparisons = _table("AUC comparisons: DeLong's test for correlated ROC curves",
                             ["Models", "Patients", "AUC difference", "Z", "p"], comparison_rows)
    return table + note + comparisons


def _score_distribution(evaluation: Evaluation) -> tuple[str, dict[str, float | None]]:
    rows = []
    p_values: dict[str, float | None] = {}
    for model in evaluation.models:
        groups = [model.scores[model.response == 0], model.scores[model.response == 1]]
        p_values[model.name] = wilcoxon_rank_sum(*groups)
        cells = [f"{np.median(g):.3f} ({np.percentile(g, 25):.3f}, {np.percentile(g, 75):.3f})"
                 for g in groups]
        rows.append([model.name, *cells, format_p(p_values[model.name])])
    table = _table("Table S4 layout: scores by response, median (IQR), Wilcoxon rank-sum test",
                   ["Model", "Non-responders", "Responders", "p"], rows)
    return table, p_values


def _survival(evaluation: Evaluation, out_dir: Path) -> str:
    rows_s5, rows_s6 = [], []
    for model in evaluation.models:
        survival = model.survival
        if survival is None:
            continue
        groups = survival.groups
        cindex = survival.concordance
        hr = ("n/a" if groups.hazard_ratio is None else
              f"{groups.hazard_ratio:.3f} ({groups.hazard_ratio_ci[0]:.3f}\u2013"
              f"{groups.hazard_ratio_ci[1]:.3f})")
        maxstat = survival.maxstat
        rows_s5.append([
            model.name, f"{groups.cutoff:.3f}",
            "maxstat (log-rank)" if maxstat else "fixed (--cutoff)",
            f"{maxstat.statistic:.3f} ({p_phrase(maxstat.p_value)})" if maxstat else "n/a",
            f"{cindex.c_index:.3f} \u00b1 {cindex.std_err:.3f}",
            f"[{cindex.c_index - Z_95 * cindex.std_err:.3f}, "
            f"{cindex.c_index + Z_95 * cindex.std_err:.3f}]",
            hr, format_p(groups.logrank_p), str(survival.n),
        ])
        for curve in (groups.low_risk, groups.high_risk):
            rows_s6.append([f"{model.name}: {curve.label}", str(curve.n), str(curve.events),
                            "not reached" if curve.median is None else f"{curve.median:.2f}"])
    if not rows_s5:
        return ""
    s5 = _table("Table S5 layout: risk cut-off, C-index and hazard ratio for PFS",
                ["Model", "Cut-off (score)", "Chosen by", "Max. statistic (Lau94 p)",
                 "C-index \u00b1 SE", "C-index 95% CI", "HR high vs low (95% CI)",
                 "Log-rank p", "Patients"], rows_s5)
    s6 = _table("Table S6 layout: PFS by risk group",
                ["Group", "n", "Events", "Median PFS (months)"], rows_s6)
    note = ("<p class='small'>High risk = score at or below the cut-off. The cut-off maximises "
            "the standardized log-rank statistic over splits keeping 10-90% of patients in each "
            "group (maxstat, p by Lausen &amp; Schumacher 1994, which accounts for the search); "
            "the log-rank p and HR at that cut-off do not, so they are optimistic on the data "
            "that chose it. HR from a Cox model (Efron ties) with Wald CI. C-index as "
            "survival::concordance: higher score concordant with longer PFS.</p>")
    km = "".join(_figure(figures.km_figure(m, out_dir),
                         f"{m.name}: Kaplan-Meier PFS by risk group, numbers at risk below.")
                 for m in evaluation.models)
    return s5 + s6 + note + km


def _subgroups(evaluation: Evaluation) -> str:
    if not evaluation.subgroup_columns:
        return ""
    rows = []
    for model in evaluation.models:
        for sub in model.subgroups:
            if sub.auc is None:
                auc = "n/a (one response class)"
            elif sub.auc.ci_low is None:
                auc = f"{sub.auc.auc:.3f} (no CI: one patient in a class)"
            else:
                auc = f"{sub.auc.auc:.3f} ({sub.auc.ci_low:.3f}\u2013{sub.auc.ci_high:.3f})"
            rows.append([model.name, sub.column, sub.level, str(sub.n), str(sub.n_responders),
                         auc])
    return _table("Tables S7-S12 layout: AUC (95% CI) within subgroups",
                  ["Model", "Variable", "Level", "Patients", "Responders", "AUC (95% CI)"], rows)


def _baseline(evaluation: Evaluation) -> str:
    table = evaluation.baseline
    if table is None:
        return ""
    rows, level_rows = [], set()
    for variable in table.variables:
        for row in variable.rows:
            first = row is variable.rows[0]
            if row.level is not None:
                level_rows.add(len(rows))
            rows.append([row.label, *row.summaries,
                         format_p(variable.p_value) if first else "",
                         variable.test if first else "",
                         str(variable.missing) if first and variable.missing else ""])
    labels = [f"{label} (N={n})" for label, n in zip(table.group_labels, table.group_sizes,
                                                             strict=True)]
    return _table("Table 1 layout: baseline characteristics by response",
                  ["Characteristic", *labels, "p", "Test", "Missing"], rows, level_rows)


def write_report(evaluation: Evaluation, out_dir: Path) -> Path:
    """Draw the figures into ``out_dir`` and write ``report.html`` there.

    Figures of an earlier report in ``out_dir`` (``fig_*.png``) are removed first,
    so that the page never links a figure of another run.

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``abcir.evaluation.analysis.evaluate``.
    out_dir : Path
        An existing folder; ``report.html`` there is replaced.

    Returns
    -------
    Path
        The ``report.html`` written (UTF-8), with the PNG figures beside it.
    """
    out_dir = Path(out_dir)
    for old in out_dir.glob(f"{FIGURE_PREFIX}*.png"):
        old.unlink()  # figures of an earlier run that --force replaces
    with figures.style():
        body = _body(evaluation, out_dir)
    path = out_dir / REPORT_FILE
    path.write_text(body, encoding="utf-8")
    return path


def _outline_stability(evaluation: Evaluation) -> str:
    """The share of patients whose risk group holds under outline changes, per model; "" without the columns."""
    models = [m for m in evaluation.models if m.stability is not None]
    if not models:
        return ""

    def cell(stable: int, total: int, share: float | None) -> str:
        return "n/a" if share is None else f"{stable} / {total} ({100 * share:.0f}%)"

    rows = [[m.name, cell(m.stability.n_stable, m.stability.n, m.stability.share),
             cell(m.stability.n_stable_responders, m.stability.n_responders, m.stability.share_responders),
             cell(m.stability.n_stable - m.stability.n_stable_responders, m.stability.n - m.stability.n_responders,
                  m.stability.share_non_responders)] for m in models]
    note = ("<p class='small'>A patient is stable when the risk group holds under all but at most the analysis' "
            "flip limit of plausible outline changes (abcir batch --sensitivity). This is the prediction's "
            "sensitivity to the outline, not a confidence interval of the probability.</p>")
    return _table("Patients whose risk group is stable under outline changes",
                  ["Model", "All", "Responders", "Non-responders"], rows) + note


def _body(evaluation: Evaluation, out_dir: Path) -> str:
    score_table, p_values = _score_distribution(evaluation)
    notes = "".join(f"<li>{_esc(n)}</li>" for n in evaluation.notes)
    sections = [
        f"<h1>Response prediction: evaluation report</h1>"
        f"<p class='small'>Predictions: {_esc(evaluation.source.name)} \u00b7 "
        f"{len(evaluation.models)} model(s) \u00b7 generated "
        f"{datetime.date.today().isoformat()} by abcir {__version__}. Research software, "
        "not clinically validated.</p>",
        "<p class='small'>Weights behind the probabilities:</p><ul class='small'>"
        + "".join(f"<li>{_esc(line)}</li>" for line in evaluation.weights) + "</ul>" if evaluation.weights else "",
        f"<div class='notes'><ul>{notes}</ul></div>" if notes else "",
        "<h2>Discrimination</h2>", _performance(evaluation),
        _figure(figures.roc_figure(evaluation, out_dir),
                "ROC curves; legend: AUC with DeLong 95% CI."),
        "<h2>Calibration and clinical usefulness</h2>",
        _figure(figures.calibration_figure(evaluation, out_dir),
                "Calibration: logistic recalibration (solid), lowess smooth (dashed)."),
        _figure(figures.decision_figure(evaluation, out_dir),
                "Decision curves: net benefit of treating patients above each threshold "
                "probability as responders, against treating all or none."),
        _figure(figures.clinical_impact_figure(evaluation, out_dir),
                "Clinical impact: of 1000 patients, how many each model calls responders and "
                "how many of them respond."),
        "<h2>Score distributions</h2>", score_table,
        _figure(figures.violin_figure(evaluation, out_dir, p_values),
                "Scores by observed response."),
        "".join(_figure(figures.waterfall_figure(m, out_dir), f"{m.name}: waterfall of scores.")
                for m in evaluation.models),
    ]
    stability = _outline_stability(evaluation)
    if stability:
        sections += ["<h2>Outline sensitivity</h2>", stability]
    if evaluation.has_survival:
        sections += ["<h2>Progression-free survival</h2>", _survival(evaluation, out_dir)]
    if evaluation.subgroup_columns:
        sections += ["<h2>Subgroups</h2>", _subgroups(evaluation),
                     _figure(figures.forest_figure(evaluation, out_dir),
                             "Subgroup AUCs with DeLong 95% CIs.")]
    if evaluation.baseline is not None:
        sections += ["<h2>Baseline characteristics</h2>", _baseline(evaluation)]
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<title>abcir evaluation report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
