"""pyradiomics' resampling of one lesion, computed on the lesion's region only, bit for bit.

pyradiomics 3.0.1 resamples CT and mask onto a 1 mm grid that covers the mask's
bounding box plus ``padDistance`` (``imageoperations.resampleImage``). The output
grid is small, but ITK's cubic B-spline interpolator first turns the *whole*
input volume into spline coefficients (``BSplineDecompositionImageFilter``, a
recursive filter along every line of the volume): on a 512 x 512 x 300 CT that
is most of the extraction time. This module computes the same output from a
crop of the CT:

1. the output grid is computed with pyradiomics' own arithmetic on the full mask;
2. the continuous input index of every output voxel is computed with ITK's
   arithmetic for the *full* image (``LinearThreadedGenerateData`` of
   ``ResampleImageFilter``: scan lines mapped through the index-to-point
   matrices), so the crop cannot change a single rounding;
3. the spline coefficients are computed by ITK on a crop that reaches
   ``BSPLINE_DECAY_MARGIN`` voxels beyond the coefficients the output needs
   (derivation below), and the 4 x 4 x 4 coefficient sums are evaluated in
   numpy in ITK's order (``BSplineInterpolateImageFunction``);
4. the value is cast to the CT's pixel type as ``ResampleImageFilter`` does
   (clamp, then truncate toward zero for integers).

The mask is resampled by ITK itself (nearest neighbour on the full mask, whose
cost depends only on the output size), so ties at half-voxel positions fall as
in stock pyradiomics. The test suite checks the result against
``sitk.ResampleImageFilter`` on the full image, voxel for voxel.

Why the margin is safe. With cubic B-splines the prefilter has one pole
z = sqrt(3) - 2 (|z| = 0.268): per line, gain 6, a causal recursion
c+[n] = 6 g[n] + z c+[n-1] and an anti-causal one c[n] = z (c[n+1] - c+[n]),
each started from a mirror-boundary estimate (Unser 1999, Box 2). A crop face
inside the volume starts these recursions from a different value; the
difference decays by |z| per voxel. With |g| <= R the causal start differs by
at most 12 R / (1 - |z|) and the anti-causal start by at most 6 R, so one pass
changes a coefficient d voxels from an inner face by at most 12 R |z|^d (both
faces). The three passes (x, y, then z) each amplify earlier differences by at
most the prefilter's l1 gain 3 and see inputs up to 3 R and 9 R, so an
interpolated value (non-negative weights summing to 1) changes by at most
324 R |z|^d. Requiring that bound to stay below 2^-64 R, 4096 times below the
rounding error of the stock double computation itself (2^-52 R), gives
d >= 39 voxels. Faces on the volume's own border are not faces of a crop: there
the crop computes exactly what the full volume computes.

The margin in CT voxels around the mask's bounding box is therefore
``padDistance`` (5 mm, in CT voxels, rounded up, plus one for the grid's
floor/ceil) + 2 (cubic support: floor(x) - 1 .. floor(x) + 2) + 39. The LoG and
wavelet filters need nothing more: pyradiomics applies them to the resampled,
padded image, which is reproduced exactly, edges included.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from .resampling_grid import OutputGrid, continuous_indices

# Cubic B-spline prefilter pole (Unser 1999, Table I) and the derivation above.
BSPLINE_POLE = math.sqrt(3.0) - 2.0
BSPLINE_ORDER = 3
# Bound on the change of an interpolated value per unit of max |input| at distance d: 324 |z|^d.
CROP_ERROR_GROWTH = 3 * 3 * 12 + 3 * 12 * 3 + 12 * 9
CROP_ERROR_TARGET = 2.0 ** -64
BSPLINE_DECAY_MARGIN = math.ceil(math.log(CROP_ERROR_TARGET / CROP_ERROR_GROWTH) / math.log(abs(BSPLINE_POLE)))
# Output points evaluated per block: keeps the 64-term sums in cache, and bounds memory.
EVALUATION_BLOCK = 1 << 15
# Voxels turned x-first at a time for the prefilter's x pass.
X_PASS_BLOCK = 1 << 18


def _support(x: np.ndarray, length: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Cubic weights and mirrored coefficient indices along one axis (BSplineInterpolateImageFunction)."""
    first = np.floor(x.astype(np.float32)).astype(np.int64) - 1  # DetermineRegionOfSupport: float floor
    w = x - (first + 1).astype(np.float64)
    w3 = (1.0 / 6.0) * w * w * w
    w0 = (1.0 / 6.0) + 0.5 * w * (w - 1.0) - w3
    w2 = w + w0 - 2.0 * w3
    w1 = 1.0 - w0 - w2 - w3
    end = length - 1
    indices = []
    for k in range(BSPLINE_ORDER + 1):
        index = first + k
        if length == 1:
            index = np.zeros_like(index)
        else:  # ApplyMirrorBoundaryConditions
            index = np.where(index < 0, -index, index)
            index = np.where(index >= end, end - (index - end), index)
        indices.append(index)
    return [w0, w1, w2, w3], indices


