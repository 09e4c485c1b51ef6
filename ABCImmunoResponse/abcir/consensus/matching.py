"""Which lesion of reader A is which lesion of reader B.

Two passes, each a one-to-one assignment (Hungarian algorithm):

1. Overlap: lesions that share voxels are paired so that the summed Dice of the
   pairs is largest. A lesion one reader split in two overlaps two lesions of the
   other; only the better pair is matched and the other stays unmatched with a
   note saying what it overlaps.
2. Centroid distance: lesions left over are paired by the distance between
   their centroids (mm, physical space), nearest first, up to
   ``max_centroid_distance_mm``. The default, 10 mm, is RECIST 1.1's smallest
   measurable lesion: two outlines that do not touch but whose centres lie within
   one smallest-lesion diameter are taken as the same lesion drawn differently.

Everything else is unmatched: a lesion one reader segmented and the other did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment

from ..errors import InputError
from ..options import DEFAULT_MAX_CENTROID_DISTANCE_MM
from ..patient.lesions import Lesion
from ..patient.measurements import nonzero_box

OVERLAP = "overlap"
CENTROID = "centroid"
UNMATCHED = "unmatched"


@dataclass(frozen=True)
class LesionMatch:
    """A pair of lesions (one side is None when the other reader has no such lesion)."""

    a: Lesion | None
    b: Lesion | None
    method: str  # OVERLAP, CENTROID or UNMATCHED
    centroid_distance_mm: float | None
    note: str = ""

    @property
    def key(self) -> tuple[str | None, str | None]:
        """(A's lesion id, B's lesion id): names the pair in decisions and session logs."""
        return (self.a.lesion_id if self.a else None, self.b.lesion_id if self.b else None)


def _boxed_voxels(lesion: Lesion) -> tuple[np.ndarray, tuple[slice, ...]] | None:
    """The lesion's voxel indices (z, y, x) within its box, and the box; None for an empty mask.

    Only the box is searched: a mask has the CT's size and is nearly all zero.
    """
    view = sitk.GetArrayViewFromImage(lesion.mask)
    box = nonzero_box(view)
    if box is None:
        return None
    return np.nonzero(view[box]), box


def _voxels(lesion: Lesion) -> np.ndarray:
    """Flat indices of the lesion's voxels on the whole grid, ascending (``np.flatnonzero`` of the mask)."""
    boxed = _boxed_voxels(lesion)
    if boxed is None:
        return np.zeros(0, dtype=np.intp)
    local, box = boxed
    return np.ravel_multi_index(tuple(index + axis.start for index, axis in zip(local, box)),
                                lesion.mask.GetSize()[::-1])


def centroid_mm(lesion: Lesion) -> np.ndarray:
    """Centre of mass of a lesion's voxels in physical (LPS) coordinates, mm.

    Parameters
    ----------
    lesion : Lesion
        A lesion with a non-empty mask.

    Returns
    -------
    np.ndarray
        (x, y, z) in mm, LPS, of the mean voxel index of the mask's non-zero voxels.

    Raises
    ------
    InputError
        When the lesion's mask is empty.
    """
    boxed = _boxed_voxels(lesion)
    if boxed is None:
        raise InputError(f"Lesion '{lesion.lesion_id}': the mask is empty; it has no centroid.")
    local, box = boxed
    # The sums of whole-grid indices are integers below 2 ** 53, so exact in float64 in any order: the same
    # doubles as np.argwhere(mask).mean(axis=0), which read the whole grid.
    count = local[0].size
    totals = [int(index.sum()) + count * axis.start for index, axis in zip(local, box)]
    index_zyx = np.array(totals, dtype=np.float64) / count
    return np.array(lesion.mask.TransformContinuousIndexToPhysicalPoint([float(i) for i in index_zyx[::-1]]))


