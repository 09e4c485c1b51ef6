"""The features table: one row per lesion, the lesion's facts then the 1130 features.

Written as CSV (full float precision) with a provenance sidecar
``<name>.provenance.json`` holding, per lesion, what the values depend on.
The CSV is written with the ``csv`` module, byte for byte what pandas'
``to_csv(index=False, float_format="%.17g")`` wrote before: importing pandas
took 0.2 s, a tenth of a whole ``abcir extract`` of three lesions. pandas is
imported only by the functions that return or read a DataFrame.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import InputError
from ..files import atomic_write_text, refuse_existing
from .catalogue import LesionFeatures, feature_names

if TYPE_CHECKING:
    import pandas as pd

# A lesion's size: voxels, mm^3, mm, mm.
SIZE_COLUMNS = ("voxel_count", "volume_mm3", "longest_axial_diameter_mm", "short_axis_mm")
LESION_COLUMNS = ("patient_id", "lesion_id", "site", "site_source", "visceral", *SIZE_COLUMNS)
# Where each site came from (abcir.patient.sites.SITE_SOURCES). Tables written before this column existed, and sites'
# own tables, lack it; reading does not require it.
OPTIONAL_LESION_COLUMNS = ("site_source",)


def lesion_facts(row: LesionFeatures) -> dict[str, str | int | float]:
    """The ``LESION_COLUMNS`` of one row (sizes in voxels, mm^3 and mm; '' where a fact is unknown).

    Parameters
    ----------
    row : LesionFeatures
        One lesion's features, with its lesion (site, size).

    Returns
    -------
    dict
        Column name to value in ``LESION_COLUMNS`` order: ids and site as str
        ('' when unknown), ``visceral`` 1/0 ('' when unknown), ``voxel_count``,
        ``volume_mm3`` (mm^3), ``longest_axial_diameter_mm`` and ``short_axis_mm`` (mm).
    """
    lesion = row.lesion
    return {
        "patient_id": row.patient_id,
        "lesion_id": lesion.lesion_id,
        "site": lesion.site or "",
        "site_source": lesion.site_source or "",
        "visceral": "" if lesion.visceral is None else int(lesion.visceral),
        "voxel_count": lesion.size.voxel_count,
        "volume_mm3": lesion.size.volume_mm3,
        "longest_axial_diameter_mm": lesion.size.longest_axial_diameter_mm,
        "short_axis_mm": lesion.size.short_axis_mm,
    }


def features_frame(rows: Sequence[LesionFeatures]) -> pd.DataFrame:
    """Lesion facts and feature values as a DataFrame in the documented column order.

    Parameters
    ----------
    rows : sequence of LesionFeatures
        The lesions, at least one; one DataFrame row each, in order.

    Returns
    -------
    pd.DataFrame
        The ``LESION_COLUMNS`` (``lesion_facts``) then the 1130 features in
        ``feature_names()`` order (float64).

    Raises
    ------
    ValueError
        ``rows`` is empty (nothing to stack).
    """
    import numpy as np
    import pandas as pd

    values = pd.DataFrame(np.vstack([row.values for row in rows]), columns=list(feature_names()))
    facts = pd.DataFrame([lesion_facts(row) for row in rows], columns=list(LESION_COLUMNS))
    return pd.concat([facts, values], axis=1)


def _csv_cell(value: str | int | float) -> str | int:
    """A cell as pandas' ``to_csv(float_format="%.17g")`` writes it: every double round-trips, NaN is empty."""
    if isinstance(value, float):
        return "" if math.isnan(value) else "%.17g" % value
    return value


def features_csv_text(rows: Sequence[LesionFeatures]) -> str:
    """The features table as CSV text: a header, then one line per row (``os.linesep`` ends, as pandas wrote).

    Parameters
    ----------
    rows : sequence of LesionFeatures
        The lesions, in order (none gives the header only).

    Returns
    -------
    str
        The CSV: floats as ``%.17g`` (every double round-trips), NaN as an empty cell.
    """
    text = io.StringIO()
    writer = csv.writer(text, lineterminator=os.linesep)
    writer.writerow([*LESION_COLUMNS, *feature_names()])
    for row in rows:
        cells = [*lesion_facts(row).values(), *row.values.tolist()]
        writer.writerow([_csv_cell(cell) for cell in cells])
    return text.getvalue()


