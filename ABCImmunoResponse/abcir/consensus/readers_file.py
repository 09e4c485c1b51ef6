"""The readers file of ``abcir agreement``: one row per patient with the CT and each reader's lesions.

Its columns are ``READERS_CSV_HELP`` (``abcir.options``): the patient's id, the CT,
reader A's and reader B's lesion files (paths relative to the file's folder), and
optionally the four clinical facts, all or none, for models that need them.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..patient.clinical_facts import ClinicalFacts, parse_clinical

REQUIRED_COLUMNS = ("patient_id", "ct", "reader_a", "reader_b")
CLINICAL_COLUMNS = ("lines", "sites", "visceral", "tnbc")


@dataclass(frozen=True)
class CohortPatient:
    """One row of ``readers.csv``."""

    patient_id: str
    ct: Path
    reader_a: Path
    reader_b: Path
    clinical: ClinicalFacts | None


def read_readers_csv(path: str | os.PathLike) -> list[CohortPatient]:
    """The patients of a ``readers.csv`` (``READERS_CSV_HELP``); paths resolved against the CSV's folder.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV (UTF-8, a byte-order mark allowed): ``patient_id``, ``ct``, ``reader_a``, ``reader_b``, and
        optionally all four clinical columns ``lines``, ``sites``, ``visceral``, ``tnbc``.

    Returns
    -------
    list of CohortPatient
        One per row, in file order; ``clinical`` is None when the file has no clinical columns.

    Raises
    ------
    InputError
        When the file cannot be read, has no rows, lacks a required column or some of the clinical columns, a
        patient id is empty or repeated, a path cell is empty or names no file, or a clinical value is invalid.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # a BOM if saved from Excel
            rows = list(csv.DictReader(handle))
    except UnicodeDecodeError as error:
        raise InputError(f"Readers file '{path}': not UTF-8 text ({error.reason} at byte {error.start}); save it as "
                         "UTF-8 (Excel: 'CSV UTF-8').") from error
    except OSError as error:
        raise InputError(f"Readers file '{path}': cannot be read ({error}).") from error
    # One line each: the layout is in 'abcir agreement --help' (READERS_CSV_HELP).
    if not rows:
        raise InputError(f"Readers file '{path}': no patients; give a header row and one row per patient "
                         f"(columns {', '.join(REQUIRED_COLUMNS)}; see 'abcir agreement --help').")
    missing = [column for column in REQUIRED_COLUMNS if column not in rows[0]]
    if missing:
        raise InputError(f"Readers file '{path}': columns {', '.join(missing)} missing; it needs "
                         f"{', '.join(REQUIRED_COLUMNS)} (columns found: {', '.join(c for c in rows[0] if c)}; see "
                         "'abcir agreement --help').")
    given_clinical = [column for column in CLINICAL_COLUMNS if column in rows[0]]
    if given_clinical and len(given_clinical) != len(CLINICAL_COLUMNS):
        raise InputError(f"Readers file '{path}': clinical columns {', '.join(given_clinical)} without "
                         f"{', '.join(c for c in CLINICAL_COLUMNS if c not in given_clinical)}; give all four or none.")
    patients, seen = [], set()
    for number, row in enumerate(rows, start=2):
        patient_id = (row["patient_id"] or "").strip()
        if not patient_id or patient_id in seen:
            raise InputError(f"Readers file '{path}', line {number}: patient id '{patient_id}' is empty or repeated; "
                             "each patient needs one unique row.")
        seen.add(patient_id)
        files = {}
        for column in ("ct", "reader_a", "reader_b"):
            value = (row[column] or "").strip()
            if not value:
                raise InputError(f"Readers file '{path}', line {number}: column '{column}' is empty.")
            file = Path(value) if Path(value).is_absolute() else path.parent / value
            if not file.exists():
                raise InputError(f"Readers file '{path}', line {number}: {column} '{file}' does not exist.")
            files[column] = file
        clinical = None
        if given_clinical:
            try:
                clinical = parse_clinical([f"{column}={row[column]}" for column in CLINICAL_COLUMNS])
            except InputError as error:
                raise InputError(f"Readers file '{path}', line {number}: {error}") from error
        patients.append(CohortPatient(patient_id, files["ct"], files["reader_a"], files["reader_b"], clinical))
    return patients
