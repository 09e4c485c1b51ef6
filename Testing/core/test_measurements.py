"""RECIST diameters measured from masks, in mm, against shapes whose size is known, and bit for bit against
the measurement of every corner of every voxel (the implementation before issue #15, kept here as the reference).
"""

from __future__ import annotations

from dataclasses import astuple

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.transform import Rotation

from abcir.patient.measurements import measure_lesion

# TotalSegmentator labels of the real CT: pancreas, adrenal, colon, T11, T12, spleen (lesion-sized and large).
REAL_ORGANS = (7, 8, 20, 33, 32, 1)


def _mask(array_zyx: np.ndarray, spacing=(0.5, 0.5, 2.0), direction=None) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    return image


def test_rectangle_long_axis_is_its_diagonal_and_short_axis_its_width():
    array = np.zeros((5, 40, 40))
    array[2, 10:30, 15:20] = 1  # 20 x 5 pixels of 0.5 mm: 10 mm x 2.5 mm
    size = measure_lesion(_mask(array))
    assert size.voxel_count == 100
    assert size.volume_mm3 == pytest.approx(100 * 0.5 * 0.5 * 2.0)
    assert size.longest_axial_diameter_mm == pytest.approx(np.hypot(10.0, 2.5))
    assert size.short_axis_mm == pytest.approx(2.5)


def test_ellipse_diameters_edge_to_edge():
    z, y, x = np.mgrid[:3, :80, :80]
    array = ((y - 40) / 30.0) ** 2 + ((x - 40) / 10.0) ** 2 <= 1  # semi-axes 30 and 10 pixels
    size = measure_lesion(_mask(array))
    # 61 x 21 pixels edge to edge at 0.5 mm
    assert size.longest_axial_diameter_mm == pytest.approx(30.5, abs=0.05)
    assert size.short_axis_mm == pytest.approx(10.5, abs=0.05)


def test_diameters_use_axial_planes_even_when_axes_are_permuted():
    # The same slab stored with the image's first axis along patient S-I.
    array = np.zeros((20, 20, 6))
    array[4:16, 5:9, 2] = 1  # in-plane 12 x 4 voxels of 1 mm; axial = image x here
    direction = (0, 1, 0, 0, 0, 1, 1, 0, 0)  # columns: image x -> S, image y -> L, image z -> P
    size = measure_lesion(_mask(array, spacing=(2.0, 1.0, 1.0), direction=direction))
    assert size.longest_axial_diameter_mm == pytest.approx(np.hypot(12, 4))
    assert size.short_axis_mm == pytest.approx(4.0)


def test_empty_mask_measures_zero():
    assert measure_lesion(_mask(np.zeros((3, 4, 4)))).voxel_count == 0


# The reference is a frozen copy of abcir.patient.measurements before issue #15 (it shares _slice_diameters with today's
# code, copied here on purpose): a later change to the module must not move the reference with it.
def _reference_slice_diameters(points: np.ndarray) -> tuple[float, float]:
    try:
        hull = points[ConvexHull(points).vertices]
    except QhullError:
        hull = points
        diffs = hull[:, None, :] - hull[None, :, :]
        return float(np.sqrt(np.einsum("ijk,ijk->ij", diffs, diffs).max())), 0.0
    diffs = hull[:, None, :] - hull[None, :, :]
    long_axis = float(np.sqrt(np.einsum("ijk,ijk->ij", diffs, diffs).max()))
    edges = np.roll(hull, -1, axis=0) - hull
    normals = np.stack([-edges[:, 1], edges[:, 0]], axis=1)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    heights = np.abs(np.einsum("ejk,ek->ej", hull[None, :, :] - hull[:, None, :], normals))
    return long_axis, float(heights.max(axis=1).min())


def reference_measure(mask: sitk.Image) -> tuple[int, float, float, float]:
    """measure_lesion as it was before issue #15: the convex hull of all four corners of every voxel, per slice."""
    array = sitk.GetArrayViewFromImage(mask) != 0
    spacing = np.array(mask.GetSpacing())
    voxel_count = int(array.sum())
    volume = float(voxel_count * np.prod(spacing))
    if voxel_count == 0:
        return 0, 0.0, 0.0, 0.0
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    axial = int(np.argmax(np.abs(direction[2, :])))
    in_plane = [a for a in range(3) if a != axial]
    basis = direction[:, in_plane] * spacing[in_plane]
    normal = np.cross(basis[:, 0], basis[:, 1])
    normal /= np.linalg.norm(normal)
    e1 = basis[:, 0] / np.linalg.norm(basis[:, 0])
    e2 = np.cross(normal, e1)
    corners = np.array([[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]])
    best_long, best_short = 0.0, 0.0
    numpy_axis = 2 - axial
    for index in np.flatnonzero(np.moveaxis(array, numpy_axis, 0).any(axis=(1, 2))):
        plane = np.take(array, index, axis=numpy_axis)
        rows, cols = np.nonzero(plane)
        centres = np.stack([cols, rows], axis=1).astype(float)
        pts = (centres[:, None, :] + corners[None, :, :]).reshape(-1, 2)
        physical = pts @ basis.T
        planar = np.stack([physical @ e1, physical @ e2], axis=1)
        planar = np.unique(np.round(planar, 6), axis=0)
        long_axis, short_axis = _reference_slice_diameters(planar)
        best_long = max(best_long, long_axis)
        best_short = max(best_short, short_axis)
    return voxel_count, volume, best_long, best_short


def _assert_same_as_reference(mask: sitk.Image) -> None:
    assert astuple(measure_lesion(mask)) == reference_measure(mask)


