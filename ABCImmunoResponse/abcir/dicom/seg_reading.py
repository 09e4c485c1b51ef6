"""Target lesions from DICOM objects: the segments of a DICOM SEG; RTSTRUCT is refused.

A DICOM Segmentation (binary, fractional or label-map SEG, as PACS viewers such as OHIF,
3D Slicer, dcmqi and ``abcir export-dicom`` write it) is read with highdicom. Each
segment becomes one lesion named by its segment label. Its site comes from the
segment's anatomic region code (SNOMED CT, the codes of ``sites.SITES``; old SNOMED RT
codes are mapped by pydicom), else from its segmented property type when that names an
organ, else (in ``lesions``) from the label, as for ``.seg.nrrd`` segment names.

A SEG is bound to the images it was drawn on: its frame of reference and referenced
series must be those of the CT given, otherwise it is refused, naming both. A CT read
from a file (NRRD, NIfTI) carries no UIDs; then the segments are placed by their
patient coordinates and a warning says that the match could not be checked.

Fractional segments (probability or occupancy, 0..1 after scaling by
MaximumFractionalValue) are made binary at ``FRACTIONAL_THRESHOLD``: a voxel belongs to
the lesion when it is at least half inside it, or at least as likely in as out.

A SEG drawn on the CT (every frame on the CT's voxels: its axes, pixel spacing and
slice planes) is put on the CT's grid frame by frame, each frame on its own slice,
whatever the others: frames only where a lesion is, each segment cropped its own way,
and no SpacingBetweenSlices (optional, and left out by many writers; ``highdicom``'s
volume would then take the slice spacing from the frames present and the lesions would
fill the slices in between). Any other SEG becomes ``highdicom``'s volume on its own grid,
which ``lesions.align_to_ct`` puts on the CT's (unchanged on the same grid, nearest
neighbour on a flipped or cropped one, which copies voxels exactly when the grids coincide).

RTSTRUCT is refused: contours have to be rasterised onto the CT's voxels, and no
maintained library does that correctly (``Testing/core/test_rtstruct_rasterisation.py``
holds the evidence): rt-utils 1.2.7 and platipy 0.7.2 add a ring of boundary voxels to
contours drawn by other software (+21 % volume on a pancreas-sized lesion), platipy
requires pydicom < 3, and dcmrtstruct2nii 5 cannot read a file with pydicom 3.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom import Dataset
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from ..patient.sites import site_from_code

log = logging.getLogger(__name__)

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABEL_MAP_SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASSES = (SEGMENTATION_STORAGE, LABEL_MAP_SEGMENTATION_STORAGE)
# A fractional voxel at least this much inside (or this likely) belongs to the lesion.
FRACTIONAL_THRESHOLD = 0.5
# Where SimpleITK's DICOM-derived images (``series.read_dicom_ct``) keep the series identity.
SERIES_UID_TAG = "0020|000e"
FRAME_OF_REFERENCE_UID_TAG = "0020|0052"
# A frame whose first pixel is this close to a CT voxel (mm), and whose axes are this close to the CT's
# (direction cosines), lies on the CT's voxels (writers round positions to 0.01 mm).
POSITION_TOLERANCE_MM = 0.01
DIRECTION_TOLERANCE = 1e-4


@dataclass(frozen=True)
class DicomSegment:
    """One segment of a DICOM SEG: its label, the site its codes give, and its binary mask.

    ``site`` is a key of ``sites.SITES`` or None when the codes name no site (the label
    may still). ``mask`` is uint8 0/1 on the CT's grid for a SEG drawn on the CT, else on the SEG's
    own voxel grid, in patient coordinates (LPS, mm).
    """

    segment_number: int
    label: str
    site: str | None
    mask: sitk.Image


def _site_of(description: hd.seg.SegmentDescription) -> str | None:
    """The site a segment's codes give: its anatomic region, else its property type (an organ segment)."""
    for code in [*description.anatomic_regions, description.segmented_property_type]:
        site = site_from_code(code.scheme_designator, code.value)
        if site is not None:
            return site
    return None


def _one_line(error: BaseException) -> str:
    """An exception's text on one line: messages to the user are single lines."""
    return " ".join(str(error).split())


