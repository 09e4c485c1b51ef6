"""Contour randomisation by supervoxels (Zwanenburg et al., Sci Rep 2019;9:614, "Assessing robustness of
radiomic features by image perturbation", Methods, "Contour randomisation").

The idea: a reader's outline follows edges in the image, and where it is
uncertain it includes or leaves out whole patches of similar tissue. So the CT
around the lesion is cut into supervoxels (SLIC: compact regions of similar
intensity), and a randomised outline keeps each supervoxel with a probability
equal to the share of it that lies inside the original outline: a supervoxel
90 % inside is almost always kept, one half inside is a coin toss. The
settings below are those the paper's implementation (MIRP) describes; the code
is this project's own (scikit-image, which MIRP calls, is not in Slicer's Python):

* the CT is cropped to the outline's bounding box plus ``CROP_MARGIN_MM``;
* intensities are clipped to the range inside the outline widened by 10 % on each
  side, and scaled to 0..1, so that the outline's own contrast decides;
* smoothed with a Gaussian of sigma = the smallest voxel spacing (mm);
* SLIC (Achanta et al., IEEE TPAMI 2012) with supervoxels of about
  ``SUPERVOXEL_VOLUME_MM3`` (at least ``MIN_SUPERVOXEL_VOXELS``) on a physical grid,
  distance D^2 = dI^2 + (m d / S)^2 with d and the grid step S in mm and
  compactness m = ``COMPACTNESS`` (intensity dominates: supervoxels follow edges),
  ``SLIC_ITERATIONS`` iterations, then disconnected pieces smaller than half a
  supervoxel joined to the neighbour they touch most;
* overlap fraction per supervoxel; the largest overlap, and every overlap of at
  least ``ALWAYS_KEPT``, count as 1 (so a randomised outline is never empty and
  the core stays), overlaps below ``NEVER_KEPT`` as 0;
* each supervoxel is kept when a uniform draw is below its fraction; the union is
  closed (binary closing, 6-connected cross) to fill gaps between kept supervoxels.

Pure: the same mask, CT and seed give the same outlines.
"""

from __future__ import annotations

import itertools
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
#: A disconnected piece of a supervoxel smaller than this share of a supervoxel is joined to a neighbour
#: (scikit-image's ``min_size_factor``, which MIRP's call leaves at its default).
MIN_PIECE_SHARE = 0.5


