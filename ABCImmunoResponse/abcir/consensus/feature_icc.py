"""The per-feature ICC table of an agreement folder: written once, read back for training.

``abcir agreement`` and ``abcir consensus`` write ``feature_icc.csv`` (one row per
feature, ``abcir.stats.agreement.FEATURE_ICC_COLUMNS``); ``abcir train --min-icc``
keeps the features whose ICC(2,1) reaches the threshold.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd

from ..errors import InputError
from ..options import DEFAULT_MIN_ICC, FEATURE_ICC_FILE
from ..stats.agreement import FEATURE_ICC_COLUMNS


def write_feature_icc_csv(folder: str | os.PathLike, frame: pd.DataFrame) -> Path:
    """Write the per-feature ICC table into an agreement folder; an existing table is never replaced."""
    path = Path(folder) / FEATURE_ICC_FILE
    if path.exists():
        raise InputError(f"Output '{path}' already exists; choose another --out folder (it is not overwritten).")
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.17g")
    return path


def read_feature_icc_csv(folder: str | os.PathLike) -> pd.DataFrame:
    """The per-feature ICC table of an agreement folder."""
    path = Path(folder) / FEATURE_ICC_FILE
    if not path.is_file():
        raise InputError(f"Agreement '{folder}': no {FEATURE_ICC_FILE}; give the --out folder of "
                         "'abcir agreement'.")
    frame = pd.read_csv(path, dtype={"feature": str, "koo_li_class": str})
    missing = [c for c in FEATURE_ICC_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"Agreement '{path}': columns {missing} are missing; it was not written by "
                         "'abcir agreement'.")
    return frame


def reproducible_features(agreement_dir: str | os.PathLike, min_icc: float = DEFAULT_MIN_ICC,
                          use_lower_bound: bool = False) -> list[str]:
    """Names of the features whose ICC(2,1) is at least ``min_icc``, in the table's (fixed) order.

    With ``use_lower_bound`` the lower end of the 95% CI must reach ``min_icc``
    (Koo & Li's stricter reading). Features whose ICC is undefined (constant
    across lesions and readers) are never returned: they carry no information.
    """
    if not 0.0 <= min_icc <= 1.0:
        raise InputError(f"--min-icc {min_icc}: an ICC threshold lies between 0 and 1 (Koo & Li: 0.75 = good).")
    frame = read_feature_icc_csv(agreement_dir)
    column = frame["ci_low"] if use_lower_bound else frame["icc"]
    return [str(name) for name in frame.loc[column.fillna(-math.inf) >= min_icc, "feature"]]
