"""The per-feature ICC table: written once, read back for training.

One format (``abcir.stats.agreement.FEATURE_ICC_COLUMNS``, one row per feature)
for two sources: ``abcir agreement`` and ``abcir consensus`` write
``feature_icc.csv`` (two readers), ``abcir batch --sensitivity`` writes
``perturbation_icc.csv`` (segmented against changed outlines). ``abcir train
--min-icc`` and ``--min-perturbation-icc`` keep the features whose ICC(2,1)
reaches the threshold.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..options import DEFAULT_MIN_ICC, FEATURE_ICC_FILE, PERTURBATION_ICC_FILE
from ..stats.agreement import FEATURE_ICC_COLUMNS


def feature_icc_text(frame: pd.DataFrame) -> str:
    """A per-feature ICC table as CSV text (floats with 17 significant digits, so they read back exactly).

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, ``FEATURE_ICC_COLUMNS``.

    Returns
    -------
    str
        Comma-separated, ``\\n`` line ends, no index.
    """
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.17g", lineterminator="\n")
    return buffer.getvalue()


def write_feature_icc_csv(folder: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write the per-feature ICC table into an agreement folder; an existing table is never replaced.

    Parameters
    ----------
    folder : str or os.PathLike
        The agreement folder; created if needed.
    frame : pandas.DataFrame
        One row per feature, ``FEATURE_ICC_COLUMNS``.

    Returns
    -------
    Path
        The CSV written (``feature_icc.csv``, UTF-8, as ``feature_icc_text``).

    Raises
    ------
    InputError
        ``folder`` already holds a ``feature_icc.csv``.
    """
    path = Path(folder) / FEATURE_ICC_FILE
    if path.exists():
        raise InputError(f"Output '{path}' already exists; choose another --out folder (it is not overwritten).")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(feature_icc_text(frame), encoding="utf-8")
    return path


