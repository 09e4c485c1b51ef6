"""``abcir evaluate``: every statistic of the paper for a file of model predictions.

Input is a CSV with one row per patient: ``patient_id``; ``response`` (1 =
CR/PR, 0 = SD/PD); optionally ``pfs_months`` (> 0) and ``pfs_event`` (1 =
progression or death); one or more ``<model>_score`` columns (log-odds, higher
= more likely to respond) with optional ``<model>_probability`` (otherwise the
logistic sigmoid of the score).  Every other column is a clinical variable:
it enters the baseline table and can be named as a subgroup.

Output is ``metrics.json`` (the keys below are read by scripts; keep them)
and ``report.html`` with its PNG figures, written by :mod:`abcir.report`.
Rows missing a value that one analysis needs are left out of that analysis
only, and counted.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from .cohort_table import check_binary, numeric_column, rows_text
from .errors import InputError
from .report import write_report
from .report.html import REPORT_FILE
from .stats.baseline_table import BaselineTable, baseline_table
from .stats.calibration import (
    Calibration,
    CalibrationCurve,
    calibration_curve,
    val_prob,
)
from .stats.decision import DecisionCurves, decision_curves
from .stats.delong import AucEstimate, PairedDelongTest, delong_auc, delong_paired_test
from .stats.maxstat import MaxstatResult, maxstat_logrank
from .stats.roc import RocCurve, ThresholdMetrics, roc_curve, threshold_metrics
from .stats.survival import (
    Concordance,
    RiskGroupComparison,
    compare_risk_groups,
    concordance,
)

ID_COLUMN = "patient_id"
RESPONSE_COLUMN = "response"
TIME_COLUMN = "pfs_months"
EVENT_COLUMN = "pfs_event"
SCORE_SUFFIX = "_score"
PROBABILITY_SUFFIX = "_probability"
METRICS_FILE = "metrics.json"
#: Cells read as missing, besides an empty cell.
MISSING_TOKENS = ("NA", "N/A", "NaN", "nan", "null", "NULL", "None", ".")


@dataclass(frozen=True)
class PredictionTable:
    """A validated predictions file.

    ``frame`` holds numbers (float, NaN when missing) in the response, PFS,
    score and probability columns, text (NaN when missing) elsewhere.
    ``models`` keeps the order of the score columns in the file.
    """

    source: Path
    frame: pd.DataFrame
    models: tuple[str, ...]
    has_survival: bool
    clinical_columns: tuple[str, ...]


@dataclass(frozen=True)
class SurvivalEvaluation:
    """PFS by risk group for one model: cut-off, KM, log-rank, Cox and C-index.

    ``maxstat`` is ``None`` when the cut-off was fixed on the command line.
    """

    n: int
    n_excluded: int
    cutoff_method: str
    maxstat: MaxstatResult | None
    groups: RiskGroupComparison
    concordance: Concordance
    scores: np.ndarray
    times: np.ndarray
    events: np.ndarray


@dataclass(frozen=True)
class SubgroupAuc:
    """AUC of a model within one level of a subgroup column; ``auc`` None with one class."""

    column: str
    level: str
    n: int
    n_responders: int
    auc: AucEstimate | None


@dataclass(frozen=True)
class ModelEvaluation:
    """Everything computed for one model, with the data the report plots."""

    name: str
    n: int
    n_excluded: int
    n_responders: int
    auc: AucEstimate
    metrics: ThresholdMetrics
    calibration: Calibration
    calibration_curve: CalibrationCurve
    roc: RocCurve
    survival: SurvivalEvaluation | None
    survival_note: str | None
    subgroups: tuple[SubgroupAuc, ...]
    patient_ids: np.ndarray
    scores: np.ndarray
    probabilities: np.ndarray
    response: np.ndarray


@dataclass(frozen=True)
class ModelComparison:
    """Paired DeLong test of two models on the patients both scored; ``test`` None if impossible."""

    a: str
    b: str
    n: int
    test: PairedDelongTest | None


@dataclass(frozen=True)
class Evaluation:
    """The whole evaluation of a predictions file."""

    source: Path
    models: tuple[ModelEvaluation, ...]
    comparisons: tuple[ModelComparison, ...]
    decision: DecisionCurves | None
    baseline: BaselineTable | None
    has_survival: bool
    subgroup_columns: tuple[str, ...]
    notes: tuple[str, ...]


# ----------------------------------------------------------------------------- reading


def read_predictions(path: str | Path) -> PredictionTable:
    """Read and validate a predictions CSV; every problem is an ``InputError`` naming rows."""
    source = Path(path)
    if not source.is_file():
        raise InputError(f"Predictions file '{source}' does not exist.")
    try:
        raw = pd.read_csv(source, dtype=str, na_values=list(MISSING_TOKENS),
                          keep_default_na=False, skipinitialspace=True)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise InputError(f"{source.name} is not a readable CSV file: {error}") from error
    raw.columns = [str(c).strip() for c in raw.columns]
    raw = raw.apply(lambda col: col.str.strip()).replace("", np.nan)

    for required, meaning in ((ID_COLUMN, "an identifier per patient"),
                              (RESPONSE_COLUMN, "1 for CR/PR and 0 for SD/PD")):
        if required not in raw.columns:
            raise InputError(f"{source.name} has no '{required}' column; add one with {meaning}. "
                             f"Columns found: {', '.join(raw.columns)}.")
    if raw.empty:
        raise InputError(f"{source.name} has a header but no patients.")
    models = tuple(c[: -len(SCORE_SUFFIX)] for c in raw.columns
                   if c.endswith(SCORE_SUFFIX) and len(c) > len(SCORE_SUFFIX))
    if not models:
        raise InputError(f"{source.name} has no '<model>{SCORE_SUFFIX}' column; name each model's "
                         "log-odds column like 'radiomics_score'.")
    missing_id = raw[ID_COLUMN].isna()
    if missing_id.any():
        raise InputError(f"{source.name}: {ID_COLUMN} is empty in {rows_text(raw, missing_id)}.")
    duplicated = raw[ID_COLUMN].duplicated(keep=False)
    if duplicated.any():
        raise InputError(f"{source.name}: {ID_COLUMN} must be unique; repeated in "
                         f"{rows_text(raw, duplicated)}.")

    frame = raw.copy()
    frame[RESPONSE_COLUMN] = numeric_column(raw, RESPONSE_COLUMN, source.name, "1 (CR/PR) or 0 (SD/PD)")
    check_binary(raw, frame[RESPONSE_COLUMN], RESPONSE_COLUMN, source.name, "1 (CR/PR) or 0 (SD/PD)")
    classes = frame[RESPONSE_COLUMN].dropna().unique()
    if classes.size < 2:
        only = "no values" if classes.size == 0 else f"only the value {int(classes[0])}"
        raise InputError(
            f"{source.name}: column '{RESPONSE_COLUMN}' has {only}; evaluating a model needs "
            "responders (1) and non-responders (0)."
        )

    has_time = TIME_COLUMN in raw.columns
    has_event = EVENT_COLUMN in raw.columns
    if has_time != has_event:
        present, absent = (TIME_COLUMN, EVENT_COLUMN) if has_time else (EVENT_COLUMN, TIME_COLUMN)
        raise InputError(f"{source.name} has '{present}' but no '{absent}'; survival analysis "
                         "needs both (or remove both to skip it).")
    if has_time:
        frame[TIME_COLUMN] = numeric_column(raw, TIME_COLUMN, source.name, "PFS in months")
        not_positive = frame[TIME_COLUMN].notna() & (frame[TIME_COLUMN] <= 0)
        if not_positive.any():
            raise InputError(f"{source.name}: column '{TIME_COLUMN}' must be > 0 months; not so "
                             f"in {rows_text(raw, not_positive, raw[TIME_COLUMN])}.")
        frame[EVENT_COLUMN] = numeric_column(raw, EVENT_COLUMN, source.name, "1 (progression/death) or 0")
        check_binary(raw, frame[EVENT_COLUMN], EVENT_COLUMN, source.name,
                     "1 (progression or death) or 0 (censored)")

    for model in models:
        score_column = model + SCORE_SUFFIX
        frame[score_column] = numeric_column(raw, score_column, source.name, "log-odds numbers")
        probability_column = model + PROBABILITY_SUFFIX
        if probability_column in raw.columns:
            probability = numeric_column(raw, probability_column, source.name, "probabilities")
            outside = probability.notna() & ((probability < 0) | (probability > 1))
            if outside.any():
                raise InputError(
                    f"{source.name}: column '{probability_column}' must lie in [0, 1]; "
                    f"outside it in {rows_text(raw, outside, raw[probability_column])}."
                )
            frame[probability_column] = probability

    model_columns = {m + SCORE_SUFFIX for m in models} | {m + PROBABILITY_SUFFIX for m in models}
    reserved = {ID_COLUMN, RESPONSE_COLUMN, TIME_COLUMN, EVENT_COLUMN} | model_columns
    clinical = tuple(c for c in raw.columns if c not in reserved)
    return PredictionTable(source, frame, models, has_time, clinical)


# ----------------------------------------------------------------------------- computing


def _survival(table: PredictionTable, score_column: str,
              cutoff: float | None) -> tuple[SurvivalEvaluation | None, str | None]:
    frame = table.frame
    usable = frame[[score_column, TIME_COLUMN, EVENT_COLUMN]].notna().all(axis=1)
    scores = frame.loc[usable, score_column].to_numpy(dtype=float)
    times = frame.loc[usable, TIME_COLUMN].to_numpy(dtype=float)
    events = frame.loc[usable, EVENT_COLUMN].to_numpy(dtype=int)
    if events.sum() == 0:
        return None, "No progression events among the scored patients: survival analysis skipped."
    maxstat = None
    if cutoff is None:
        try:
            maxstat = maxstat_logrank(scores, times, events)
        except InputError as error:
            return None, f"No log-rank cut-off could be chosen: {error}"
        chosen = maxstat.cutoff
    else:
        chosen = cutoff
    try:
        agreement = concordance(times, events, scores)
    except ValueError as error:
        return None, str(error)
    survival = SurvivalEvaluation(
        n=int(usable.sum()),
        n_excluded=int((~usable).sum()),
        cutoff_method="fixed" if cutoff is not None else "maxstat",
        maxstat=maxstat,
        groups=compare_risk_groups(scores, times, events, chosen),
        concordance=agreement,
        scores=scores,
        times=times,
        events=events,
    )
    return survival, None


def _subgroups(frame: pd.DataFrame, usable: pd.Series, score_column: str,
               columns: tuple[str, ...]) -> tuple[SubgroupAuc, ...]:
    results = []
    for column in columns:
        values = frame[column]
        for level in sorted(values[usable].dropna().unique(), key=str):
            inside = usable & (values == level)
            labels = frame.loc[inside, RESPONSE_COLUMN].to_numpy(dtype=int)
            responders = int(labels.sum())
            auc = None
            if 0 < responders < labels.size:
                auc = delong_auc(frame.loc[inside, score_column].to_numpy(dtype=float), labels)
            results.append(SubgroupAuc(column, str(level), int(labels.size), responders, auc))
    return tuple(results)


def _model_rows(table: PredictionTable, model: str) -> pd.Series:
    """Rows with everything the classification analysis of ``model`` needs."""
    needed = [RESPONSE_COLUMN, model + SCORE_SUFFIX]
    if model + PROBABILITY_SUFFIX in table.frame.columns:
        needed.append(model + PROBABILITY_SUFFIX)
    return table.frame[needed].notna().all(axis=1)


def _probabilities(table: PredictionTable, model: str, rows: pd.Series) -> np.ndarray:
    column = model + PROBABILITY_SUFFIX
    if column in table.frame.columns:
        return table.frame.loc[rows, column].to_numpy(dtype=float)
    return expit(table.frame.loc[rows, model + SCORE_SUFFIX].to_numpy(dtype=float))


def _evaluate_model(table: PredictionTable, model: str, subgroup_columns: tuple[str, ...],
                    cutoff: float | None) -> ModelEvaluation:
    frame = table.frame
    score_column = model + SCORE_SUFFIX
    usable = _model_rows(table, model)
    labels = frame.loc[usable, RESPONSE_COLUMN].to_numpy(dtype=int)
    responders = int(labels.sum())
    if responders in (0, labels.size):
        raise InputError(
            f"{table.source.name}: the {labels.size} rows with a value in '{score_column}' and "
            f"'{RESPONSE_COLUMN}' are all {'responders' if responders else 'non-responders'}; "
            "the AUC needs both classes."
        )
    scores = frame.loc[usable, score_column].to_numpy(dtype=float)
    probabilities = _probabilities(table, model, usable)
    calibration = val_prob(probabilities, labels)
    survival, note = (None, None)
    if table.has_survival:
        survival, note = _survival(table, score_column, cutoff)
    return ModelEvaluation(
        name=model,
        n=int(usable.sum()),
        n_excluded=int((~usable).sum()),
        n_responders=responders,
        auc=delong_auc(scores, labels),
        metrics=threshold_metrics(probabilities, labels),
        calibration=calibration,
        calibration_curve=calibration_curve(probabilities, labels, calibration),
        roc=roc_curve(scores, labels),
        survival=survival,
        survival_note=note,
        subgroups=_subgroups(frame, usable, score_column, subgroup_columns),
        patient_ids=frame.loc[usable, ID_COLUMN].to_numpy(dtype=str),
        scores=scores,
        probabilities=probabilities,
        response=labels,
    )


def _compare(table: PredictionTable, a: str, b: str) -> ModelComparison:
    rows = _model_rows(table, a) & _model_rows(table, b)
    labels = table.frame.loc[rows, RESPONSE_COLUMN].to_numpy(dtype=int)
    test = None
    if min(labels.sum(), labels.size - labels.sum()) >= 2:
        test = delong_paired_test(
            table.frame.loc[rows, a + SCORE_SUFFIX].to_numpy(dtype=float),
            table.frame.loc[rows, b + SCORE_SUFFIX].to_numpy(dtype=float),
            labels,
        )
    return ModelComparison(a, b, int(rows.sum()), test)


def evaluate(table: PredictionTable, subgroups: list[str] | tuple[str, ...] = (),
             cutoff: float | None = None) -> Evaluation:
    """Compute every statistic; ``cutoff`` None chooses each model's cut-off by maxstat."""
    subgroup_columns = tuple(dict.fromkeys(subgroups))
    for column in subgroup_columns:
        if column not in table.clinical_columns:
            raise InputError(
                f"--subgroup '{column}' is not a clinical column of {table.source.name}; "
                f"choose from: {', '.join(table.clinical_columns) or '(none)'}."
            )
    notes = []
    if not table.has_survival:
        notes.append(f"No '{TIME_COLUMN}'/'{EVENT_COLUMN}' columns: the survival analysis "
                     "(cut-off, Kaplan-Meier, log-rank, HR, C-index) is left out.")
    models = tuple(_evaluate_model(table, m, subgroup_columns, cutoff) for m in table.models)
    for model in models:
        if model.n_excluded:
            notes.append(f"{model.name}: {model.n_excluded} row(s) without a score, probability "
                         "or response left out of its analysis.")
        if model.survival_note:
            notes.append(f"{model.name}: {model.survival_note}")
        if model.calibration.note:
            notes.append(f"{model.name}: {model.calibration.note}")
    comparisons = tuple(_compare(table, a, b) for a, b in itertools.combinations(table.models, 2))

    everyone = np.logical_and.reduce([_model_rows(table, m).to_numpy() for m in table.models])
    labels = table.frame.loc[everyone, RESPONSE_COLUMN].to_numpy(dtype=int)
    decision = None
    if 0 < labels.sum() < labels.size:
        rows = pd.Series(everyone, index=table.frame.index)
        decision = decision_curves(labels, {m: _probabilities(table, m, rows)
                                            for m in table.models})
    baseline = None
    if table.clinical_columns:
        known = table.frame[RESPONSE_COLUMN].notna()
        baseline = baseline_table(table.frame[known], table.frame.loc[known, RESPONSE_COLUMN],
                                  list(table.clinical_columns))
    return Evaluation(table.source, models, comparisons, decision, baseline, table.has_survival,
                      subgroup_columns, tuple(notes))


