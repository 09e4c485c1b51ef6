"""Read a CT series from a folder of DICOM files as PACS sends it.

A study folder often holds several series: scouts, soft-tissue and lung
reconstructions, reformats, dose reports, PET. ``list_series`` describes each one
(description, number of images, spacing, kernel) and says why a series cannot be
used; ``choose_series`` picks the CT series by the rule below unless the user names
one (``--series-uid``); ``read_dicom_ct`` stacks its slices into a volume in HU.

Choice rule, in order: a usable CT series (CT modality, not a scout/localizer, a
stack of at least ``stack_geometry.MIN_SLICES`` slices with regular geometry);
ORIGINAL images before DERIVED ones (reformats, MIPs); slice thickness within the paper's range
(Zhao et al. 2023, Methods: "1.25 mm layer thickness (median 1.25 mm; range
1.0-2.0 mm)"); then the series with the most slices. When the best two are equal
on all of these (typically the soft-tissue and the lung kernel of one scan) the
choice is refused and the user names one: a wrong kernel changes every texture
feature, so it is never guessed.

Slices are ordered and checked by ``stack_geometry`` (position along the slice
normal; mixed orientation, size or spacing, duplicate positions, missing slices
and irregular spacing refused). Gantry tilt (each slice displaced in its own plane
from the previous one, so the stack is sheared) is resampled onto the regular grid
orthogonal to the slices, with a warning: each slice is shifted in its plane by
linear interpolation, with no interpolation across slices, as dcm2niix and
Slicer's acquisition-geometry regularisation do. The voxel data are then float32
and the area the shift uncovers holds the series' lowest value (air or padding).
Rescale slope and intercept are applied by GDCM as each slice is read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from ..errors import InputError
from ..files import itk_path
from ..paper import SLICE_THICKNESS_RANGE_MM
from .stack_geometry import SliceHeader, StackGeometry, describe_slices, stack_geometry

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MULTIFRAME_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")  # Enhanced, Legacy Converted
LOCALIZER_IMAGE_TYPES = {"LOCALIZER", "SCOUT", "TOPOGRAM"}
# A tilt shift this close to whole pixels is taken as whole (header rounding), so voxels are copied.
WHOLE_PIXEL_TOLERANCE = 1e-3

# Header fields read for listing; pixel data are read by GDCM only for the chosen series.
_HEADER_TAGS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "Modality", "SeriesDescription", "SeriesNumber", "InstanceNumber", "AcquisitionNumber", "ImageType",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns", "SliceThickness",
    "ConvolutionKernel", "GantryDetectorTilt", "NumberOfFrames", "PatientID", "SpecificCharacterSet",
]


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a folder as the listing shows it, with the reason it cannot be used, if any."""

    series_instance_uid: str
    study_instance_uid: str
    frame_of_reference_uid: str
    modality: str
    description: str
    series_number: int | None
    images: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_spacing_mm: float | None
    slice_thickness_mm: float | None
    kernel: str
    image_type: tuple[str, ...]
    problem: str | None
    geometry: StackGeometry | None = field(default=None, repr=False, compare=False)
    patient_id: str = ""  # PatientID (0010,0020) of the series' first image; empty when anonymised away

    @property
    def usable(self) -> bool:
        """Whether the series can be read as a CT volume (it has no ``problem``)."""
        return self.problem is None

    @property
    def original(self) -> bool:
        """Whether its images are ORIGINAL (as acquired), not DERIVED (reformats, MIPs)."""
        return bool(self.image_type) and self.image_type[0] == "ORIGINAL"

    @property
    def label(self) -> str:
        """How messages name the series: its description and UID."""
        uid = self.series_instance_uid or "no SeriesInstanceUID"
        return f"'{self.description or 'no description'}' ({uid})"


@dataclass
class DicomCT:
    """A CT read from DICOM with the identifiers that must travel with every result.

    ``files[k]`` and ``sop_instance_uids[k]`` are the image of slice k (z index) of ``image``.
    """

    image: sitk.Image
    study_instance_uid: str
    series_instance_uid: str
    files: list[str] = field(default_factory=list)
    sop_instance_uids: list[str] = field(default_factory=list)
    frame_of_reference_uid: str = ""
    series_description: str = ""
    gantry_tilt_degrees: float = 0.0  # non-zero: the sheared stack was resampled onto a regular grid
    warnings: list[str] = field(default_factory=list)
    patient_id: str = ""  # PatientID (0010,0020); empty when the series has none


