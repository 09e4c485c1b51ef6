"""The region-only B-spline resampling is ITK's resampling of the whole image, voxel for voxel.

References are SimpleITK's own ``ResampleImageFilter`` (sitkBSpline) on the full
image and ``BSplineDecomposition``; pyradiomics' ``resampleImage`` for the grid.
The margin tests use the largest values of the pixel type with random signs
(no smooth image lets a crop's start-up error grow larger) and a float64 CT,
where no cast to integers can hide a difference; lowering the derived margin
makes them fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
import yaml
from radiomics import imageoperations

from abcir.features.resampling import (
    BSPLINE_DECAY_MARGIN,
    BSPLINE_POLE,
    _prefilter_lines,
    bspline_coefficients,
    resample_bspline,
    resample_nearest,
)
from abcir.features.resampling_grid import OutputGrid, mask_bounding_box, pyradiomics_grid
from abcir.resources import parameter_file

SETTINGS = yaml.safe_load(parameter_file().read_text())["setting"]


def itk_resample(image: sitk.Image, grid: OutputGrid) -> np.ndarray:
    resampler = sitk.ResampleImageFilter()
    resampler.SetOutputSpacing(grid.spacing)
    resampler.SetOutputDirection(grid.direction)
    resampler.SetSize(list(grid.size))
    resampler.SetOutputOrigin(grid.origin)
    resampler.SetOutputPixelType(image.GetPixelID())
    resampler.SetInterpolator(sitk.sitkBSpline)
    return sitk.GetArrayFromImage(resampler.Execute(image))


def random_rotation(rng: np.random.Generator) -> tuple[float, ...]:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return tuple(float(v) for v in q.ravel())


def test_the_margin_is_derived_not_chosen():
    # 324 R |z|^d <= 2^-64 R  <=>  d >= (64 ln 2 + ln 324) / ln(1 / |z|)
    assert BSPLINE_DECAY_MARGIN == math.ceil((64 * math.log(2) + math.log(324)) / -math.log(abs(BSPLINE_POLE))) == 39


@pytest.mark.parametrize("shape", [(20, 30, 40), (5, 17, 18), (19, 2, 61), (1, 7, 25), (3, 18, 19)])
def test_coefficients_are_itks(shape):
    rng = np.random.default_rng(sum(shape))
    data = rng.normal(0.0, 500.0, shape)
    expected = sitk.GetArrayFromImage(sitk.BSplineDecomposition(sitk.GetImageFromArray(data), 3))
    np.testing.assert_array_equal(bspline_coefficients(data, (slice(None),) * 3), expected)
    keep = tuple(slice(n // 3, n - n // 3) for n in shape)
    np.testing.assert_array_equal(bspline_coefficients(data, keep), expected[keep])


@pytest.mark.parametrize("seed", range(6))
def test_resampling_equals_itk_on_the_whole_image(seed):
    """Random spacing, origin, direction (oblique in odd seeds), pixel type; grids reaching outside the image."""
    rng = np.random.default_rng(seed)
    size = [int(n) for n in rng.integers(30, 90, 3)]
    pixel = [sitk.sitkInt16, sitk.sitkFloat32, sitk.sitkUInt8, sitk.sitkFloat64, sitk.sitkInt32, sitk.sitkInt16][seed]
    image = sitk.Cast(sitk.GetImageFromArray(rng.normal(60.0, 400.0, size[::-1])), pixel)
    image.SetSpacing(tuple(float(s) for s in rng.uniform(0.5, 2.5, 3)))
    image.SetOrigin(tuple(float(o) for o in rng.uniform(-300.0, 300.0, 3)))
    if seed % 2:
        image.SetDirection(random_rotation(rng))
    for _ in range(3):
        start = image.TransformContinuousIndexToPhysicalPoint([float(v) for v in rng.uniform(-4, 0.7 * np.array(size))])
        grid = OutputGrid(tuple(int(n) for n in rng.integers(8, 40, 3)), start, (1.0, 1.0, 1.0), image.GetDirection())
        got = sitk.GetArrayFromImage(resample_bspline(image, grid))
        np.testing.assert_array_equal(got, itk_resample(image, grid))


def extreme_ct(pixel: int) -> sitk.Image:
    """+-R with random signs, R near the largest value of the type: the prefilter's hardest input."""
    shape = (140, 150, 160)  # z, y, x
    sign = np.where(np.random.default_rng(7).random(shape) < 0.5, 1.0, -1.0)
    value = 30000.0 if pixel == sitk.sitkInt16 else 3.0e5
    image = sitk.Cast(sitk.GetImageFromArray(sign * value), pixel)
    image.SetSpacing((0.7, 0.7, 1.25))
    image.SetOrigin((-50.2, 31.7, -12.9))
    return image


