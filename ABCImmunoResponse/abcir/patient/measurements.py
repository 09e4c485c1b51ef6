"""Lesion size as a radiologist measures it: RECIST 1.1 diameters in mm on the original grid.

Diameters are measured on axial slices (the image axis closest to the patient's
superior direction), edge to edge: each voxel contributes the corners of its
in-plane square, so a lesion one voxel wide measures one voxel's width, as a
calliper on the screen would. The long axis is the greatest distance between
two such points in one slice; the short axis is the slice's narrowest
width (RECIST 1.1, section 3.1: lymph nodes are
measured by their short axis). For an ellipse that width is its minor axis; for
irregular outlines we take the slice's minimum calliper width, which does not
inflate when the long axis runs corner to corner. Both are the maximum over slices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy.spatial import ConvexHull, QhullError


@dataclass(frozen=True)
class LesionSize:
    """Size of one lesion, measured on the grid it was segmented on."""

    voxel_count: int
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float


def _axial_axis(direction: np.ndarray) -> int:
    """Index (x=0, y=1, z=2 of the image) of the axis closest to the patient's S-I axis."""
    return int(np.argmax(np.abs(direction[2, :])))


def _slice_diameters(points: np.ndarray) -> tuple[float, float]:
    """Longest diameter and minimum calliper width (mm) of 2D points (n, 2)."""
    try:
        hull = points[ConvexHull(points).vertices]
    except QhullError:  # collinear points: a line of voxels has no width
        hull = points
        diffs = hull[:, None, :] - hull[None, :, :]
        return float(np.sqrt(np.einsum("ijk,ijk->ij", diffs, diffs).max())), 0.0
    diffs = hull[:, None, :] - hull[None, :, :]
    long_axis = float(np.sqrt(np.einsum("ijk,ijk->ij", diffs, diffs).max()))
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    # heights[e, j]: distance of hull point j from the line through edge e.
    heights = np.abs(np.einsum("ejk,ek->ej", hull[None, :, :] - hull[:, None, :], normals))
    return long_axis, float(heights.max(axis=1).min())


def nonzero_box(array: np.ndarray) -> tuple[slice, ...] | None:
    """The smallest box (numpy axis order) holding every non-zero voxel; None when there is none.

    Each axis is searched within the box found so far, so only the first pass
    reads the whole image, and it allocates nothing the image's size: a lesion's
    mask has the CT's size (80 million voxels at 512 x 512 x 300), and most of it
    is zero, which is why code that compares masks works on this box.

    Parameters
    ----------
    array : np.ndarray
        Any array; non-zero (or NaN) counts as filled.

    Returns
    -------
    tuple of slice or None
        One slice per axis, or None for an array of zeros.
    """
    box = [slice(None)] * array.ndim
    for axis in range(array.ndim):
        others = tuple(other for other in range(array.ndim) if other != axis)
        filled = np.flatnonzero(array[tuple(box)].any(axis=others))
        if filled.size == 0:
            return None
        box[axis] = slice(int(filled[0]), int(filled[-1]) + 1)
    return tuple(box)


def union_box(arrays: Sequence[np.ndarray]) -> tuple[slice, ...] | None:
    """The smallest box (numpy axis order) holding the non-zero voxels of every array; None when all are zero.

    Parameters
    ----------
    arrays : sequence of np.ndarray
        Arrays of one shape (masks on one grid).

    Returns
    -------
    tuple of slice or None
        One slice per axis: the union of each array's ``nonzero_box``.
    """
    boxes = [box for box in map(nonzero_box, arrays) if box is not None]
    if not boxes:
        return None
    return tuple(slice(min(axis.start for axis in axes), max(axis.stop for axis in axes)) for axes in zip(*boxes))


