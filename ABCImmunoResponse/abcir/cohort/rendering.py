"""Render a planned phantom patient to a CT (HU), tissue labels and one mask per target lesion.

Each tissue at a plausible portal-venous HU with a smooth texture; target lesions
whose appearance follows the hidden phenotype (enhancement, texture amplitude and
scale, rim enhancement, necrotic core, margin irregularity); the scanner's blur and
correlated noise last. Only the region around the lesions is rendered (the field of
view), so a patient takes a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..imaging.segfile import SITE_TAG, Segment
from ..patient.measurements import measure_lesion
from ..patient.recist import MIN_LONGEST_DIAMETER_MM, MIN_NODE_SHORT_AXIS_MM
from ..patient.sites import SITES
from .anatomy import HU_AIR, TISSUE_LABELS
from .lesion_plan import LesionPlan
from .phantom_plan import PhantomPlan
from .scanner import PSF_SIGMA_MM

HU_NECROSIS = 15.0  # necrotic core of a lesion (assumption, as the tissue HU in anatomy)
HU_MIN, HU_MAX = -1024, 3071  # what int16 CT stores
NOISE_KERNEL_TRUNCATE = 3.0  # Gaussian kernels of noise fields end at 3 sigma


@dataclass
class PhantomCT:
    """A rendered patient: HU voxels, tissue labels and one mask per target lesion, on one grid."""

    plan: PhantomPlan
    hu: np.ndarray  # int16, (z, y, x)
    tissue: np.ndarray  # uint8 TISSUE_LABELS, (z, y, x)
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # lesion id -> bool (z, y, x)

    def image(self) -> sitk.Image:
        """The CT as a SimpleITK image (LPS, identity direction)."""
        return _on_grid(sitk.GetImageFromArray(self.hu), self.plan)

    def segments(self) -> list[Segment]:
        """The target lesions as segments named ``<site>_<n>`` with the site in the segment tag."""
        return [Segment(segment_id=lesion.lesion_id, name=lesion.lesion_id,
                        mask=_on_grid(sitk.GetImageFromArray(self.masks[lesion.lesion_id].astype(np.uint8)),
                                      self.plan),
                        color=SITES[lesion.site].color, tags={SITE_TAG: lesion.site})
                for lesion in self.plan.lesions]


def _on_grid(image: sitk.Image, plan: PhantomPlan) -> sitk.Image:
    image.SetSpacing(plan.acquisition.spacing_mm)
    image.SetOrigin(plan.origin_mm)
    return image


def _axes(plan: PhantomPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcastable x (1,1,nx), y (1,ny,1), z (nz,1,1) coordinates in mm (float32)."""
    nx, ny, nz = plan.size
    sx, sy, sz = plan.acquisition.spacing_mm
    ox, oy, oz = plan.origin_mm
    return ((ox + sx * np.arange(nx, dtype=np.float32)).reshape(1, 1, nx),
            (oy + sy * np.arange(ny, dtype=np.float32)).reshape(1, ny, 1),
            (oz + sz * np.arange(nz, dtype=np.float32)).reshape(nz, 1, 1))


def _window(axes, bbox) -> tuple[slice, slice, slice] | None:
    """Array slices (z, y, x) of the grid inside a bbox (mm), or None when they do not meet."""
    if bbox is None:
        return (slice(None),) * 3
    slices = []
    for axis_values, low, high in zip((axes[2].ravel(), axes[1].ravel(), axes[0].ravel()),
                                      (bbox[0][2], bbox[0][1], bbox[0][0]), (bbox[1][2], bbox[1][1], bbox[1][0])):
        start = int(np.searchsorted(axis_values, low - 2.0))
        stop = int(np.searchsorted(axis_values, high + 2.0))
        if stop <= start:
            return None
        slices.append(slice(start, stop))
    return tuple(slices)


