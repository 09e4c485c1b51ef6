"""The target lesions as a DICOM Segmentation that joins the CT's study, and read back.

A binary SEG, built with highdicom, with one segment per target lesion in the
prediction's lesion order, on the CT's grid. Each segment is labelled with the
lesion id, the property "Neoplasm" (SNOMED CT 108369006, Slicer's "Tumor") and the
site as its anatomic region (SNOMED CT codes from ``sites.SITES``), and the SEG
references the CT series. ``export.export_dicom`` writes it next to the SR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.sr.codedict import codes

from .. import __version__
from ..patient.lesions import Lesion, resample_mask_nearest
from ..patient.sites import SITES
from .seg_reading import read_seg
from .series import DicomCT

MANUFACTURER = "ABCImmunoResponse"
# High series numbers sort the derived objects after the scanner's series in a PACS viewer.
SEG_SERIES_NUMBER = 9801


@dataclass(frozen=True)
class SegmentMask:
    """One segment of a DICOM SEG read back onto a CT grid."""

    segment_number: int
    lesion_id: str
    site: str | None
    mask: sitk.Image  # uint8 0/1 on the CT grid


def _lesion_volume(lesions: Sequence[Lesion], ct: sitk.Image, frame_of_reference_uid: str) -> hd.Volume:
    """The lesion masks as a highdicom Volume (slices x rows x columns x segments), cropped to the slices in use."""
    stacked = np.stack([sitk.GetArrayViewFromImage(lesion.mask) != 0 for lesion in lesions], axis=-1)
    used = np.flatnonzero(stacked.any(axis=(1, 2, 3)))
    slices = slice(int(used[0]), int(used[-1]) + 1)
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    spacing = np.array(ct.GetSpacing())
    affine = np.eye(4)
    # highdicom indexes (slice, row, column); SimpleITK's axes are (column x, row y, slice z).
    affine[:3, :3] = np.stack([direction[:, 2] * spacing[2], direction[:, 1] * spacing[1],
                               direction[:, 0] * spacing[0]], axis=1)
    affine[:3, 3] = ct.TransformIndexToPhysicalPoint((0, 0, slices.start))
    return hd.Volume(stacked[slices].astype(np.uint8), affine, "PATIENT", frame_of_reference_uid=frame_of_reference_uid,
                     channels={"SegmentNumber": list(range(1, len(lesions) + 1))})


def _segment_description(number: int, lesion: Lesion) -> hd.seg.SegmentDescription:
    site = SITES.get(lesion.site or "")
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lesion.lesion_id,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        # The paper's readers delineated every lesion by hand in 3D Slicer (Methods).
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        tracking_uid=hd.UID(),
        tracking_id=lesion.lesion_id,
        anatomic_regions=[hd.sr.CodedConcept(site.snomed_code, "SCT", site.snomed_meaning)] if site else None,
        display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in site.color)) if site else None,
    )


def build_lesion_seg(ct: DicomCT, lesions: Sequence[Lesion], sources: Sequence[pydicom.Dataset],
                     clinically_validated: bool) -> hd.seg.Segmentation:
    """A binary DICOM Segmentation of ``lesions`` (one segment each, in order) referencing the CT series.

    Parameters
    ----------
    ct : DicomCT
        The CT series the lesions were drawn on; the SEG takes its grid (mm, LPS) and frame of reference.
    lesions : sequence of Lesion
        The target lesions, masks on ``ct``'s grid; lesion k becomes segment k + 1.
    sources : sequence of pydicom.Dataset
        The CT slices' headers, in the order of ``ct.files``, which the SEG references.
    clinically_validated : bool
        Whether the weights behind the prediction are clinically validated; if not, the series
        description says so.

    Returns
    -------
    highdicom.seg.Segmentation
        The SEG, not yet written; only the slices that hold a lesion are stored as frames.
    """
    return hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=_lesion_volume(lesions, ct.image, ct.frame_of_reference_uid),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(i + 1, lesion) for i, lesion in enumerate(lesions)],
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="abcir",
        software_versions=__version__,
        device_serial_number=__version__,  # software has no serial number; its version identifies the build
        content_label="TARGETS",
        content_description="RECIST target lesions",
        series_description=series_description("ABCIR target lesions", clinically_validated),
    )


def series_description(text: str, clinically_validated: bool) -> str:
    """The SeriesDescription of a SEG or SR, marked as research unless the weights are validated.

    Parameters
    ----------
    text : str
        What the series holds, e.g. "ABCIR target lesions".
    clinically_validated : bool
        Whether the weights behind the prediction are clinically validated.

    Returns
    -------
    str
        ``text``, followed by "(research, not clinically validated)" when they are not.
    """
    return text if clinically_validated else f"{text} (research, not clinically validated)"


def read_lesion_seg(path: str | os.PathLike, ct: sitk.Image) -> list[SegmentMask]:
    """The segments of a DICOM SEG as binary masks on ``ct``'s grid (nearest neighbour; exact on the same grid).

    Read as ``--lesions`` reads a SEG (``seg_reading.read_seg``: checked against the CT's UIDs).

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM SEG file.
    ct : SimpleITK.Image
        The CT whose grid (origin and spacing in mm, LPS direction) the masks are resampled onto.

    Returns
    -------
    list of SegmentMask
        One per segment, in segment-number order, each a uint8 0/1 mask on ``ct``'s grid.

    Raises
    ------
    InputError
        The file is not a readable SEG, was drawn on another series or frame of reference than
        ``ct``'s, has no segments, or a segment's frames do not form a regular volume.
    """
    return [SegmentMask(segment.segment_number, segment.label, segment.site,
                        resample_mask_nearest(segment.mask, ct))
            for segment in read_seg(path, ct)]