SPACINGS = st.tuples(*[st.sampled_from((0.5, 0.7, 0.9765625, 1.0, 1.25, 2.0, 5.0)) | st.floats(0.1, 6.0)] * 3)
# Identity, axis permutations and flips (a mask stored sagittally or coronally), and oblique rotations.
DIRECTIONS = st.one_of(
    st.just((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
    st.permutations(range(3)).flatmap(lambda order: st.tuples(*[st.sampled_from((-1.0, 1.0))] * 3).map(
        lambda signs: tuple((np.eye(3)[:, order] * signs).ravel()))),
    st.tuples(*[st.floats(-0.6, 0.6)] * 3).map(lambda rotvec: tuple(Rotation.from_rotvec(rotvec).as_matrix().ravel())),
)


def _image(array: np.ndarray, spacing, direction, origin=(0.0, 0.0, 0.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    image.SetOrigin(origin)
    return image


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(array=arrays(np.bool_, st.tuples(st.integers(1, 4), st.integers(1, 14), st.integers(1, 14))),
       spacing=SPACINGS, direction=DIRECTIONS)
def test_any_voxel_set_measures_as_every_corner_does(array, spacing, direction):
    """Scattered voxels, holes, single voxels, lines, masks touching every border."""
    _assert_same_as_reference(_image(array, spacing, direction))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), shape=st.tuples(st.integers(1, 8), st.integers(8, 60), st.integers(8, 60)),
       smoothing=st.floats(0.5, 4.0), fill=st.floats(0.2, 0.8), spacing=SPACINGS, direction=DIRECTIONS,
       offset=st.tuples(*[st.integers(0, 300)] * 3))
def test_random_blobs_measure_as_every_corner_does(seed, shape, smoothing, fill, spacing, direction, offset):
    """Lesion-like blobs, placed away from the image's first voxel (where rounding of large coordinates matters)."""
    noise = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), smoothing)
    blob = noise >= np.quantile(noise, 1 - fill)
    padded = np.zeros(tuple(size + pad for size, pad in zip(shape, offset[::-1])), dtype=bool)
    padded[tuple(slice(pad, pad + size) for size, pad in zip(shape, offset[::-1]))] = blob
    _assert_same_as_reference(_image(padded, spacing, direction, origin=(-249.5, -437.5, -804.5)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), shape=st.tuples(st.integers(1, 8), st.integers(8, 40), st.integers(8, 40)),
       spacing=SPACINGS, direction=DIRECTIONS, offset=st.tuples(*[st.integers(0, 400)] * 3),
       margins=st.tuples(*[st.integers(0, 3)] * 6))
def test_a_crop_with_its_first_index_measures_as_the_whole_grid_to_the_bit(seed, shape, spacing, direction, offset,
                                                                           margins):
    """What the Slicer panel measures (a segment cropped on the CT grid) is what the whole grid's mask measures."""
    blob = ndimage.gaussian_filter(np.random.default_rng(seed).random(shape), 1.5)
    blob = blob >= np.quantile(blob, 0.5)
    whole = np.zeros(tuple(size + pad + 5 for size, pad in zip(shape, offset[::-1])), dtype=bool)
    whole[tuple(slice(pad, pad + size) for size, pad in zip(shape, offset[::-1]))] = blob
    low = [max(0, pad - margin) for pad, margin in zip(offset[::-1], margins[:3])]  # z, y, x
    high = [pad + size + margin for pad, size, margin in zip(offset[::-1], shape, margins[3:])]
    crop = whole[tuple(slice(a, b) for a, b in zip(low, high))]
    expected = measure_lesion(_image(whole, spacing, direction, origin=(-249.5, -437.5, -804.5)))
    assert astuple(measure_lesion(_image(crop, spacing, direction), first_index=low[::-1])) == astuple(expected)


def test_non_binary_values_count_as_inside():
    array = np.zeros((3, 9, 9), dtype=np.int16)
    array[1, 2:7, 3:5] = [[3], [-2], [1], [7], [300]]
    image = sitk.GetImageFromArray(array)
    assert astuple(measure_lesion(image)) == reference_measure(image)
    assert measure_lesion(image).voxel_count == 10


@pytest.mark.parametrize("direction", [None, tuple(Rotation.from_euler("zyx", (17, 4, -3), degrees=True)
                                                       .as_matrix().ravel())], ids=["as_scanned", "oblique"])
def test_real_organs_measure_as_every_corner_does(shared_data, direction):
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    for label in REAL_ORGANS:
        mask = sitk.Cast(labels == label, sitk.sitkUInt8)
        if direction is not None:
            mask.SetDirection(direction)
        size = measure_lesion(mask)
        assert size.voxel_count > 1000
        assert astuple(size) == reference_measure(mask), label


def test_real_organs_at_clinical_resolution_measure_as_every_corner_does(shared_data):
    """The organs on a 0.7 x 0.7 x 1.25 mm grid, as the issue's whole-process case has them."""
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    spacing = (0.7, 0.7, 1.25)
    size = [round(n * s / t) for n, s, t in zip(labels.GetSize(), labels.GetSpacing(), spacing)]
    fine = sitk.Resample(labels, size, sitk.Transform(), sitk.sitkNearestNeighbor, labels.GetOrigin(), spacing,
                         labels.GetDirection(), 0, labels.GetPixelID())
    for label in (20, 32, 87):
        mask = sitk.Cast(fine == label, sitk.sitkUInt8)
        assert astuple(measure_lesion(mask)) == reference_measure(mask), label