def _smooth_noise(rng: np.random.Generator, shape, sigma_voxels) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit SD (float32).

    The SD of filtered white noise is the product of the kernels' L2 norms (periodic
    boundary), which saves a pass over the volume.
    """
    sigmas = np.broadcast_to(np.asarray(sigma_voxels, dtype=float), (len(shape),))
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigmas, mode="wrap",
                                    truncate=NOISE_KERNEL_TRUNCATE)
    norm = 1.0
    for sigma in sigmas:
        if sigma > 0:
            offsets = np.arange(-int(NOISE_KERNEL_TRUNCATE * sigma + 0.5), int(NOISE_KERNEL_TRUNCATE * sigma + 0.5) + 1)
            kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
            norm *= float(np.sqrt(np.sum((kernel / kernel.sum()) ** 2)))
    return noise / np.float32(norm)


def _paint(hu, tissue, window, fraction, value, label: int) -> None:
    """Blend ``value`` into ``hu`` by ``fraction`` (partial volume), only where fraction > 0."""
    nonzero = [np.flatnonzero(fraction.any(axis=tuple(a for a in range(3) if a != axis))) for axis in range(3)]
    tight = tuple(slice(int(n[0]), int(n[-1]) + 1) if fraction.shape[axis] > 1 else slice(None)
                  for axis, n in enumerate(nonzero))
    fraction = fraction[tight]
    if np.ndim(value):
        value = np.broadcast_to(value, hu[window].shape)[tight]
    region = hu[window][tight]
    region += fraction * (value - region)
    tissue[window][tight][np.broadcast_to(fraction >= 0.5, region.shape)] = label


def render(plan: PhantomPlan, rng: np.random.Generator) -> PhantomCT:
    """Render the plan: anatomy, lesions, scanner blur and noise. Deterministic for a given RNG state.

    Parameters
    ----------
    plan : PhantomPlan
        The planned patient and its grid.
    rng : numpy.random.Generator
        The random stream that planned the patient, continued (textures and noise).

    Returns
    -------
    PhantomCT
        HU voxels (int16, clipped to ``HU_MIN``..``HU_MAX``), tissue labels and one mask per target lesion.
    """
    spacing = np.asarray(plan.acquisition.spacing_mm)
    shape = (plan.size[2], plan.size[1], plan.size[0])
    axes = _axes(plan)
    edge = float(spacing[0])
    hu = np.full(shape, HU_AIR, dtype=np.float32)
    tissue = np.zeros(shape, dtype=np.uint8)
    texture = _smooth_noise(rng, shape, 2.0 / spacing[::-1])
    for layer in plan.torso.layers():
        window = _window(axes, layer.bbox)
        if window is None:
            continue
        x, y, z = axes[0][..., window[2]], axes[1][:, window[1], :], axes[2][window[0], ...]
        fraction = np.clip(0.5 - layer.sdf(x, y, z) / edge, 0.0, 1.0).astype(np.float32)
        if not fraction.any():
            continue
        _paint(hu, tissue, window, fraction, layer.hu + layer.texture_hu * texture[window], layer.label)
    masks = {}
    for lesion in plan.lesions:
        masks[lesion.lesion_id] = _render_lesion(lesion, hu, tissue, axes, spacing, rng)
    # Scanner: blur (point spread) then correlated noise.
    hu = ndimage.gaussian_filter(hu, (0.4, PSF_SIGMA_MM / spacing[1], PSF_SIGMA_MM / spacing[0]))
    grain = plan.acquisition.noise_grain_mm / spacing[0]
    hu += plan.acquisition.noise_hu * _smooth_noise(rng, shape, (0.0, grain, grain))
    voxels = np.clip(np.rint(hu), HU_MIN, HU_MAX).astype(np.int16)
    return PhantomCT(plan, voxels, tissue, masks)


def _render_lesion(lesion: LesionPlan, hu, tissue, axes, spacing, rng) -> np.ndarray:
    """Paint one lesion into ``hu``/``tissue``; return its mask on the full grid."""
    reach = lesion.reach_mm
    center = np.asarray(lesion.center_mm)
    window = _window(axes, (tuple(center - reach), tuple(center + reach)))
    x = axes[0][..., window[2]] - center[0]
    y = axes[1][:, window[1], :] - center[1]
    z = axes[2][window[0], ...] - center[2]
    rotation = np.asarray(lesion.rotation, dtype=np.float32)
    # Coordinates along the lesion's own axes.
    q = [rotation[0, k] * x + rotation[1, k] * y + rotation[2, k] * z for k in range(3)]
    a, b, c = lesion.semi_axes_mm
    r = np.sqrt((q[0] / a) ** 2 + (q[1] / b) ** 2 + (q[2] / c) ** 2)
    length = np.sqrt(q[0] ** 2 + q[1] ** 2 + q[2] ** 2)
    u = np.stack([q[0], q[1], q[2]], axis=-1) / np.maximum(length, 1e-6)[..., None]
    lobes = _margin_modulation(u, lesion.bumps, lesion.bump_sharpness) / _lobe_scale(lesion.bumps,
                                                                                     lesion.bump_sharpness)
    rho = r / np.maximum(1.0 + lesion.appearance.irregularity * lobes, 0.6)
    distance = (rho - 1.0) * length / np.maximum(rho, 1e-6)  # mm to the margin along the ray
    fraction = np.clip(0.5 - distance / float(spacing[0]), 0.0, 1.0)
    look = lesion.appearance
    sigma = look.texture_scale_mm / spacing[::-1]
    texture = _smooth_noise(rng, fraction.shape, sigma)
    viable = look.enhancement_hu + look.texture_sd_hu * texture + look.rim_hu * np.exp(-((rho - 0.82) / 0.12) ** 2)
    core = look.necrosis_fraction ** (1.0 / 3.0)
    necrotic = np.clip((core - rho) / 0.08 + 0.5, 0.0, 1.0) if core > 0.05 else 0.0
    value = viable + necrotic * (HU_NECROSIS + 4.0 * texture - viable)
    _paint(hu, tissue, window, fraction.astype(np.float32), value.astype(np.float32), TISSUE_LABELS["lesion"])
    mask = np.zeros(hu.shape, dtype=bool)
    mask[window] = np.broadcast_to(fraction >= 0.5, mask[window].shape)
    return mask



def _margin_modulation(u: np.ndarray, bumps, sharpness: float) -> np.ndarray:
    """Unit-SD sum of lobes on the unit sphere, evaluated at directions u (..., 3)."""
    total = np.zeros(u.shape[:-1], dtype=np.float32)
    for dx, dy, dz, weight in bumps:
        total += weight * np.exp(sharpness * (u[..., 0] * dx + u[..., 1] * dy + u[..., 2] * dz - 1.0))
    return total


def _lobe_scale(bumps, sharpness: float) -> float:
    """SD of the lobe sum over the sphere, to scale it to unit SD."""
    golden = np.pi * (3.0 - np.sqrt(5.0))
    k = np.arange(400)
    zs = 1.0 - 2.0 * (k + 0.5) / 400
    radius = np.sqrt(1.0 - zs * zs)
    sphere = np.stack([radius * np.cos(golden * k), radius * np.sin(golden * k), zs], axis=1)
    return float(np.std(_margin_modulation(sphere, bumps, sharpness))) or 1.0

def check_targets(ct: PhantomCT) -> list[str]:
    """Lesions whose rendered size misses RECIST measurability (empty when all are fine).

    The plan draws sizes within RECIST's range; margins and partial volume can still
    shrink a rendered lesion, so tests measure it on the mask as a reader would.

    Parameters
    ----------
    ct : PhantomCT
        A rendered patient.

    Returns
    -------
    list of str
        One line per failing lesion with its measured size (mm): the short axis for a lymph
        node (< 15 mm), the longest axial diameter otherwise (< 10 mm).
    """
    problems = []
    for lesion in ct.plan.lesions:
        mask = _on_grid(sitk.GetImageFromArray(ct.masks[lesion.lesion_id].astype(np.uint8)), ct.plan)
        size = measure_lesion(mask)
        if SITES[lesion.site].lymph_node and size.short_axis_mm < MIN_NODE_SHORT_AXIS_MM:
            problems.append(f"{lesion.lesion_id}: short axis {size.short_axis_mm:.1f} mm")
        elif size.longest_axial_diameter_mm < MIN_LONGEST_DIAMETER_MM:
            problems.append(f"{lesion.lesion_id}: longest diameter {size.longest_axial_diameter_mm:.1f} mm")
    return problems
