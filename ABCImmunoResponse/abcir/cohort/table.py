"""The cohort table: one row per patient, in the one format that batch, train and make-cohort share.

``abcir batch`` and ``abcir train`` read it with ``read_cohort`` and ``abcir
make-cohort`` writes it with ``write_cohort``, so a table that one command
accepts means the same patients, files and facts to the others. The format::

    patient_id             required and unique (compared without surrounding spaces)
    ct                     a CT image file or a DICOM series folder
    lesions                lesion files separated by ';': a .seg.nrrd, a DICOM SEG, a label map, or
                           binary masks (one lesion each)
    sites                  a 'label,site' CSV for label maps
    prior_lines_ge2, metastatic_sites_ge3, visceral, tnbc
                           the four clinical facts (``CLINICAL_ENCODING``): all four or none in a row
    response               1 = CR/PR, 0 = SD/PD (RECIST 1.1)
    pfs_months, pfs_event  progression-free survival in months (> 0), and 1 = progression or death,
                           0 = censored; both or neither
    center, split          the patient's centre (any text) and part (``train`` or ``validation``)
    any other column       a clinical variable, kept as written (batch carries it into predictions.csv)

The file is UTF-8 (the byte-order mark Excel writes is skipped), comma-separated,
with the column names in its first row, in any order; surrounding spaces in a
cell are ignored. Paths are relative to the table's folder (absolute paths stay
as they are). Yes/no cells (the facts, ``response``, ``pfs_event``) take 1/0,
yes/no or true/false in any case and are written as 1/0; nothing else (no y/n,
no 1.0), so that a typo is refused rather than guessed. An empty cell is
unknown; which columns must be filled is the reading command's choice
(``BATCH_COLUMNS``, ``TRAIN_COLUMNS``), checked after the format, so that a cell
against the format gets the same refusal from every command. Every refusal is
one line naming the table, the column, the rows (numbered as a spreadsheet
shows them: the header is row 1) with their patient ids and values, and the fix.

Its cells are checked with ``abcir.cohort.table_cells``, which every table reader shares.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..files import atomic_write_text
from ..patient.clinical_facts import CLINICAL_ENCODING, ClinicalFacts
from .table_cells import FLAG_MEANINGS, numeric_column, parse_flags, refuse_duplicate_ids, rows_text

PATH_COLUMNS = ("ct", "lesions", "sites")
OUTCOME_COLUMNS = ("response", "pfs_months", "pfs_event")
#: The columns of the contract, in the order the writer puts them; any other column is a variable.
COLUMNS = ("patient_id", "center", "split", "ct", "lesions", "sites", *CLINICAL_ENCODING, *OUTCOME_COLUMNS)
#: What ``abcir batch`` needs in every row.
BATCH_COLUMNS = ("patient_id", "ct", "lesions")
#: What ``abcir train`` needs in every row (and ``ct``, ``lesions`` when it extracts the features itself).
TRAIN_COLUMNS = ("patient_id", "response", *CLINICAL_ENCODING)
#: What ``abcir train`` needs in every row of a table that has the column: PFS for the risk cut-off, the
#: split for the two parts.
TRAIN_COLUMNS_IF_PRESENT = ("pfs_months", "pfs_event", "split")
LESION_SEPARATOR = ";"
SPLITS = ("train", "validation")
#: What to write in a cell of each column, for messages about empty cells.
COLUMN_HELP: dict[str, str] = {
    "patient_id": "the patient's id",
    "ct": "a CT file or DICOM folder, relative to the table's folder",
    "lesions": f"lesion files separated by '{LESION_SEPARATOR}', relative to the table's folder",
    "pfs_months": "progression-free survival in months",
    "split": "'train' or 'validation'",
    **FLAG_MEANINGS,
}


@dataclass(frozen=True)
class CohortRow:
    """One patient of a cohort table, checked and typed; ``None`` (or no lesions) where the cell is empty.

    Paths are absolute when read (the writer takes any). ``variables`` holds the other columns, as written.
    """

    patient_id: str
    ct: Path | None = None
    lesions: tuple[Path, ...] = ()
    sites: Path | None = None
    clinical: ClinicalFacts | None = None
    response: bool | None = None
    pfs_months: float | None = None
    pfs_event: bool | None = None
    center: str | None = None
    split: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CohortTable:
    """A cohort table as read: where it is, its columns (as in its header) and its rows in file order."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[CohortRow, ...]

    @property
    def folder(self) -> Path:
        """The folder its relative paths start from."""
        return self.path.parent

    def has(self, column: str) -> bool:
        """Whether the table has ``column`` (filled or not)."""
        return column in self.columns


# --- Reading -----------------------------------------------------------------------------------