def _text(dataset: pydicom.Dataset, keyword: str) -> str:
    value = dataset.get(keyword)
    if value is None:
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _number(dataset: pydicom.Dataset, keyword: str, kind: type = float) -> int | float | None:
    """A single number of ``kind`` (int or float), or None when absent, empty or malformed."""
    value = dataset.get(keyword)
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _floats(dataset: pydicom.Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    value = dataset.get(keyword)
    try:
        numbers = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _uid(dataset: pydicom.Dataset, keyword: str, meta_keyword: str) -> str:
    """A UID from the dataset, or from the file meta header when an anonymiser blanked the dataset's copy."""
    uid = _text(dataset, keyword)
    if not uid and "file_meta" in dir(dataset):
        uid = _text(dataset.file_meta, meta_keyword)
    return uid


def _read_headers(folder: Path) -> tuple[list[tuple[pydicom.Dataset, str]], int]:
    """(header, path) of every DICOM image file under ``folder``, and the number of other files skipped."""
    found: list[tuple[pydicom.Dataset, str]] = []
    skipped = 0
    for root, _, names in os.walk(folder):
        for name in sorted(names):
            path = os.path.join(root, name)
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
            except InvalidDicomError:  # not a DICOM file: notes, DICOMDIR viewers, thumbnails
                skipped += 1
                continue
            except (OSError, EOFError, ValueError, TypeError, AttributeError) as error:
                log.warning("DICOM file '%s' cannot be read (%s); it is left out.", path, error)
                skipped += 1
                continue
            if "Rows" not in dataset:  # DICOMDIR, structured reports, presentation states: not images
                if "Image Storage" in pydicom.uid.UID(str(dataset.get("SOPClassUID", ""))).name:
                    # An image whose header ends early: pydicom reads what is there without an error.
                    log.warning("DICOM file '%s' is an image cut short (its header ends before its size); it is "
                                "left out. Copy it again from where it came from.", path)
                skipped += 1
                continue
            found.append((dataset, path))
    return found, skipped


def _slice_header(dataset: pydicom.Dataset, path: str) -> SliceHeader:
    spacing = _floats(dataset, "PixelSpacing", 2)
    return SliceHeader(
        path=path,
        sop_instance_uid=_uid(dataset, "SOPInstanceUID", "MediaStorageSOPInstanceUID"),
        instance_number=_number(dataset, "InstanceNumber", int),
        position=_floats(dataset, "ImagePositionPatient", 3),  # type: ignore[arg-type]
        orientation=_floats(dataset, "ImageOrientationPatient", 6),
        pixel_spacing=spacing,  # type: ignore[arg-type]
        rows=_number(dataset, "Rows", int) or 0,
        columns=_number(dataset, "Columns", int) or 0,
        frames=_number(dataset, "NumberOfFrames", int) or 1,
        image_type=tuple(v.strip().upper() for v in _text(dataset, "ImageType").split("\\") if v.strip()),
        acquisition_number=_number(dataset, "AcquisitionNumber", int),
    )


def _describe_series(group: list[tuple[pydicom.Dataset, str]]) -> SeriesInfo:
    first = group[0][0]
    slices = [_slice_header(dataset, path) for dataset, path in group]
    modality = _text(first, "Modality").upper()
    sop_class = _uid(first, "SOPClassUID", "MediaStorageSOPClassUID")
    image_type = slices[0].image_type
    problem = None
    geometry = None
    if modality != "CT":
        problem = f"modality {modality or 'missing'}, not CT"
    elif any(LOCALIZER_IMAGE_TYPES & set(s.image_type) for s in slices):
        problem = "a scout/localizer (ImageType LOCALIZER), not a CT volume"
    elif sop_class in MULTIFRAME_CT_STORAGE or any(s.frames > 1 for s in slices):
        problem = ("enhanced multi-frame CT, which this version does not read; export the series as classic "
                   "single-frame CT images")
    elif sop_class and sop_class != CT_IMAGE_STORAGE:
        problem = f"SOP class {sop_class} (e.g. a secondary capture screenshot), not CT Image Storage"
    else:
        try:
            geometry = stack_geometry(slices)
        except InputError as error:
            problem = str(error)
    spacing = geometry.spacing if geometry else None
    return SeriesInfo(
        series_instance_uid=_text(first, "SeriesInstanceUID"),
        study_instance_uid=_text(first, "StudyInstanceUID"),
        frame_of_reference_uid=_text(first, "FrameOfReferenceUID"),
        modality=modality,
        description=_text(first, "SeriesDescription"),
        series_number=_number(first, "SeriesNumber", int),
        images=len(slices),
        pixel_spacing_mm=slices[0].pixel_spacing,
        slice_spacing_mm=spacing[2] if spacing else None,
        slice_thickness_mm=_number(first, "SliceThickness"),
        kernel=_text(first, "ConvolutionKernel").replace("\\", " "),
        image_type=image_type,
        problem=problem,
        geometry=geometry,
        patient_id=_text(first, "PatientID"),
    )


def list_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """Every image series in ``folder`` (searched recursively), in series-number order.

    Images are grouped by SeriesInstanceUID; images whose anonymiser removed it are
    grouped by frame of reference, series number, description and modality instead.
    Only headers are read; pixel data are not.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder PACS exported the study to; files that are not DICOM images are skipped.

    Returns
    -------
    list of SeriesInfo
        Each series with its geometry (spacings in mm) and, when it cannot be read as a CT
        volume, the reason in ``problem``.

    Raises
    ------
    InputError
        ``folder`` does not exist or holds no DICOM image.
    """
    folder = Path(folder)
    if folder.is_file():
        raise InputError(f"DICOM folder '{folder}': a file, not a folder; give the folder that holds the series' "
                         "files.")
    if not folder.is_dir():
        raise InputError(f"DICOM folder '{folder}': no such folder.")
    headers, skipped = _read_headers(folder)
    if not headers:
        raise InputError(f"DICOM folder '{folder}': no DICOM images found ({skipped} other files). "
                         "Give the folder PACS exported the series to.")
    if skipped:
        log.info("DICOM folder '%s': %d files that are not DICOM images were skipped.", folder, skipped)
    groups: dict[tuple, list[tuple[pydicom.Dataset, str]]] = {}
    for dataset, path in headers:
        uid = _text(dataset, "SeriesInstanceUID")
        key = (uid,) if uid else ("", _text(dataset, "FrameOfReferenceUID"), _text(dataset, "SeriesNumber"),
                                  _text(dataset, "SeriesDescription"), _text(dataset, "Modality"))
        groups.setdefault(key, []).append((dataset, path))
    series = [_describe_series(group) for group in groups.values()]
    return sorted(series, key=lambda s: (s.series_number is None, s.series_number or 0, s.series_instance_uid))


def _rank(series: SeriesInfo) -> tuple:
    low, high = SLICE_THICKNESS_RANGE_MM
    thickness = series.slice_thickness_mm
    in_range = thickness is not None and low - 1e-3 <= thickness <= high + 1e-3
    return (series.original, in_range, series.images)


def choose_series(series: list[SeriesInfo], series_uid: str | None = None, folder: str = "") -> SeriesInfo:
    """The series to read: ``series_uid`` if given, else the best usable CT series by the module's rule.

    Parameters
    ----------
    series : list of SeriesInfo
        The series of a folder, as ``list_series`` returns them.
    series_uid : str, optional
        The SeriesInstanceUID the user chose (``--series-uid``).
    folder : str
        How messages name the folder.

    Returns
    -------
    SeriesInfo
        The chosen series; a warning is logged when the folder held others.

    Raises
    ------
    InputError
        No series has ``series_uid``, or it cannot be used; no series is a usable CT; or several
        fit the rule equally well (typically two kernels of one scan), so the user must choose.
    """
    where = f"DICOM folder '{folder}'"
    if series_uid:
        matches = [s for s in series if s.series_instance_uid == series_uid]
        if not matches:
            raise InputError(f"{where}: no series with SeriesInstanceUID {series_uid}. Series here: "
                             + "; ".join(s.label for s in series) + ". List them with 'abcir dicom-series'.")
        chosen = matches[0]
        if chosen.problem:
            raise InputError(f"{where}: series {chosen.label} cannot be used: {chosen.problem}")
        return chosen
    usable = [s for s in series if s.usable]
    if not usable:
        raise InputError(f"{where}: no usable CT series. " + "; ".join(f"{s.label}: {s.problem}" for s in series))
    best = max(_rank(s) for s in usable)
    tied = [s for s in usable if _rank(s) == best]
    if len(tied) > 1:
        raise InputError(f"{where}: {len(tied)} CT series fit equally well ("
                         + "; ".join(f"{s.label}, kernel {s.kernel or '?'}, {s.images} slices" for s in tied)
                         + "); choose one with --series-uid (the soft-tissue kernel, not the lung or bone one).")
    chosen = tied[0]
    others = [s for s in series if s is not chosen]
    if others:
        log.warning("%s: using CT series %s (%d slices, kernel %s) of %d series; choose another with --series-uid.",
                    where, chosen.label, chosen.images, chosen.kernel or "?", len(series))
    return chosen


def _read_slice(path: str) -> np.ndarray:
    """One slice in HU (GDCM applies RescaleSlope/RescaleIntercept), as a (rows, columns) array."""
    reader = sitk.ImageFileReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileName(itk_path(path, "DICOM file"))  # a name SimpleITK can take under an ASCII locale too
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise InputError(f"DICOM file '{path}': its pixel data cannot be decoded "
                         f"({str(error).strip().splitlines()[-1]}).") from error
    array = sitk.GetArrayFromImage(image)
    return array.reshape(array.shape[-2:]) if array.ndim == 3 and array.shape[0] == 1 else array


def _stack_pixels(geometry: StackGeometry) -> np.ndarray:
    """The slices' HU values as a (slices, rows, columns) array, shifted in-plane for a gantry tilt."""
    arrays = [_read_slice(s.path) for s in geometry.slices]
    shape = (geometry.slices[0].rows, geometry.slices[0].columns)
    wrong = [s for s, a in zip(geometry.slices, arrays, strict=True) if a.shape != shape]
    if wrong:
        raise InputError(f"{describe_slices(wrong)}: pixel data do not match Rows x Columns {shape}.")
    dtypes = {a.dtype for a in arrays}
    dtype = np.result_type(*dtypes)
    if np.issubdtype(dtype, np.floating):
        dtype = np.dtype(np.float32)
    volume = np.stack(arrays).astype(dtype, copy=False)
    if geometry.in_plane_offsets_mm is None:
        return volume
    fill = float(volume.min())
    spacing_xy = np.array(geometry.spacing[:2])
    shifted = np.empty(volume.shape, dtype=np.float32)
    for k, offset in enumerate(geometry.in_plane_offsets_mm):
        shift = offset / spacing_xy
        # A shift within rounding of whole pixels moves voxels without blurring them.
        shift_x, shift_y = np.where(np.abs(shift - np.round(shift)) < WHOLE_PIXEL_TOLERANCE, np.round(shift), shift)
        # Output voxel (y, x) of slice k is the acquired slice's voxel (y - shift_y, x - shift_x).
        shifted[k] = ndimage.shift(volume[k].astype(np.float32), (shift_y, shift_x), order=1,
                                   mode="constant", cval=fill)
    return shifted


def read_dicom_ct(folder: str | os.PathLike, series_uid: str | None = None) -> DicomCT:
    """The CT series in ``folder`` (chosen by the module's rule, or ``series_uid``) as a volume in HU.

    The image carries the series' identity in its metadata (DICOM tags 0020|000d StudyInstanceUID,
    0020|000e SeriesInstanceUID, 0020|0052 FrameOfReferenceUID, 0010|0020 PatientID), so results can
    record it.

    Parameters
    ----------
    folder : str or os.PathLike
        The DICOM folder, searched recursively.
    series_uid : str, optional
        The SeriesInstanceUID to read; by default the series is chosen by ``choose_series``.

    Returns
    -------
    DicomCT
        The volume in HU (LPS, spacing in mm; float32 when a gantry tilt was resampled), the
        file and SOPInstanceUID of each slice, the series' UIDs and the warnings (also logged).

    Raises
    ------
    InputError
        No series can be chosen (see ``choose_series``), or a slice's pixel data cannot be decoded
        or do not match its Rows x Columns.
    """
    folder = Path(folder)
    chosen = choose_series(list_series(folder), series_uid, str(folder))
    geometry = chosen.geometry
    assert geometry is not None  # a usable series has one
    warnings = list(geometry.warnings)
    if not chosen.series_instance_uid or not chosen.study_instance_uid:
        warnings.append("the series has no StudyInstanceUID/SeriesInstanceUID (removed by anonymisation); "
                        "results cannot be linked to the PACS study, and DICOM export is refused.")
    if geometry.in_plane_offsets_mm is not None:
        warnings.append(f"gantry tilt of {geometry.tilt_degrees:.2f} degrees: the sheared stack was resampled "
                        "onto a regular grid orthogonal to the slices (each slice shifted in its plane, linear "
                        "interpolation).")
    missing_uid = [s for s in geometry.slices if not s.sop_instance_uid]
    if missing_uid:
        warnings.append(f"{describe_slices(missing_uid)} have no SOPInstanceUID; they cannot be referenced.")
    volume = _stack_pixels(geometry)
    image = sitk.GetImageFromArray(volume)
    image.SetOrigin(tuple(float(v) for v in geometry.origin))
    image.SetSpacing(geometry.spacing)
    image.SetDirection(tuple(float(v) for v in geometry.direction.ravel()))
    frame_of_reference = chosen.frame_of_reference_uid
    for tag, value in (("0020|000d", chosen.study_instance_uid), ("0020|000e", chosen.series_instance_uid),
                       ("0020|0052", frame_of_reference), ("0008|0060", chosen.modality),
                       ("0010|0020", chosen.patient_id)):
        image.SetMetaData(tag, value)
    for message in warnings:
        log.warning("CT series %s: %s", chosen.label, message)
    return DicomCT(
        image=image,
        study_instance_uid=chosen.study_instance_uid,
        series_instance_uid=chosen.series_instance_uid,
        files=[s.path for s in geometry.slices],
        sop_instance_uids=[s.sop_instance_uid for s in geometry.slices],
        frame_of_reference_uid=frame_of_reference,
        series_description=chosen.description,
        gantry_tilt_degrees=geometry.tilt_degrees,
        warnings=warnings,
        patient_id=chosen.patient_id,
    )
