"""Target lesions: load them from a segmentation, a label map or mask files, on the CT's grid.

Every lesion ends up as a binary mask on the CT's voxel grid (the grid pyradiomics
needs), with its site (and where the site came from) and its RECIST size measured
on that grid. Problems are reported per lesion, naming it, because a reader fixes
one segment at a time.

One image file given alone is a binary mask when every voxel is 0 or 1 (at least one
1): one lesion, named after the file (``chest_wall_1.nrrd`` is lesion ``chest_wall_1``,
site chest wall), as a segment is named. Any other values make it a label map: each
non-zero value is one lesion named by that value, its site from ``--sites``.
"""

from __future__ import annotations

import csv
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..imaging.ct import CT_FILE_SUFFIXES, file_stem, has_suffix, is_dicom_file, read_image_file
from ..imaging.segfile import read_seg_nrrd
from .measurements import LesionSize, measure_lesion, nonzero_box
from .recist import SizedTarget
from .sites import (
    SITE_FROM_NAME,
    SITE_FROM_TERMINOLOGY,
    SITE_TAG,
    SITES,
    TERMINOLOGY_TAG,
    SiteChoice,
    choose_site,
    normalise_site,
    site_from_terminology,
)

log = logging.getLogger(__name__)

# Direction cosines that differ by less than this are the same direction (rounding in file headers).
DIRECTION_TOLERANCE = 1e-4
GEOMETRY_TOLERANCE_MM = 1e-3
# A mask voxel whose centre is this close (in voxels) to a CT voxel centre is that CT voxel: far from the half
# voxel where nearest-neighbour resampling would choose between two.
GRID_MATCH_VOXELS = 1e-3


@dataclass
class Lesion(SizedTarget):
    """One target lesion: a binary uint8 mask on the CT grid, its site and size."""

    lesion_id: str
    site: str | None
    mask: sitk.Image
    size: LesionSize
    # Where the site came from (one of sites.SITE_SOURCES); None when there is no site or nobody said.
    site_source: str | None = None


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    """True when two images share size, origin, spacing and direction (within header rounding).

    Parameters
    ----------
    a, b : SimpleITK.Image
        The two images; origin and spacing are compared to within 0.001 mm,
        direction cosines to within 1e-4.

    Returns
    -------
    bool
        True when a voxel index means the same place in both images.
    """
    return (a.GetSize() == b.GetSize()
            and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=GEOMETRY_TOLERANCE_MM)
            and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=GEOMETRY_TOLERANCE_MM)
            and np.allclose(a.GetDirection(), b.GetDirection(), atol=DIRECTION_TOLERANCE))


def _check_direction(name: str, mask: sitk.Image, ct: sitk.Image) -> None:
    """Allow axis flips and permutations (lossless), refuse oblique differences."""
    relative = np.array(ct.GetDirection()).reshape(3, 3).T @ np.array(mask.GetDirection()).reshape(3, 3)
    rounded = np.round(relative)
    is_signed_permutation = (np.abs(rounded).sum(axis=0) == 1).all() and (np.abs(rounded).sum(axis=1) == 1).all()
    if not is_signed_permutation or np.abs(relative - rounded).max() > DIRECTION_TOLERANCE:
        angle = np.degrees(np.arccos(np.clip(np.abs(relative).max(axis=0).min(), -1, 1)))
        raise InputError(f"Lesion '{name}': its mask's axes are rotated {angle:.2f} degrees against the CT's "
                         "(direction cosines differ); nearest-neighbour resampling would distort it. "
                         "Segment it on this CT, or export it on the CT's grid.")