# ----------------------------------------------------------------------------- writing


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
    """The ``metrics.json`` document: per model AUC, Table 2 metrics, calibration, survival."""
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
    return _finite_or_null({"source": evaluation.source.name, "models": models,
                            "comparisons": comparisons, "notes": list(evaluation.notes)})


def write_metrics(evaluation: Evaluation, out_dir: Path) -> Path:
    """Write ``metrics.json`` (strict JSON: no NaN) into ``out_dir``."""
    path = out_dir / METRICS_FILE
    path.write_text(json.dumps(metrics_dict(evaluation), indent=2, allow_nan=False) + "\n",
                    encoding="utf-8")
    return path


def prepare_output(out: str | Path, force: bool) -> Path:
    """Create ``out``, refusing to overwrite an earlier report unless ``force``."""
    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out '{out_dir}' is a file; give a folder for the report.")
    existing = [name for name in (METRICS_FILE, REPORT_FILE) if (out_dir / name).exists()]
    if existing and not force:
        raise InputError(f"Folder '{out_dir}' already holds a report ({', '.join(existing)}); "
                         "choose another --out folder or add --force to overwrite it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def run_evaluate(predictions: str | Path, out: str | Path, subgroups: list[str] | None = None,
                 cutoff: float | None = None, force: bool = False) -> tuple[Path, Path]:
    """Read, evaluate and write ``metrics.json`` and ``report.html``; return both paths."""
    table = read_predictions(predictions)
    evaluation = evaluate(table, subgroups or (), cutoff)
    out_dir = prepare_output(out, force)
    metrics_path = write_metrics(evaluation, out_dir)
    report_path = write_report(evaluation, out_dir)
    return metrics_path, report_path

