"""Contour randomisation by supervoxels (Zwanenburg et al., Sci Rep 2019;9:614, "Assessing robustness of
radiomic features by image perturbation", Methods, "Contour randomisation").

The idea: a reader's outline follows edges in the image, and where it is
uncertain it includes or leaves out whole patches of similar tissue. So the CT
around the lesion is cut into supervoxels (SLIC: compact regions of similar
intensity), and a randomised outline keeps each supervoxel with a probability
equal to the share of it that lies inside the original outline: a supervoxel
90 % inside is almost always kept, one half inside is a coin toss.

The settings are those of the paper's implementation, MIRP
(``randomise_roi_contours`` and ``get_supervoxels``, which call scikit-image's
``slic``); the supervoxels come from ITK's SLIC (``SimpleITK.SLICImageFilter``),
since scikit-image is not in Slicer's Python and SimpleITK is:

* the CT is cropped to the outline's bounding box plus ``CROP_MARGIN_MM``;
* intensities are clipped to the range inside the outline widened by 10 % on each
  side (MIRP's range when no re-segmentation range is set, as here), scaled to
  0..1, and smoothed with a Gaussian of sigma = the smallest voxel spacing (mm),
  as scikit-image's ``slic`` smooths before it clusters;
* supervoxels of ``SUPERVOXEL_VOLUME_MM3`` (at least ``MIN_SUPERVOXEL_VOXELS``
  voxels): MIRP's ``n_segments`` = crop voxels / max(20, 500 mm^3 / voxel volume);
* SLIC distance D^2 = dI^2 + (m d / S)^2, compactness m = ``COMPACTNESS`` (0.05:
  intensity dominates, supervoxels follow edges), ``SLIC_ITERATIONS`` iterations,
  connectivity enforced;
* overlap fraction per supervoxel; the largest, and every overlap of at least
  ``ALWAYS_KEPT``, count as 1 (so a randomised outline is never empty and the core
  stays), overlaps below ``NEVER_KEPT`` as 0;
* each supervoxel is kept when a uniform draw is below its fraction; the union is
  closed (binary closing, 6-connected cross) to fill gaps between kept supervoxels.

Where ITK's filter differs from scikit-image's (the randomisation's character
stays; no supervoxel is the same voxel for voxel):

* the seed grid is a physical one, ``SuperGridSize`` voxels per axis rounded from
  the cube root of the supervoxel volume (0.98 x 0.98 x 2 mm CT: 8 x 8 x 4 voxels,
  7.8 x 7.8 x 8 mm); scikit-image spreads ``n_segments`` seeds evenly in voxel
  counts, so its cells on such a CT are twice as long across slices as in plane;
* the spatial term is measured in grid cells of each axis (physical distance over
  the physical cell size), where scikit-image divides spacing-weighted distance by
  the largest step in voxels;
* seeds are not moved to the lowest gradient around them (``InitializationPerturbation``
  off, as scikit-image does not either);
* connectivity: ITK joins pieces smaller than a quarter of a grid cell to a
  neighbour (a few stray voxels may keep their label), scikit-image pieces
  smaller than half a supervoxel;
* one thread, so that the labels do not depend on the machine's core count (ITK
  sums the cluster centres per work unit).

Size of the change (measured on the shared CT, 0.98 x 0.98 x 2 mm; organs of
TotalSegmentator standing in for lesions; mean Dice of 24 randomised outlines
to the original, seeds 0-2, and the range): 0.55 mL 0.54 (0.51-0.61), 0.82 mL
0.61, 1.4 mL 0.62 (0.38-0.73), 2.4 mL right adrenal 0.60 (0.35-0.67), 2.5 mL
pancreas 0.52 (0.27-0.63), 4.6 mL 0.72, 9.1 mL 0.77, 20 mL 0.86, 29 mL 0.78,
31 mL 0.83 (0.81-0.86); a thin 19 mL organ 0.58. The change is large for a small
or thin lesion and a border change for a large, compact one because the
supervoxel volume is fixed (500 mm^3, a cube of 7.9 mm), not a share of the
lesion: a 2.5 mL pancreas is five supervoxels' worth, each kept or dropped
whole. That is the published method, not a slip of this implementation: MIRP
computes ``n_segments`` from a fixed 500 mm^3 and keeps a supervoxel with the
probability of its overlap (the hand-written SLIC this replaces gave the same
picture, pancreas mean 0.47), and Zwanenburg et al. applied it to lung and
head-and-neck tumours of tens of mL. It is kept as published, so that the
perturbation set stays the cited one; below about 5 mL a randomised outline
is a different outline rather than a second reader's, which the README says
beside the range, and the ``morphology-1mm`` set leaves randomisation out.

Pure: the same mask, CT and seed give the same outlines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

# MIRP's settings for the randomisation of Zwanenburg et al. 2019 (see the module docstring).
CROP_MARGIN_MM = 25.0
SUPERVOXEL_VOLUME_MM3 = 500.0
MIN_SUPERVOXEL_VOXELS = 20
COMPACTNESS = 0.05
INTENSITY_WIDENING = 0.10
SLIC_ITERATIONS = 10
ALWAYS_KEPT = 0.90
NEVER_KEPT = 0.20


@dataclass(frozen=True)
class SupervoxelOverlap:
    """Supervoxels around one outline and how much of each the outline covers.

    ``labels`` is the supervoxel map of the crop ``region`` (numpy z, y, x
    slices of the mask's grid), labels from 1; ``fractions[k]`` is the chance
    that supervoxel ``k`` is kept (after the rules of the module docstring), 0
    for supervoxels that the outline does not touch and for label 0 (none).
    """

    region: tuple[slice, slice, slice]
    labels: np.ndarray
    fractions: np.ndarray


def _crop(mask_array: np.ndarray, spacing_zyx: np.ndarray) -> tuple[slice, slice, slice]:
    margin = np.ceil(CROP_MARGIN_MM / spacing_zyx).astype(int)
    hits = [np.flatnonzero(mask_array.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    return tuple(slice(max(int(h[0]) - m, 0), min(int(h[-1]) + m + 1, n))  # type: ignore[return-value]
                 for h, m, n in zip(hits, margin, mask_array.shape))


def _scaled_intensities(ct: np.ndarray, inside: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """CT values clipped to the outline's range widened by ``INTENSITY_WIDENING``, scaled to 0..1, smoothed."""
    values = ct[inside]
    low, high = float(values.min()), float(values.max())
    widen = INTENSITY_WIDENING * (high - low)
    low, high = low - widen, high + widen
    if high <= low:  # a flat outline: intensity cannot separate anything, space alone decides
        return np.zeros(ct.shape, dtype=np.float32)
    scaled = (np.clip(ct.astype(np.float64), low, high) - low) / (high - low)
    sigma_voxels = float(spacing_zyx.min()) / spacing_zyx
    return ndimage.gaussian_filter(scaled, sigma_voxels).astype(np.float32)


def supergrid_size(spacing_xyz: tuple[float, ...]) -> list[int]:
    """SLIC's seed spacing in voxels along x, y, z for supervoxels of ``SUPERVOXEL_VOLUME_MM3``.

    Parameters
    ----------
    spacing_xyz : tuple of float
        The CT's voxel spacing (mm), in image index order.

    Returns
    -------
    list of int
        Voxels per grid cell along each axis (at least 1): the cube root of the
        supervoxel volume (mm) over each spacing, rounded, so cells are about
        equally long in mm on every axis.
    """
    spacing = np.asarray(spacing_xyz, dtype=float)
    volume = max(SUPERVOXEL_VOLUME_MM3, MIN_SUPERVOXEL_VOXELS * float(np.prod(spacing)))
    return [int(n) for n in np.maximum(1, np.round(volume ** (1 / 3) / spacing))]


def slic(image: np.ndarray, spacing_zyx: np.ndarray) -> np.ndarray:
    """SLIC supervoxels (labels from 1) of a scaled image (0..1) on a grid of ``spacing_zyx`` mm.

    Parameters
    ----------
    image : numpy.ndarray
        Intensities scaled to 0..1 (``_scaled_intensities``), numpy z, y, x order.
    spacing_zyx : numpy.ndarray
        Voxel spacing (mm) along z, y, x.

    Returns
    -------
    numpy.ndarray
        int64 labels from 1, each supervoxel one connected region.
    """
    itk_image = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32))
    itk_image.SetSpacing(tuple(float(s) for s in spacing_zyx[::-1]))
    slic_filter = sitk.SLICImageFilter()
    slic_filter.SetSuperGridSize(supergrid_size(itk_image.GetSpacing()))
    slic_filter.SetSpatialProximityWeight(COMPACTNESS)
    slic_filter.SetMaximumNumberOfIterations(SLIC_ITERATIONS)
    slic_filter.SetEnforceConnectivity(True)
    slic_filter.SetInitializationPerturbation(False)
    slic_filter.SetNumberOfThreads(1)
    return sitk.GetArrayFromImage(slic_filter.Execute(itk_image)).astype(np.int64) + 1


