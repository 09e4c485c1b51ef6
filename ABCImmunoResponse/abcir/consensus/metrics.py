"""How much two outlines of one lesion agree: Dice and surface (Hausdorff) distances in mm.

Conventions (stated in every agreement file, so numbers can be compared with
other tools):

- Both masks are binary on the same voxel grid (the CT's).
- A mask's surface is its voxels with at least one of their six face neighbours
  outside the mask (the mask minus its 6-connected erosion; SimpleITK's
  ``BinaryContour`` with ``fullyConnected=False``). A voxel on the edge of the
  image counts as surface: the field of view cuts the lesion there.
- Distances are Euclidean, between voxel centres, in physical space (mm): the
  image spacing is applied, so anisotropic voxels are measured correctly.
- The directed distances A->B are, for every surface voxel of A, the distance to
  the nearest surface voxel of B; likewise B->A.
- ``hausdorff_mm`` is the symmetric Hausdorff distance: the larger of the two
  directed maxima.
- ``hd95_mm`` is the larger of the two directed 95th percentiles (numpy's
  linear interpolation), as MONAI's ``compute_hausdorff_distance(percentile=95)``
  and DeepMind's ``surface-distance`` do; a part one reader missed is not
  diluted by the other reader's many agreeing surface voxels. (medpy's ``hd95``
  pools both directions into one set instead, which gives smaller values.)
  Surface voxels are not weighted by their surface area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..patient.lesions import same_grid
from ..patient.measurements import union_box

HD_PERCENTILE = 95.0
SURFACE_CONVENTION = ("surface = mask voxels with a face neighbour outside (6-connected); distances between voxel "
                      "centres in mm; hausdorff_mm = max of the two directed maxima; hd95_mm = max of the two directed "
                      "95th percentiles (linear interpolation), as MONAI and DeepMind surface-distance")
_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


def _boxed(a: sitk.Image, b: sitk.Image) -> tuple[np.ndarray, np.ndarray] | None:
    """Both masks (True = inside) on the smallest box holding the voxels of either; None when both are empty.

    Masks have the CT's size and are nearly all zero; nothing outside the box
    changes a count or a distance, and comparing the whole grid took most of
    the time of a comparison of two readers.
    """
    if not same_grid(a, b):
        raise InputError("Lesion comparison: the two masks are on different voxel grids; load both readers' "
                         "lesions on the CT's grid first.")
    view_a, view_b = sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b)
    box = union_box([view_a, view_b])
    return None if box is None else (view_a[box] != 0, view_b[box] != 0)


def dice(a: sitk.Image, b: sitk.Image) -> float:
    """Dice coefficient 2|A n B| / (|A| + |B|) of two binary masks on one grid (0 = disjoint, 1 = identical).

    Parameters
    ----------
    a, b : sitk.Image
        The two masks, on the same voxel grid; non-zero = inside.

    Returns
    -------
    float
        The Dice coefficient, in [0, 1].

    Raises
    ------
    InputError
        When the masks are on different grids, or both are empty.
    """
    boxed = _boxed(a, b)
    if boxed is None:
        raise InputError("Dice: both masks are empty; there is nothing to compare.")
    array_a, array_b = boxed
    total = int(array_a.sum()) + int(array_b.sum())
    return 2.0 * int(np.count_nonzero(array_a & array_b)) / total


@dataclass(frozen=True)
class SurfaceDistances:
    """Directed surface distances (mm) of two masks, one value per surface voxel."""

    a_to_b_mm: np.ndarray
    b_to_a_mm: np.ndarray

    @property
    def hausdorff_mm(self) -> float:
        """Symmetric Hausdorff distance: the larger directed maximum (mm)."""
        return float(max(self.a_to_b_mm.max(), self.b_to_a_mm.max()))

    @property
    def hd95_mm(self) -> float:
        """The larger of the two directed 95th percentiles (mm)."""
        return float(max(np.percentile(self.a_to_b_mm, HD_PERCENTILE),
                         np.percentile(self.b_to_a_mm, HD_PERCENTILE)))

    @property
    def mean_surface_distance_mm(self) -> float:
        """Average symmetric surface distance: the mean over both directed sets (mm)."""
        return float(np.concatenate([self.a_to_b_mm, self.b_to_a_mm]).mean())


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=_FACE_NEIGHBOURS, border_value=0)


def surface_distances(a: sitk.Image, b: sitk.Image) -> SurfaceDistances:
    """Directed distances between the surfaces of two binary masks on one grid, in mm.

    Exact Euclidean distance transforms on the bounding box of both masks (plus
    one voxel, so that the image edge counts as surface), with the voxel spacing.

    Parameters
    ----------
    a, b : sitk.Image
        The two masks, on the same voxel grid with orthogonal axes; non-zero = inside; neither empty.

    Returns
    -------
    SurfaceDistances
        For every surface voxel of A the distance to B's surface, and the other way round (mm).

    Raises
    ------
    InputError
        When the masks are on different grids, one of them is empty, or the grid's axes are not orthogonal.
    """
    boxed = _boxed(a, b)
    if boxed is None or not boxed[0].any() or not boxed[1].any():
        raise InputError("Surface distance: one of the masks is empty; both lesions need voxels.")
    direction = np.array(a.GetDirection()).reshape(3, 3)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError("Surface distance: the image axes are not orthogonal (sheared grid); resample the CT "
                         "onto an orthogonal grid first.")
    crop_a, crop_b = np.pad(boxed[0], 1), np.pad(boxed[1], 1)
    surface_a, surface_b = _surface(crop_a), _surface(crop_b)
    sampling = tuple(reversed(a.GetSpacing()))  # numpy order (z, y, x)
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=sampling)
    return SurfaceDistances(a_to_b_mm=to_b[surface_a], b_to_a_mm=to_a[surface_b])
