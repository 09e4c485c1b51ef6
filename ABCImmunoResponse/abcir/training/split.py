"""The split of a site's training cohort into a training and a validation part, as the paper split it.

The cohort itself is read by ``abcir.cohort.table`` (one format for batch, train
and make-cohort); ``pipeline.training_frame`` turns it into the table used here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InputError

# Fraction of patients held out when the cohort has neither a split nor centres to split by.
RANDOM_VALIDATION_FRACTION = 0.3


def training_mask(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Which patients train (True) and which validate (False).

    A ``split`` column decides when present. Otherwise, with centres, the paper's
    design (Methods, "Patients"): the largest centre is halved at random
    (stratified by response), one half training and one validating; of the
    other centres the largest trains and the rest validate. Without either, a
    stratified random 70/30 split.

    Parameters
    ----------
    frame : pd.DataFrame
        One row per patient: ``response`` (1 = CR/PR, 0 = SD/PD) and optionally ``split`` (``train`` or
        ``validation``) and ``center``.
    seed : int
        Seed of the random halving; unused with a ``split`` column.

    Returns
    -------
    np.ndarray
        Boolean, one per row: True = training.
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
    """Refuse a split whose training or validation part cannot support a model.

    Parameters
    ----------
    frame : pd.DataFrame
        One row per patient, with ``response`` (1 = CR/PR, 0 = SD/PD).
    train : np.ndarray
        Boolean, one per row: True = training (``training_mask``).

    Raises
    ------
    InputError
        When the training part has fewer than 4 responders or non-responders, or the validation part fewer
        than 2 (``MIN_PER_CLASS``).
    """
    for name, part in (("training", train), ("validation", ~train)):
        labels = frame["response"].to_numpy()[part]
        responders, others = int(labels.sum()), int((labels == 0).sum())
        if min(responders, others) < MIN_PER_CLASS[name]:
            raise InputError(f"Cohort: the {name} part has {responders} responders and {others} non-responders; "
                             f"it needs at least {MIN_PER_CLASS[name]} of each. Add patients, or give a 'split' "
                             "column that balances them.")