def _inside(x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """ImageFunction::IsInsideBuffer for a continuous index: [-0.5, size - 0.5) per axis."""
    inside = np.ones(x.shape[1:], dtype=bool)
    for axis in range(3):
        inside &= (x[axis] >= -0.5) & (x[axis] < (size[axis] - 1) + 0.5)
    return inside


def _cast(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """ResampleImageFilter::CastComponentWithBoundsChecking: clamp, then C++ static_cast."""
    dtype = np.dtype(dtype)
    if dtype == np.float64:
        return values
    info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype)
    low = -info.max if dtype.kind == "f" else info.min  # NumericTraits::NonpositiveMin
    clamped = np.where(values <= low, low, np.where(values >= info.max, info.max, values))
    if dtype.kind == "f":
        return clamped.astype(dtype)
    return np.trunc(clamped).astype(dtype)


def _prefilter_lines(lines: np.ndarray) -> np.ndarray:
    """ITK's ``DataToCoefficients1D`` on every line at once (axis 0 runs along the lines), in place.

    The statements are ITK's, with its tolerance of 1e-10 for the causal start
    (a truncated mirror sum of ``horizon`` terms on lines longer than that).
    """
    length = lines.shape[0]
    if length == 1:  # mirror boundaries need two points; ITK leaves the line as it is
        return lines
    z = BSPLINE_POLE
    gain = 1.0 * (1.0 - z) * (1.0 - 1.0 / z)
    lines *= gain
    horizon = math.ceil(math.log(1e-10) / math.log(abs(z)))
    zn = z
    if horizon < length:
        total = lines[0].copy()
        for n in range(1, horizon):
            total += zn * lines[n]
            zn *= z
        lines[0] = total
    else:
        iz = 1.0 / z
        z2n = math.pow(z, float(length - 1))
        total = lines[0] + z2n * lines[length - 1]
        z2n *= z2n * iz
        for n in range(1, length - 1):
            total += (zn + z2n) * lines[n]
            zn *= z
            z2n *= iz
        lines[0] = total / (1.0 - zn * zn)
    for n in range(1, length):
        lines[n] += z * lines[n - 1]
    lines[length - 1] = (z / (z * z - 1.0)) * (z * lines[length - 2] + lines[length - 1])
    for n in range(length - 2, -1, -1):
        lines[n] = z * (lines[n + 1] - lines[n])
    return lines


def bspline_coefficients(crop: np.ndarray, keep: tuple[slice, slice, slice]) -> np.ndarray:
    """ITK's cubic B-spline coefficients (``BSplineDecompositionImageFilter``) of ``crop`` (z, y, x), on ``keep``.

    ITK filters along x, then y, then z, each pass over the whole image. A
    pass only has to cover what later passes read: the y pass needs the x
    range in ``keep`` only, the z pass the x and y ranges in ``keep``. Each
    value is ITK's double, computed by the same statements.

    Parameters
    ----------
    crop : np.ndarray
        3D voxel values (e.g. HU) in numpy (z, y, x) order; not modified.
    keep : tuple of slice
        The (z, y, x) ranges of ``crop`` whose coefficients are wanted.

    Returns
    -------
    np.ndarray
        float64 coefficients on ``keep`` (shape of ``crop[keep]``).
    """
    coefficients = np.array(crop, dtype=np.float64)
    # x runs along memory: filter slabs of a few z planes turned x-first, so the turning stays in cache.
    planes = max(1, X_PASS_BLOCK // max(1, coefficients.shape[1] * coefficients.shape[2]))
    for z0 in range(0, coefficients.shape[0], planes):
        block = coefficients[z0:z0 + planes]
        block[...] = np.moveaxis(_prefilter_lines(np.ascontiguousarray(np.moveaxis(block, 2, 0))), 0, 2)
    coefficients = coefficients[:, :, keep[2]]
    _prefilter_lines(np.moveaxis(coefficients, 1, 0))
    coefficients = np.ascontiguousarray(coefficients[:, keep[1]])
    _prefilter_lines(coefficients)
    return coefficients[keep[0]]


def _evaluate(coefficients: np.ndarray, crop_lower: np.ndarray, x: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Sum of the 64 weighted coefficients per point (x: (3, n), inside points), in ITK's order (x fastest)."""
    weights, indices = [], []
    for axis in range(3):
        w, index = _support(x[axis], size[axis])
        weights.append(w)
        indices.append([i - crop_lower[axis] for i in index])
    ny, nx = coefficients.shape[1:]
    flat = coefficients.ravel()
    xy_weights = [[weights[0][a] * weights[1][b] for b in range(4)] for a in range(4)]
    total = np.zeros(x.shape[1])
    term = np.empty_like(total)
    gathered = np.empty_like(total)
    position = np.empty(x.shape[1], dtype=np.int64)
    for c in range(4):
        for b in range(4):
            row = indices[2][c] * (ny * nx) + indices[1][b] * nx
            for a in range(4):
                # ITK: w = ((1.0 * w_x) * w_y) * w_z; interpolated += w * coefficient
                np.multiply(xy_weights[a][b], weights[2][c], out=term)
                np.add(row, indices[0][a], out=position)
                np.take(flat, position, out=gathered)
                term *= gathered
                total += term
    return total


def _evaluate_separable(coefficients: np.ndarray, crop_lower: np.ndarray, axes: list[np.ndarray],
                        size: tuple[int, ...]) -> np.ndarray:
    """As ``_evaluate`` on a box of points whose index along each axis depends on that axis only.

    An output grid parallel to the CT's (the usual case) maps x, y and z
    independently: ITK's doubles are then the same along each line, and the
    weights need computing once per axis; the products and sums are ITK's.
    """
    weights, indices = [], []
    for axis in range(3):
        w, index = _support(axes[axis], size[axis])
        weights.append(w)
        indices.append([i - crop_lower[axis] for i in index])
    nz, ny, nx = (len(axes[2]), len(axes[1]), len(axes[0]))
    xy_weights = [[weights[1][b][:, None] * weights[0][a][None, :] for b in range(4)] for a in range(4)]
    total = np.zeros((nz, ny, nx))
    chunk = max(1, EVALUATION_BLOCK // (ny * nx))
    for z0 in range(0, nz, chunk):
        part = slice(z0, z0 + chunk)
        block = total[part]
        term = np.empty_like(block)
        for c in range(4):
            z_weight = weights[2][c][part][:, None, None]
            planes = coefficients[indices[2][c][part]]
            for b in range(4):
                rows = planes[:, indices[1][b]]
                for a in range(4):
                    np.multiply(xy_weights[a][b][None], z_weight, out=term)
                    term *= rows[:, :, indices[0][a]]
                    block += term
    return total


def _separable_axes(x: np.ndarray) -> list[np.ndarray] | None:
    """Per-axis index vectors when x[axis] varies only along its own output axis, else None."""
    axes = []
    for axis in range(3):
        along = np.moveaxis(x[axis], 2 - axis, -1)  # numpy order is (z, y, x)
        vector = along[0, 0]
        if not np.array_equal(along, np.broadcast_to(vector, along.shape)):
            return None
        axes.append(vector)
    return axes


def _needed_range(x: np.ndarray, length: int) -> tuple[int, int]:
    """Smallest and largest coefficient index (after mirroring) that points ``x`` of one axis may use.

    Taken over every integer between the smallest and largest ``floor(x)``: a
    superset of the indices used, which can only widen the crop.
    """
    first = np.floor(x.astype(np.float32)).astype(np.int64)
    starts = np.arange(int(first.min()), int(first.max()) + 1, dtype=np.float64)
    _, index = _support(starts, length)
    return min(int(i.min()) for i in index), max(int(i.max()) for i in index)


def resample_bspline(image: sitk.Image, grid: OutputGrid, decay_margin: int = BSPLINE_DECAY_MARGIN) -> sitk.Image:
    """``image`` resampled onto ``grid`` with ITK's cubic B-spline, from a crop of ``image``.

    Returns what ``sitk.ResampleImageFilter`` with ``sitkBSpline`` and the
    image's own pixel type returns for the whole image. ``decay_margin`` is
    only lowered by the tests that show why it must not be.

    Parameters
    ----------
    image : sitk.Image
        A 3D scalar image (the CT, HU).
    grid : OutputGrid
        The output grid (``pyradiomics_grid``).
    decay_margin : int, default BSPLINE_DECAY_MARGIN
        Voxels of ``image`` kept beyond the coefficients the output needs (39;
        module docstring).

    Returns
    -------
    sitk.Image
        The resampled image on ``grid``, of ``image``'s pixel type (clamped and
        truncated for integers); 0 outside ``image``.
    """
    size = tuple(image.GetSize())
    x = continuous_indices(grid, image)
    inside = _inside(x, size)
    values = np.zeros(inside.shape)
    if inside.any():
        axes = _separable_axes(x)
        if axes is not None:  # the inside points form a box; each axis' indices form a vector
            box = tuple(np.flatnonzero(inside.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1)))
            region = tuple(slice(b[0], b[-1] + 1) for b in box)
            axes = [axes[axis][region[2 - axis]] for axis in range(3)]
            ranges = [_needed_range(axes[axis], size[axis]) for axis in range(3)]
        else:
            points = x[:, inside]
            ranges = [_needed_range(points[axis], size[axis]) for axis in range(3)]
        needed_lower = np.array([r[0] for r in ranges])
        needed_upper = np.array([r[1] for r in ranges])
        lower = np.maximum(needed_lower - decay_margin, 0)
        upper = np.minimum(needed_upper + decay_margin, np.array(size) - 1)
        crop = sitk.GetArrayViewFromImage(image)[lower[2]:upper[2] + 1, lower[1]:upper[1] + 1, lower[0]:upper[0] + 1]
        keep = tuple(slice(needed_lower[axis] - lower[axis], needed_upper[axis] - lower[axis] + 1)
                     for axis in (2, 1, 0))
        coefficients = bspline_coefficients(crop, keep)
        if axes is not None:
            values[region] = _evaluate_separable(coefficients, needed_lower, axes, size)
        else:
            inside_values = np.empty(points.shape[1])
            for start in range(0, points.shape[1], EVALUATION_BLOCK):
                block = slice(start, start + EVALUATION_BLOCK)
                inside_values[block] = _evaluate(coefficients, needed_lower, points[:, block], size)
            values[inside] = inside_values
    pixel_type = sitk.GetArrayViewFromImage(image).dtype
    result = sitk.GetImageFromArray(_cast(values, pixel_type))
    return grid.stamp(result)


def resample_nearest(mask: sitk.Image, grid: OutputGrid, pixel_id: int) -> sitk.Image:
    """``mask`` on ``grid`` by nearest neighbour, by ITK on the full mask (cost: the output size).

    Parameters
    ----------
    mask : sitk.Image
        A label image (the lesion's mask).
    grid : OutputGrid
        The output grid (mm).
    pixel_id : int
        SimpleITK pixel type of the result (e.g. ``sitk.sitkUInt32``).

    Returns
    -------
    sitk.Image
        The labels on ``grid``; 0 outside ``mask``.
    """
    return sitk.Resample(mask, list(grid.size), sitk.Transform(), sitk.sitkNearestNeighbor, grid.origin,
                         grid.spacing, grid.direction, 0, pixel_id)
