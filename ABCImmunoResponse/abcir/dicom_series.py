"""Read a CT series from a folder of DICOM files as PACS sends it.

A study folder often holds several series: scouts, soft-tissue and lung
reconstructions, reformats, dose reports, PET. ``list_series`` describes each one
(description, number of images, spacing, kernel) and says why a series cannot be
used; ``choose_series`` picks the CT series by the rule below unless the user names
one (``--series-uid``); ``read_dicom_ct`` stacks its slices into a volume in HU.

Choice rule, in order: a usable CT series (CT modality, not a scout/localizer, a
stack of at least ``MIN_SLICES`` slices with regular geometry); ORIGINAL images
before DERIVED ones (reformats, MIPs); slice thickness within the paper's range
(Zhao et al. 2023, Methods: "1.25 mm layer thickness (median 1.25 mm; range
1.0-2.0 mm)"); then the series with the most slices. When the best two are equal
on all of these (typically the soft-tissue and the lung kernel of one scan) the
choice is refused and the user names one: a wrong kernel changes every texture
feature, so it is never guessed.

Slices are ordered by their position along the slice normal (ImagePositionPatient
projected on the cross product of ImageOrientationPatient's row and column
directions), never by instance number or file name. A series is refused, naming
the slices, when images of different orientation, size or pixel spacing are mixed,
when two different images sit at one position, and when a slice is missing or the
spacing is not uniform (a step deviating from the median step by more than
``SPACING_TOLERANCE``): interpolating a missing slice would invent the image a
lesion is measured on. Gantry tilt (each slice displaced in its own plane from
the previous one, so the stack is sheared) is resampled onto the regular grid
orthogonal to the slices, with a warning: each slice is shifted in its plane by
linear interpolation, with no interpolation across slices, as dcm2niix and
Slicer's acquisition-geometry regularisation do. The voxel data are then float32
and the area the shift uncovers holds the series' lowest value (air or padding).
Rescale slope and intercept are applied by GDCM as each slice is read.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from scipy import ndimage

from .errors import InputError

log = logging.getLogger(__name__)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MULTIFRAME_CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")  # Enhanced, Legacy Converted
LOCALIZER_IMAGE_TYPES = {"LOCALIZER", "SCOUT", "TOPOGRAM"}
MIN_SLICES = 3
# Zhao et al. 2023, Methods (CT acquisition): reconstructed slice thickness 1.0-2.0 mm.
PAPER_SLICE_THICKNESS_MM = (1.0, 2.0)
# A slice step deviating from the series' median step by more than this fraction is a gap or an
# irregular spacing; within it, slices are placed on a regular grid (at most 10% of a slice off).
SPACING_TOLERANCE = 0.10
# Two images closer than this along the normal sit at the same position.
SAME_POSITION_MM = 0.01
# Direction cosines within this are the same orientation (rounding in headers).
ORIENTATION_TOLERANCE = 1e-4
# In-plane displacement of a slice from the first one below this is rounding, not gantry tilt.
IN_PLANE_TOLERANCE_MM = 0.01
# A tilt's in-plane displacement grows linearly along the stack; deviating from that line by
# more than this fraction of a pixel is not a tilt but slices from different fields of view.
TILT_LINEARITY_PIXELS = 0.5
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
class SliceHeader:
    """What ordering and checking one image needs, read from its header."""

    path: str
    sop_instance_uid: str
    instance_number: int | None
    position: tuple[float, float, float] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns), mm
    rows: int
    columns: int
    frames: int
    image_type: tuple[str, ...]
    acquisition_number: int | None

    def describe(self) -> str:
        """How a message names this image: instance number and file name."""
        number = f"instance {self.instance_number}" if self.instance_number is not None else "no instance number"
        return f"{number} ({Path(self.path).name})"


@dataclass(frozen=True)
class StackGeometry:
    """A regular voxel grid for slices sorted along their normal (LPS, mm)."""

    slices: tuple[SliceHeader, ...]  # sorted along the normal: slice k of the volume
    origin: np.ndarray
    direction: np.ndarray  # 3x3, columns: row direction, column direction, normal
    spacing: tuple[float, float, float]  # (x between columns, y between rows, z between slices)
    in_plane_offsets_mm: np.ndarray | None  # (n, 2) shift of each slice along (x, y); None without tilt
    tilt_degrees: float
    warnings: tuple[str, ...]


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
        return self.problem is None

    @property
    def original(self) -> bool:
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


def _list_of(slices: list[SliceHeader], limit: int = 6) -> str:
    shown = ", ".join(s.describe() for s in slices[:limit])
    return shown + (f" and {len(slices) - limit} more" if len(slices) > limit else "")


def _check_uniform(slices: list[SliceHeader]) -> None:
    """Refuse a stack whose images differ in orientation, size or pixel spacing, naming them."""
    for what, values, tolerance in (
            ("orientation (ImageOrientationPatient)", [s.orientation for s in slices], ORIENTATION_TOLERANCE),
            ("pixel spacing", [s.pixel_spacing for s in slices], 1e-4),
            ("size (Rows x Columns)", [(s.rows, s.columns) for s in slices], 0)):
        groups: list[tuple[object, list[SliceHeader]]] = []
        for s, value in zip(slices, values, strict=True):
            for reference, members in groups:
                if np.allclose(value, reference, atol=tolerance):  # type: ignore[arg-type]
                    members.append(s)
                    break
            else:
                groups.append((value, [s]))
        if len(groups) > 1:
            groups.sort(key=lambda g: -len(g[1]))
            details = "; ".join(f"{len(members)} with {np.round(reference, 4).tolist()}: {_list_of(members, 3)}"
                                for reference, members in groups)
            raise InputError(f"the images have {len(groups)} different {what}s ({details}); they are not one "
                             "stack of slices. Export the series again, or separate the images into one folder "
                             "per stack.")


def _distinct_images(slices: list[SliceHeader]) -> tuple[list[SliceHeader], list[str]]:
    """Drop files that copy an image already read (same SOPInstanceUID and position), with a warning."""
    unique: dict[str, SliceHeader] = {}
    copies, clashes = [], []
    for s in slices:
        first = unique.setdefault(s.sop_instance_uid or s.path, s)
        if first is not s:
            (copies if first.position == s.position else clashes).append((first, s))
    if clashes:
        raise InputError(f"{len(clashes)} SOPInstanceUID(s) are shared by images at different positions ("
                         + "; ".join(f"{a.describe()} and {b.describe()}" for a, b in clashes[:3])
                         + "); every image needs its own UID to be referenced. Export the series from PACS again.")
    if not copies:
        return slices, []
    if len(unique) < MIN_SLICES:
        raise InputError(f"only {len(unique)} distinct image(s); a CT volume needs at least {MIN_SLICES} slices.")
    return list(unique.values()), [f"{len(copies)} file(s) are copies of an image already read (same "
                                   f"SOPInstanceUID and position): {_list_of([b for _, b in copies], 3)}; each "
                                   "image is used once."]


def _slice_spacing(ordered: list[SliceHeader], along: np.ndarray) -> tuple[float, list[str]]:
    """The regular spacing (mm) of slices at ``along`` mm on the normal, refusing duplicates, gaps and drift."""
    steps = np.diff(along)
    same = np.flatnonzero(steps < SAME_POSITION_MM)
    if same.size:
        pairs = [(ordered[i], ordered[i + 1]) for i in same]
        shown = "; ".join(f"{a.describe()} and {b.describe()} at {along[i]:.2f} mm"
                          for (a, b), i in zip(pairs[:5], same[:5], strict=True))
        acquisitions = sorted({s.acquisition_number for pair in pairs for s in pair
                               if s.acquisition_number is not None})
        hint = (f" (acquisition numbers {', '.join(map(str, acquisitions))}: several acquisitions in one series)"
                if len(acquisitions) > 1 else "")
        raise InputError(f"{len(pairs)} pair(s) of different images at the same position{hint}: {shown}. "
                         "A volume has one slice per position; export the acquisition you want on its own.")
    median_step = float(np.median(steps))
    irregular = np.flatnonzero(np.abs(steps - median_step) > SPACING_TOLERANCE * median_step)
    if irregular.size:
        details = []
        for i in irregular[:5]:
            missing = steps[i] / median_step - 1
            why = (f"{int(round(missing))} slice(s) missing?" if missing > 0.5 and abs(missing - round(missing)) < 0.2
                   else "irregular spacing")
            details.append(f"{ordered[i].describe()} at {along[i]:.2f} mm to {ordered[i + 1].describe()} at "
                           f"{along[i + 1]:.2f} mm: {steps[i]:.3f} mm ({why})")
        raise InputError(f"slice spacing is not uniform (median {median_step:.3f} mm; {irregular.size} step(s) "
                         f"differ by more than {SPACING_TOLERANCE:.0%}): " + "; ".join(details)
                         + ". Stacking them as a regular volume would misplace slices; export the complete "
                         "series, or a reconstruction with constant spacing.")
    # The mean step puts the first and last slices exactly where they are.
    spacing = float((along[-1] - along[0]) / (len(along) - 1))
    residual = np.abs(along - along[0] - spacing * np.arange(len(along)))
    worst = ordered[int(np.argmax(residual))]
    if residual.max() > SPACING_TOLERANCE * spacing:
        raise InputError(f"slice positions drift from a regular {spacing:.3f} mm grid by up to "
                         f"{residual.max():.3f} mm at {worst.describe()}; export a reconstruction with "
                         "constant spacing.")
    if residual.max() > max(SAME_POSITION_MM, 0.01 * spacing):
        return spacing, [f"slice positions deviate up to {residual.max():.3f} mm from a regular {spacing:.3f} mm "
                         f"grid ({worst.describe()}); within tolerance, stacked as regular."]
    return spacing, []


def _instance_number_warnings(ordered: list[SliceHeader]) -> list[str]:
    """Instance numbers never order slices; say when they disagree with the positions, as that is unusual."""
    numbers = [s.instance_number for s in ordered if s.instance_number is not None]
    repeated = sorted(n for n, c in Counter(numbers).items() if c > 1)
    if repeated:
        return [f"instance numbers {', '.join(map(str, repeated[:10]))} occur more than once; ignored, slices "
                "are ordered by position."]
    if len(numbers) == len(ordered) and numbers not in (sorted(numbers), sorted(numbers, reverse=True)):
        return ["instance numbers do not follow the slice positions; ignored, slices are ordered by position."]
    return []


def _tilt(ordered: list[SliceHeader], positions: np.ndarray, axes: np.ndarray,
          pixel_mm: np.ndarray) -> tuple[np.ndarray | None, float]:
    """In-plane offsets (n, 2; mm along rows and columns) of each slice from the first, and the tilt angle.

    None and 0 for a stack whose slices lie straight above each other.
    """
    displacement = positions - positions[0]
    along = displacement @ axes[:, 2]
    in_plane = displacement - np.outer(along, axes[:, 2])
    if np.linalg.norm(in_plane, axis=1).max() <= IN_PLANE_TOLERANCE_MM:
        return None, 0.0
    offsets = in_plane @ axes[:, :2]
    slope = offsets[-1] / along[-1]
    off_line = np.abs(offsets - np.outer(along, slope)) / pixel_mm
    if off_line.max() > TILT_LINEARITY_PIXELS:
        worst = ordered[int(np.argmax(off_line.max(axis=1)))]
        raise InputError(f"slices are displaced in their own plane, but not in proportion to their distance "
                         f"as a gantry tilt would be ({worst.describe()} is {off_line.max():.1f} pixels off); "
                         "the images come from different fields of view. Export one reconstruction.")
    return offsets, float(np.degrees(np.arctan(np.linalg.norm(slope))))


def stack_geometry(slices: list[SliceHeader]) -> StackGeometry:
    """Sort slices along their normal and derive the regular grid they form, or say why they do not form one.

    Raises InputError (without the series' name; callers add it) for mixed orientation, size or pixel
    spacing, two images at one position, a missing slice, irregular spacing, and in-plane displacements
    that are not a gantry tilt.
    """
    incomplete = [s for s in slices if s.position is None or s.orientation is None or s.pixel_spacing is None]
    if incomplete:
        raise InputError(f"{_list_of(incomplete)} lack ImagePositionPatient, ImageOrientationPatient or "
                         "PixelSpacing, so the slices cannot be placed in space.")
    if len(slices) < MIN_SLICES:
        raise InputError(f"only {len(slices)} image(s); a CT volume needs at least {MIN_SLICES} slices.")
    slices, warnings = _distinct_images(slices)
    _check_uniform(slices)
    orientation = np.array(slices[0].orientation, dtype=float)
    row_direction, column_direction = orientation[:3], orientation[3:]
    normal = np.cross(row_direction, column_direction)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3) or abs(row_direction @ column_direction) > 1e-3:
        raise InputError(f"ImageOrientationPatient {orientation.tolist()} is not two orthogonal unit vectors.")
    axes = np.stack([row_direction, column_direction, normal / np.linalg.norm(normal)], axis=1)
    ordered = sorted(slices, key=lambda s: float(np.dot(s.position, axes[:, 2])))  # type: ignore[arg-type]
    positions = np.array([s.position for s in ordered], dtype=float)
    spacing_z, spacing_warnings = _slice_spacing(ordered, positions @ axes[:, 2])
    row_mm, column_mm = ordered[0].pixel_spacing  # type: ignore[misc]
    # SimpleITK's x runs along a row (between columns), y down the columns (between rows).
    pixel_mm = np.array([column_mm, row_mm], dtype=float)
    offsets, tilt = _tilt(ordered, positions, axes, pixel_mm)
    return StackGeometry(tuple(ordered), positions[0], axes, (float(column_mm), float(row_mm), spacing_z),
                         offsets, tilt, tuple(warnings + spacing_warnings + _instance_number_warnings(ordered)))


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
    """
    folder = Path(folder)
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
    low, high = PAPER_SLICE_THICKNESS_MM
    thickness = series.slice_thickness_mm
    in_range = thickness is not None and low - 1e-3 <= thickness <= high + 1e-3
    return (series.original, in_range, series.images)


def choose_series(series: list[SeriesInfo], series_uid: str | None = None, folder: str = "") -> SeriesInfo:
    """The series to read: ``series_uid`` if given, else the best usable CT series by the module's rule."""
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
    reader.SetFileName(path)
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
        raise InputError(f"{_list_of(wrong)}: pixel data do not match Rows x Columns {shape}.")
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
        warnings.append(f"{_list_of(missing_uid)} have no SOPInstanceUID; they cannot be referenced.")
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