def _overlap_dice(voxels_a: list[np.ndarray], voxels_b: list[np.ndarray]) -> np.ndarray:
    dice = np.zeros((len(voxels_a), len(voxels_b)))
    for i, va in enumerate(voxels_a):
        for j, vb in enumerate(voxels_b):
            shared = np.intersect1d(va, vb, assume_unique=True).size
            dice[i, j] = 2.0 * shared / (va.size + vb.size)
    return dice


def match_lesions(lesions_a: Sequence[Lesion], lesions_b: Sequence[Lesion],
                  max_centroid_distance_mm: float = DEFAULT_MAX_CENTROID_DISTANCE_MM) -> list[LesionMatch]:
    """Pair the lesions of two readers (masks on the same CT grid).

    Returned in reader A's order (matched or not), then B's unmatched lesions in B's order.

    Parameters
    ----------
    lesions_a, lesions_b : sequence of Lesion
        Reader A's and reader B's lesions; either may be empty.
    max_centroid_distance_mm : float
        Lesions that do not overlap are matched when their centroids are at most this far apart (mm, >= 0).

    Returns
    -------
    list of LesionMatch
        Every lesion of both readers exactly once: pairs (by overlap, then by centroid distance) and lesions
        only one reader has (with a note naming what they overlap, if anything).

    Raises
    ------
    InputError
        When ``max_centroid_distance_mm`` is negative or not a number, or a lesion's mask is empty.
    """
    if not max_centroid_distance_mm >= 0:  # NaN too
        raise InputError(f"Maximum centroid distance {max_centroid_distance_mm} mm: must be 0 or more.")
    voxels_a = [_voxels(lesion) for lesion in lesions_a]
    voxels_b = [_voxels(lesion) for lesion in lesions_b]
    for lesion, voxels in zip([*lesions_a, *lesions_b], [*voxels_a, *voxels_b]):
        if voxels.size == 0:
            raise InputError(f"Lesion '{lesion.lesion_id}': the mask is empty; remove the segment or draw it.")
    dice = _overlap_dice(voxels_a, voxels_b)
    centroids_a = [centroid_mm(lesion) for lesion in lesions_a]
    centroids_b = [centroid_mm(lesion) for lesion in lesions_b]
    distance = np.array([[float(np.linalg.norm(ca - cb)) for cb in centroids_b] for ca in centroids_a]).reshape(
        len(lesions_a), len(lesions_b))

    pairs: dict[int, tuple[int, str]] = {}
    rows, cols = linear_sum_assignment(-dice)
    for i, j in zip(rows, cols):
        if dice[i, j] > 0:
            pairs[i] = (j, OVERLAP)
    left_a = [i for i in range(len(lesions_a)) if i not in pairs]
    taken_b = {j for j, _ in pairs.values()}
    left_b = [j for j in range(len(lesions_b)) if j not in taken_b]
    if left_a and left_b:
        sub = distance[np.ix_(left_a, left_b)]
        too_far = sub > max_centroid_distance_mm
        rows, cols = linear_sum_assignment(np.where(too_far, sub.max() * 1e3 + 1e6, sub))
        for r, c in zip(rows, cols):
            if not too_far[r, c]:
                pairs[left_a[r]] = (left_b[c], CENTROID)
    matched_b = {j: i for i, (j, _) in pairs.items()}

    def overlap_note(own: int, by_a: bool) -> str:
        row = dice[own] if by_a else dice[:, own]
        others = lesions_b if by_a else lesions_a
        touching = [others[k].lesion_id for k in np.flatnonzero(row > 0)]
        return f"overlaps {', '.join(touching)} (matched to another lesion)" if touching else ""

    matches = []
    for i, lesion in enumerate(lesions_a):
        if i in pairs:
            j, method = pairs[i]
            matches.append(LesionMatch(lesion, lesions_b[j], method, distance[i, j]))
        else:
            matches.append(LesionMatch(lesion, None, UNMATCHED, None, overlap_note(i, True)))
    for j, lesion in enumerate(lesions_b):
        if j not in matched_b:
            matches.append(LesionMatch(None, lesion, UNMATCHED, None, overlap_note(j, False)))
    return matches