def align_to_ct(name: str, mask: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """The mask as uint8 0/1 on the CT grid, with a message per lesion for each geometric problem.

    A mask on a crop of the CT's grid (or on the same grid flipped or
    permuted) is pasted voxel for voxel; any other grid is resampled
    nearest-neighbour. When more than half of the mask lies outside the CT a
    warning is logged and the part inside is kept.

    Parameters
    ----------
    name : str
        The lesion's name, for messages.
    mask : SimpleITK.Image
        A 3-D single-component mask; every non-zero voxel is inside the lesion.
    ct : SimpleITK.Image
        The CT (HU) whose grid the mask is put on.

    Returns
    -------
    SimpleITK.Image
        A uint8 0/1 mask with the CT's size, origin, spacing (mm) and direction;
        the input image itself when it is already 0/1 uint8 on the CT's grid.

    Raises
    ------
    InputError
        If the mask is not 3-D, has several components, is empty, is rotated
        (oblique) against the CT, does not overlap the CT, or is a single voxel
        on the CT grid.
    """
    if mask.GetDimension() != 3:
        raise InputError(f"Lesion '{name}': a {mask.GetDimension()}D mask; lesions are 3D masks on the CT.")
    if mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"Lesion '{name}': a multi-component mask; give one binary mask per lesion.")
    values = sitk.GetArrayViewFromImage(mask)
    if mask.GetPixelID() == sitk.sitkUInt8 and values.max(initial=0) <= 1:
        binary = mask  # already 0/1 uint8 (segmentations): no copy of a CT-sized volume
    else:
        binary = _as_mask(mask, values != 0)
    count = int(np.count_nonzero(sitk.GetArrayViewFromImage(binary)))
    if count == 0:
        raise InputError(f"Lesion '{name}': the mask is empty (no voxels). Draw the lesion or remove the segment.")
    if same_grid(binary, ct):
        aligned = binary
    else:
        _check_direction(name, binary, ct)
        offset = _offset_on_ct_grid(binary, ct)
        if offset is None:
            aligned = resample_mask_nearest(binary, ct)
        else:
            aligned = _paste_on_ct(binary, offset, ct)
        aligned_count = int(np.count_nonzero(sitk.GetArrayViewFromImage(aligned)))
        if aligned_count == 0:
            raise InputError(f"Lesion '{name}': the mask does not overlap the CT in physical space; it was drawn "
                             "on another image. Load the CT it was segmented on.")
        if aligned_count < 0.5 * count * np.prod(binary.GetSpacing()) / np.prod(ct.GetSpacing()):
            log.warning("Lesion '%s': more than half of the mask lies outside the CT; only the part inside is used.",
                        name)
        count = aligned_count
    if count == 1:
        raise InputError(f"Lesion '{name}': the mask is a single voxel; texture features need a region. "
                         "Segment the whole lesion.")
    return aligned


