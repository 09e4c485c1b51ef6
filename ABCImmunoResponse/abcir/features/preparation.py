"""A lesion's region of the CT, resampled and filtered as pyradiomics would, ready for its feature pieces.

``prepare_lesion`` crops, resamples (1 x 1 x 1 mm, cubic B-spline) and pads the
region once; ``filtered_images`` yields its Original, LoG and wavelet images. The
extractor configured from the paper's parameter file, and what the fast path
cannot reproduce (``fast_path_blocker``, then stock ``execute`` is used), live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np
import SimpleITK as sitk
from radiomics import imageoperations
from radiomics.featureextractor import RadiomicsFeatureExtractor

from ..errors import InputError
from ..patient.lesions import Lesion
from ..resources import parameter_file
from .catalogue import PINNED_PYRADIOMICS_VERSION, pyradiomics_version
from .radiomics_log import quiet_radiomics
from .resampling_grid import mask_bounding_box, pyradiomics_grid
from .resampling import resample_bspline, resample_nearest

# pyradiomics 3.0.1 getLoGImage: no LoG image at all when the filtered image has fewer voxels along an axis.
LOG_MIN_SIZE = 4


AXIS_NAMES = ("x", "y", "z")


@lru_cache(maxsize=1)
def configured_extractor() -> RadiomicsFeatureExtractor:
    """pyradiomics' extractor with the paper's parameter file, made once per process (parsing it takes ~10 ms).

    Returns
    -------
    radiomics.featureextractor.RadiomicsFeatureExtractor
        Shared: read its settings, never change them.
    """
    with quiet_radiomics():
        return RadiomicsFeatureExtractor(str(parameter_file()))


def fast_path_blocker(extractor: RadiomicsFeatureExtractor | None = None) -> str | None:
    """Why the parameter file needs stock ``execute`` (a setting this engine does not reproduce), or None.

    Parameters
    ----------
    extractor : RadiomicsFeatureExtractor, optional
        The extractor whose settings and image types are checked. None means the
        one built (once per process) from the package's parameter file.

    Returns
    -------
    str or None
        Every reason, joined by "; " (no resampling, another interpolator,
        normalisation, resegmentation, mask correction, image types beyond
        Original/LoG/Wavelet, another pyradiomics version than 3.0.1); None when
        the fast engine reproduces ``execute`` exactly.
    """
    extractor = extractor or configured_extractor()
    settings = extractor.settings
    interpolator = settings.get("interpolator")
    checks = {
        "resampledPixelSpacing is not set": settings.get("resampledPixelSpacing") is None,
        f"interpolator {interpolator!r} is not the cubic B-spline": interpolator not in (
            "sitkBSpline", sitk.sitkBSpline, "sitkBSpline3", getattr(sitk, "sitkBSpline3", sitk.sitkBSpline)),
        "normalize is on": bool(settings.get("normalize")),
        "resegmentRange is set": settings.get("resegmentRange") is not None,
        "correctMask is on": bool(settings.get("correctMask")),
        f"image types {sorted(extractor.enabledImagetypes)} go beyond Original, LoG, Wavelet":
            not set(extractor.enabledImagetypes) <= {"Original", "LoG", "Wavelet"},
        f"pyradiomics {pyradiomics_version()} is not the {PINNED_PYRADIOMICS_VERSION} whose code this reproduces":
            pyradiomics_version() != PINNED_PYRADIOMICS_VERSION,
    }
    reasons = [reason for reason, blocked in checks.items() if blocked]
    return "; ".join(reasons) or None


@dataclass
class PreparedLesion:
    """One lesion after pyradiomics' loading and resampling: everything the feature classes read.

    ``image`` and ``mask`` are the resampled, padded region (a few MB, cheap to
    send to a worker process); ``bounding_box`` is ``checkMask``'s.
    """

    lesion_id: str
    image: sitk.Image
    mask: sitk.Image
    bounding_box: np.ndarray


def _check_roi(image: sitk.Image, mask: sitk.Image, bounding_box: np.ndarray) -> None:
    """pyradiomics' ``_checkROI``: the mask's bounding box must lie in the image (tolerance 1e-3 voxel)."""
    nd = mask.GetDimension()
    bb = bounding_box
    corners = (mask.TransformContinuousIndexToPhysicalPoint(bb[:nd] - .5),
               mask.TransformContinuousIndexToPhysicalPoint(bb[:nd] + bb[nd:] - 0.5))
    corners = (image.TransformPhysicalPointToContinuousIndex(corners[0]),
               image.TransformPhysicalPointToContinuousIndex(corners[1]))
    tolerance = 1e-3
    if np.any(np.min(corners, axis=0) < (- .5 - tolerance)) or \
            np.any(np.max(corners, axis=0) > (np.array(image.GetSize()) - .5 + tolerance)):
        raise ValueError(f"Bounding box of ROI is larger than image space: ROI bounds {corners}, "
                         f"image size {image.GetSize()}")


@quiet_radiomics()
def prepare_lesion(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> PreparedLesion:
    """Resample one lesion as ``RadiomicsFeatureExtractor.loadImage`` does and run ``checkMask``.

    Raises InputError where pyradiomics raises ValueError (e.g. a lesion too
    thin after resampling).

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU), whole volume; only the lesion's region is resampled.
    mask : sitk.Image
        The lesion's binary mask on the CT's grid (the parameter file's label, 1).
    lesion_id : str
        The lesion's name, used in error messages.

    Returns
    -------
    PreparedLesion
        The region resampled to the parameter file's spacing (1 x 1 x 1 mm, cubic
        B-spline for the CT, nearest neighbour for the mask) and padded, with
        ``checkMask``'s bounding box (voxels of the resampled region).

    Raises
    ------
    InputError
        The label is absent from the mask, its bounding box lies outside the CT,
        or pyradiomics' ``checkMask`` refuses the resampled mask (e.g. too small).
    """
    settings = configured_extractor().settings.copy()
    label = settings.get("label", 1)
    try:
        box = mask_bounding_box(mask, label)
        if box is None:
            raise ValueError(f"Label ({label}) not present in mask")
        _check_roi(ct, mask, box)
        grid = pyradiomics_grid(ct, mask, box, settings)
        if grid is not None:
            image = resample_bspline(ct, grid)
            resampled_mask = resample_nearest(mask, grid, sitk.sitkUInt32)
        else:  # the CT already has the resampled spacing: pyradiomics only crops
            image, resampled_mask = imageoperations.resampleImage(ct, sitk.Cast(mask, sitk.sitkUInt32), **settings)
        bounding_box, corrected = imageoperations.checkMask(image, resampled_mask, **settings)
    except ValueError as error:  # pyradiomics' own checks (e.g. ROI too small after resampling)
        raise InputError(f"Lesion '{lesion_id}': pyradiomics refused it ({error}).") from error
    return PreparedLesion(lesion_id, image, resampled_mask if corrected is None else corrected, bounding_box)


def _filtered_region(ct: sitk.Image, mask: sitk.Image, box: np.ndarray,
                     settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """Size (voxels, x y z) and spacing (mm) of the image pyradiomics filters for one lesion.

    That image is the lesion's bounding box resampled and padded by ``padDistance``
    voxels (``pyradiomics_grid``), or, when the CT has the resampled spacing already,
    the CT cropped to the box plus the padding (``imageoperations.cropToTumorMask``);
    both are clipped to the CT.
    """
    grid = pyradiomics_grid(ct, mask, box, settings)
    if grid is not None:
        return np.array(grid.size), np.array(grid.spacing)
    pad = settings.get("padDistance", 5)
    nd = mask.GetDimension()
    lower = np.maximum(box[:nd] - pad, 0)
    upper = np.minimum(box[:nd] + box[nd:] - 1 + pad, np.array(mask.GetSize()) - 1)
    return upper - lower + 1, np.array(ct.GetSpacing())


def check_filter_coverage(ct: sitk.Image, lesions: Sequence[Lesion]) -> None:
    """Refuse, before anything is extracted, a lesion whose CT is too thin for the LoG filters.

    pyradiomics 3.0.1 (``imageoperations.getLoGImage``) filters the image of
    ``_filtered_region`` and skips every LoG sigma when it has fewer than
    ``LOG_MIN_SIZE`` voxels along an axis, and a sigma when it has fewer than
    ceil(sigma / spacing) + 1: 851 features instead of 1130, with no error. With the
    paper's settings (1 mm, padding 5 voxels, sigma up to 3 mm) the padding alone
    exceeds what LoG needs, so only a CT that is itself at most 3 mm thick along an
    axis (three 1 mm slices; a slab) is refused. The sizes are computed with
    pyradiomics' own arithmetic, so the check agrees with it exactly; it costs one
    bounding box per lesion.

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU) the lesions were segmented on.
    lesions : sequence of Lesion
        The lesions, each a binary mask on ``ct``'s grid; one with an empty mask
        is skipped here (extraction refuses it, naming it).

    Raises
    ------
    InputError
        For the first lesion whose filtered region is too short along an axis
        for the largest LoG sigma (mm); the message names the lesion, the axis
        and how far (mm) the CT must extend. Nothing is raised when the
        parameter file enables no LoG sigma.
    """
    extractor = configured_extractor()
    sigmas = (extractor.enabledImagetypes.get("LoG") or {}).get("sigma", [])
    if not sigmas:
        return
    settings = extractor.settings
    for lesion in lesions:
        box = mask_bounding_box(lesion.mask, settings.get("label", 1))
        if box is None:
            continue  # an empty mask is refused by extraction itself, naming the lesion
        size, spacing = _filtered_region(ct, lesion.mask, box, settings)
        needed = np.maximum(LOG_MIN_SIZE, np.ceil(max(sigmas) / spacing) + 1).astype(int)
        short = np.flatnonzero(size < needed)
        if short.size == 0:
            continue
        axis = int(short[0])
        count, step = ct.GetSize()[axis], ct.GetSpacing()[axis]
        what = f"{count} {'slices' if axis == 2 else 'voxels along ' + AXIS_NAMES[axis]} of {step:g} mm"
        raise InputError(
            f"Lesion '{lesion.lesion_id}': the CT covers too few slices around it for the paper's LoG filters "
            f"(sigma up to {max(sigmas):g} mm): it has {what} ({count * step:g} mm), so the lesion's region, "
            f"resampled to {spacing[axis]:g} mm and padded by {settings.get('padDistance', 5)} voxels, is "
            f"{size[axis]} voxels along {AXIS_NAMES[axis]}, and pyradiomics computes LoG only on at least "
            f"{needed[axis]}: the CT must extend more than {(needed[axis] - 1) * spacing[axis]:g} mm along "
            f"{AXIS_NAMES[axis]} around the lesion. Give the whole series, not a slab.")


def filter_arguments(extractor: RadiomicsFeatureExtractor, image_type: str) -> dict:
    """The keyword arguments ``execute`` hands the filters and feature classes of one image type.

    Parameters
    ----------
    extractor : radiomics.featureextractor.RadiomicsFeatureExtractor
        The configured extractor.
    image_type : str
        ``Original``, ``LoG`` or ``Wavelet``.

    Returns
    -------
    dict
        The extractor's settings updated with that image type's own (e.g. LoG's ``sigma`` in mm).
    """
    arguments = extractor.settings.copy()
    arguments.update(extractor.enabledImagetypes.get(image_type) or {})
    return arguments


def extractor_settings() -> dict:
    """The parameter file's pyradiomics settings (label, spacing, padding, bin width, minimum ROI size).

    Returns
    -------
    dict
        A copy of ``RadiomicsFeatureExtractor(parameter_file()).settings``: changing it changes nothing here.
    """
    return configured_extractor().settings.copy()


def filtered_images(prepared: PreparedLesion) -> Iterator[tuple[str, str, sitk.Image]]:
    """Every filtered image of a prepared lesion's padded region, uncropped, as ``execute`` filters it.

    A changed outline of the lesion (``abcir.sensitivity``) reuses these instead
    of resampling and filtering again: the filters read the region, not the mask.

    Parameters
    ----------
    prepared : PreparedLesion
        The lesion's resampled, padded region from ``prepare_lesion``.

    Yields
    ------
    (str, str, SimpleITK.Image)
        Image type (parameter file key), pyradiomics' name prefix (``log-sigma-1-0-mm-3D``,
        ``wavelet-LLH``) and the filtered region: Original, each LoG sigma, each wavelet band.
    """
    extractor = configured_extractor()
    for image_type in extractor.enabledImagetypes:
        generator = getattr(imageoperations, f"get{image_type}Image")
        for filtered, name, _ in generator(prepared.image, prepared.mask, **filter_arguments(extractor, image_type)):
            yield image_type, name, filtered
