"""Cells of a table checked with messages that cite the rows: the one way every table reader refuses a cell.

A refusal names the table, the column, the rows as a spreadsheet numbers them
(the header is row 1) with their patient ids and values, and the fix. The
cohort table (``abcir.cohort.table``) and the predictions table of ``abcir
evaluate`` (``abcir.evaluation.table``) both check their cells here.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ..errors import InputError
from ..patient.clinical_facts import CLINICAL_ENCODING

TRUE_WORDS = frozenset({"1", "yes", "true"})
FALSE_WORDS = frozenset({"0", "no", "false"})
#: What a 1 means in each yes/no column, for messages.
FLAG_MEANINGS: dict[str, str] = {
    **CLINICAL_ENCODING,
    "response": "1 = CR/PR, 0 = SD/PD by RECIST 1.1",
    "pfs_event": "1 = progression or death, 0 = censored",
}
#: At most this many offending rows are listed in an error message.
ROWS_LISTED = 10


def rows_text(frame: pd.DataFrame, mask: pd.Series, values: pd.Series | None = None,
              id_column: str = "patient_id") -> str:
    """'rows 3, 7 (patient_id P002, P006; values 'x', 'y')': the rows of ``frame`` where ``mask`` holds.

    Rows are numbered as a spreadsheet shows them (the header is row 1; ``frame`` read
    with its default index); at most ``ROWS_LISTED`` are named.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read, with its default 0-based RangeIndex.
    mask : pandas.Series
        True for the rows to cite, aligned with ``frame``.
    values : pandas.Series or None, optional
        The offending cells to quote; None quotes none.
    id_column : str, optional
        The column whose value identifies a row (default "patient_id"); left
        out when ``frame`` does not have it.

    Returns
    -------
    str
        The phrase for a message, e.g. "row 3 (patient_id P002; values 'x')".
    """
    index = frame.index[mask.to_numpy()]
    shown = index[:ROWS_LISTED]
    rows = ", ".join(str(i + 2) for i in shown)
    extra = f" and {index.size - shown.size} more" if index.size > shown.size else ""
    details = []
    if id_column in frame.columns:
        details.append(f"{id_column} " + ", ".join(str(frame.at[i, id_column]) for i in shown))
    if values is not None:
        details.append("values " + ", ".join(repr(values.at[i]) for i in shown))
    noun = "row" if index.size == 1 else "rows"
    return f"{noun} {rows}{extra} ({'; '.join(details)})"


def numeric_column(frame: pd.DataFrame, column: str, where: str, what: str) -> pd.Series:
    """``column`` as finite floats (NaN where empty), naming the rows that hold anything else.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, with empty cells as NaN (an empty string is not a number).
    column : str
        The column to parse.
    where : str
        The table, as the message names it.
    what : str
        What the column must hold, for the message (e.g. "progression-free survival in months").

    Returns
    -------
    pandas.Series
        The column as float, in its own unit; NaN where the cell was missing.

    Raises
    ------
    InputError
        If a cell is not a number or is infinite or NaN as text; the message names the rows.
    """
    raw = frame[column]
    parsed = pd.to_numeric(raw, errors="coerce")
    bad = raw.notna() & (parsed.isna() | ~np.isfinite(parsed.fillna(0.0)))
    if bad.any():
        raise InputError(f"{where}: column '{column}' must hold {what}; not a finite number in "
                         f"{rows_text(frame, bad, raw)}. Fix or empty those cells.")
    return parsed.astype(float)


def check_binary(frame: pd.DataFrame, values: pd.Series, column: str, where: str, meaning: str) -> None:
    """Refuse numbers other than 0 and 1 in ``values`` (``column`` parsed), naming the rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table as read, to cite rows and quote the original cells.
    values : pandas.Series
        ``column`` parsed to numbers (NaN where empty, which is allowed).
    column : str
        The column's name.
    where : str
        The table, as the message names it.
    meaning : str
        What 1 and 0 mean, for the message (e.g. "1 = CR/PR, 0 = SD/PD").

    Raises
    ------
    InputError
        If a non-missing value is neither 0 nor 1.
    """
    bad = values.notna() & ~values.isin([0.0, 1.0])
    if bad.any():
        raise InputError(f"{where}: column '{column}' must be {meaning}; other values in "
                         f"{rows_text(frame, bad, frame[column])}.")


def parse_flags(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    """A yes/no column of text cells as 1.0/0.0 (NaN where empty): 1/0, yes/no, true/false, any case.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table, cells as text with empty cells as "".
    column : str
        The yes/no column to parse.
    where : str
        The table, as the message names it.

    Returns
    -------
    pandas.Series
        1.0, 0.0 or NaN per row, indexed like ``frame``.

    Raises
    ------
    InputError
        If a non-empty cell is none of the accepted words; the message names the
        rows and what 1 means in the column.
    """
    words = frame[column].str.strip().str.lower()
    values = pd.Series(np.where(words.isin(TRUE_WORDS), 1.0, np.where(words.isin(FALSE_WORDS), 0.0, np.nan)),
                       index=frame.index)
    bad = (words != "") & values.isna()
    if bad.any():
        meaning = FLAG_MEANINGS.get(column, "1 = yes, 0 = no")
        raise InputError(f"{where}: column '{column}' must be 1 or 0 (or yes/no, true/false); not so in "
                         f"{rows_text(frame, bad, frame[column])}. Write {meaning}.")
    return values


def refuse_duplicate_ids(where: str, ids: Sequence[str]) -> None:
    """Refuse a table in which two rows name the same patient (ids compared without surrounding spaces).

    ``ids`` are the table's ``patient_id`` cells in order; rows are counted as a spreadsheet shows
    them (the header is row 1), so the message points at both rows.

    Parameters
    ----------
    where : str
        The table, as the message should name it (e.g. its path).
    ids : sequence of str
        The ``patient_id`` cells, in row order.

    Raises
    ------
    InputError
        If an id occurs on more than one row; the message lists up to five such ids
        with their row numbers.
    """
    rows: dict[str, list[int]] = {}
    for number, patient_id in enumerate(ids, start=2):
        rows.setdefault(str(patient_id).strip(), []).append(number)
    repeated = [(patient_id, numbers) for patient_id, numbers in rows.items() if len(numbers) > 1]
    if repeated:
        shown = "; ".join(f"'{patient_id}' on rows {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"
                          for patient_id, numbers in repeated[:5])
        more = f" (and {len(repeated) - 5} more ids)" if len(repeated) > 5 else ""
        raise InputError(f"{where}: patient ids occur more than once: {shown}{more}; give each patient one row "
                         "with its own id (rows counted with the header as row 1).")