def read_cohort(path: str | os.PathLike, required: Sequence[str] = BATCH_COLUMNS,
                filled_if_present: Sequence[str] = ()) -> CohortTable:
    """The cohort table at ``path``, every cell checked (see the module docstring for the format).

    ``required`` columns must be present with a value in every row; ``filled_if_present``
    columns may be absent, but a table that has one must fill it in every row. Raises
    ``InputError`` naming the column, the rows and the fix. Files are not opened: a
    missing CT is a failure of its patient, not of the table.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file (UTF-8, a byte-order mark allowed).
    required : sequence of str, optional
        Columns that must exist and be filled in every row; ``patient_id`` is
        always required. Default ``BATCH_COLUMNS`` (patient_id, ct, lesions).
    filled_if_present : sequence of str, optional
        Columns that may be absent but, when present, must be filled in every
        row (e.g. ``TRAIN_COLUMNS_IF_PRESENT``). Default none.

    Returns
    -------
    CohortTable
        The path, the header's columns and one typed ``CohortRow`` per row in
        file order: paths made absolute against the table's folder, yes/no cells
        as bool, ``pfs_months`` in months, None where a cell is empty.

    Raises
    ------
    InputError
        If the file is not UTF-8 or cannot be parsed, a required column is
        missing, there is no row, a required cell is empty, patient ids repeat, a yes/no cell
        holds another word, the clinical facts or PFS columns are only partly
        given, ``pfs_months`` is not a number > 0, or ``split`` is not
        'train' or 'validation'.
    """
    path = Path(path)
    where = f"Cohort '{path}'"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(f"{where}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8 "
                         "(Excel: 'CSV UTF-8').") from error
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise InputError(f"{where}: cannot be read ({str(error).strip()}).") from error
    frame.columns = [str(column).strip() for column in frame.columns]
    frame = frame.fillna("").apply(lambda column: column.str.strip())  # a short row's missing cells are empty
    if "lesions" in frame.columns:  # ' a.nrrd ; b.nrrd ' is 'a.nrrd;b.nrrd', and ' ; ' is empty
        frame["lesions"] = [LESION_SEPARATOR.join(part for part in map(str.strip, cell.split(LESION_SEPARATOR)) if part)
                            for cell in frame["lesions"]]
    required = tuple(dict.fromkeys(("patient_id", *required)))
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise InputError(f"{where}: column(s) {', '.join(missing)} missing; this command needs "
                         f"{', '.join(required)} (columns found: {', '.join(frame.columns)}).")
    if frame.empty:
        raise InputError(f"{where}: a header but no patients; add one row per patient.")
    _refuse_empty(frame, "patient_id", where)
    refuse_duplicate_ids(where, list(frame["patient_id"]))
    flags = {column: parse_flags(frame, column, where) for column in FLAG_MEANINGS if column in frame.columns}
    _refuse_partial(frame, tuple(CLINICAL_ENCODING), where, "give all four clinical facts or none")
    _refuse_partial(frame, ("pfs_months", "pfs_event"), where, "give both 'pfs_months' and 'pfs_event' or neither")
    pfs = None
    if "pfs_months" in frame.columns:
        pfs = numeric_column(frame.replace("", np.nan), "pfs_months", where, "progression-free survival in months")
        not_positive = pfs.notna() & (pfs <= 0)
        if not_positive.any():
            raise InputError(f"{where}: column 'pfs_months' must be > 0 months; not so in "
                             f"{rows_text(frame, not_positive, frame['pfs_months'])}.")
    if "split" in frame.columns:
        bad = (frame["split"] != "") & ~frame["split"].isin(SPLITS)
        if bad.any():
            raise InputError(f"{where}: column 'split' must be 'train' or 'validation'; not so in "
                             f"{rows_text(frame, bad, frame['split'])}.")
    # The command's needs last: a cell against the format is refused alike by every command.
    for column in (*required, *(c for c in filled_if_present if c in frame.columns)):
        _refuse_empty(frame, column, where)
    variables = [column for column in frame.columns if column not in COLUMNS]
    rows = tuple(_row(frame, index, path.parent, flags, pfs, variables) for index in frame.index)
    return CohortTable(path, tuple(frame.columns), rows)


def _row(frame: pd.DataFrame, index: int, folder: Path, flags: dict[str, pd.Series], pfs: pd.Series | None,
         variables: list[str]) -> CohortRow:
    def cell(column: str) -> str:
        return frame.at[index, column] if column in frame.columns else ""

    def flag(column: str) -> bool | None:
        return None if column not in flags or pd.isna(flags[column][index]) else bool(flags[column][index])

    def resolved(value: str) -> Path:
        return Path(os.path.abspath(folder / value))

    facts = {column: flag(column) for column in CLINICAL_ENCODING}
    return CohortRow(
        patient_id=cell("patient_id"),
        ct=resolved(cell("ct")) if cell("ct") else None,
        lesions=tuple(resolved(part) for part in cell("lesions").split(LESION_SEPARATOR) if part),
        sites=resolved(cell("sites")) if cell("sites") else None,
        clinical=None if None in facts.values() else ClinicalFacts(**facts),
        response=flag("response"),
        pfs_months=None if pfs is None or pd.isna(pfs[index]) else float(pfs[index]),
        pfs_event=flag("pfs_event"),
        center=cell("center") or None,
        split=cell("split") or None,
        variables={column: cell(column) for column in variables},
    )