def read_feature_icc_table(path: str | os.PathLike, writer: str) -> pd.DataFrame:
    """A per-feature ICC table, checked for its columns.

    Parameters
    ----------
    path : path-like
        The CSV file.
    writer : str
        The command that writes such a table, named in messages (e.g. ``'abcir agreement'``).

    Returns
    -------
    pandas.DataFrame
        ``FEATURE_ICC_COLUMNS`` (and any others the file has).

    Raises
    ------
    InputError
        The file is absent or lacks a column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"ICC table '{path}' does not exist; give the table {writer} wrote.")
    frame = pd.read_csv(path, dtype={"feature": str, "koo_li_class": str})
    missing = [c for c in FEATURE_ICC_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"ICC table '{path}': columns {missing} are missing; it was not written by {writer}.")
    return frame


def read_feature_icc_csv(folder: str | os.PathLike) -> pd.DataFrame:
    """The per-feature ICC table of an agreement folder.

    Parameters
    ----------
    folder : str or os.PathLike
        A folder written by ``abcir agreement`` (or ``abcir consensus``).

    Returns
    -------
    pandas.DataFrame
        ``FEATURE_ICC_COLUMNS`` (and any others the file has), one row per feature.

    Raises
    ------
    InputError
        The folder has no ``feature_icc.csv``, or the table lacks a column.
    """
    path = Path(folder) / FEATURE_ICC_FILE
    if not path.is_file():
        raise InputError(f"Agreement '{folder}': no {FEATURE_ICC_FILE}; give the --out folder of "
                         "'abcir agreement'.")
    return read_feature_icc_table(path, "'abcir agreement'")


def check_min_icc(min_icc: float, option: str = "--min-icc") -> None:
    """Refuse an ICC threshold outside [0, 1] (NaN included), naming the option that gave it.

    Parameters
    ----------
    min_icc : float
        The threshold.
    option : str
        The command-line option that gave it, named in the message.

    Raises
    ------
    InputError
        ``min_icc`` is not a number from 0 to 1.
    """
    if not 0.0 <= min_icc <= 1.0:
        raise InputError(f"{option} {min_icc}: an ICC threshold lies between 0 and 1 (Koo & Li: 0.75 = good).")


def features_reaching(frame: pd.DataFrame, min_icc: float, option: str = "--min-icc",
                      use_lower_bound: bool = False) -> list[str]:
    """Names of the features of an ICC table whose ICC(2,1) is at least ``min_icc``, in the table's order.

    Parameters
    ----------
    frame : pandas.DataFrame
        A per-feature ICC table (``read_feature_icc_table``).
    min_icc : float
        The threshold, 0 to 1 (Koo & Li: 0.75 = good).
    option : str
        The command-line option that gave ``min_icc``, named in messages.
    use_lower_bound : bool
        Compare the lower end of the 95% CI instead (Koo & Li's stricter reading).

    Returns
    -------
    list of str
        Features whose ICC is undefined (constant over every lesion and rater) are never returned: they
        carry no information.

    Raises
    ------
    InputError
        ``min_icc`` lies outside [0, 1].
    """
    check_min_icc(min_icc, option)
    column = frame["ci_low"] if use_lower_bound else frame["icc"]
    return [str(name) for name in frame.loc[column.fillna(-math.inf) >= min_icc, "feature"]]


def reproducible_features(agreement_dir: str | os.PathLike, min_icc: float = DEFAULT_MIN_ICC,
                          use_lower_bound: bool = False) -> list[str]:
    """Names of the features whose readers' ICC(2,1) is at least ``min_icc`` (``features_reaching``).

    Parameters
    ----------
    agreement_dir : str or os.PathLike
        A folder written by ``abcir agreement``.
    min_icc : float
        The threshold, 0 to 1 (Koo & Li: 0.75 = good).
    use_lower_bound : bool
        Compare the lower end of the ICC's 95% CI instead (Koo & Li's stricter reading).

    Returns
    -------
    list of str
        Feature names in the table's order, possibly none; features with an undefined ICC are never returned.

    Raises
    ------
    InputError
        ``min_icc`` lies outside [0, 1], or as ``read_feature_icc_csv``.
    """
    return features_reaching(read_feature_icc_csv(agreement_dir), min_icc, "--min-icc", use_lower_bound)


def icc_feature_subset(min_icc: float | None, agreement_dir: str | os.PathLike | None,
                       min_perturbation_icc: float | None, perturbation_icc: str | os.PathLike | None
                       ) -> tuple[str, ...] | None:
    """The features training may use: those reaching both ICC thresholds that are given.

    Parameters
    ----------
    min_icc : float, optional
        Threshold on the readers' ICC(2,1) (``abcir train --min-icc``), with ``agreement_dir``.
    agreement_dir : path-like, optional
        The folder ``abcir agreement`` wrote.
    min_perturbation_icc : float, optional
        Threshold on the ICC(2,1) between segmented and changed outlines (``--min-perturbation-icc``),
        with ``perturbation_icc``.
    perturbation_icc : path-like, optional
        The ``perturbation_icc.csv`` that ``abcir batch --sensitivity`` wrote.

    Returns
    -------
    tuple of str or None
        Feature names in catalogue order; None when neither threshold is given (every feature).

    Raises
    ------
    InputError
        A threshold comes without its table or the reverse, a threshold lies outside [0, 1], or no feature
        reaches both.
    """
    if (min_icc is None) != (agreement_dir is None):
        raise InputError("--min-icc and --agreement go together: the ICCs come from an 'abcir agreement' folder.")
    if (min_perturbation_icc is None) != (perturbation_icc is None):
        raise InputError("--min-perturbation-icc and --perturbation-icc go together: the ICCs come from the "
                         f"{PERTURBATION_ICC_FILE} of 'abcir batch --sensitivity'.")
    kept: list[list[str]] = []
    if min_icc is not None:
        kept.append(reproducible_features(agreement_dir, min_icc))
    if min_perturbation_icc is not None:
        table = read_feature_icc_table(perturbation_icc, "'abcir batch --sensitivity'")
        kept.append(features_reaching(table, min_perturbation_icc, "--min-perturbation-icc"))
    if not kept:
        return None
    others = [set(names) for names in kept[1:]]
    subset = tuple(name for name in kept[0] if all(name in other for other in others))
    if not subset:
        given = " and ".join(f"{option} {value:g}" for option, value in
                             (("--min-icc", min_icc), ("--min-perturbation-icc", min_perturbation_icc))
                             if value is not None)
        raise InputError(f"No feature reaches {given}; lower the threshold.")
    return subset