def resample_mask_nearest(mask: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """A uint8 0/1 ``mask`` resampled nearest-neighbour onto ``ct``'s grid; outside the mask, 0.

    ITK's resampler decides "inside the mask" and "which voxel" with two
    computations that can disagree by a rounding error where a CT voxel centre
    lies on the mask's half-voxel border: it then reads the voxel just outside
    the mask's buffer, and whatever byte is there lands in the result (seen:
    159 in a 0/1 mask). A margin of one zero voxel on every side makes that
    read a 0, as any point outside the mask is.

    Parameters
    ----------
    mask : SimpleITK.Image
        A uint8 0/1 mask on any grid.
    ct : SimpleITK.Image
        The image whose grid (size, origin, spacing in mm, direction) the result has.

    Returns
    -------
    SimpleITK.Image
        uint8 0/1 on ``ct``'s grid.
    """
    padded = sitk.ConstantPad(mask, (1, 1, 1), (1, 1, 1), 0)
    return sitk.Resample(padded, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _as_mask(image: sitk.Image, inside: np.ndarray) -> sitk.Image:
    """``inside`` (True or False per voxel of ``image``, numpy order) as a uint8 0/1 mask on ``image``'s grid.

    What ``sitk.Cast(sitk.NotEqual(...))`` or ``sitk.Equal`` give, in a tenth of their time on a CT-sized grid.
    """
    mask = sitk.GetImageFromArray(inside.view(np.uint8))
    mask.CopyInformation(image)
    return mask


def _offset_on_ct_grid(mask: sitk.Image, ct: sitk.Image) -> np.ndarray | None:
    """The CT index (x, y, z) of the mask's first voxel when the mask's voxels are CT voxels (a crop of the CT's
    grid, or a grid reaching beyond it); None otherwise.

    Nearest-neighbour resampling then copies each mask voxel to the CT voxel at the same place: the check
    requires every mask voxel centre to lie within ``GRID_MATCH_VOXELS`` of a CT voxel centre, checked at the
    corners of the mask's grid (the map between the grids is affine, so the corners bound the rest).
    """
    size = np.array(mask.GetSize())
    first = np.array(ct.TransformPhysicalPointToContinuousIndex(mask.TransformIndexToPhysicalPoint((0, 0, 0))))
    offset = np.round(first)
    for corner in np.ndindex(2, 2, 2):
        index = np.array(corner) * (size - 1)
        on_ct = ct.TransformPhysicalPointToContinuousIndex(mask.TransformIndexToPhysicalPoint(index.tolist()))
        if not (np.abs(np.array(on_ct) - (offset + index)) <= GRID_MATCH_VOXELS).all():  # NaN: ITK found no inverse
            return None
    return offset.astype(int)


def _paste_on_ct(mask: sitk.Image, offset: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """The part of ``mask`` inside the CT, on the CT grid, ``mask``'s first voxel at CT index ``offset``."""
    mask_size, ct_size = np.array(mask.GetSize()), np.array(ct.GetSize())
    start, stop = np.maximum(offset, 0), np.minimum(offset + mask_size, ct_size)
    inside = np.zeros(ct_size[::-1], dtype=bool)
    if (start < stop).all():
        ct_box = tuple(slice(a, b) for a, b in zip(start[::-1], stop[::-1]))
        mask_box = tuple(slice(a, b) for a, b in zip((start - offset)[::-1], (stop - offset)[::-1]))
        inside[ct_box] = sitk.GetArrayViewFromImage(mask)[mask_box] != 0
    return _as_mask(ct, inside)


def _nonzero_values(image: sitk.Image) -> np.ndarray:
    """The distinct non-zero voxel values, sorted.

    Only the box holding the non-zero voxels is compared and copied (``nonzero_box``):
    a lesion's mask has the CT's size (78 MB for 512 x 512 x 300 voxels), and
    comparing all of it made a temporary of that size for every lesion.
    """
    values = sitk.GetArrayViewFromImage(image)
    box = nonzero_box(values)
    inside = values[box] if box is not None else values[:0]
    return np.unique(inside[inside != 0])


def _check_binary(name: str, mask: sitk.Image) -> None:
    nonzero = _nonzero_values(mask)
    if len(nonzero) > 1 or (len(nonzero) == 1 and nonzero[0] != np.round(nonzero[0])):
        values = np.unique(sitk.GetArrayViewFromImage(mask))
        shown = ", ".join(f"{v:g}" for v in values[:6]) + (", ..." if len(values) > 6 else "")
        raise InputError(f"Lesion '{name}': mask values {shown}; a lesion mask must be binary (0 and one other "
                         "value). For a label map with several lesions, pass it as a single --lesions file.")


def read_sites_csv(path: str | os.PathLike) -> dict[str, str]:
    """``label,site`` rows (label = label value or lesion name) as a mapping to site keys.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 CSV file (a byte-order mark is allowed) with a ``label,site``
        header; a site may be written in any spelling ``normalise_site`` accepts.

    Returns
    -------
    dict of str to str
        Label (stripped of spaces) -> site key of ``sites.SITES``.

    Raises
    ------
    InputError
        If the file cannot be read or decoded, has no rows or lacks the
        ``label`` or ``site`` column, a line has more cells than the header, an
        empty label or no site, names an unknown site, or a label is on two lines.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # a spreadsheet may start with a BOM
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"Sites file '{path}': cannot be read ({error}); save it as UTF-8 CSV.") from error
    if not rows or not {"label", "site"} <= set(rows[0]):
        raise InputError(f"Sites file '{path}': needs a header 'label,site' and one row per lesion.")
    sites: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, row in enumerate(rows, start=2):
        where = f"Sites file '{path}', line {number}"
        if None in row:  # csv puts the cells beyond the header under None
            raise InputError(f"{where}: more cells than the header 'label,site'; give one label and one site per "
                             "line (quote a name that holds a comma).")
        label = (row["label"] or "").strip()
        if not label and not (row["site"] or "").strip():
            continue  # an empty line as spreadsheets save it (',')
        if not label:
            raise InputError(f"{where}: the label is empty; give the lesion's label value or name.")
        if row["site"] is None:
            raise InputError(f"{where}: no site for label '{label}'; write it as '{label},SITE'.")
        site = normalise_site(row["site"])
        if site is None:
            raise InputError(f"{where}: unknown site '{row['site']}'; use one of {', '.join(SITES)}.")
        if label in lines:
            raise InputError(f"Sites file '{path}': label '{label}' is on lines {lines[label]} and {number}; give "
                             "each lesion one line.")
        sites[label], lines[label] = site, number
    return sites


def _resolve_site(name: str, tag: str | None = None, listed: str | None = None,
                  terminology: str | None = None) -> SiteChoice:
    """The lesion's site and where it came from (``sites.choose_site``), with a warning when it is missing or
    contradicted."""
    choice = choose_site(name, tag, listed, terminology)
    given = next((value for value in (tag, listed) if value and value.strip()), None)
    if given is not None and choice.site is None:
        log.warning("Lesion '%s': site '%s' is not in the site list (%s); extraction goes on, but RECIST "
                    "rules and the visceral flag cannot use it.", name, given, ", ".join(SITES))
    elif choice.site is None:
        log.warning("Lesion '%s': no site given; assign one (segment tag %s, a name such as liver_1, a Slicer "
                    "terminology entry with the organ, or --sites).", name, SITE_TAG)
    elif choice.source == SITE_FROM_NAME:
        coded = site_from_terminology(terminology)
        if coded is not None and coded != choice.site:
            log.warning("Lesion '%s': the name says site '%s' but the terminology entry says '%s'; the name is "
                        "used. Choose the site in the lesion table (segment tag %s) to settle it.",
                        name, choice.site, coded, SITE_TAG)
    return choice


def _make(name: str, site: SiteChoice, mask: sitk.Image, ct: sitk.Image) -> Lesion:
    aligned = align_to_ct(name, mask, ct)
    return Lesion(name, site.site, aligned, measure_lesion(aligned), site.source)


def load_lesions(paths: Sequence[str | os.PathLike], ct: sitk.Image,
                 sites_csv: str | os.PathLike | None = None) -> list[Lesion]:
    """Lesions from a ``.seg.nrrd``, a DICOM SEG, one label map, or several binary mask files, on the CT grid.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        One ``.seg.nrrd``, one DICOM SEG file, one label map or binary mask
        (one lesion named after the file), or several binary mask files (one
        lesion each, named after the file).
    ct : SimpleITK.Image
        The CT (HU) the lesions were segmented on; every mask is put on its grid.
    sites_csv : str or os.PathLike or None, optional
        A ``label,site`` CSV giving sites of lesions whose segment does not
        name one (see ``read_sites_csv``); None gives no such list.

    Returns
    -------
    list of Lesion
        One per lesion in file or label order: its name, site (None when
        unknown, with a warning logged), uint8 mask on the CT grid and RECIST
        size (mm, mm³).

    Raises
    ------
    InputError
        If a path is not a file, a DICOM file is given with other files, a
        file has an unsupported type or cannot be read, a label map is empty or
        holds non-integer labels, a mask file is not binary, two lesions share a
        name, a mask does not fit the CT (see ``align_to_ct``), or the sites
        file or segmentation is invalid.
    """
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.is_dir():
            raise InputError(f"Lesions '{path}': a folder; give the segmentation file in it (a .seg.nrrd, a DICOM "
                             "SEG, a label map or mask files).")
        if not path.is_file():
            raise InputError(f"Lesions '{path}': no such file.")
    sites = read_sites_csv(sites_csv) if sites_csv else {}
    lesions: list[Lesion] = []
    dicom = [path for path in paths if is_dicom_file(path)]
    if dicom and len(paths) > 1:
        raise InputError(f"Lesions '{dicom[0]}': a DICOM file among {len(paths)} lesion files; a DICOM SEG holds all "
                         "its lesions, so give it on its own.")
    if dicom:
        from ..dicom.seg_reading import read_dicom_lesions

        for segment in read_dicom_lesions(dicom[0], ct):
            site = (SiteChoice(segment.site, SITE_FROM_TERMINOLOGY) if segment.site
                    else _resolve_site(segment.label, listed=sites.get(segment.label)))
            lesions.append(_make(segment.label, site, segment.mask, ct))
    elif len(paths) == 1 and paths[0].name.lower().endswith(".seg.nrrd"):
        for segment in read_seg_nrrd(paths[0]):
            site = _resolve_site(segment.name, segment.tags.get(SITE_TAG), sites.get(segment.name),
                                 segment.tags.get(TERMINOLOGY_TAG))
            lesions.append(_make(segment.name, site, segment.mask, ct))
    elif len(paths) == 1:
        image = _read_mask(paths[0])
        labels = _nonzero_values(image)
        if len(labels) == 0:
            raise InputError(f"Lesions '{paths[0]}': the file is empty (all zero). Segment the lesions first.")
        if np.any(labels != np.round(labels)):
            raise InputError(f"Lesions '{paths[0]}': non-integer label values; a label map holds whole numbers.")
        if list(labels) == [1]:  # a binary mask: one lesion, named after the file
            name = file_stem(paths[0])
            lesions.append(_make(name, _resolve_site(name, listed=sites.get(name) or sites.get("1")), image, ct))
        else:
            for label in labels.astype(int):
                name = str(label)
                lesions.append(_make(name, _resolve_site(name, listed=sites.get(name)),
                                     _as_mask(image, sitk.GetArrayViewFromImage(image) == label), ct))
    else:
        for path in paths:
            name = file_stem(path)
            image = _read_mask(path)
            _check_binary(name, image)
            lesions.append(_make(name, _resolve_site(name, listed=sites.get(name)), image, ct))
    ids = [lesion.lesion_id for lesion in lesions]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise InputError(f"Lesions: the names {', '.join(duplicates)} occur more than once; give each lesion a "
                         "unique name.")
    return lesions


def _read_mask(path: Path) -> sitk.Image:
    if not has_suffix(path, CT_FILE_SUFFIXES):
        raise InputError(f"Lesions '{path}': unsupported file type; give a .seg.nrrd, a DICOM SEG, a label map or "
                         f"mask files ({', '.join(CT_FILE_SUFFIXES)}).")
    image, warning = read_image_file(path, "Lesions")
    if warning:
        log.warning("Lesions: %s", warning)
    return image
