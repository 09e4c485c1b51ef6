"""A lesion mask reaches the CT's grid voxel for voxel as SimpleITK's nearest-neighbour resampling puts it there.

``align_to_ct`` copies a mask whose voxels are CT voxels (a crop of the CT's grid, or a grid reaching beyond it)
instead of resampling it, and binarises and splits label maps in numpy; these tests hold those shortcuts to
``sitk.Resample``, ``sitk.NotEqual`` and ``sitk.Equal`` on random grids.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from abcir.patient.lesions import align_to_ct, load_lesions, same_grid

DIRECTIONS = st.one_of(
    st.just((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)),
    st.tuples(*[st.floats(-0.5, 0.5)] * 3).map(lambda rotvec: tuple(Rotation.from_rotvec(rotvec).as_matrix().ravel())),
)
PIXEL_TYPES = st.sampled_from((sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkFloat32))


def _reference(mask: sitk.Image, ct: sitk.Image) -> sitk.Image:
    """What align_to_ct did before issue #15: the mask as is on the CT's grid (up to header rounding), else
    resampled."""
    binary = sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8)
    if same_grid(binary, ct):
        return binary
    # A zero margin, as resample_mask_nearest adds: without it ITK can read a byte outside the mask's buffer
    # on its half-voxel border (test_resampling_never_reads_outside_the_mask).
    padded = sitk.ConstantPad(binary, (1, 1, 1), (1, 1, 1), 0)
    return sitk.Resample(padded, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _assert_same_image(image: sitk.Image, reference: sitk.Image) -> None:
    assert image.GetPixelID() == reference.GetPixelID() == sitk.sitkUInt8
    assert image.GetSize() == reference.GetSize()
    assert image.GetOrigin() == reference.GetOrigin()
    assert image.GetSpacing() == reference.GetSpacing()
    assert image.GetDirection() == reference.GetDirection()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(reference))
    assert set(np.unique(sitk.GetArrayViewFromImage(image))) <= {0, 1}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(ct_size=st.tuples(*[st.integers(4, 24)] * 3), spacing=st.tuples(*[st.floats(0.3, 3.0)] * 3),
       direction=DIRECTIONS, where=st.tuples(*[st.floats(-0.3, 0.9)] * 3),
       mask_size=st.tuples(*[st.integers(1, 16)] * 3), shift=st.sampled_from((0.0, 0.0, 0.0, 2e-4, 0.25, 0.5, 0.7)),
       spacing_change=st.sampled_from((0.0, 0.0, 1e-9, 1e-6, 0.01)), pixel_type=PIXEL_TYPES,
       seed=st.integers(0, 2 ** 16))
def test_mask_on_another_grid_lands_as_nearest_neighbour_resampling_puts_it(
        ct_size, spacing, direction, where, mask_size, shift, spacing_change, pixel_type, seed):
    """Crops of the CT's grid, grids reaching beyond it, and grids a fraction of a voxel off (resampled)."""
    start = [int(fraction * size) for fraction, size in zip(where, ct_size)]
    ct = sitk.Image(ct_size, sitk.sitkInt16)
    ct.SetSpacing(spacing)
    ct.SetDirection(direction)
    ct.SetOrigin((-120.5, 33.25, -804.5))
    voxels = np.random.default_rng(seed).random(mask_size[::-1]) < 0.5
    voxels.flat[0] = True  # never empty
    mask = sitk.Cast(sitk.GetImageFromArray(voxels.astype(np.uint8) * 3), pixel_type)
    mask.SetSpacing(tuple(s * (1 + spacing_change) for s in spacing))
    mask.SetDirection(direction)
    mask.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint([index + shift for index in start]))
    expected = _reference(mask, ct)
    assume(np.count_nonzero(sitk.GetArrayViewFromImage(expected)) >= 2)  # else refused (test_inputs: the messages)
    _assert_same_image(align_to_ct("lesion", mask, ct), expected)


def test_resampling_never_reads_outside_the_mask():
    """The case hypothesis found: a CT voxel centre a rounding error beyond the mask's half-voxel border.

    Plain ``sitk.Resample`` puts a byte from outside the mask's buffer there (159 was seen); the mask
    from ``align_to_ct`` stays 0/1.
    """
    spacing = (0.3, 1.2999913630089213, 0.7133531650242235)
    direction = (0.9916055867149219, 0.12929949866044346, -6.4740478205536246e-06, -0.12929949866044346,
                 0.9916055817219231, -9.972002915192919e-05, -6.4740478205536246e-06, 9.972002915192919e-05,
                 0.9999999950070012)
    ct = sitk.Image((4, 20, 10), sitk.sitkInt16)
    ct.SetSpacing(spacing)
    ct.SetDirection(direction)
    ct.SetOrigin((-120.5, 33.25, -804.5))
    voxels = np.random.default_rng(0).random((10, 1, 1)) < 0.5
    voxels.flat[0] = True
    mask = sitk.GetImageFromArray(voxels.astype(np.uint8))
    mask.SetSpacing(spacing)
    mask.SetDirection(direction)
    mask.SetOrigin(ct.TransformContinuousIndexToPhysicalPoint([3.5, 15.5, 0.5]))
    aligned = sitk.GetArrayFromImage(align_to_ct("lesion", mask, ct))
    assert set(np.unique(aligned)) == {0, 1}  # half-voxel ties may keep 3 or 4 of the 4 voxels; never a 159


def test_mask_types_and_label_maps_as_simpleitk_makes_them(tmp_path):
    ct = sitk.Image((30, 20, 6), sitk.sitkInt16)
    ct.SetSpacing((0.7, 0.7, 1.25))
    labels = np.zeros((6, 20, 30), dtype=np.int16)
    labels[1:4, 2:9, 3:12] = 7
    labels[2:5, 10:18, 14:27] = 300
    labels[3, 12, 20:22] = -2
    for pixel_type in (sitk.sitkUInt8, sitk.sitkInt16, sitk.sitkFloat32, sitk.sitkFloat64):
        mask = sitk.Cast(sitk.GetImageFromArray((labels == 7).astype(np.int16) * 5), pixel_type)
        mask.CopyInformation(ct)
        _assert_same_image(align_to_ct("lesion", mask, ct), sitk.Cast(sitk.NotEqual(mask, 0), sitk.sitkUInt8))
    label_map = sitk.GetImageFromArray(labels)
    label_map.CopyInformation(ct)
    sitk.WriteImage(label_map, str(tmp_path / "labels.nrrd"))
    lesions = load_lesions([tmp_path / "labels.nrrd"], ct)
    assert [lesion.lesion_id for lesion in lesions] == ["-2", "7", "300"]
    for lesion in lesions:
        _assert_same_image(lesion.mask, sitk.Equal(label_map, float(lesion.lesion_id)))
