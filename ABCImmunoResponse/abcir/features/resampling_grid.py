"""The grid pyradiomics resamples a lesion onto, and where each of its voxels falls in the CT, with ITK's arithmetic.

Steps 1 and 2 of ``abcir.features.resampling``: the 1 mm output grid over the mask's
bounding box plus ``padDistance`` as ``imageoperations.resampleImage`` computes it, and
the continuous CT index of every output voxel as ``ResampleImageFilter`` computes it for
the whole image, so that cropping the CT cannot change one rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk


@dataclass(frozen=True)
class OutputGrid:
    """The grid pyradiomics resamples one lesion onto (ITK x, y, z order; mm)."""

    size: tuple[int, int, int]
    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    def empty_image(self, pixel_id: int) -> sitk.Image:
        """A zero image of this grid's size and geometry, with SimpleITK pixel type ``pixel_id``."""
        image = sitk.Image(list(self.size), pixel_id)
        self.stamp(image)
        return image

    def stamp(self, image: sitk.Image) -> sitk.Image:
        """Give ``image`` this grid's origin, spacing (mm) and direction, in place; returns it."""
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image


def mask_bounding_box(mask: sitk.Image, label: int = 1) -> np.ndarray | None:
    """(x0, y0, z0, size_x, size_y, size_z) of ``label`` as LabelShapeStatistics gives it, or None if absent.

    One pass over the whole mask finds the slices holding anything; the rest
    looks only at those.

    Parameters
    ----------
    mask : sitk.Image
        A 3D label image (a lesion's binary mask).
    label : int, default 1
        The value whose voxels are boxed.

    Returns
    -------
    np.ndarray or None
        Six ints: the lowest voxel index along x, y, z, then the extent (voxels)
        along x, y, z; None when no voxel holds ``label``.
    """
    array = sitk.GetArrayViewFromImage(mask)
    planes = np.flatnonzero(array.reshape(array.shape[0], -1).any(axis=1))
    if planes.size == 0:
        return None
    present = array[planes[0]:planes[-1] + 1] == label
    lower, size = [], []
    for axis in (2, 1, 0):  # numpy axis of x, y, z
        hits = np.flatnonzero(present.any(axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        offset = int(planes[0]) if axis == 0 else 0
        lower.append(int(hits[0]) + offset)
        size.append(int(hits[-1] - hits[0] + 1))
    return np.array(lower + size)


def pyradiomics_grid(image: sitk.Image, mask: sitk.Image, bounding_box: np.ndarray,
                     settings: dict) -> OutputGrid | None:
    """pyradiomics' output grid (``resampleImage``), or None when it only crops (spacing already right).

    The arithmetic is pyradiomics' own, statement by statement, so the grid is
    the same to the last bit.

    Parameters
    ----------
    image : sitk.Image
        The CT (HU); only its spacing is read here.
    mask : sitk.Image
        The lesion's mask on the CT's grid; the output grid follows its geometry.
    bounding_box : np.ndarray
        ``mask_bounding_box`` of the lesion (voxel index x, y, z, then extents).
    settings : dict
        pyradiomics settings: ``resampledPixelSpacing`` (mm per axis, 0 keeps the
        mask's spacing) is required; ``padDistance`` (voxels of the new grid,
        default 5) is read.

    Returns
    -------
    OutputGrid or None
        The new grid (size in voxels, origin and spacing in mm, direction), clipped
        to the mask's extent; None when the CT already has the resampled spacing
        (pyradiomics then crops instead of resampling).

    Raises
    ------
    KeyError
        ``settings`` has no ``resampledPixelSpacing``.
    """
    resampled = np.array(settings["resampledPixelSpacing"])
    pad = settings.get("padDistance", 5)
    mask_spacing = np.array(mask.GetSpacing())
    image_spacing = np.array(image.GetSpacing())
    nd = mask.GetDimension()
    bb = np.asarray(bounding_box)
    resampled = np.where(resampled == 0, mask_spacing, resampled)
    mask_size = np.array(mask.GetSize())
    resampled = np.where(bb[nd:] != 1, resampled, mask_spacing)
    if np.allclose(image_spacing, resampled):
        return None
    ratio = mask_spacing / resampled
    lower = np.floor((bb[:nd] - 0.5) * ratio - pad)
    upper = np.ceil((bb[:nd] + bb[nd:] - 0.5) * ratio + pad)
    max_upper = np.ceil(mask_size * ratio) - 1
    lower = np.where(lower < 0, 0, lower)
    upper = np.where(upper > max_upper, max_upper, upper)
    size = np.array(upper - lower + 1, dtype="int").tolist()
    original_lower = lower / ratio
    origin_index = np.array(.5 * (resampled - mask_spacing) / mask_spacing)
    origin = mask.TransformContinuousIndexToPhysicalPoint(origin_index + original_lower)
    return OutputGrid(tuple(size), tuple(origin), tuple(float(s) for s in resampled),
                      tuple(float(d) for d in mask.GetDirection()))


@lru_cache(maxsize=64)
def _index_matrices(spacing: tuple[float, ...], direction: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """ITK's index-to-point and point-to-index matrices of a geometry, exactly as ITK holds them.

    ITK inverts direction x spacing with an SVD; reading the matrices back
    through a probe image (origin 0, unit index / point vectors) returns
    ITK's own doubles rather than a recomputation.
    """
    probe = sitk.Image([2, 2, 2], sitk.sitkUInt8)
    probe.SetSpacing(spacing)
    probe.SetDirection(direction)
    probe.SetOrigin((0.0, 0.0, 0.0))
    to_point, to_index = np.empty((3, 3)), np.empty((3, 3))
    for column in range(3):
        unit = [0, 0, 0]
        unit[column] = 1
        to_point[:, column] = probe.TransformIndexToPhysicalPoint(unit)
        to_index[:, column] = probe.TransformPhysicalPointToContinuousIndex([float(u) for u in unit])
    return to_point, to_index


def continuous_indices(grid: OutputGrid, image: sitk.Image) -> np.ndarray:
    """Continuous index in ``image`` of every output voxel, (3, z, y, x), as ITK's resampler computes it.

    ITK maps the first voxel of each output scan line and the voxel one past
    its end to input indices, then interpolates between them
    (``ResampleImageFilter::LinearThreadedGenerateData``); the sums run in
    ITK's order so that every double is ITK's.

    Parameters
    ----------
    grid : OutputGrid
        The output grid (mm).
    image : sitk.Image
        The input image whose index space the points are mapped into.

    Returns
    -------
    np.ndarray
        float64 of shape (3, nz, ny, nx): the continuous x, y, z index (voxels of
        ``image``) of each output voxel, possibly outside the image.
    """
    to_point, _ = _index_matrices(grid.spacing, grid.direction)
    _, to_index = _index_matrices(tuple(image.GetSpacing()), tuple(image.GetDirection()))
    input_origin = image.GetOrigin()
    nx, ny, nz = grid.size
    zz, yy = np.meshgrid(np.arange(nz, dtype=float), np.arange(ny, dtype=float), indexing="ij")

    def line_ends(x_index: float) -> list[np.ndarray]:
        point = []
        for row in range(3):  # ImageBase::TransformIndexToPhysicalPoint
            value = np.full(zz.shape, grid.origin[row])
            value = value + to_point[row, 0] * x_index
            value = value + to_point[row, 1] * yy
            value = value + to_point[row, 2] * zz
            point.append(value)
        offset = [point[k] - input_origin[k] for k in range(3)]
        index = []
        for row in range(3):  # ImageBase::TransformPhysicalPointToContinuousIndex (Matrix * Vector)
            total = np.zeros(zz.shape)
            for column in range(3):
                total = total + to_index[row, column] * offset[column]
            index.append(total)
        return index

    start = line_ends(0.0)
    end = line_ends(float(nx))
    alpha = np.arange(nx) / float(nx)
    indices = np.empty((3, nz, ny, nx))
    for axis in range(3):
        step = end[axis] - start[axis]
        indices[axis] = start[axis][..., None] + alpha * step[..., None]
    return indices
