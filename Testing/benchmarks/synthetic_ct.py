"""A synthetic CT with textured lesions, of any size, for benchmarks and the extraction tests.

Generated, not patient data. A body of fat and soft tissue in air, smooth tissue
texture and noise, and lesions with heterogeneous enhancement and a necrotic
core, so that the images give texture matrices with realistic numbers of gray
levels (a noise-free phantom would make pyradiomics' texture classes
unrealistically cheap). Everything depends only on the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

FULL_SIZE = (512, 512, 300)  # x, y, z voxels
FULL_SPACING = (0.7, 0.7, 1.25)  # mm
ORIGIN = (-179.3, -180.1, -370.0)


@dataclass(frozen=True)
class PlacedLesion:
    """A lesion drawn into the CT: its binary mask on the CT grid (uint8) and where it is."""

    name: str
    mask: sitk.Image
    center_index: tuple[int, int, int]  # x, y, z
    voxel_count: int


def _texture(shape: tuple[int, ...], rng: np.random.Generator, scale_voxels: float) -> np.ndarray:
    """Smooth noise of unit SD varying over about ``scale_voxels`` (linear interpolation of coarse noise)."""
    coarse = [max(2, int(math.ceil(n / scale_voxels)) + 1) for n in shape]
    field = rng.standard_normal(coarse, dtype=np.float32)
    zoomed = ndimage.zoom(field, [n / c for n, c in zip(shape, coarse)], order=1)
    return zoomed[tuple(slice(0, n) for n in shape)] / 0.55


def synthetic_ct(size: tuple[int, int, int] = FULL_SIZE, spacing: tuple[float, float, float] = FULL_SPACING,
                 seed: int = 0, direction: tuple[float, ...] | None = None,
                 pixel_type: int = sitk.sitkInt16) -> sitk.Image:
    """A body-shaped CT (int16 HU by default) of ``size`` (x, y, z) voxels."""
    rng = np.random.default_rng(seed)
    nx, ny, nz = size
    array = rng.standard_normal((nz, ny, nx), dtype=np.float32)
    array *= 15.0
    array += 20.0 * _texture((nz, ny, nx), rng, 10.0)
    yy, xx = np.ogrid[:ny, :nx]
    ry, rx = (yy - ny / 2) / (0.42 * ny), (xx - nx / 2) / (0.48 * nx)
    body = ry ** 2 + rx ** 2 < 1
    inner = (ry / 0.86) ** 2 + (rx / 0.88) ** 2 < 1
    array += np.where(body, np.where(inner, 45.0, -100.0), -1000.0).astype(np.float32)[None]
    np.clip(array, -1024, 3071, out=array)
    image = sitk.Cast(sitk.GetImageFromArray(array), pixel_type)
    image.SetSpacing(spacing)
    image.SetOrigin(ORIGIN)
    if direction is not None:
        image.SetDirection(direction)
    return image


def radius_for_voxels(voxels: int, spacing: tuple[float, float, float]) -> float:
    """Radius (mm) of a sphere holding about ``voxels`` voxels of ``spacing``."""
    return (3.0 * voxels * float(np.prod(spacing)) / (4.0 * math.pi)) ** (1.0 / 3.0)


def add_lesion(ct: sitk.Image, name: str, center_index: tuple[int, int, int], radius_mm: float,
               seed: int) -> tuple[sitk.Image, PlacedLesion]:
    """Draw a textured lesion into ``ct`` (returns a new CT) and return its mask (cut at the volume's edges)."""
    rng = np.random.default_rng(seed)
    array = sitk.GetArrayFromImage(ct)
    spacing = ct.GetSpacing()
    cx, cy, cz = center_index
    reach = [int(math.ceil(1.3 * radius_mm / s)) + 2 for s in spacing]
    region = tuple(slice(max(0, c - r), min(n, c + r + 1))
                   for c, r, n in zip((cz, cy, cx), reach[::-1], array.shape))
    zz, yy, xx = np.ogrid[region]
    distance = np.sqrt(((zz - cz) * spacing[2]) ** 2 + ((yy - cy) * spacing[1]) ** 2 + ((xx - cx) * spacing[0]) ** 2)
    shape = distance.shape
    outline = radius_mm * (1.0 + 0.12 * _texture(shape, rng, 8.0))
    inside = distance <= outline
    tissue = 75.0 + 35.0 * _texture(shape, rng, 3.0) + rng.normal(0.0, 12.0, shape)
    tissue = np.where(distance < 0.4 * radius_mm, 15.0 + rng.normal(0.0, 10.0, shape), tissue)
    local = array[region]
    local[inside] = np.clip(tissue[inside], -1024, 3071).astype(array.dtype)
    mask_array = np.zeros(array.shape, dtype=np.uint8)
    mask_array[region][inside] = 1
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(ct)
    mask = sitk.GetImageFromArray(mask_array)
    mask.CopyInformation(ct)
    return result, PlacedLesion(name, mask, center_index, int(inside.sum()))
