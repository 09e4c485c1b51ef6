"""The numpy mesh coefficients are pyradiomics' C ones (``_cshape.calculate_coefficients``) to the bit."""

from __future__ import annotations

import numpy as np
import pytest
from radiomics import cShape
from scipy import ndimage

from abcir.features.shape_mesh import mesh_coefficients

UNIT = np.array([1.0, 1.0, 1.0])


def masks(seed: int):
    """Noise, smooth blobs, ellipsoids, boxes, one-voxel-thin plates and lines, single voxels."""
    rng = np.random.default_rng(seed)
    for trial in range(40):
        shape = tuple(int(n) for n in rng.integers(2, 26, 3))
        kind = trial % 6
        if kind == 0:
            mask = rng.random(shape) < 0.5
        elif kind == 1:
            mask = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.5
        elif kind == 2:
            grid = np.indices(shape) - (np.array(shape) / 2)[:, None, None, None]
            mask = ((grid / (np.array(shape) / 2)[:, None, None, None]) ** 2).sum(axis=0) < 0.9
        elif kind == 3:
            mask = np.zeros(shape, dtype=bool)
            mask[1:, 2:, :-1] = True
        elif kind == 4:
            mask = np.zeros(shape, dtype=bool)
            mask[shape[0] // 2, :, rng.integers(0, shape[2])] = True  # a line
            mask[:, shape[1] // 2, :] |= rng.random((shape[0], shape[2])) < 0.7  # a ragged plate
        else:
            mask = np.zeros(shape, dtype=bool)
            mask[tuple(rng.integers(0, n) for n in shape)] = True
        yield np.pad(mask, 1)


@pytest.mark.parametrize("seed", range(3))
def test_same_doubles_as_pyradiomics(seed):
    for mask in masks(seed):
        area, volume, diameters = cShape.calculate_coefficients(mask, UNIT)
        got = mesh_coefficients(mask, UNIT)
        assert got == (area, volume, tuple(diameters)), mask.shape


def test_a_large_irregular_lesion():
    rng = np.random.default_rng(9)
    radius = 30
    grid = np.indices((2 * radius + 3,) * 3) - radius - 1
    bumps = ndimage.gaussian_filter(rng.random(grid.shape[1:]), 3) * 6
    mask = np.pad((grid ** 2).sum(axis=0) < (radius + bumps - 3) ** 2, 1)
    area, volume, diameters = cShape.calculate_coefficients(mask, UNIT)
    assert mesh_coefficients(mask, UNIT) == (area, volume, tuple(diameters))


def test_other_spacings_are_left_to_pyradiomics():
    mask = np.pad(np.ones((3, 3, 3), dtype=bool), 1)
    assert mesh_coefficients(mask, np.array([1.25, 1.0, 1.0])) is None