def _refuse_empty(frame: pd.DataFrame, column: str, where: str) -> None:
    empty = frame[column] == ""
    if empty.any():
        wanted = f" ({COLUMN_HELP[column]})" if column in COLUMN_HELP else ""
        raise InputError(f"{where}: column '{column}' is empty in {rows_text(frame, empty)}; this command needs "
                         f"a value in every row{wanted}. Fill those cells or remove those patients.")


def _refuse_partial(frame: pd.DataFrame, group: tuple[str, ...], where: str, fix: str) -> None:
    """Refuse a table with some columns of ``group`` (which belong together) but not all, and a row filling some."""
    present = [column for column in group if column in frame.columns]
    if not present:
        return
    if len(present) < len(group):
        absent = [column for column in group if column not in present]
        raise InputError(f"{where}: has column(s) {', '.join(present)} but not {', '.join(absent)}; {fix}.")
    filled = frame[list(group)] != ""
    some = filled.any(axis=1)
    for column in group:
        partial = some & ~filled[column]
        if partial.any():
            raise InputError(f"{where}: column '{column}' is empty in {rows_text(frame, partial)}, which fill "
                             f"other columns of {', '.join(group)}; {fix}.")


# --- Writing -----------------------------------------------------------------------------------

def _path_cell(path: Path, folder: Path) -> str:
    """A path as the table writes it: relative to the table's folder where it can be, with '/'."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive (Windows): no relative path exists
        return path.as_posix()


def _flag_cell(value: bool | None) -> str:
    return "" if value is None else str(int(value))


def cohort_cells(row: CohortRow, folder: str | os.PathLike) -> dict[str, str]:
    """The row as the table writes it: its filled columns in ``COLUMNS`` order, then its variables.

    Paths relative to ``folder`` (the table's), yes/no as 1/0, PFS months as the
    shortest text that reads back as the same number.

    Parameters
    ----------
    row : CohortRow
        The patient; its paths may be absolute or relative to the working folder.
    folder : str or os.PathLike
        The folder of the table being written; paths are written relative to
        it with '/' (absolute when on another drive).

    Returns
    -------
    dict of str to str
        Column -> cell text; empty contract columns are left out, variables
        are kept as written.
    """
    folder = Path(folder)
    facts = row.clinical.to_dict() if row.clinical else {}
    cells = {
        "patient_id": row.patient_id, "center": row.center or "", "split": row.split or "",
        "ct": _path_cell(row.ct, folder) if row.ct else "",
        "lesions": LESION_SEPARATOR.join(_path_cell(path, folder) for path in row.lesions),
        "sites": _path_cell(row.sites, folder) if row.sites else "",
        **{name: _flag_cell(facts.get(name)) for name in CLINICAL_ENCODING},
        "response": _flag_cell(row.response),
        "pfs_months": "" if row.pfs_months is None else repr(float(row.pfs_months)),
        "pfs_event": _flag_cell(row.pfs_event),
    }
    return {**{column: value for column, value in cells.items() if value}, **row.variables}


def cohort_text(rows: Sequence[CohortRow], folder: str | os.PathLike) -> str:
    """The CSV text of a cohort table for ``folder``: every column some row fills, contract columns first.

    Parameters
    ----------
    rows : sequence of CohortRow
        The patients, in the order to write them.
    folder : str or os.PathLike
        The folder the table will be written in; paths are made relative to it.

    Returns
    -------
    str
        Comma-separated text with a header row and LF line ends; cells a row
        does not fill are empty.
    """
    cells = [cohort_cells(row, folder) for row in rows]
    used = {column for row in cells for column in row}
    columns = [column for column in COLUMNS if column in used]
    columns += list(dict.fromkeys(column for row in cells for column in row if column not in COLUMNS))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(cells)
    return buffer.getvalue()


def write_cohort(path: str | os.PathLike, rows: Sequence[CohortRow]) -> Path:
    """Write ``rows`` as the cohort table ``path`` (UTF-8, paths relative to its folder), replacing it whole.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file to write; an existing file is replaced atomically.
    rows : sequence of CohortRow
        The patients, in table order.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        If the file cannot be written.
    """
    path = Path(path)
    return atomic_write_text(path, cohort_text(rows, path.parent))
