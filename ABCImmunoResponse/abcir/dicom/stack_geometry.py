"""Sort a CT series' slices along their normal and derive the regular voxel grid they form.

Slices are ordered by their position along the slice normal (ImagePositionPatient
projected on the cross product of ImageOrientationPatient's row and column
directions), never by instance number or file name. A series is refused, naming
the slices, when images of different orientation, size or pixel spacing are mixed,
when two different images sit at one position, and when a slice is missing or the
spacing is not uniform (a step deviating from the median step by more than
``SPACING_TOLERANCE``): interpolating a missing slice would invent the image a
lesion is measured on. Gantry tilt (each slice displaced in its own plane from
the previous one, so the stack is sheared) is measured here as each slice's
in-plane offset; ``series`` resamples the pixels onto the regular grid.

Only headers are needed (``SliceHeader``); no pixel data are read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

MIN_SLICES = 3
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



def describe_slices(slices: list[SliceHeader], limit: int = 6) -> str:
    """How a message names several images: the first ``limit`` of them, and how many more.

    Parameters
    ----------
    slices : list of SliceHeader
        The images to name.
    limit : int
        How many to name one by one.

    Returns
    -------
    str
        E.g. "instance 3 (IM3.dcm), instance 7 (IM7.dcm) and 2 more".
    """
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
            details = "; ".join(f"{len(members)} with {np.round(reference, 4).tolist()}: {describe_slices(members, 3)}"
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
                                   f"SOPInstanceUID and position): {describe_slices([b for _, b in copies], 3)}; each "
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

    Files that copy an image already read (same SOPInstanceUID and position) are used once, with a warning.

    Parameters
    ----------
    slices : list of SliceHeader
        The headers of one series' images, in any order.

    Returns
    -------
    StackGeometry
        The slices in volume order and the grid they form: origin (mm, LPS), direction, spacing
        (mm), each slice's in-plane offset (mm) and the tilt (degrees) when the gantry was tilted,
        and warnings.

    Raises
    ------
    InputError
        (Without the series' name; callers add it.) Fewer than ``MIN_SLICES`` images, or images
        without position, orientation or pixel spacing; mixed orientation, size or pixel spacing;
        two images at one position; a missing slice or irregular spacing; in-plane displacements
        that are not a gantry tilt.
    """
    incomplete = [s for s in slices if s.position is None or s.orientation is None or s.pixel_spacing is None]
    if incomplete:
        raise InputError(f"{describe_slices(incomplete)} lack ImagePositionPatient, ImageOrientationPatient or "
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
