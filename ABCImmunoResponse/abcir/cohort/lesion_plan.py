"""One target lesion of the phantom before it is placed and rendered: its look, size and margin.

Every phenotype mapping below is an assumption of this generator, documented in
docs/synthetic_cohort.md; none is measured from patients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from ..patient.sites import SITES

# How the hidden phenotype z (abcir.cohort.patients; high z = likely responder) shows
# in a lesion. Invented for this generator, loosely after the radiology of response to
# immunotherapy (well-enhancing, homogeneous, smooth, non-necrotic lesions in responders;
# heterogeneous, rim-enhancing, necrotic, irregular ones in non-responders). Each lesion
# sees z plus its own deviation, and every attribute has its own noise, so no single
# feature reveals z.
LESION_PHENOTYPE_SD = 0.35  # lesion-to-lesion deviation of z within a patient
ENHANCEMENT_HU_PER_Z = 10.0
ENHANCEMENT_NOISE_HU = 6.0
TEXTURE_SD_HU = (14.0, 0.30)  # (at z = 0, log change per unit of -z)
TEXTURE_SCALE_MM = (2.0, 0.25)
RIM_HU_MAX = 35.0
NECROSIS_MAX_FRACTION = 0.45
IRREGULARITY = (0.03, 0.10)  # relative SD of the radius: (smooth floor, added by aggressiveness)
# Base enhancement of viable tumour by site, portal-venous phase (assumption).
SITE_ENHANCEMENT_HU = {
    "liver": 45.0, "lung": 40.0, "pleura": 40.0, "adrenal": 40.0, "lymph_node": 45.0,
    "bone": 55.0, "breast": 50.0, "chest_wall": 50.0,
}
# Longest axial diameter (mm): log-normal around a median, clipped to RECIST's measurable
# range and the generator's 10-60 mm; lymph nodes are drawn by their short axis.
DIAMETER_MEDIAN_MM = 24.0
DIAMETER_LOG_SD = 0.4
DIAMETER_RANGE_MM = (12.0, 55.0)
SITE_MAX_DIAMETER_MM = {"adrenal": 40.0, "pleura": 45.0, "lung": 50.0, "breast": 45.0}
NODE_SHORT_AXIS_MM = (17.0, 30.0)


@dataclass(frozen=True)
class LesionAppearance:
    """What a lesion looks like; drawn from the hidden phenotype."""

    enhancement_hu: float
    texture_sd_hu: float
    texture_scale_mm: float
    rim_hu: float
    necrosis_fraction: float  # of the lesion's volume
    irregularity: float  # relative SD of the radius


@dataclass(frozen=True)
class LesionPlan:
    """One target lesion before rendering: site, geometry (mm, LPS) and appearance."""

    lesion_id: str
    site: str
    center_mm: tuple[float, float, float]
    semi_axes_mm: tuple[float, float, float]  # along the rotated x, y, z axes
    rotation: tuple[tuple[float, ...], ...]  # 3x3, columns = lesion axes in LPS
    appearance: LesionAppearance
    bumps: tuple[tuple[float, float, float, float], ...]  # (unit direction, weight) of margin lobes
    bump_sharpness: float

    # What RECIST's select_targets reads (planned sizes; the rendered sizes are checked).
    @property
    def longest_axial_diameter_mm(self) -> float:
        """Planned longest axial diameter (mm): twice the larger in-plane semi-axis."""
        return 2.0 * max(self.semi_axes_mm[0], self.semi_axes_mm[1])

    @property
    def short_axis_mm(self) -> float:
        """Planned short axis (mm): twice the smaller in-plane semi-axis."""
        return 2.0 * min(self.semi_axes_mm[0], self.semi_axes_mm[1])

    @property
    def reach_mm(self) -> float:
        """Radius of a sphere that holds the lesion with its lobes."""
        return max(self.semi_axes_mm) * (1.0 + 3.0 * self.appearance.irregularity)


def draw_appearance(z: float, site: str, diameter_mm: float, contrast_offset_hu: float,
                    rng: np.random.Generator) -> LesionAppearance:
    """A lesion's look from the patient's hidden phenotype z (see the constants above).

    Parameters
    ----------
    z : float
        The patient's hidden phenotype (SD units; high z = likely responder); each lesion
        adds its own deviation (``LESION_PHENOTYPE_SD``).
    site : str
        Site key of ``abcir.patient.sites.SITES``; sets the base enhancement.
    diameter_mm : float
        Longest axial diameter (mm); small lesions rarely necrose.
    contrast_offset_hu : float
        Enhancement shift (HU) of the scan's contrast timing.
    rng : numpy.random.Generator
        The patient's random stream.

    Returns
    -------
    LesionAppearance
        Enhancement, texture SD and rim in HU, texture scale in mm, necrotic fraction and
        margin irregularity (relative radius SD).

    Raises
    ------
    KeyError
        When ``site`` is not a site of ``abcir.patient.sites.SITES``.
    """
    zl = z + rng.normal(0.0, LESION_PHENOTYPE_SD)
    aggressive = -zl
    size_factor = float(np.clip((diameter_mm - 10.0) / 25.0, 0.2, 1.0))  # small lesions rarely necrose
    irregularity = IRREGULARITY[0] + IRREGULARITY[1] * expit(1.5 * aggressive - 0.3)
    if SITES[site].lymph_node:
        irregularity = min(irregularity, 0.05)  # nodes stay oval (and keep their short axis)
    return LesionAppearance(
        enhancement_hu=float(SITE_ENHANCEMENT_HU[site] + contrast_offset_hu + ENHANCEMENT_HU_PER_Z * zl
                             + rng.normal(0.0, ENHANCEMENT_NOISE_HU)),
        texture_sd_hu=float(TEXTURE_SD_HU[0] * math.exp(TEXTURE_SD_HU[1] * aggressive + rng.normal(0.0, 0.15))),
        texture_scale_mm=float(TEXTURE_SCALE_MM[0] * math.exp(TEXTURE_SCALE_MM[1] * aggressive
                                                              + rng.normal(0.0, 0.15))),
        rim_hu=float(max(0.0, RIM_HU_MAX * expit(1.5 * aggressive - 0.5) + rng.normal(0.0, 4.0))),
        necrosis_fraction=float(NECROSIS_MAX_FRACTION * expit(1.8 * aggressive - 1.0) * size_factor
                                * rng.uniform(0.7, 1.0)),
        irregularity=float(irregularity * rng.uniform(0.8, 1.2)),
    )

def _draw_size(site: str, rng: np.random.Generator) -> tuple[float, float, float]:
    """Semi-axes (mm) of a lesion at ``site``: (in-plane long, in-plane short, craniocaudal)."""
    if SITES[site].lymph_node:
        short = rng.uniform(*NODE_SHORT_AXIS_MM) / 2.0
        long = min(short * rng.uniform(1.1, 1.6), 25.0)
        return long, short, long * rng.uniform(0.8, 1.2)
    high = min(DIAMETER_RANGE_MM[1], SITE_MAX_DIAMETER_MM.get(site, DIAMETER_RANGE_MM[1]))
    diameter = float(np.clip(DIAMETER_MEDIAN_MM * math.exp(rng.normal(0.0, DIAMETER_LOG_SD)),
                             DIAMETER_RANGE_MM[0], high))
    flat = {"pleura": (0.35, 0.55), "chest_wall": (0.5, 0.7)}.get(site, (0.65, 0.95))
    a = diameter / 2.0
    return a, a * rng.uniform(*flat), a * rng.uniform(0.6, 1.0)

def _draw_bumps(rng: np.random.Generator, irregularity: float) -> tuple[tuple[tuple[float, ...], ...], float]:
    """Margin lobes: more and sharper ones for more irregular lesions."""
    n = 4 + int(round(60.0 * irregularity))
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    weights = rng.normal(size=n)
    sharpness = 3.0 + 60.0 * irregularity
    return tuple((*map(float, d), float(w)) for d, w in zip(directions, weights)), float(sharpness)


def draw_lesion(lesion_id: str, site: str, phenotype: float, contrast_offset_hu: float,
                rng: np.random.Generator) -> LesionPlan:
    """A candidate lesion at ``site``, centred at the origin and unrotated until it is placed.

    Size, look and margin lobes are drawn in this order from ``rng``.

    Parameters
    ----------
    lesion_id : str
        Provisional id, ``<site>_<n>``; lesions are renumbered once placed.
    site : str
        Site key of ``abcir.patient.sites.SITES``.
    phenotype : float
        The patient's hidden phenotype z (SD units; high z = likely responder).
    contrast_offset_hu : float
        Enhancement shift (HU) of the scan's contrast timing.
    rng : numpy.random.Generator
        The patient's random stream.

    Returns
    -------
    LesionPlan
        The lesion with centre (0, 0, 0) mm and the identity rotation.

    Raises
    ------
    KeyError
        When ``site`` is not a site of ``abcir.patient.sites.SITES``.
    """
    semi = _draw_size(site, rng)
    appearance = draw_appearance(phenotype, site, 2.0 * semi[0], contrast_offset_hu, rng)
    bumps, sharpness = _draw_bumps(rng, appearance.irregularity)
    return LesionPlan(lesion_id, site, (0.0, 0.0, 0.0), semi, tuple(map(tuple, np.eye(3))), appearance, bumps,
                      sharpness)
