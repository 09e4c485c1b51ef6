"""Patient ids: the id a result carries when none is given.

A result without ``--patient-id`` is named after its CT. For a DICOM series that
is the series' PatientID (0010,0020): the id PACS files it under, the same for
every series and study of the patient, and different between patients, which is
all a patient id must be (two CTs of one patient are told apart by their CT
hash and UIDs, which every result records). A series whose PatientID an
anonymiser removed takes its folder's full name instead; TCIA folder names such
as ``1.000000-P4P113S303I10349 Gated 40.0B-29543`` hold dots, and cut at the
first one they would all be ``1``. An image file is named by its file name
without the image extension. That two rows of a table may not share an id is
``abcir.cohort.table_cells.refuse_duplicate_ids``.
"""

from __future__ import annotations

import os
from pathlib import Path

import SimpleITK as sitk

from ..imaging.ct import file_stem

# The metadata key under which ``dicom.series.read_dicom_ct`` leaves the series' PatientID on the image.
PATIENT_ID_TAG = "0010|0020"


def default_patient_id(ct_path: str | os.PathLike, ct: sitk.Image) -> str:
    """The id of a patient whose CT is ``ct`` (as read from ``ct_path``), when the user gives none.

    A DICOM folder: its series' PatientID, else the folder's name. A file: its name without the
    image extension.

    Parameters
    ----------
    ct_path : str or os.PathLike
        The CT as the user gave it: a DICOM series folder or an image file.
    ct : SimpleITK.Image
        The CT read from ``ct_path``; for a folder, its PatientID metadata
        (0010|0020) is used when present and not blank.

    Returns
    -------
    str
        The PatientID, the folder's full name (resolved, dots kept), or the file
        name without the image extension.
    """
    path = Path(ct_path)
    if path.is_dir():
        patient_id = ct.GetMetaData(PATIENT_ID_TAG).strip() if ct.HasMetaDataKey(PATIENT_ID_TAG) else ""
        return patient_id or path.resolve().name
    return file_stem(path)
