"""The features table: one row per lesion, the lesion's facts then the 1130 features.

Written as CSV (full float precision) with a provenance sidecar
``<name>.provenance.json`` holding, per lesion, what the values depend on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .features import LesionFeatures, feature_names
from .files import atomic_write, atomic_write_text, refuse_existing

LESION_COLUMNS = ("patient_id", "lesion_id", "site", "site_source", "visceral", "voxel_count", "volume_mm3",
                  "longest_axial_diameter_mm", "short_axis_mm")
# Where each site came from (abcir.sites.SITE_SOURCES). Tables written before this column existed, and sites'
# own tables, lack it; reading does not require it.
OPTIONAL_LESION_COLUMNS = ("site_source",)


def features_frame(rows: Sequence[LesionFeatures]) -> pd.DataFrame:
    """Lesion facts and feature values as a DataFrame in the documented column order."""
    facts = [{
        "patient_id": row.patient_id,
        "lesion_id": row.lesion.lesion_id,
        "site": row.lesion.site or "",
        "site_source": row.lesion.site_source or "",
        "visceral": "" if row.lesion.visceral is None else int(row.lesion.visceral),
        "voxel_count": row.lesion.size.voxel_count,
        "volume_mm3": row.lesion.size.volume_mm3,
        "longest_axial_diameter_mm": row.lesion.size.longest_axial_diameter_mm,
        "short_axis_mm": row.lesion.size.short_axis_mm,
    } for row in rows]
    values = pd.DataFrame(np.vstack([row.values for row in rows]), columns=list(feature_names()))
    return pd.concat([pd.DataFrame(facts, columns=list(LESION_COLUMNS)), values], axis=1)


def provenance_path(csv_path: str | os.PathLike) -> Path:
    """The provenance sidecar of a features CSV."""
    path = Path(csv_path)
    return path.with_name(path.name.removesuffix(".csv") + ".provenance.json")


def write_features_csv(path: str | os.PathLike, rows: Sequence[LesionFeatures]) -> Path:
    """Write the table and its provenance sidecar, each whole; never replaces an existing file."""
    path = refuse_existing(path)
    sidecar = refuse_existing(provenance_path(path))
    provenance = json.dumps({
        "feature_order": "Resources/Parameters/feature_names.txt",
        "lesions": [{"patient_id": row.patient_id, "lesion_id": row.lesion.lesion_id, **row.provenance.to_dict()}
                    for row in rows],
    }, indent=2, ensure_ascii=False)
    atomic_write_text(sidecar, provenance)
    return atomic_write(path, lambda name: features_frame(rows).to_csv(name, index=False, float_format="%.17g"))


def read_features_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A features table written by ``write_features_csv`` (or by a site in the same layout)."""
    path = Path(path)
    try:
        # round_trip: pandas' default float parser can differ from the written value in the last bit.
        frame = pd.read_csv(path, dtype={"patient_id": str, "lesion_id": str, "site": str, "site_source": str},
                            float_precision="round_trip")
    except (OSError, pd.errors.ParserError) as error:
        raise InputError(f"Features '{path}': cannot be read ({error}).") from error
    required = [name for name in LESION_COLUMNS if name not in OPTIONAL_LESION_COLUMNS]
    missing = [name for name in (*required, *feature_names()) if name not in frame.columns]
    if missing:
        raise InputError(f"Features '{path}': {len(missing)} expected columns are missing (first: {missing[:3]}); "
                         "extract with 'abcir extract' so the columns match the paper's 1130 features.")
    return frame