@dataclass(frozen=True)
class SupervoxelOverlap:
    """Supervoxels around one outline and how much of each the outline covers.

    ``labels`` is the supervoxel map of the crop ``region`` (numpy z, y, x
    slices of the mask's grid), 0 nowhere; ``fractions[k]`` is the chance that
    supervoxel ``k`` is kept (after the rules above), 0 for supervoxels that the
    outline does not touch.
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


def slic(image: np.ndarray, spacing_zyx: np.ndarray, volume_mm3: float = SUPERVOXEL_VOLUME_MM3,
         compactness: float = COMPACTNESS, iterations: int = SLIC_ITERATIONS) -> np.ndarray:
    """SLIC supervoxels (labels from 1) of a scaled image on a grid of ``spacing_zyx`` mm.

    Centres start at the centres of cells of about ``volume_mm3``; each voxel
    chooses among the centres of its cell and the 26 around it (SLIC's 2S search
    window), and centres move to the mean of their voxels.
    """
    spacing = np.asarray(spacing_zyx, dtype=float)
    volume = max(volume_mm3, MIN_SUPERVOXEL_VOXELS * float(np.prod(spacing)))
    step_mm = volume ** (1 / 3)
    cell = np.maximum(1, np.round(step_mm / spacing)).astype(int)
    cells = -(-np.array(image.shape) // cell)
    axes = [np.arange(n) for n in image.shape]
    cell_of = [a // c for a, c in zip(axes, cell)]
    position = [(a * s).astype(np.float32) for a, s in zip(axes, spacing)]
    centre_pos = [((np.arange(k) * c + np.minimum(c, n - np.arange(k) * c) / 2 - 0.5) * s).astype(np.float32)
                  for k, c, n, s in zip(cells, cell, image.shape, spacing)]
    grids = np.meshgrid(*centre_pos, indexing="ij")
    centres = np.stack([g.ravel() for g in grids], axis=1)  # (K, 3) mm
    index = tuple(np.clip(np.round(g / s).astype(int), 0, n - 1) for g, s, n in zip(grids, spacing, image.shape))
    centre_value = image[index].ravel().astype(np.float32)
    weight = np.float32((compactness / step_mm) ** 2)
    shape = image.shape
    labels = np.zeros(shape, dtype=np.int64)
    for _ in range(iterations):
        best = np.full(shape, np.inf, dtype=np.float32)
        for offset in itertools.product((-1, 0, 1), repeat=3):
            neighbour = [c + o for c, o in zip(cell_of, offset)]
            valid = [(n >= 0) & (n < k) for n, k in zip(neighbour, cells)]
            if not all(v.any() for v in valid):
                continue
            flat = (np.clip(neighbour[0], 0, cells[0] - 1)[:, None, None] * cells[1]
                    + np.clip(neighbour[1], 0, cells[1] - 1)[None, :, None]) * cells[2] \
                + np.clip(neighbour[2], 0, cells[2] - 1)[None, None, :]
            spatial = sum((position[a].reshape([-1 if b == a else 1 for b in range(3)]) - centres[flat, a]) ** 2
                          for a in range(3))
            distance = (image - centre_value[flat]) ** 2 + weight * spatial
            distance[~(valid[0][:, None, None] & valid[1][None, :, None] & valid[2][None, None, :])] = np.inf
            closer = distance < best
            best[closer] = distance[closer]
            labels[closer] = flat[closer]
        counts = np.bincount(labels.ravel(), minlength=len(centres))
        used = counts > 0
        for a in range(3):
            coordinate = np.broadcast_to(position[a].reshape([-1 if b == a else 1 for b in range(3)]), shape)
            centres[used, a] = (np.bincount(labels.ravel(), coordinate.ravel(), len(centres))[used] / counts[used])
        centre_value[used] = np.bincount(labels.ravel(), image.ravel(), len(centres))[used] / counts[used]
    return _connected(labels + 1, max(1, int(MIN_PIECE_SHARE * volume / np.prod(spacing))))


def _connected(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Each supervoxel one connected (6-neighbour) region: large pieces get labels of their own, small ones
    join the supervoxel they share most faces with."""
    result = labels.copy()
    next_label = int(labels.max()) + 1
    small: list[tuple[tuple[slice, ...], np.ndarray]] = []
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        pieces, count = ndimage.label(labels[box] == label)
        if count <= 1:
            continue
        sizes = np.bincount(pieces.ravel())[1:]
        for piece in np.argsort(-sizes)[1:] + 1:  # the largest piece keeps the label
            where = pieces == piece
            if sizes[piece - 1] >= min_voxels:
                result[box][where] = next_label
                next_label += 1
            else:
                small.append((box, where))
    for box, where in small:
        grown = tuple(slice(max(s.start - 1, 0), s.stop + 1) for s in box)
        local = np.zeros(result[grown].shape, dtype=bool)
        local[tuple(slice(s.start - g.start, s.stop - g.start) for s, g in zip(box, grown))] = where
        shell = ndimage.binary_dilation(local) & ~local
        neighbours = result[grown][shell]
        if neighbours.size:
            result[grown][local] = np.bincount(neighbours).argmax()
    return result


def supervoxel_overlap(mask: sitk.Image, ct: sitk.Image) -> SupervoxelOverlap:
    """Supervoxels of the CT around ``mask`` and the chance each is kept (module docstring)."""
    inside = sitk.GetArrayViewFromImage(mask) != 0
    spacing = np.array(ct.GetSpacing()[::-1], dtype=float)
    region = _crop(inside, spacing)
    local_inside = inside[region]
    labels = slic(_scaled_intensities(sitk.GetArrayViewFromImage(ct)[region], local_inside, spacing), spacing)
    size = np.bincount(labels.ravel())
    covered = np.bincount(labels[local_inside], minlength=size.size)
    fractions = np.divide(covered, size, out=np.zeros(size.size), where=size > 0)
    fractions[fractions >= ALWAYS_KEPT] = 1.0
    fractions[fractions < NEVER_KEPT] = 0.0
    fractions[int(np.argmax(covered))] = 1.0
    return SupervoxelOverlap(region, labels, fractions)


def randomised_outline(overlap: SupervoxelOverlap, like: sitk.Image, rng: np.random.Generator) -> sitk.Image:
    """One randomised outline: each supervoxel kept with its chance, gaps closed; uint8 on ``like``'s grid."""
    keep = rng.random(overlap.fractions.size) < overlap.fractions
    keep[0] = False
    # Padded by one voxel: scipy's closing erodes from the array's border, which would cut the outline where the
    # crop meets the CT's edge.
    local = ndimage.binary_closing(np.pad(keep[overlap.labels], 1))[1:-1, 1:-1, 1:-1]
    result = np.zeros(sitk.GetArrayViewFromImage(like).shape, dtype=np.uint8)
    result[overlap.region] = local
    image = sitk.GetImageFromArray(result)
    image.CopyInformation(like)
    return image


def contour_randomisations(mask: sitk.Image, ct: sitk.Image, seed: int, count: int) -> list[sitk.Image]:
    """``count`` randomised outlines of ``mask`` on ``ct`` (same grid), reproducible from ``seed``."""
    if count <= 0:
        return []
    overlap = supervoxel_overlap(mask, ct)
    rng = np.random.default_rng(seed)
    return [randomised_outline(overlap, mask, rng) for _ in range(count)]
