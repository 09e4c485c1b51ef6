"""A site's training cohort as a table: one row per patient, validated, and split as the paper split it.

Columns: ``patient_id``, ``response`` (1 = CR/PR, 0 = SD/PD by RECIST 1.1), the
four clinical facts as 0/1 (``CLINICAL_ENCODING`` names), optional
``pfs_months`` and ``pfs_event`` (for the risk cut-off), optional ``center``
and ``split`` (``train``/``validation``), and for image cohorts ``ct`` and
``lesions`` (paths relative to the table's folder).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..clinical import CLINICAL_ENCODING
from ..errors import InputError
from ..patient_ids import refuse_duplicate_ids

REQUIRED = ("patient_id", "response", *CLINICAL_ENCODING)
SPLITS = ("train", "validation")
# Fraction of patients held out when the cohort has neither a split nor centres to split by.
RANDOM_VALIDATION_FRACTION = 0.3


def _rows(frame: pd.DataFrame, mask: pd.Series) -> str:
    """Spreadsheet rows (header = row 1) and patient ids of the rows in ``mask``, for messages."""
    picked = frame.index[mask.to_numpy()]
    shown = ", ".join(f"row {i + 2} ({frame.at[i, 'patient_id']})" for i in picked[:5])
    return shown + (f" and {len(picked) - 5} more" if len(picked) > 5 else "")


def read_cohort_table(path: str | os.PathLike, need_images: bool) -> pd.DataFrame:
    """The table at ``path``, checked column by column; paths in ``ct``/``lesions`` made absolute."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"patient_id": str, "center": str, "split": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"Cohort '{path}': cannot be read ({error}).") from error
    required = (*REQUIRED, "ct", "lesions") if need_images else REQUIRED
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputError(f"Cohort '{path}': missing column(s) {', '.join(missing)}; needs {', '.join(required)}.")
    refuse_duplicate_ids(f"Cohort '{path}'", ["" if pd.isna(value) else str(value) for value in frame["patient_id"]])
    for column in ("response", *CLINICAL_ENCODING):
        bad = ~frame[column].isin([0, 1])
        if bad.any():
            raise InputError(f"Cohort '{path}': column '{column}' must be 0 or 1; {_rows(frame, bad)} are not.")
        frame[column] = frame[column].astype(int)
    if ("pfs_months" in frame) != ("pfs_event" in frame):
        raise InputError(f"Cohort '{path}': give both 'pfs_months' and 'pfs_event', or neither.")
    if "pfs_months" in frame:
        bad = ~(pd.to_numeric(frame["pfs_months"], errors="coerce") > 0) | ~frame["pfs_event"].isin([0, 1])
        if bad.any():
            raise InputError(f"Cohort '{path}': 'pfs_months' must be > 0 and 'pfs_event' 0 or 1; "
                             f"{_rows(frame, bad)} are not.")
    if "split" in frame:
        bad = ~frame["split"].isin(SPLITS)
        if bad.any():
            raise InputError(f"Cohort '{path}': 'split' must be 'train' or 'validation'; {_rows(frame, bad)} are not.")
    if need_images:
        for column in ("ct", "lesions"):
            frame[column] = [str((path.parent / value).resolve()) for value in frame[column]]
    return frame


def training_mask(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Which patients train (True) and which validate (False).

    A ``split`` column decides when present. Otherwise, with centres, the paper's
    design (Methods, "Patients"): the largest centre is halved at random
    (stratified by response), one half training and one validating; of the
    other centres the largest trains and the rest validate. Without either, a
    stratified random 70/30 split.
    """
    if "split" in frame:
        return (frame["split"] == "train").to_numpy()
    rng = np.random.default_rng(seed)
    labels = frame["response"].to_numpy()
    train = np.zeros(len(frame), dtype=bool)

    def halve(rows: np.ndarray, fraction: float) -> None:
        for value in (0, 1):
            members = rng.permutation(rows[labels[rows] == value])
            train[members[round(fraction * members.size):]] = True

    centers = frame["center"].value_counts() if "center" in frame else pd.Series(dtype=int)
    if len(centers) >= 2:
        largest, *others = centers.index  # value_counts sorts by size; ties by first appearance
        halve(np.flatnonzero((frame["center"] == largest).to_numpy()), 0.5)
        train[(frame["center"] == others[0]).to_numpy()] = True
    else:
        halve(np.arange(len(frame)), RANDOM_VALIDATION_FRACTION)
    return train


# Fewest of each class per part: the MLP's inner split needs two of each left to train on, and a
# DeLong confidence interval needs two of each to validate on.
MIN_PER_CLASS = {"training": 4, "validation": 2}


def check_split(frame: pd.DataFrame, train: np.ndarray) -> None:
    """Refuse a split whose training or validation part cannot support a model."""
    for name, part in (("training", train), ("validation", ~train)):
        labels = frame["response"].to_numpy()[part]
        responders, others = int(labels.sum()), int((labels == 0).sum())
        if min(responders, others) < MIN_PER_CLASS[name]:
            raise InputError(f"Cohort: the {name} part has {responders} responders and {others} non-responders; "
                             f"it needs at least {MIN_PER_CLASS[name]} of each. Add patients, or give a 'split' "
                             "column that balances them.")