def _referenced_series(seg: hd.seg.Segmentation) -> list[str]:
    """The SeriesInstanceUIDs the SEG says it was derived from (common instance reference, else its sources)."""
    series = [item.SeriesInstanceUID for item in seg.get("ReferencedSeriesSequence", [])]
    for study in seg.get("StudiesContainingOtherReferencedInstancesSequence", []):
        series += [item.SeriesInstanceUID for item in study.get("ReferencedSeriesSequence", [])]
    if not series:
        series = [series_uid for _, series_uid, _ in seg.get_source_image_uids()]
    return list(dict.fromkeys(str(uid) for uid in series))


def check_seg_matches_ct(seg: hd.seg.Segmentation, ct: sitk.Image, name: str) -> None:
    """Refuse a SEG drawn on another series or frame of reference than the CT's, naming both.

    A CT without DICOM UIDs (read from NRRD or NIfTI) cannot be checked: the SEG is then
    placed by its patient coordinates, with a warning.

    Parameters
    ----------
    seg : highdicom.seg.Segmentation
        The SEG, whose referenced series and FrameOfReferenceUID are compared.
    ct : SimpleITK.Image
        The CT; ``series.read_dicom_ct`` leaves its SeriesInstanceUID and FrameOfReferenceUID in its metadata.
    name : str
        How messages name the SEG (its path).

    Raises
    ------
    InputError
        The SEG references another series or frame of reference than the CT's.
    """
    ct_series, ct_frame = (ct.GetMetaData(tag).strip() if ct.HasMetaDataKey(tag) else ""
                           for tag in (SERIES_UID_TAG, FRAME_OF_REFERENCE_UID_TAG))
    seg_series = _referenced_series(seg)
    seg_frame = str(seg.get("FrameOfReferenceUID", "") or "")
    if not ct_series and not ct_frame:
        log.warning("Lesions '%s': the CT carries no DICOM UIDs (read from a file, not a DICOM folder), so it cannot "
                    "be checked that the SEG (drawn on series %s) belongs to it; its segments are placed by their "
                    "patient coordinates. Give the DICOM series folder as --ct to have this checked.",
                    name, ", ".join(seg_series) or "not recorded")
        return
    other_frame = bool(ct_frame and seg_frame and ct_frame != seg_frame)
    other_series = bool(ct_series and seg_series and ct_series not in seg_series)
    if other_frame or other_series:
        raise InputError(f"Lesions '{name}': the DICOM SEG was drawn on series {', '.join(seg_series) or '?'} "
                         f"(frame of reference {seg_frame or '?'}), not on the CT given (series {ct_series or '?'}, "
                         f"frame of reference {ct_frame or '?'}). Give as --ct the series the SEG references "
                         "('abcir dicom-series FOLDER' lists the series; choose one with --series-uid).")