def _outline_corners(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice, column and row (voxel index units, each corner once) of the voxel corners that can lie on a slice's
    convex hull.

    ``planes`` is (slice, row, column), True inside the lesion. A corner on the hull
    of all voxel corners of a slice is, on a hull edge that is not horizontal, the
    leftmost or rightmost corner of its row of corners, and on a horizontal edge the
    top or bottom corner of its column of corners; those are outer corners of the
    first and last voxel of a voxel row or column. Those corners are a few hundred
    per slice instead of four per voxel, and no other corner can be a hull vertex,
    even after the rounding to 1e-6 mm: a lattice point off a hull edge is at least
    1 / (edge length in voxels) voxel from it, far more than the rounding.
    """
    _, n_rows, n_cols = planes.shape
    row_slice, row = np.nonzero(planes.any(axis=2))
    first_col = planes.argmax(axis=2)[row_slice, row]
    last_col = n_cols - 1 - planes[:, :, ::-1].argmax(axis=2)[row_slice, row]
    col_slice, col = np.nonzero(planes.any(axis=1))
    first_row = planes.argmax(axis=1)[col_slice, col]
    last_row = n_rows - 1 - planes[:, ::-1, :].argmax(axis=1)[col_slice, col]
    # Corners as whole numbers, 2 * (index +- 0.5) + 1, so that one integer key per corner removes repeats:
    # each voxel's two outer corners, as (column, row) offsets from 2 * index.
    groups = ((row_slice, first_col, row, (0, 0), (0, 2)),
              (row_slice, last_col, row, (2, 0), (2, 2)),
              (col_slice, col, first_row, (0, 0), (2, 0)),
              (col_slice, col, last_row, (0, 2), (2, 2)))
    width, height = 2 * n_cols + 1, 2 * n_rows + 1
    keys = np.concatenate([(slice_index * height + 2 * voxel_row + d_row) * width + 2 * voxel_col + d_col
                           for slice_index, voxel_col, voxel_row, *offsets in groups for d_col, d_row in offsets])
    keys = np.unique(keys)
    slice_and_row, doubled_col = np.divmod(keys, width)
    slices, doubled_row = np.divmod(slice_and_row, height)
    return slices, (doubled_col - 1) / 2, (doubled_row - 1) / 2


def measure_lesion(mask: sitk.Image, first_index: Sequence[int] = (0, 0, 0)) -> LesionSize:
    """Voxel count, volume (mm^3) and RECIST diameters (mm) of a binary mask.

    Works on the lesion's bounding box and, per slice, on the voxel corners that can
    be on the slice's convex hull (``_outline_corners``); the hull and the
    diameters are those of all corners (tested equal, bit for bit, against measuring
    every corner of every voxel). Corners are placed by their voxel index on the
    whole grid, so a crop of the grid given with its ``first_index`` measures what
    the whole grid's mask measures, to the last bit, without a mask the CT's size.

    Parameters
    ----------
    mask : SimpleITK.Image
        A 3-D mask, non-zero inside the lesion, on the grid it was segmented on
        (spacing in mm), or on a crop of that grid.
    first_index : sequence of int, default (0, 0, 0)
        The (x, y, z) voxel index, on the whole grid, of the mask's first voxel:
        where the crop starts.

    Returns
    -------
    LesionSize
        Voxel count, volume (mm³), longest axial diameter (mm) and short axis
        (mm, the minimum calliper width), each diameter the maximum over axial
        slices. All zero for an empty mask.
    """
    array = sitk.GetArrayViewFromImage(mask)  # (z, y, x)
    spacing = np.array(mask.GetSpacing())
    box = nonzero_box(array)
    if box is None:
        return LesionSize(0, 0.0, 0.0, 0.0)
    lesion = array[box] != 0
    voxel_count = int(np.count_nonzero(lesion))
    volume = float(voxel_count * np.prod(spacing))
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    axial = _axial_axis(direction)
    in_plane = [a for a in range(3) if a != axial]
    # Physical in-plane basis: columns of direction scaled by spacing, projected
    # onto the plane orthogonal to the slice axis.
    basis = direction[:, in_plane] * spacing[in_plane]
    normal = np.cross(basis[:, 0], basis[:, 1])
    normal /= np.linalg.norm(normal)
    e1 = basis[:, 0] / np.linalg.norm(basis[:, 0])
    e2 = np.cross(normal, e1)
    numpy_axis = 2 - axial  # numpy arrays are (z, y, x)
    # Slice rows/cols follow numpy order of the remaining axes: (in_plane[1], in_plane[0]).
    # (numpy axis order; first_index is x, y, z)
    row_start, col_start = (box[a].start + int(first_index[2 - a]) for a in range(3) if a != numpy_axis)
    slices, cols, rows = _outline_corners(np.moveaxis(lesion, numpy_axis, 0))
    pts = np.stack([cols + col_start, rows + row_start], axis=1)  # voxel index units of the whole image
    physical = pts @ basis.T
    planar = np.round(np.stack([physical @ e1, physical @ e2], axis=1), 6)
    # By slice, and within a slice in the order np.unique(planar, axis=0) gives: Qhull sees the points as before.
    order = np.lexsort((planar[:, 1], planar[:, 0], slices))
    planar, slices = planar[order], slices[order]
    best_long, best_short = 0.0, 0.0
    for points in np.split(planar, np.flatnonzero(np.diff(slices)) + 1):
        long_axis, short_axis = _slice_diameters(points)
        best_long = max(best_long, long_axis)
        best_short = max(best_short, short_axis)
    return LesionSize(voxel_count, volume, best_long, best_short)