def box_grid(image: sitk.Image, lower: tuple[int, ...], size: tuple[int, ...]) -> OutputGrid:
    mask = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(image)
    box = np.array([*lower, *size])
    return pyradiomics_grid(image, mask, box, SETTINGS)


# Bounding boxes (x, y, z lower; sizes) placing the crop's faces inside the volume (middle), on each of
# its borders, and in two opposite corners.
BOXES = {"middle": ((60, 60, 55), (30, 25, 20)), "low_corner": ((0, 0, 0), (12, 9, 6)),
         "high_corner": ((150, 140, 133), (10, 10, 7)), "x_high_face": ((148, 70, 60), (12, 8, 8)),
         "z_low_face": ((70, 80, 0), (9, 9, 4)), "y_high_face": ((40, 145, 60), (20, 5, 9))}


@pytest.mark.parametrize("pixel", [sitk.sitkFloat64, sitk.sitkInt16])
@pytest.mark.parametrize("where", list(BOXES))
def test_derived_margin_holds_in_the_worst_case(pixel, where):
    image = extreme_ct(pixel)
    grid = box_grid(image, *BOXES[where])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(resample_bspline(image, grid)), itk_resample(image, grid))


def test_a_smaller_margin_changes_values():
    """The test above can fail: an 8-voxel margin changes the resampled worst case."""
    image = extreme_ct(sitk.sitkFloat64)
    grid = box_grid(image, *BOXES["middle"])
    short = sitk.GetArrayFromImage(resample_bspline(image, grid, decay_margin=8))
    assert np.count_nonzero(short != itk_resample(image, grid)) > 100


def test_decay_bound_of_one_pass():
    """One prefilter pass changes a coefficient d voxels from a crop face by at most 12 R |z|^d.

    Worst case for the crop's mirror start: alternating +-1 (R = 1) whose phase
    flips at both crop faces, so the mirrored history is the true one negated.
    """
    n = np.arange(400)
    line = np.where(n % 2 == 0, 1.0, -1.0) * np.where((n < 100) | (n >= 300), -1.0, 1.0)
    line = line[:, None]
    full = _prefilter_lines(line.copy())
    crop = _prefilter_lines(line[100:300].copy())
    distance = np.minimum(np.arange(200), np.arange(199, -1, -1))
    bound = 12.0 * abs(BSPLINE_POLE) ** distance
    difference = np.abs(crop[:, 0] - full[100:300, 0])
    assert np.all(difference <= bound + 1e-15)
    assert difference[0] > 0.1 and np.all(difference[60:140] == 0)


def lesion_mask(image: sitk.Image, box: tuple[slice, ...]) -> sitk.Image:
    array = np.zeros(image.GetSize()[::-1], dtype=np.uint8)
    array[box] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(image)
    return mask


@pytest.mark.parametrize("box", [(slice(3, 9), slice(40, 60), slice(50, 70)),  # interior
                                 (slice(0, 3), slice(0, 8), slice(0, 5)),  # volume corner
                                 (slice(10, 11), slice(20, 35), slice(150, 160))])  # one slice, x border
def test_grid_mask_and_image_equal_pyradiomics(box):
    image = extreme_ct(sitk.sitkInt16)
    mask = lesion_mask(image, box)
    expected_image, expected_mask = imageoperations.resampleImage(image, sitk.Cast(mask, sitk.sitkUInt32), **SETTINGS)
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(mask)
    bounding_box = mask_bounding_box(mask)
    assert tuple(bounding_box) == statistics.GetBoundingBox(1)
    grid = pyradiomics_grid(image, mask, bounding_box, SETTINGS)
    got_image, got_mask = resample_bspline(image, grid), resample_nearest(mask, grid, sitk.sitkUInt32)
    for got, expected in ((got_image, expected_image), (got_mask, expected_mask)):
        assert (got.GetSize(), got.GetOrigin(), got.GetSpacing(), got.GetDirection(), got.GetPixelID()) == (
            expected.GetSize(), expected.GetOrigin(), expected.GetSpacing(), expected.GetDirection(),
            expected.GetPixelID())
        np.testing.assert_array_equal(sitk.GetArrayFromImage(got), sitk.GetArrayFromImage(expected))


def test_no_grid_when_the_ct_already_has_the_spacing():
    image = sitk.Image(40, 40, 40, sitk.sitkInt16)
    mask = lesion_mask(image, (slice(10, 20),) * 3)
    assert pyradiomics_grid(image, mask, mask_bounding_box(mask), SETTINGS) is None
    assert mask_bounding_box(sitk.Image(5, 5, 5, sitk.sitkUInt8)) is None
