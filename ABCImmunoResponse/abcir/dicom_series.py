"""Read a CT series from a DICOM folder (placeholder order: GDCM's sorting)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import SimpleITK as sitk

from .errors import InputError


@dataclass
class DicomCT:
    """A CT read from DICOM with the identifiers that must travel with every result."""

    image: sitk.Image
    study_instance_uid: str
    series_instance_uid: str
    files: list[str] = field(default_factory=list)


def read_dicom_ct(folder: Path, series_uid: str | None = None) -> DicomCT:
    """The CT series in ``folder`` (the only one, or ``series_uid``) as an image in HU."""
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not uids:
        raise InputError(f"CT '{folder}': no DICOM series in this folder.")
    if series_uid is None:
        if len(uids) > 1:
            raise InputError(f"CT '{folder}': {len(uids)} DICOM series; choose one with --series-uid "
                             f"({', '.join(uids)}).")
        series_uid = uids[0]
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_uid))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    image = reader.Execute()
    study = reader.GetMetaData(0, "0020|000d").strip() if reader.HasMetaDataKey(0, "0020|000d") else ""
    return DicomCT(image, study, series_uid, files)
