"""A batch's tables: every lesion's features, every patient's predictions, and the failures, as CSV text.

The features table has ``abcir.features.table``'s layout (lesion facts, then the 1130 features); the
predictions table is the ``abcir evaluate`` input format. Floats are written with 17 significant
digits, so the CSV files read back to the very values of the Parquet file and the records.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..cohort.table import OUTCOME_COLUMNS, PATH_COLUMNS, CohortTable, cohort_cells
from ..features.table import LESION_COLUMNS
from ..features.catalogue import feature_names
from .sensitivity import sensitivity_cells
from .store import Failure, PatientRecord

# Columns of a cohort table that are neither inputs nor clinical variables of the predictions file.
NOT_VARIABLES = ("best_response",)
FAILURE_COLUMNS = ("patient_id", "stage", "error", "reason")


def features_table(records: Iterable[PatientRecord]) -> pd.DataFrame:
    """All lesions of the records in ``feature_table``'s layout: lesion facts, then the 1130 features.

    Parameters
    ----------
    records : iterable of PatientRecord
        Finished patients, in the order their rows should appear.

    Returns
    -------
    pandas.DataFrame
        One row per lesion: ``LESION_COLUMNS`` (sizes in mm, volume in mm³; ``visceral`` 1/0, or "" when
        unknown), then one float64 column per feature.
    """
    facts, values = [], []
    for record in records:
        for lesion in record.lesions:
            facts.append({"patient_id": record.patient_id, "lesion_id": lesion.lesion_id, "site": lesion.site or "",
                          "visceral": "" if lesion.visceral is None else int(lesion.visceral),
                          "voxel_count": lesion.voxel_count, "volume_mm3": lesion.volume_mm3,
                          "longest_axial_diameter_mm": lesion.longest_axial_diameter_mm,
                          "short_axis_mm": lesion.short_axis_mm})
            values.append(lesion.values)
    matrix = np.vstack(values) if values else np.empty((0, len(feature_names())))
    return pd.concat([pd.DataFrame(facts, columns=list(LESION_COLUMNS)),
                      pd.DataFrame(matrix, columns=list(feature_names()))], axis=1)


def predictions_table(cohort: CohortTable, records: dict[str, PatientRecord],
                      kinds: Sequence[str], sensitivity: bool = False) -> pd.DataFrame:
    """One row per finished patient: id, outcomes, ``<model>_score``/``_probability``, clinical variables.

    Outcomes and facts are written as the cohort table writes them (1/0), so that
    ``abcir evaluate`` reads whatever yes/no spelling the cohort used.

    Parameters
    ----------
    cohort : CohortTable
        The cohort; its row order is the table's.
    records : dict of str to PatientRecord
        Finished patients by id; patients without a record are left out.
    kinds : sequence of str
        The model kinds of the run; a patient whose prediction failed gets "" for that model.
    sensitivity : bool
        Add, per model that reads an outline, the outline sensitivity's cells
        (``abcir.batch.sensitivity.sensitivity_cells``).

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, the outcome columns the cohort has (PFS in months, 1/0), score and probability
        (0 to 1) per model (with ``sensitivity``, then ``_stable`` 1/0 and ``_probability_low``/``_high``),
        then every other column of the cohort except paths and ``best_response``.
    """
    rows = []
    for spec in cohort.rows:
        record = records.get(spec.patient_id)
        if record is None:
            continue
        cells = cohort_cells(spec, cohort.folder)
        row: dict = {"patient_id": spec.patient_id}
        row.update({column: cells.get(column, "") for column in OUTCOME_COLUMNS if cohort.has(column)})
        for kind in kinds:
            prediction = record.predictions.get(kind)
            row[f"{kind}_score"] = prediction["score"] if prediction else ""
            row[f"{kind}_probability"] = prediction["probability"] if prediction else ""
            if sensitivity and kind != "clinical":
                row.update(sensitivity_cells(record, kind))
        row.update({column: value for column, value in cells.items()
                    if column not in ("patient_id", *PATH_COLUMNS, *OUTCOME_COLUMNS, *NOT_VARIABLES)})
        rows.append(row)
    return pd.DataFrame(rows)


def csv_text(frame: pd.DataFrame) -> str:
    """A table as CSV text that reads back to the same floats.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table; its index is not written.

    Returns
    -------
    str
        Comma-separated, ``\\n`` line ends, floats with 17 significant digits.
    """
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.17g", lineterminator="\n")
    return buffer.getvalue()


def failures_text(failures: Sequence[Failure]) -> str:
    """``failures.csv``: one row per failure with its stage, exception type and reason.

    Parameters
    ----------
    failures : sequence of Failure
        The failures of the run; none gives the header alone.

    Returns
    -------
    str
        CSV text with the columns ``FAILURE_COLUMNS``.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FAILURE_COLUMNS)
    writer.writerows([failure.patient_id, failure.stage, failure.error, failure.reason] for failure in failures)
    return buffer.getvalue()