def supervoxel_overlap(mask: sitk.Image, ct: sitk.Image) -> SupervoxelOverlap:
    """Supervoxels of the CT around ``mask`` and the chance each is kept (module docstring).

    Parameters
    ----------
    mask : SimpleITK.Image
        The lesion's outline (non-zero inside), on ``ct``'s grid.
    ct : SimpleITK.Image
        The CT (HU).

    Returns
    -------
    SupervoxelOverlap
        The crop, its supervoxel labels and each supervoxel's chance to be kept.
    """
    inside = sitk.GetArrayViewFromImage(mask) != 0
    spacing = np.array(ct.GetSpacing()[::-1], dtype=float)
    region = _crop(inside, spacing)
    local_inside = inside[region]
    labels = slic(_scaled_intensities(sitk.GetArrayViewFromImage(ct)[region], local_inside, spacing), spacing)
    size = np.bincount(labels.ravel())
    covered = np.bincount(labels[local_inside], minlength=size.size)
    fractions = np.divide(covered, size, out=np.zeros(size.size), where=size > 0)
    fractions[int(np.argmax(fractions))] = 1.0  # MIRP: the supervoxel most inside is always kept
    fractions[fractions >= ALWAYS_KEPT] = 1.0
    fractions[fractions < NEVER_KEPT] = 0.0
    return SupervoxelOverlap(region, labels, fractions)


