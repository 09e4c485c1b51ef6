"""``evaluate``: every statistic of the paper for a predictions table.

Per model: AUC with DeLong CI, the Table 2 metrics at the responder threshold,
calibration, ROC, subgroup AUCs and, with PFS, the risk cut-off (maxstat or
fixed), Kaplan-Meier, log-rank, HR and C-index. Per pair of models: the paired
DeLong test. For all: decision curves and the baseline table. Rows missing a
value that one analysis needs are left out of that analysis only, and counted.
"""

from __future__ import annotations

import itertools
from typing import Mapping

import numpy as np
import pandas as pd
from scipy.special import expit

from ..errors import InputError
from ..stats.baseline_table import baseline_table
from ..stats.calibration import calibration_curve, val_prob
from ..stats.decision import decision_curves
from ..stats.delong import delong_auc, delong_paired_test
from ..stats.maxstat import maxstat_logrank
from ..stats.roc import roc_curve, threshold_metrics
from ..stats.survival import compare_risk_groups, concordance
from .results import Evaluation, ModelComparison, ModelEvaluation, OutlineStability, SubgroupAuc, SurvivalEvaluation
from .table import (
    EVENT_COLUMN,
    ID_COLUMN,
    PROBABILITY_SUFFIX,
    RESPONSE_COLUMN,
    SCORE_SUFFIX,
    STABLE_SUFFIX,
    TIME_COLUMN,
    PredictionTable,
)


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
        high_risk = scores <= cutoff
        if high_risk.all() or not high_risk.any():  # a fixed cut-off beyond every score leaves a group empty
            group = "high" if high_risk.all() else "low"
            return None, (f"cut-off {cutoff:g} puts all {scores.size} patients in the {group}-risk group "
                          f"({score_column} ranges from {scores.min():.3f} to {scores.max():.3f}): survival analysis "
                          "skipped. Give a cut-off within that range, or 'auto'.")
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


def _stability(table: PredictionTable, model: str) -> OutlineStability | None:
    """How many patients keep their risk group under outline changes, when the table says (``_stable``)."""
    column = model + STABLE_SUFFIX
    if column not in table.frame.columns:
        return None
    known = table.frame[[column, RESPONSE_COLUMN]].dropna()
    stable, responders = known[column] == 1, known[RESPONSE_COLUMN] == 1
    return OutlineStability(len(known), int(stable.sum()), int(responders.sum()), int((stable & responders).sum()))


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
        stability=_stability(table, model),
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
             cutoff: float | None = None, weights: Mapping[str, str] | None = None) -> Evaluation:
    """Compute every statistic of the paper for ``table``.

    Parameters
    ----------
    table : PredictionTable
        A predictions file as ``read_predictions`` returns it.
    subgroups : list or tuple of str
        Clinical columns of ``table`` to compute subgroup AUCs over, one per
        level; repeats are ignored.
    cutoff : float or None
        The risk cut-off on the score (log-odds), the same for every model, e.g.
        one chosen on a training set. ``None`` chooses each model's cut-off by the
        maximally selected log-rank statistic. Unused without PFS columns.
    weights : mapping of str to str, optional
        Where the weights behind each model's probabilities came from (model ->
        provenance line, e.g. as ``abcir batch`` records them); a model without
        one is said to have no recorded provenance.

    Returns
    -------
    Evaluation
        The results, with notes on every analysis left out or shortened (rows
        excluded, no events, calibration that could not be fitted), and a line
        per model on where its weights came from.

    Raises
    ------
    InputError
        A subgroup is not a clinical column of ``table``, or the rows a model
        scored are all responders or all non-responders.
    """
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
    weights = weights or {}
    weight_lines = tuple(f"{model}: {weights[model]}" if model in weights else
                         f"{model}: where its weights came from is not recorded beside {table.source.name} "
                         "(abcir batch and abcir train write it there); do not read its probabilities as validated."
                         for model in table.models)
    return Evaluation(table.source, models, comparisons, decision, baseline, table.has_survival,
                      subgroup_columns, tuple(notes), weight_lines)
