"""The predictions file that ``abcir evaluate`` reads, and its reader.

The CSV has one row per patient: ``patient_id``; ``response`` (1 = CR/PR,
0 = SD/PD); optionally ``pfs_months`` (> 0) and ``pfs_event`` (1 =
progression or death); one or more ``<model>_score`` columns (log-odds, higher
= more likely to respond) with optional ``<model>_probability`` (otherwise the
logistic sigmoid of the score); optionally, from ``abcir batch --sensitivity``,
``<model>_stable`` (1 when the risk group holds under plausible outline changes,
0 when it does not) and ``<model>_probability_low``/``_high`` (the probability's
range under them).  Every other column is a clinical variable:
it enters the baseline table and can be named as a subgroup.

Rows missing a value that one analysis needs are left out of that analysis
only, and counted (:mod:`abcir.evaluation.analysis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..cohort.table_cells import check_binary, numeric_column, refuse_duplicate_ids, rows_text
from ..errors import InputError

ID_COLUMN = "patient_id"
RESPONSE_COLUMN = "response"
TIME_COLUMN = "pfs_months"
EVENT_COLUMN = "pfs_event"
SCORE_SUFFIX = "_score"
PROBABILITY_SUFFIX = "_probability"
# The outline sensitivity (``abcir batch --sensitivity``): 1 when the risk group holds under the outline changes,
# 0 when it flips in more than the analysis' flip limit of them; the probability's range under the changes.
STABLE_SUFFIX = "_stable"
LOW_SUFFIX = "_probability_low"
HIGH_SUFFIX = "_probability_high"
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


def read_predictions(path: str | Path) -> PredictionTable:
    """Read and validate a predictions CSV (the format is in the module docstring).

    The whole file is checked before anything is computed, so that no statistic
    comes from a misread table.

    Parameters
    ----------
    path : str or Path
        The CSV file. Cells reading ``NA``, ``N/A``, ``NaN``, ``null``, ``None``
        or ``.`` (``MISSING_TOKENS``), and empty cells, are missing values.

    Returns
    -------
    PredictionTable
        Response (0/1), PFS (months), event (0/1), scores (log-odds) and
        probabilities (0-1) as floats, the other columns as text.

    Raises
    ------
    InputError
        The file is absent or not a CSV; ``patient_id``, ``response`` or every
        ``<model>_score`` column is missing; an id is empty or repeated; a value
        is not a finite number, not 0/1 where 0/1 is wanted, a PFS of 0 months or
        less, or a probability outside [0, 1]; only one response class is
        present; or only one of ``pfs_months`` and ``pfs_event`` is present.
        The message names the rows (numbered as a spreadsheet shows them).
    """
    source = Path(path)
    if source.is_dir():
        raise InputError(f"Predictions file '{source}' is a folder; give the predictions CSV in it (e.g. the "
                         "predictions.csv of 'abcir batch').")
    if not source.is_file():
        raise InputError(f"Predictions file '{source}' does not exist.")
    try:
        raw = pd.read_csv(source, dtype=str, na_values=list(MISSING_TOKENS),
                          keep_default_na=False, skipinitialspace=True)
    except UnicodeDecodeError as error:
        raise InputError(f"{source.name} is not UTF-8 text ({error.reason} at byte {error.start}); save it as "
                         "UTF-8 (Excel: 'CSV UTF-8').") from error
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as error:
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
    refuse_duplicate_ids(source.name, list(raw[ID_COLUMN]))

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
        for column in (model + LOW_SUFFIX, model + HIGH_SUFFIX):
            if column in raw.columns:
                frame[column] = numeric_column(raw, column, source.name, "probabilities")
        stable_column = model + STABLE_SUFFIX
        if stable_column in raw.columns:
            frame[stable_column] = numeric_column(raw, stable_column, source.name, "1 (risk group stable) or 0")
            check_binary(raw, frame[stable_column], stable_column, source.name,
                         "1 (risk group stable under outline changes) or 0")

    model_columns = {m + suffix for m in models
                     for suffix in (SCORE_SUFFIX, PROBABILITY_SUFFIX, STABLE_SUFFIX, LOW_SUFFIX, HIGH_SUFFIX)}
    reserved = {ID_COLUMN, RESPONSE_COLUMN, TIME_COLUMN, EVENT_COLUMN} | model_columns
    clinical = tuple(c for c in raw.columns if c not in reserved)
    return PredictionTable(source, frame, models, has_time, clinical)
