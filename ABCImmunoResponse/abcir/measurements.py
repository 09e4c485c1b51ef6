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


def measure_lesion(mask: sitk.Image) -> LesionSize:
    """Voxel count, volume (mm^3) and RECIST diameters (mm) of a binary mask."""
    array = sitk.GetArrayViewFromImage(mask) != 0  # (z, y, x)
    spacing = np.array(mask.GetSpacing())
    voxel_count = int(array.sum())
    volume = float(voxel_count * np.prod(spacing))
    if voxel_count == 0:
        return LesionSize(0, 0.0, 0.0, 0.0)
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
    corners = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    best_long, best_short = 0.0, 0.0
    numpy_axis = 2 - axial  # numpy arrays are (z, y, x)
    for index in np.flatnonzero(np.moveaxis(array, numpy_axis, 0).any(axis=(1, 2))):
        plane = np.take(array, index, axis=numpy_axis)
        # plane rows/cols follow numpy order of the remaining axes: (in_plane[1], in_plane[0])
        rows, cols = np.nonzero(plane)
        centres = np.stack([cols, rows], axis=1).astype(float)
        pts = (centres[:, None, :] + corners[None, :, :]).reshape(-1, 2)
        physical = pts @ basis.T
        planar = np.stack([physical @ e1, physical @ e2], axis=1)
        planar = np.unique(np.round(planar, 6), axis=0)
        long_axis, short_axis = _slice_diameters(planar)
        best_long = max(best_long, long_axis)
        best_short = max(best_short, short_axis)
    return LesionSize(voxel_count, volume, best_long, best_short)
