"""``metrics.json``: the numbers of an evaluation as strict JSON, for scripts.

Scripts read its keys; keep them. NaN and infinities (e.g. an unbounded HR CI)
are written as ``null``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..stats.delong import AucEstimate
from .results import Evaluation, SurvivalEvaluation

METRICS_FILE = "metrics.json"


def _finite_or_null(value: object) -> object:
    """The document with NaN and infinities (e.g. an unbounded HR CI) replaced by null."""
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _ci(estimate: AucEstimate | None) -> list[float] | None:
    if estimate is None or estimate.ci_low is None or estimate.ci_high is None:
        return None
    return [estimate.ci_low, estimate.ci_high]


def _survival_metrics(survival: SurvivalEvaluation) -> dict:
    groups = survival.groups
    return {
        "n": survival.n,
        "n_excluded": survival.n_excluded,
        "cutoff_method": survival.cutoff_method,
        "cutoff": groups.cutoff,
        "maxstat_statistic": survival.maxstat.statistic if survival.maxstat else None,
        "maxstat_p": survival.maxstat.p_value if survival.maxstat else None,
        "n_high_risk": groups.high_risk.n,
        "n_low_risk": groups.low_risk.n,
        "logrank_p": groups.logrank_p,
        "hr": groups.hazard_ratio,
        "hr_ci": list(groups.hazard_ratio_ci) if groups.hazard_ratio_ci else None,
        "c_index": survival.concordance.c_index,
        "c_index_se": survival.concordance.std_err,
        "median_pfs_low_risk": groups.low_risk.median,
        "median_pfs_high_risk": groups.high_risk.median,
    }



def metrics_dict(evaluation: Evaluation) -> dict:
    """The ``metrics.json`` document of ``evaluation``.

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``.

    Returns
    -------
    dict
        ``source`` (the predictions file's name); ``models``, per model: counts,
        AUC and its 95% CI, the Table 2 metrics at ``threshold_probability``
        (fractions in [0, 1]), calibration intercept, slope and Brier score,
        with PFS ``survival`` (cut-off in log-odds, HR with CI, C-index, median
        PFS in months per risk group), subgroup AUCs and, when the table has ``<model>_stable``,
        ``outline_stability`` (patients whose risk group holds under outline changes: count and share
        overall, among responders and among non-responders); ``comparisons`` (paired
        DeLong z and p per pair of models); ``notes``. Non-finite numbers are
        ``None``.
    """
    models = {}
    for model in evaluation.models:
        entry = {
            "n": model.n,
            "n_excluded": model.n_excluded,
            "n_responders": model.n_responders,
            "auc": model.auc.auc,
            "auc_ci": _ci(model.auc),
            "threshold_probability": model.metrics.threshold_probability,
            "sensitivity": model.metrics.sensitivity,
            "specificity": model.metrics.specificity,
            "accuracy": model.metrics.accuracy,
            "ppv": model.metrics.ppv,
            "npv": model.metrics.npv,
            "calibration": {
                "intercept": model.calibration.intercept,
                "slope": model.calibration.slope,
                "brier": model.calibration.brier,
            },
        }
        if evaluation.has_survival:
            entry["survival"] = _survival_metrics(model.survival) if model.survival else None
            if model.survival_note:
                entry["survival_note"] = model.survival_note
        if model.stability is not None:
            stability = model.stability
            entry["outline_stability"] = {
                "n": stability.n, "n_stable": stability.n_stable, "share_stable": stability.share,
                "responders": {"n": stability.n_responders, "n_stable": stability.n_stable_responders,
                               "share_stable": stability.share_responders},
                "non_responders": {"n": stability.n - stability.n_responders,
                                   "n_stable": stability.n_stable - stability.n_stable_responders,
                                   "share_stable": stability.share_non_responders},
            }
        subgroups: dict[str, dict] = {column: {} for column in evaluation.subgroup_columns}
        for sub in model.subgroups:
            subgroups[sub.column][sub.level] = {
                "n": sub.n,
                "n_responders": sub.n_responders,
                "auc": sub.auc.auc if sub.auc else None,
                "auc_ci": _ci(sub.auc),
            }
        entry["subgroups"] = subgroups
        models[model.name] = entry
    comparisons = [
        {"a": c.a, "b": c.b, "n": c.n,
         "z": c.test.z if c.test else None,
         "delong_p": c.test.p_value if c.test else None}
        for c in evaluation.comparisons
    ]
    return _finite_or_null({"source": evaluation.source.name, "weights": list(evaluation.weights), "models": models,
                            "comparisons": comparisons, "notes": list(evaluation.notes)})


def write_metrics(evaluation: Evaluation, out_dir: Path) -> Path:
    """Write ``metrics.json`` into ``out_dir``, replacing an earlier one.

    Parameters
    ----------
    evaluation : Evaluation
        The results of ``evaluate``.
    out_dir : Path
        An existing folder (``abcir.commands.evaluate.prepare_output`` decides
        whether an earlier report there may be replaced).

    Returns
    -------
    Path
        The file written: UTF-8, strict JSON (no NaN), see ``metrics_dict``.
    """
    path = out_dir / METRICS_FILE
    path.write_text(json.dumps(metrics_dict(evaluation), indent=2, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path
