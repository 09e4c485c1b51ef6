"""The cohort agreement report: one HTML page with the ICC table, the ICC histogram and the Bland-Altman plot.

Figures are also written as PNG files next to the page, which embeds them, so
the page can be mailed on its own. They are drawn on ``matplotlib.figure.Figure``
directly, without pyplot, so no global backend or figure state is touched.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from ..stats.agreement import KOO_LI_CLASSES
from .cohort import CohortAgreement

REPORT_FILE = "report.html"
HISTOGRAM_FILE = "icc_histogram.png"
BLAND_ALTMAN_FILE = "bland_altman_probability.png"


def feature_group_table(feature_icc: pd.DataFrame, min_icc: float) -> pd.DataFrame:
    """Share of features with ICC >= ``min_icc`` per image type (rows) and feature class (columns).

    Parameters
    ----------
    feature_icc : pd.DataFrame
        The per-feature ICC table: ``feature`` (named ``image_class_name``, e.g. ``original_firstorder_Mean``)
        and ``icc``.
    min_icc : float
        The ICC(2,1) at which a feature counts as reproducible.

    Returns
    -------
    pd.DataFrame
        Shares in [0, 1], indexed by image type, one column per feature class; a feature with an undefined ICC
        counts as not reproducible; NaN where an image type has no feature of that class.
    """
    parts = feature_icc["feature"].str.split("_", n=2, expand=True)
    frame = pd.DataFrame({"image": parts[0], "feature_class": parts[1],
                          "reproducible": feature_icc["icc"].fillna(-1.0) >= min_icc})
    table = frame.pivot_table(index="image", columns="feature_class", values="reproducible", aggfunc="mean",
                              sort=False)
    return table


def icc_histogram(result: CohortAgreement, path: str | os.PathLike) -> Path:
    """Histogram of the features' ICC(2,1), with Koo & Li's class limits.

    Parameters
    ----------
    result : CohortAgreement
        The cohort agreement; its ``feature_icc`` and ``min_icc`` are drawn (undefined ICCs are left out, ICCs
        below -1 shown at -1).
    path : str or os.PathLike
        The PNG file to write (replaced if it exists).

    Returns
    -------
    Path
        ``path``.
    """
    values = result.feature_icc["icc"].dropna()
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    axes.hist(values.clip(lower=-1.0), bins=40, range=(-1.0, 1.0), color="#4477aa", edgecolor="white")
    for limit, _label in KOO_LI_CLASSES[:-1]:
        axes.axvline(limit, color="#999999", linestyle=":", linewidth=1)
    axes.axvline(result.min_icc, color="#cc3311", linewidth=1.5, label=f"ICC = {result.min_icc:g}")
    axes.set_xlabel("ICC(2,1) between readers (values below -1 shown at -1)")
    axes.set_ylabel("features")
    axes.set_title(f"{(values >= result.min_icc).sum()} of {len(values)} features with ICC >= {result.min_icc:g}")
    axes.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def bland_altman_plot(result: CohortAgreement, path: str | os.PathLike) -> Path:
    """Bland-Altman plot of the predicted probability, reader B minus reader A.

    Parameters
    ----------
    result : CohortAgreement
        The cohort agreement, with predictions under both readers and their Bland-Altman limits.
    path : str or os.PathLike
        The PNG file to write (replaced if it exists).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        When ``result`` has no predictions or no Bland-Altman limits.
    """
    if result.predictions is None or result.probability_agreement is None:
        raise InputError("Bland-Altman plot: no predictions under both readers.")
    frame = result.predictions.dropna(subset=["probability_a", "probability_b"])
    mean = (frame["probability_a"] + frame["probability_b"]) / 2
    difference = frame["probability_b"] - frame["probability_a"]
    agreement = result.probability_agreement
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    axes.scatter(mean, difference, s=18, color="#4477aa")
    axes.axhline(agreement.mean_difference, color="#cc3311", label=f"bias {agreement.mean_difference:+.3f}")
    for limit in (agreement.lower_limit, agreement.upper_limit):
        axes.axhline(limit, color="#cc3311", linestyle="--", linewidth=1)
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel("mean probability of the two readers")
    axes.set_ylabel(f"probability, {result.reader_b} minus {result.reader_a}")
    axes.set_title(f"95% limits of agreement {agreement.lower_limit:+.3f} to {agreement.upper_limit:+.3f}")
    axes.legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return Path(path)


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, percent: bool = False) -> str:
    formatters = {column: (lambda v: "" if pd.isna(v) else f"{100 * v:.0f}%") for column in frame.columns} \
        if percent else None
    return frame.to_html(classes="table", na_rep="", formatters=formatters, float_format=lambda v: f"{v:.3f}",
                         border=0)


def write_report(folder: str | os.PathLike, result: CohortAgreement) -> Path:
    """Write ``report.html`` and its figures into ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        An existing folder (``check_output_folder`` decides whether it may be used); the page and the PNG
        figures there are replaced.
    result : CohortAgreement
        The cohort agreement to report.

    Returns
    -------
    Path
        The page written (``report.html``, UTF-8, figures embedded).
    """
    folder = Path(folder)
    summary = result.summary()
    icc = summary["icc"]
    escape = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Reader agreement</title>",
        ("<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
         ".table{border-collapse:collapse}.table td,.table th{padding:2px 8px;border-bottom:1px solid #ddd;"
         "text-align:right}</style></head><body>"),
        f"<h1>Reader agreement: {escape(result.reader_a)} vs {escape(result.reader_b)}</h1>",
        (f"<p>{summary['n_patients']} patients; {summary['n_matched_lesion_pairs']} matched lesion pairs, "
         f"{summary['n_only_a']} lesions only {escape(result.reader_a)} segmented, {summary['n_only_b']} only "
         f"{escape(result.reader_b)}; {summary['n_site_disagreements']} site disagreements.</p>"),
        "<h2>Feature reproducibility</h2>",
        (f"<p>{escape(icc['definition'])}, over {escape(icc['unit'])}. {icc['n_reproducible']} of "
         f"{icc['n_features_defined']} features ({100 * result.share_reproducible():.1f}%) have ICC &ge; "
         f"{result.min_icc:g}; Koo &amp; Li classes: "
         + ", ".join(f"{label} {count}" for label, count in icc["koo_li_classes"].items()) + ".</p>"),
        _image(icc_histogram(result, folder / HISTOGRAM_FILE), "histogram of ICCs"),
        f"<h3>Share of features with ICC &ge; {result.min_icc:g}, by image type and feature class</h3>",
        _table(feature_group_table(result.feature_icc, result.min_icc), percent=True),
    ]
    if result.kappa is not None or result.probability_agreement is not None:
        parts.append("<h2>Prediction</h2>")
        if result.weights_provenance:
            parts.append(f"<p><strong>{escape(result.weights_provenance)}</strong></p>")
    if result.kappa is not None:
        kappa = result.kappa
        table = pd.DataFrame(kappa.table, index=[f"{result.reader_a}: {level}" for level in kappa.levels],
                             columns=[f"{result.reader_b}: {level}" for level in kappa.levels])
        parts += [f"<p>Risk group: {escape(kappa.text())} patients.</p>", _table(table)]
    if result.probability_agreement is not None:
        parts.append(_image(bland_altman_plot(result, folder / BLAND_ALTMAN_FILE), "Bland-Altman plot"))
    inside = summary["reader_b_inside_a_perturbation_range"]
    if inside is not None and inside["n"]:
        frame = result.predictions.dropna(subset=["b_inside_a_range"])
        parts += [(f"<p>{escape(result.reader_b)}'s probability lies within the range of "
                   f"{escape(result.reader_a)}'s probability under plausible outline changes (1 mm erosion and "
                   f"dilation, contour randomisations) in {inside['n_inside']} of {inside['n']} patients "
                   f"({100 * inside['share']:.0f}%): the closer to all, the more realistic the changes.</p>"),
                  _table(frame.set_index("patient_id")[["probability_a", "probability_a_low", "probability_a_high",
                                                        "probability_b", "b_inside_a_range"]])]
    matched = result.pairs[result.pairs["a"].notna() & result.pairs["b"].notna()]
    if not matched.empty:
        worst = matched.nsmallest(10, "dice")[["patient_id", "a", "b", "site_a", "site_b", "dice", "hd95_mm",
                                               "volume_diff_percent"]]
        parts += ["<h2>Lesion pairs with the lowest Dice</h2>", _table(worst.set_index("patient_id"))]
    if result.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(note)}</li>" for note in result.notes) + "</ul>")
    parts.append("</body></html>")
    path = folder / REPORT_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
