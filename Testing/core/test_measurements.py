"""RECIST diameters measured from masks, in mm, against shapes whose size is known."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.measurements import measure_lesion


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