def randomised_outline(overlap: SupervoxelOverlap, like: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """One randomised outline: each supervoxel kept with its chance, gaps closed.

    Parameters
    ----------
    overlap : SupervoxelOverlap
        The supervoxels of the outline and their chances (``supervoxel_overlap``).
    like : SimpleITK.Image
        The image whose grid the outline is returned on (the mask's).
    rng : numpy.random.Generator
        The source of the draws: one uniform number per supervoxel label.

    Returns
    -------
    SimpleITK.Image
        uint8 0/1 on ``like``'s grid.
    """
    keep = rng.random(overlap.fractions.size) < overlap.fractions
    # Padded by one voxel: scipy's closing erodes from the array's border, which would cut the outline where the
    # crop meets the CT's edge.
    local = ndimage.binary_closing(np.pad(keep[overlap.labels], 1))[1:-1, 1:-1, 1:-1]
    result = np.zeros(sitk.GetArrayViewFromImage(like).shape, dtype=np.uint8)
    result[overlap.region] = local
    image = sitk.GetImageFromArray(result)
    image.CopyInformation(like)
    return image


def contour_randomisations(mask: sitk.Image, ct: sitk.Image, seed: int, count: int) -> list[sitk.Image]:
    """``count`` randomised outlines of ``mask`` on ``ct`` (same grid), reproducible from ``seed``.

    Parameters
    ----------
    mask : SimpleITK.Image
        The lesion's outline, on ``ct``'s grid.
    ct : SimpleITK.Image
        The CT (HU).
    seed : int
        Seeds the draws (numpy's ``default_rng``); the supervoxels themselves involve no randomness.
    count : int
        How many outlines.

    Returns
    -------
    list of SimpleITK.Image
        uint8 0/1 outlines on ``mask``'s grid, ``count`` of them (none for ``count`` <= 0).
    """
    if count <= 0:
        return []
    overlap = supervoxel_overlap(mask, ct)
    rng = np.random.default_rng(seed)
    return [randomised_outline(overlap, mask, rng) for _ in range(count)]