def _mask_image(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A (slices, rows, columns) array with highdicom's affine as a SimpleITK image (x along columns, z slices)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)  # along (slices, rows, columns)
    axes = affine[:3, :3] / spacing
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    image.SetDirection(tuple(float(v) for v in np.stack([axes[:, 2], axes[:, 1], axes[:, 0]], axis=1).ravel()))
    image.SetOrigin(tuple(float(v) for v in affine[:3, 3]))
    return image


def _frame_item(seg: hd.seg.Segmentation, index: int, keyword: str) -> Dataset | None:
    """A functional group's item for frame ``index`` (0-based): the frame's own, else the shared one."""
    per_frame, shared = seg.get("PerFrameFunctionalGroupsSequence"), seg.get("SharedFunctionalGroupsSequence")
    for group in (per_frame[index] if per_frame else None, shared[0] if shared else None):
        if group is not None and keyword in group:
            return group[keyword].value[0]
    return None


def _frames_on_ct_voxels(seg: hd.seg.Segmentation, ct: sitk.Image) -> list[tuple[int, int, int]] | None:
    """The CT index (x, y, z) of each frame's first pixel, when every frame lies on the CT's voxels; else None.

    On the CT's voxels: the frame's rows and columns run along the CT's x and y axes with the CT's pixel
    spacing, its first pixel is a CT voxel and its plane a CT slice, and it fits in the CT. This is a SEG
    drawn on the CT, the usual case; each frame is then that CT slice, whatever the other frames (sparse
    frames, each segment cropped its own way). ``highdicom``'s volume would instead take the slice spacing
    from the frames present when the SEG states none (SpacingBetweenSlices is optional).
    """
    axes = np.array(ct.GetDirection()).reshape(3, 3)  # columns: the CT's axes in LPS
    spacing, origin, size = np.array(ct.GetSpacing()), np.array(ct.GetOrigin()), np.array(ct.GetSize())
    starts = []
    for index in range(int(seg.get("NumberOfFrames", 1))):
        orientation, measures = (_frame_item(seg, index, keyword) for keyword in
                                 ("PlaneOrientationSequence", "PixelMeasuresSequence"))
        position = _frame_item(seg, index, "PlanePositionSequence")
        if orientation is None or measures is None or position is None:
            return None
        cosines = np.array([float(value) for value in orientation.ImageOrientationPatient])
        row_spacing, column_spacing = (float(value) for value in measures.PixelSpacing)
        if (np.abs(cosines[:3] - axes[:, 0]).max() > DIRECTION_TOLERANCE
                or np.abs(cosines[3:] - axes[:, 1]).max() > DIRECTION_TOLERANCE
                or abs(column_spacing - spacing[0]) > POSITION_TOLERANCE_MM
                or abs(row_spacing - spacing[1]) > POSITION_TOLERANCE_MM):
            return None
        continuous = axes.T @ (np.array([float(value) for value in position.ImagePositionPatient]) - origin) / spacing
        start = np.round(continuous)
        frame_size = np.array([int(seg.Columns), int(seg.Rows), 1])
        if (np.abs(continuous - start) * spacing).max() > POSITION_TOLERANCE_MM or (start < 0).any() \
                or (start + frame_size > size).any():
            return None
        starts.append(tuple(int(value) for value in start))
    return starts


def _mask_on_ct_voxels(seg: hd.seg.Segmentation, ct: sitk.Image, number: int,
                       starts: list[tuple[int, int, int]], name: str) -> sitk.Image:
    """Segment ``number``'s binary mask on the CT grid (uint8 0/1), each of its frames put on its own CT slice."""
    mask = np.zeros(ct.GetSize()[::-1], dtype=np.uint8)
    kind = seg.segmentation_type
    maximum = int(seg.get("MaximumFractionalValue", 1))
    for index, (x, y, z) in enumerate(starts):
        if kind != hd.seg.SegmentationTypeValues.LABELMAP:  # a label map's frames hold every segment
            identification = _frame_item(seg, index, "SegmentIdentificationSequence")
            if int(identification.ReferencedSegmentNumber) != number:
                continue
        stored = _stored_frame(seg, index, name)
        if kind == hd.seg.SegmentationTypeValues.LABELMAP:
            inside = stored == number
        elif kind == hd.seg.SegmentationTypeValues.FRACTIONAL:
            inside = stored >= FRACTIONAL_THRESHOLD * maximum  # stored / maximum >= the threshold, exactly
        else:
            inside = stored != 0
        mask[z, y:y + inside.shape[0], x:x + inside.shape[1]] |= inside
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(ct)
    return image


def _stored_frame(seg: hd.seg.Segmentation, index: int, name: str) -> np.ndarray:
    """Frame ``index`` (0-based) as stored, or an InputError naming the transfer syntax no decoder reads."""
    try:
        return seg.get_stored_frame(index + 1)
    except Exception as error:  # pydicom's pixel decoders raise many types for a codec they lack
        raise InputError(f"Lesions '{name}': its pixel data cannot be decoded (transfer syntax "
                         f"{seg.file_meta.TransferSyntaxUID.name}: {_one_line(error)}). Export the SEG again "
                         "uncompressed, or with RLE or JPEG 2000 compression.") from error


def read_seg(path: str | os.PathLike, ct: sitk.Image) -> list[DicomSegment]:
    """The segments of a DICOM SEG drawn on ``ct``, as binary masks, in segment-number order.

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM SEG file (binary, fractional or label-map).
    ct : SimpleITK.Image
        The CT the lesions were drawn on, checked against the SEG with ``check_seg_matches_ct``.

    Returns
    -------
    list of DicomSegment
        One per segment, each a uint8 0/1 mask (LPS, mm) on the CT's grid when every frame lies on
        the CT's voxels, else on the SEG's own grid; fractional segments are made binary at
        ``FRACTIONAL_THRESHOLD``.

    Raises
    ------
    InputError
        highdicom cannot read the file or decode its pixel data; it has no patient frame of reference or
        no segments; it was drawn on another series than ``ct``'s; or a segment's frames (off the CT's
        voxels) do not form a regular volume.
    """
    name = str(path)
    try:
        seg = hd.seg.segread(name)
    except Exception as error:  # pydicom and highdicom raise many types for a damaged or unusual SEG
        raise InputError(f"Lesions '{name}': a DICOM SEG that highdicom cannot read ({_one_line(error)}). Export "
                         "it again from the program that made it.") from error
    if seg.coordinate_system != hd.CoordinateSystemNames.PATIENT:
        raise InputError(f"Lesions '{name}': the DICOM SEG has no patient frame of reference (a microscopy or 2D "
                         "segmentation); lesions must be segmented on the CT series.")
    check_seg_matches_ct(seg, ct, name)
    numbers = list(seg.get_segment_numbers())
    if not numbers:
        raise InputError(f"Lesions '{name}': the DICOM SEG has no segments. Segment the lesions first.")
    fractional = seg.segmentation_type == hd.seg.SegmentationTypeValues.FRACTIONAL
    starts = _frames_on_ct_voxels(seg, ct)
    if starts is None:  # highdicom decodes inside get_volume: a codec no decoder reads is said as such first
        _stored_frame(seg, 0, name)
    segments = []
    for number in numbers:
        description = seg.get_segment_description(number)
        label = (description.segment_label or "").strip() or f"segment_{number}"
        if starts is not None:
            segments.append(DicomSegment(number, label, _site_of(description),
                                         _mask_on_ct_voxels(seg, ct, number, starts, name)))
            continue
        try:
            # One segment at a time: a CT-sized array per segment, not one per SEG.
            volume = seg.get_volume(segment_numbers=[number], combine_segments=False, rescale_fractional=True)
        except (RuntimeError, ValueError) as error:
            raise InputError(f"Lesions '{name}': segment {number}'s frames do not form a regular 3D volume "
                             f"({_one_line(error)}); a lesion SEG is drawn on the slices of one CT series. Export "
                             "the SEG again on the CT's slices.") from error
        values = volume.array.reshape(volume.spatial_shape)
        binary = (values >= FRACTIONAL_THRESHOLD) if fractional else (values != 0)
        segments.append(DicomSegment(number, label, _site_of(description),
                                     _mask_image(binary.astype(np.uint8), volume.affine)))
    return segments


def read_dicom_lesions(path: str | os.PathLike, ct: sitk.Image) -> list[DicomSegment]:
    """The lesions of a DICOM file given as ``--lesions``: a SEG's segments; RTSTRUCT and others refused.

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM file.
    ct : SimpleITK.Image
        The CT the lesions were drawn on.

    Returns
    -------
    list of DicomSegment
        The SEG's segments, as ``read_seg`` returns them.

    Raises
    ------
    InputError
        The file is not readable DICOM, is an RTSTRUCT (with how to convert it in 3D Slicer) or another
        object than a SEG, or ``read_seg`` refuses it.
    """
    path = Path(path)
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "Modality"])
    except (InvalidDicomError, OSError, EOFError, ValueError) as error:
        raise InputError(f"Lesions '{path}': not a readable DICOM file ({_one_line(error)}).") from error
    sop_class = str(header.get("SOPClassUID", "") or header.file_meta.get("MediaStorageSOPClassUID", ""))
    if sop_class in SEG_SOP_CLASSES:
        return read_seg(path, ct)
    if sop_class == RT_STRUCTURE_SET_STORAGE:
        # 3D Slicer's SlicerRT extension reads RTSTRUCT with its CT: the way in for radiotherapy contours.
        raise InputError(f"Lesions '{path}': RTSTRUCT is not read: no maintained library rasterises its contours "
                         "onto the CT voxels correctly (rt-utils adds a ring of boundary voxels, +21 % volume on a "
                         "lesion of 1,300 voxels); convert it to a DICOM SEG or .seg.nrrd with 3D Slicer (SlicerRT "
                         "extension: load the RTSTRUCT with its CT from the DICOM database, check the outlines on "
                         "the CT, then save the segmentation as .seg.nrrd or export it as DICOM SEG).")
    modality = str(header.get("Modality", "") or "?")
    raise InputError(f"Lesions '{path}': a DICOM {modality} object (SOP class {sop_class or '?'}), not a "
                     "segmentation; give a DICOM SEG, a .seg.nrrd, a label map or mask files.")
