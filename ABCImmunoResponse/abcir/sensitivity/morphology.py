"""Physical erosion, dilation and voxel shifts of a lesion mask, on the mask's own grid.

An outline drawn 1 mm wider or narrower is a change a second reader could make.
"1 mm" is physical: a voxel belongs to the mask dilated by r when its centre
lies within r mm (Euclidean, with the grid's own spacing on each axis) of the
centre of a mask voxel, and to the mask eroded by r when its centre lies more
than r mm from every voxel outside the mask. On an anisotropic CT (0.98 x 0.98
x 2 mm, say) a 1 mm change therefore moves the outline by one voxel in plane
and not at all across slices: nothing finer exists on the grid the reader drew
on, and resampling the outline to a finer grid would change it by more than the
perturbation itself. The two are dual (erosion is the complement of the
dilation of the complement), so dilating then eroding by the same radius is a
morphological closing: it contains the original and differs from it only in
concavities narrower than 2 r.

The image border is not an outline anybody drew: erosion does not eat into a
lesion from where the CT ends, and dilation and shifts drop what falls outside.

Every function returns a new uint8 0/1 image on the input's grid; the input is
never modified. Work is done on the lesion's bounding box plus the margin the
operation needs, so a lesion on a 512 x 512 x 300 CT costs what its region costs.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

#: Distances are compared with this slack (mm) so that a neighbour exactly r away (1 mm voxels, r = 1 mm)
#: counts as within r despite the square root's rounding.
DISTANCE_TOLERANCE_MM = 1e-6


def _region(array: np.ndarray, margin: np.ndarray) -> tuple[slice, ...] | None:
    """The bounding box of the non-zero voxels grown by ``margin`` voxels per numpy axis, clipped to the array."""
    hits = [np.flatnonzero(array.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    if hits[0].size == 0:
        return None
    return tuple(slice(max(int(h[0]) - int(m), 0), min(int(h[-1]) + int(m) + 1, n))
                 for h, m, n in zip(hits, margin, array.shape))


def _as_image(inside: np.ndarray, like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(inside.astype(np.uint8))
    image.CopyInformation(like)
    return image


def _spacing_zyx(mask: sitk.Image) -> np.ndarray:
    return np.array(mask.GetSpacing()[::-1], dtype=float)


def _margin(mask: sitk.Image, radius_mm: float) -> np.ndarray:
    """Voxels per numpy axis a change of ``radius_mm`` can reach, plus one of background for the distance map."""
    return np.floor(radius_mm / _spacing_zyx(mask) + DISTANCE_TOLERANCE_MM).astype(int) + 1


def dilate_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """The mask grown by ``radius_mm`` (mm): every voxel whose centre lies within that distance of the mask.

    Parameters
    ----------
    mask : sitk.Image
        A 3D mask (non-zero inside); not modified.
    radius_mm : float
        Distance (mm, Euclidean with the grid's spacing per axis), > 0.

    Returns
    -------
    sitk.Image
        uint8 0/1 on ``mask``'s grid, containing ``mask``; what would lie beyond
        the image is dropped. All 0 for an empty mask.
    """
    array = sitk.GetArrayViewFromImage(mask) != 0
    result = np.zeros(array.shape, dtype=bool)
    region = _region(array, _margin(mask, radius_mm))
    if region is not None:
        crop = array[region]
        distance = ndimage.distance_transform_edt(~crop, sampling=_spacing_zyx(mask))
        result[region] = distance <= radius_mm + DISTANCE_TOLERANCE_MM
    return _as_image(result, mask)


def erode_mm(mask: sitk.Image, radius_mm: float) -> sitk.Image:
    """The mask shrunk by ``radius_mm`` (mm): the mask voxels whose centre lies further than that from outside.

    The CT's border counts as inside (see the module's docstring); the result
    may be empty for a lesion thinner than 2 ``radius_mm``.

    Parameters
    ----------
    mask : sitk.Image
        A 3D mask (non-zero inside); not modified.
    radius_mm : float
        Distance (mm, Euclidean with the grid's spacing per axis), > 0.

    Returns
    -------
    sitk.Image
        uint8 0/1 on ``mask``'s grid, contained in ``mask``.
    """
    array = sitk.GetArrayViewFromImage(mask) != 0
    result = np.zeros(array.shape, dtype=bool)
    margin = _margin(mask, radius_mm)
    region = _region(array, margin)
    if region is not None:
        # Where the region meets the image border, pad with "inside" so that the border is no outline.
        pad = [(int(m) if s.start == 0 else 0, int(m) if s.stop == n else 0)
               for s, m, n in zip(region, margin, array.shape)]
        crop = np.pad(array[region], pad, constant_values=True)
        distance = ndimage.distance_transform_edt(crop, sampling=_spacing_zyx(mask))
        inner = tuple(slice(before, crop.shape[axis] - after) for axis, (before, after) in enumerate(pad))
        result[region] = distance[inner] > radius_mm + DISTANCE_TOLERANCE_MM
    return _as_image(result, mask)


def shift_voxels(mask: sitk.Image, offset_xyz: tuple[int, int, int]) -> sitk.Image:
    """The mask moved by whole voxels (x, y, z in image index order); what leaves the image is dropped.

    A shift keeps the outline's shape and moves it against the CT: a
    registration-like error, not a drawing one.

    Parameters
    ----------
    mask : sitk.Image
        A 3D mask (non-zero inside); not modified.
    offset_xyz : tuple of int
        The shift in voxels along x, y, z (image index order; positive moves to higher indices).

    Returns
    -------
    sitk.Image
        uint8 0/1 on ``mask``'s grid.
    """
    array = sitk.GetArrayViewFromImage(mask) != 0
    result = np.zeros(array.shape, dtype=bool)
    offset = np.array(offset_xyz[::-1], dtype=int)
    source = tuple(slice(max(-o, 0), n - max(o, 0)) for o, n in zip(offset, array.shape))
    target = tuple(slice(max(o, 0), n - max(-o, 0)) for o, n in zip(offset, array.shape))
    result[target] = array[source]
    return _as_image(result, mask)