def provenance_path(csv_path: str | os.PathLike) -> Path:
    """The provenance sidecar of a features CSV.

    Parameters
    ----------
    csv_path : str or os.PathLike
        The features CSV (it need not exist).

    Returns
    -------
    Path
        Beside it, its name without a final ``.csv`` plus ``.provenance.json``.
    """
    path = Path(csv_path)
    return path.with_name(path.name.removesuffix(".csv") + ".provenance.json")


def write_features_csv(path: str | os.PathLike, rows: Sequence[LesionFeatures]) -> Path:
    """Write the table and its provenance sidecar, each whole; never replaces an existing file.

    Parameters
    ----------
    path : str or os.PathLike
        Where the CSV goes (its folder is created when missing).
    rows : sequence of LesionFeatures
        The lesions, in order.

    Returns
    -------
    Path
        The CSV written (the sidecar, ``provenance_path(path)``, is written first).

    Raises
    ------
    InputError
        The CSV or its sidecar already exists.
    """
    path = refuse_existing(path)
    sidecar = refuse_existing(provenance_path(path))
    provenance = json.dumps({
        "feature_order": "Resources/Parameters/feature_names.txt",
        "lesions": [{"patient_id": row.patient_id, "lesion_id": row.lesion.lesion_id, **row.provenance.to_dict()}
                    for row in rows],
    }, indent=2, ensure_ascii=False)
    atomic_write_text(sidecar, provenance)
    return atomic_write_text(path, features_csv_text(rows))


def read_features_csv(path: str | os.PathLike) -> pd.DataFrame:
    """A features table written by ``write_features_csv`` (or by a site in the same layout).

    Parameters
    ----------
    path : str or os.PathLike
        The features CSV.

    Returns
    -------
    pd.DataFrame
        The table as written (ids and site as str, floats read back exactly);
        ``site_source`` may be absent.

    Raises
    ------
    InputError
        The file cannot be read, decoded as UTF-8 or parsed; a lesion column (other than ``site_source``) or
        one of the 1130 feature columns is missing; a size or feature cell holds text; or a patient's lesion
        is on two rows (it would count twice when the lesions are aggregated).
    """
    import pandas as pd

    from ..cohort.table_cells import numeric_column, rows_text

    path = Path(path)
    where = f"Features '{path}'"
    try:
        # round_trip: pandas' default float parser can differ from the written value in the last bit.
        frame = pd.read_csv(path, dtype={"patient_id": str, "lesion_id": str, "site": str, "site_source": str},
                            float_precision="round_trip")
    except UnicodeDecodeError as error:
        raise InputError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start}); give the table "
                         "'abcir extract' or 'abcir batch' wrote, or save it as UTF-8.") from error
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{where}: cannot be read ({error}); give the features table 'abcir extract' or 'abcir "
                         "batch' wrote.") from error
    required = [name for name in LESION_COLUMNS if name not in OPTIONAL_LESION_COLUMNS]
    missing = [name for name in (*required, *feature_names()) if name not in frame.columns]
    if missing:
        raise InputError(f"{where}: {len(missing)} expected columns are missing (first: {missing[:3]}); "
                         "extract with 'abcir extract' so the columns match the paper's 1130 features.")
    for name in (*SIZE_COLUMNS, *feature_names()):  # read as text when a cell is text
        if not pd.api.types.is_numeric_dtype(frame[name]):
            numeric_column(frame, name, where, "numbers as 'abcir extract' writes them")
    repeated = frame.duplicated(["patient_id", "lesion_id"], keep=False)
    if repeated.any():
        raise InputError(f"{where}: a patient's lesion is on more than one row: "
                         f"{rows_text(frame, repeated, frame['lesion_id'])}; give each lesion one row (two "
                         "extractions of one patient joined count its lesions twice).")
    return frame
