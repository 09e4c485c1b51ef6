"""A prediction of the panel written back to PACS: the glue between the scene and ``abcir.dicom.export``.

Slicer records which DICOM instances a volume was loaded from in the node
attribute ``DICOM.instanceUIDs``; the panel looks their files up in Slicer's
DICOM database (application code) and hands the file paths here. The core
reads the series itself (``read_dicom_ct``) and refuses a result computed on
other voxels, so nothing is attached to the wrong images. The lesions passed
to the exporter are exactly the result's lesions, in its order, taken from the
segmentation node by name; the scene is only read.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import SimpleITK as sitk

from abcir.errors import InputError

from .case import dicomIdentity
from .i18n import tr as _
from .segments import LesionInput, lesionFromInput, segmentCrop, segmentIds

if TYPE_CHECKING:
    from abcir.dicom.export import DicomExport
    from abcir.patient.lesions import Lesion
    from abcir.prediction.result import Prediction

INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"  # set by Slicer's DICOM scalar volume plugin


def sourceInstanceUids(volumeNode) -> list[str]:
    """SOP instance UIDs of the DICOM files the volume was loaded from (empty when not loaded from DICOM)."""
    if volumeNode is None:
        return []
    return (volumeNode.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()


def seriesFolder(files: Sequence[str], scratch: str | os.PathLike) -> Path:
    """One folder holding the series' files: their own folder when they share one, else links made in ``scratch``.

    The core reads a series from a folder; a DICOM database may keep the files
    of one series in several folders (files added in place). Links are made
    where the system allows them, copies otherwise.
    """
    if not files:
        raise InputError(_("CT volume: none of its DICOM files is in Slicer's DICOM database; import the series "
                           "again with the DICOM module."))
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise InputError(_("CT volume: {count} of its DICOM files are gone (e.g. '{path}'); restore them or "
                           "import the series again.").format(count=len(missing), path=missing[0]))
    folders = {os.path.dirname(os.path.abspath(path)) for path in files}
    if len(folders) == 1:
        return Path(folders.pop())
    folder = Path(tempfile.mkdtemp(prefix="abcir-dicom-series-", dir=scratch))
    for index, path in enumerate(files):
        target = folder / f"{index:05d}.dcm"
        try:
            os.symlink(os.path.abspath(path), target)
        except OSError:  # e.g. Windows without the privilege to make links
            shutil.copy2(path, target)
    return folder


def resultLesions(prediction: Prediction, segmentationNode, volumeNode, ct: sitk.Image) -> list[Lesion]:
    """The result's lesions, in its order, from the segmentation node (segment names are the lesion ids).

    Each mask is taken on the volume's grid and aligned to ``ct`` (the series as
    the core reads it); the site is the one the result reports. The core
    checks every volume against the result, so an edited segment is refused.
    """
    if segmentationNode is None:
        raise InputError(_("Segmentation: none selected; select the segmentation the prediction was made from."))
    segmentation = segmentationNode.GetSegmentation()
    byName = {segmentation.GetSegment(segmentId).GetName(): segmentId for segmentId in segmentIds(segmentationNode)}
    missing = [lesion.lesion_id for lesion in prediction.lesions if lesion.lesion_id not in byName]
    if missing:
        raise InputError(_("Segmentation '{name}': no segment called {lesions}, which the result lists; select the "
                           "segmentation the prediction was made from.").format(
            name=segmentationNode.GetName(), lesions=", ".join(f"'{lesion}'" for lesion in missing)))
    return [lesionFromInput(LesionInput(byName[lesion.lesion_id], lesion.lesion_id, lesion.site,
                                        segmentCrop(segmentationNode, byName[lesion.lesion_id], volumeNode)), ct)
            for lesion in prediction.lesions]


def exportResultToDicom(prediction: Prediction, segmentationNode, volumeNode, files: Sequence[str],
                        outFolder: str | os.PathLike, scratch: str | os.PathLike, resultName: str) -> DicomExport:
    """Write the result as DICOM SEG + SR into ``outFolder`` (never overwriting); returns the paths and warnings.

    ``files`` are the CT's DICOM files (from Slicer's DICOM database). The
    series is the one the result records, else the volume's own series.
    """
    from abcir.dicom.export import export_dicom
    from abcir.dicom.series import read_dicom_ct

    seriesUid = (prediction.ct.series_instance_uid if prediction.ct else "") or dicomIdentity(volumeNode)[1]
    ct = read_dicom_ct(seriesFolder(files, scratch), series_uid=seriesUid or None)
    lesions = resultLesions(prediction, segmentationNode, volumeNode, ct.image)
    return export_dicom(prediction, ct, lesions, outFolder, result_name=resultName)
