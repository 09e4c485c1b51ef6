"""A synthetic contrast-enhanced CT of a torso region with target lesions (generated, not patient data).

The torso is a set of analytic shapes given as signed distance functions (SDF, mm,
negative inside) in patient LPS coordinates, origin at the body's centre at the
height of the right diaphragm dome (x to the patient's left, y posterior, z
superior). The same shapes answer "which tissue is here?" when lesions are placed
and are painted, with a one-voxel partial-volume ramp, when the CT is rendered.

Rendering: each tissue at a plausible portal-venous HU with a smooth texture; target
lesions whose appearance follows the hidden phenotype (enhancement, texture
amplitude and scale, rim enhancement, necrotic core, margin irregularity); the
scanner's blur and correlated noise last. Only the region around the lesions is
rendered (the field of view), so a patient takes a fraction of a second.

Every HU value and phenotype mapping below is an assumption of this generator,
documented in docs/synthetic_cohort.md; none is measured from patients.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.special import expit

from ..measurements import measure_lesion
from ..recist import MIN_LONGEST_DIAMETER_MM, MIN_NODE_SHORT_AXIS_MM, select_targets
from ..segfile import SITE_TAG, Segment
from ..sites import SITES
from .clinical_model import SyntheticPatient

# --- Tissue labels of the phantom (returned with the CT for tests and inspection) --------
TISSUE_LABELS: dict[str, int] = {
    "air": 0, "fat": 1, "muscle": 2, "bone": 3, "lung": 4, "liver": 5, "blood": 6,
    "spleen": 7, "stomach": 8, "soft_tissue": 9, "lesion": 10,
}
_T = TISSUE_LABELS

# --- Tissue HU, portal-venous phase (typical textbook values; assumptions) ------------------
HU_AIR = -1000.0
HU_FAT = -100.0
HU_MUSCLE = 50.0
HU_LUNG = -850.0
HU_LIVER = 60.0
HU_BLOOD = 160.0
HU_MYOCARDIUM = 100.0
HU_SPLEEN = 105.0
HU_STOMACH_CONTENT = 20.0
HU_GLANDULAR = 25.0
HU_ADRENAL = 40.0
HU_KIDNEY = 150.0
HU_CORTICAL_BONE = 700.0
HU_CANCELLOUS_BONE = 230.0
HU_RIB = 450.0
HU_DISC = 80.0
HU_CSF = 10.0
HU_NECROSIS = 15.0
HU_MIN, HU_MAX = -1024, 3071  # what int16 CT stores


@dataclass(frozen=True)
class Scanner:
    """One generated centre's CT protocol: voxel spacing and noise as in Table S1 (assumed detail)."""

    center: str
    stands_for: str  # the paper's scanners this centre imitates (Table S1)
    in_plane_mm: tuple[float, float]  # uniform range; 512 matrix over a 310-500 mm field of view
    slice_mm: tuple[float, ...]  # reconstructed slice spacings (Table S1: 1, 1.25, 1.5, 2 mm)
    slice_probability: tuple[float, ...]
    noise_hu: tuple[float, float]  # SD of noise in water, uniform range
    noise_grain_mm: float  # in-plane correlation of the noise (reconstruction kernel)
    contrast_offset_hu: float  # enhancement shift from contrast timing


SCANNERS: dict[str, Scanner] = {
    "center_A": Scanner("center_A", "GE Discovery CT750HD / Revolution EVO; Siemens SOMATOM Force",
                        (0.66, 0.86), (1.0, 1.25), (0.3, 0.7), (10.0, 14.0), 0.6, 0.0),
    "center_B": Scanner("center_B", "United Imaging uCT780 / uCT960+; GE Discovery CT750HD / Revolution CT; "
                        "Siemens SOMATOM Force", (0.70, 0.98), (1.25, 1.5, 2.0), (0.5, 0.3, 0.2),
                        (12.0, 18.0), 0.8, 6.0),
    "center_C": Scanner("center_C", "Philips IQon Spectral CT; Toshiba Aquilion PRIME",
                        (0.60, 0.80), (1.0, 1.5, 2.0), (0.4, 0.3, 0.3), (8.0, 11.0), 1.1, -6.0),
}
PSF_SIGMA_MM = 0.5  # in-plane blur of the scanner; along z 0.4 slice spacings


@dataclass(frozen=True)
class Acquisition:
    """The scan drawn for one patient."""

    spacing_mm: tuple[float, float, float]  # x, y, z
    noise_hu: float
    noise_grain_mm: float
    contrast_offset_hu: float


def draw_acquisition(center: str, rng: np.random.Generator) -> Acquisition:
    """Spacing and noise for a scan at ``center``."""
    scanner = SCANNERS[center]
    in_plane = round(float(rng.uniform(*scanner.in_plane_mm)), 4)
    slice_mm = float(rng.choice(scanner.slice_mm, p=scanner.slice_probability))
    return Acquisition((in_plane, in_plane, slice_mm), float(rng.uniform(*scanner.noise_hu)),
                       scanner.noise_grain_mm, scanner.contrast_offset_hu)


# --- Signed distance primitives (mm; broadcasting numpy arrays) -----------------------------

def _ellipse_sdf(x, y, cx: float, cy: float, ax: float, ay: float):
    """First-order signed distance to an axis-aligned ellipse (elliptic cylinder along z)."""
    qx, qy = (x - cx) / ax, (y - cy) / ay
    r = np.sqrt(qx * qx + qy * qy)
    g = np.sqrt((qx / ax) ** 2 + (qy / ay) ** 2)
    return (r - 1.0) * r / np.maximum(g, 1e-6)


def _ellipsoid_sdf(x, y, z, center, semi):
    """First-order signed distance to an axis-aligned ellipsoid."""
    qx, qy, qz = (x - center[0]) / semi[0], (y - center[1]) / semi[1], (z - center[2]) / semi[2]
    r = np.sqrt(qx * qx + qy * qy + qz * qz)
    g = np.sqrt((qx / semi[0]) ** 2 + (qy / semi[1]) ** 2 + (qz / semi[2]) ** 2)
    return (r - 1.0) * r / np.maximum(g, 1e-6)


def _capsule_sdf(x, y, z, start, end, radius: float):
    """Signed distance to a cylinder with round ends from ``start`` to ``end`` (a vessel)."""
    a = np.asarray(start, dtype=float)
    axis = np.asarray(end, dtype=float) - a
    length2 = float(axis @ axis)
    px, py, pz = x - a[0], y - a[1], z - a[2]
    t = np.clip((px * axis[0] + py * axis[1] + pz * axis[2]) / length2, 0.0, 1.0)
    dx, dy, dz = px - t * axis[0], py - t * axis[1], pz - t * axis[2]
    return np.sqrt(dx * dx + dy * dy + dz * dz) - radius


def _intersection(*sdfs):
    """Signed distance of the intersection of shapes (broadcasting their arrays)."""
    return functools.reduce(np.maximum, sdfs)


def _periodic_sdf(coordinate, period: float, half_width: float):
    """Distance to the nearest of stripes of width 2*half_width repeating every ``period`` mm."""
    phase = np.mod(coordinate / period + 0.5, 1.0) - 0.5
    return np.abs(phase) * period - half_width


@dataclass(frozen=True)
class Layer:
    """One tissue shape painted over the earlier ones: SDF, HU, label and where it can be."""

    name: str
    label: int
    sdf: Callable
    hu: float
    texture_hu: float = 0.0  # SD of the tissue's smooth texture
    bbox: tuple[tuple[float, ...], tuple[float, ...]] | None = None  # (min xyz, max xyz) mm; None = anywhere


def _vessel_tree(rng: np.random.Generator, root, n_trunks: int, length: tuple[float, float],
                 radius: tuple[float, float], spread) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Random two-generation vessel segments (start, end, radius) from ``root``."""
    segments = []
    root = np.asarray(root, dtype=float)
    for _ in range(n_trunks):
        direction = rng.normal(size=3) * spread
        direction /= np.linalg.norm(direction)
        end = root + direction * rng.uniform(*length)
        trunk_radius = rng.uniform(*radius)
        segments.append((root, end, trunk_radius))
        for _ in range(2):
            branch = direction + rng.normal(scale=0.6, size=3)
            branch /= np.linalg.norm(branch)
            segments.append((end, end + branch * rng.uniform(*length) * 0.6, trunk_radius * 0.6))
    return segments


@dataclass(frozen=True)
class Torso:
    """One patient's body: sizes and organ positions (mm) that vary between patients."""

    half_width: float
    half_depth: float
    fat_mm: float
    muscle_mm: float
    organ_shift: tuple[float, float, float]  # liver, heart, stomach, spleen move together
    dome_shift: float  # diaphragm height (breathing, habitus)
    enhancement_hu: float  # shift of enhancing tissues: contrast timing at this scan
    breasts: tuple[bool, bool]  # (right, left) present; absent after mastectomy
    lung_vessels: tuple = ()
    liver_vessels: tuple = ()

    # Derived landmarks -------------------------------------------------------------------
    @property
    def cavity(self) -> tuple[float, float, float, float]:
        """Ellipse (cx, cy, ax, ay) of the thoraco-abdominal cavity; the back wall is thicker (spine)."""
        ax = self.half_width - self.fat_mm - self.muscle_mm
        ay = self.half_depth - self.fat_mm - self.muscle_mm - 12.0
        return 0.0, -12.0, ax, ay

    @property
    def spine_y(self) -> float:
        """y of the vertebral body's centre: just inside the cavity's back."""
        _, cy, _, ay = self.cavity
        return cy + ay - 15.0

    def cavity_sdf(self, x, y):
        return _ellipse_sdf(x, y, *self.cavity)

    def dome(self, x, y):
        """Height (z, mm) of the diaphragm: right dome higher, recesses lower laterally and behind."""
        back = 30.0 * ((y + 5.0) / 85.0) ** 2
        right = 2.0 - 42.0 * ((x + 60.0) / 80.0) ** 2 - back
        left = -12.0 - 42.0 * ((x - 60.0) / 80.0) ** 2 - back
        return np.maximum(right, left) + self.dome_shift

    def heart(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        sx, sy, sz = self.organ_shift
        return (15.0 + sx, -25.0 + sy, 48.0 + sz + self.dome_shift), (60.0, 48.0, 52.0)

    def mediastinum_sdf(self, x, y):
        """The space between the lungs, from the sternum to the spine."""
        _, cy, _, ay = self.cavity
        front, back = cy - ay, self.spine_y
        return _ellipse_sdf(x, y, 5.0, (front + back) / 2.0, 30.0, (back - front) / 2.0 + 5.0)

    def lung_sdf(self, x, y, z):
        center, semi = self.heart()
        return _intersection(
            self.cavity_sdf(x, y), self.dome(x, y) - z, -self.mediastinum_sdf(x, y),
            -(_ellipsoid_sdf(x, y, z, center, semi) - 3.0),
        )

    def below_dome_sdf(self, x, y, z):
        return np.maximum(self.cavity_sdf(x, y), z - self.dome(x, y) + 2.0)

    def liver_sdf(self, x, y, z):
        sx, sy, sz = self.organ_shift
        shape = _ellipsoid_sdf(x, y, z, (-40.0 + sx, 0.0 + sy, -55.0 + sz + self.dome_shift), (100.0, 88.0, 85.0))
        return np.maximum(shape, self.below_dome_sdf(x, y, z))

    def breast(self, side: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes of the right (side 0) or left (side 1) breast."""
        sign = -1.0 if side == 0 else 1.0
        return (sign * 80.0, -self.half_depth + 10.0, 40.0), (70.0, 48.0, 62.0)

    def breast_sdf(self, side: int, x, y, z):
        center, semi = self.breast(side)
        return np.maximum(_ellipsoid_sdf(x, y, z, center, semi), y + self.half_depth - 40.0)

    # The painting order ------------------------------------------------------------------
    def layers(self) -> list[Layer]:
        """Every tissue shape, in painting order (later layers cover earlier ones)."""
        sx, sy, sz = self.organ_shift
        vy = self.spine_y
        dome_z = self.dome_shift
        heart_center, heart_semi = self.heart()
        e = self.enhancement_hu
        layers = [
            Layer("body", _T["fat"], lambda x, y, z: _ellipse_sdf(x, y, 0.0, 0.0, self.half_width, self.half_depth),
                  HU_FAT, 8.0),
        ]
        for side in (0, 1):
            if self.breasts[side]:
                center, semi = self.breast(side)
                gland_center = (center[0], center[1] - 12.0, center[2])
                layers += [
                    Layer(f"breast_{side}", _T["fat"], lambda x, y, z, s=side: self.breast_sdf(s, x, y, z),
                          HU_FAT, 8.0, _box(center, semi)),
                    Layer(f"gland_{side}", _T["soft_tissue"],
                          lambda x, y, z, c=gland_center: np.maximum(
                              _ellipsoid_sdf(x, y, z, c, (42.0, 26.0, 38.0)), y + self.half_depth - 30.0),
                          HU_GLANDULAR, 35.0, _box(gland_center, (42.0, 26.0, 38.0))),
                ]
        mw, md = self.half_width - self.fat_mm, self.half_depth - self.fat_mm
        layers += [
            Layer("muscle", _T["muscle"], lambda x, y, z: _ellipse_sdf(x, y, 0.0, 0.0, mw, md), HU_MUSCLE, 6.0),
            Layer("cavity", _T["fat"], lambda x, y, z: self.cavity_sdf(x, y), HU_FAT + 10.0, 8.0),
            Layer("lung", _T["lung"], self.lung_sdf, HU_LUNG, 20.0),
        ]
        for index, (start, end, radius) in enumerate(self.lung_vessels):
            layers.append(Layer(f"lung_vessel_{index}", _T["blood"],
                                lambda x, y, z, a=start, b=end, r=radius: np.maximum(
                                    _capsule_sdf(x, y, z, a, b, r), self.lung_sdf(x, y, z)),
                                HU_BLOOD + e - 40.0, 10.0, _segment_box(start, end, radius)))
        layers += [
            Layer("myocardium", _T["soft_tissue"], lambda x, y, z: _ellipsoid_sdf(x, y, z, heart_center, heart_semi),
                  HU_MYOCARDIUM + e, 5.0, _box(heart_center, heart_semi)),
            Layer("heart_blood", _T["blood"], lambda x, y, z: _ellipsoid_sdf(
                x, y, z, heart_center, tuple(0.72 * s for s in heart_semi)), HU_BLOOD + e, 5.0,
                _box(heart_center, heart_semi)),
            Layer("liver", _T["liver"], self.liver_sdf, HU_LIVER + e, 5.0),
        ]
        for index, (start, end, radius) in enumerate(self.liver_vessels):
            layers.append(Layer(f"liver_vessel_{index}", _T["blood"],
                                lambda x, y, z, a=start, b=end, r=radius: np.maximum(
                                    _capsule_sdf(x, y, z, a, b, r), self.liver_sdf(x, y, z)),
                                HU_LIVER + e + 70.0, 5.0, _segment_box(start, end, radius)))
        stomach = ((55.0 + sx, -25.0 + sy, -55.0 + sz + dome_z), (45.0, 40.0, 42.0))
        spleen = ((95.0 + sx, 45.0 + sy, -55.0 + sz + dome_z), (32.0, 26.0, 48.0))
        kidneys = [((-65.0, vy + 5.0, -150.0), (30.0, 25.0, 50.0)), ((65.0, vy + 5.0, -140.0), (30.0, 25.0, 50.0))]
        adrenals = [((-30.0, vy - 5.0, -92.0), (10.0, 3.5, 14.0)), ((30.0, vy - 8.0, -90.0), (10.0, 3.5, 14.0))]
        layers += [
            Layer("stomach", _T["stomach"], lambda x, y, z: np.maximum(
                _ellipsoid_sdf(x, y, z, *stomach), self.below_dome_sdf(x, y, z)), HU_STOMACH_CONTENT, 4.0,
                _box(*stomach)),
            Layer("stomach_gas", _T["air"], lambda x, y, z: _intersection(
                _ellipsoid_sdf(x, y, z, *stomach), self.below_dome_sdf(x, y, z),
                stomach[0][2] + 20.0 - z), HU_AIR, 0.0, _box(*stomach)),
            Layer("spleen", _T["spleen"], lambda x, y, z: np.maximum(
                _ellipsoid_sdf(x, y, z, *spleen), self.below_dome_sdf(x, y, z)), HU_SPLEEN + e, 5.0, _box(*spleen)),
        ]
        for index, organ in enumerate(kidneys):
            layers.append(Layer(f"kidney_{index}", _T["soft_tissue"],
                                lambda x, y, z, o=organ: _ellipsoid_sdf(x, y, z, *o), HU_KIDNEY + e, 8.0, _box(*organ)))
        for index, organ in enumerate(adrenals):
            layers.append(Layer(f"adrenal_{index}", _T["soft_tissue"],
                                lambda x, y, z, o=organ: _ellipsoid_sdf(x, y, z, *o), HU_ADRENAL, 5.0, _box(*organ)))
        layers += [
            _column("aorta", _T["blood"], (18.0, vy - 18.0, 12.0, 12.0), HU_BLOOD + e + 10.0, 4.0),
            _column("ivc", _T["blood"], (-25.0, vy - 25.0, 11.0, 11.0), HU_BLOOD + e - 30.0, 4.0,
                    z_range=(-_FAR, dome_z - 5.0)),
            _column("esophagus", _T["soft_tissue"], (-2.0, vy - 22.0, 7.0, 7.0), HU_MUSCLE - 10.0, 4.0,
                    z_range=(dome_z - 40.0, _FAR)),
            _column("paraspinal_right", _T["muscle"], (-32.0, vy + 32.0, 22.0, 15.0), HU_MUSCLE, 6.0),
            _column("paraspinal_left", _T["muscle"], (32.0, vy + 32.0, 22.0, 15.0), HU_MUSCLE, 6.0),
            _column("vertebral_cortex", _T["bone"], (0.0, vy, 18.0, 16.0), HU_CORTICAL_BONE, 30.0),
            _column("vertebral_marrow", _T["bone"], (0.0, vy, 15.5, 13.5), HU_CANCELLOUS_BONE, 30.0),
            Layer("disc", _T["soft_tissue"], lambda x, y, z: np.maximum(
                _ellipse_sdf(x, y, 0.0, vy, 17.0, 15.0), _periodic_sdf(z, 30.0, 3.5)), HU_DISC, 5.0,
                ((-17.0, vy - 15.0, -_FAR), (17.0, vy + 15.0, _FAR))),
            _column("lamina", _T["bone"], (0.0, vy + 30.0, 15.0, 9.0), HU_CORTICAL_BONE - 200.0, 30.0),
            _column("spinal_canal", _T["soft_tissue"], (0.0, vy + 26.0, 8.0, 7.0), HU_CSF, 4.0),
            _column("sternum", _T["bone"], (0.0, -md + 8.0, 16.0, 6.0), HU_RIB - 100.0, 30.0, z_range=(-30.0, _FAR)),
            Layer("ribs", _T["bone"], self._rib_sdf, HU_RIB, 40.0),
        ]
        return layers

    def _rib_sdf(self, x, y, z):
        """Ribs: oblique bands in the chest wall just outside the cavity, absent at the midline."""
        cx, cy, ax, ay = self.cavity
        outside = _ellipse_sdf(x, y, cx, cy, ax, ay)
        band = np.abs(outside - 5.5) - 4.0
        arc = np.arctan2(y - cy, x) * 0.5 * (ax + ay)
        stripes = _periodic_sdf(z - 0.35 * np.abs(arc), 30.0, 5.0)
        return _intersection(band, stripes, 30.0 - np.abs(x), -100.0 - z)

    def tissue_at(self, points: np.ndarray) -> np.ndarray:
        """Tissue label at each point (n, 3) in mm: the last layer containing it."""
        x, y, z = (points[:, axis] for axis in range(3))
        labels = np.zeros(len(points), dtype=np.uint8)
        for layer in self.layers():
            inside = np.broadcast_to(layer.sdf(x, y, z), x.shape) < 0
            labels[inside] = layer.label
        return labels


_FAR = 1e4  # mm; "unbounded" along z


def _column(name: str, label: int, ellipse: tuple[float, float, float, float], hu: float, texture_hu: float,
            z_range: tuple[float, float] = (-_FAR, _FAR)) -> Layer:
    """An elliptic cylinder along z (vessel, spine, muscle), optionally cut to a z range (mm)."""
    cx, cy, ax, ay = ellipse
    low, high = z_range
    return Layer(name, label, lambda x, y, z: _intersection(_ellipse_sdf(x, y, cx, cy, ax, ay), low - z, z - high),
                 hu, texture_hu, ((cx - ax, cy - ay, low), (cx + ax, cy + ay, high)))


def _box(center, semi) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return (tuple(c - s for c, s in zip(center, semi)), tuple(c + s for c, s in zip(center, semi)))


def _segment_box(start, end, radius: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    low = np.minimum(start, end) - radius
    high = np.maximum(start, end) + radius
    return tuple(float(v) for v in low), tuple(float(v) for v in high)


def draw_torso(rng: np.random.Generator, need_breast: bool, contrast_offset_hu: float) -> Torso:
    """A patient's body habitus, organ positions and enhancement; a breast is kept when it holds a target."""
    breasts = tuple(bool(b) for b in rng.random(2) < 0.75)
    if need_breast and not any(breasts):
        breasts = (True, breasts[1]) if rng.random() < 0.5 else (breasts[0], True)
    torso = Torso(
        half_width=float(rng.uniform(145.0, 165.0)), half_depth=float(rng.uniform(98.0, 112.0)),
        fat_mm=float(rng.uniform(8.0, 26.0)), muscle_mm=float(rng.uniform(8.0, 12.0)),
        organ_shift=tuple(float(v) for v in rng.normal(0.0, 4.0, 3)), dome_shift=float(rng.normal(0.0, 6.0)),
        enhancement_hu=float(contrast_offset_hu + rng.normal(0.0, 4.0)), breasts=breasts,  # type: ignore[arg-type]
    )
    vy = torso.spine_y
    lung_vessels = []
    for sign in (-1.0, 1.0):
        root = (sign * 45.0, vy - 30.0, 45.0 + torso.dome_shift)
        lung_vessels += _vessel_tree(rng, root, 5, (35.0, 80.0), (2.5, 4.5), np.array([sign * 1.5, 1.0, 1.0]))
    sx, sy, sz = torso.organ_shift
    liver_root = (-20.0 + sx, vy - 30.0 + sy, -65.0 + sz + torso.dome_shift)
    liver_vessels = _vessel_tree(rng, liver_root, 4, (40.0, 80.0), (3.0, 6.0), np.array([-1.5, 1.0, 0.8]))
    return replace(torso, lung_vessels=tuple(lung_vessels), liver_vessels=tuple(liver_vessels))


# --- Lesions -------------------------------------------------------------------------------------

# How the hidden phenotype z (abcir.cohort.clinical_model; high z = likely responder) shows
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
# Measurable lesions a site holds (before RECIST picks <= 2 per site, <= 5 in all), and the
# chance that a bone metastasis has a measurable soft-tissue component.
CANDIDATES_PER_SITE = {1: 0.55, 2: 0.30, 3: 0.15}
P_BONE_MEASURABLE = 0.6
LESION_SPACING_MM = 4.0  # minimum gap between lesions
FOV_MARGIN_MM = 15.0
FOV_MIN_MM = (100.0, 100.0, 64.0)
HUB_MM = ((-110.0, -70.0, -50.0), (110.0, 60.0, 40.0))  # box the first lesion is drawn towards
FOV_MAX_VOXELS = (208, 208, 100)  # keeps a patient well under a second; farther lesions stay non-targets


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
        return 2.0 * max(self.semi_axes_mm[0], self.semi_axes_mm[1])

    @property
    def short_axis_mm(self) -> float:
        return 2.0 * min(self.semi_axes_mm[0], self.semi_axes_mm[1])

    @property
    def reach_mm(self) -> float:
        """Radius of a sphere that holds the lesion with its lobes."""
        return max(self.semi_axes_mm) * (1.0 + 3.0 * self.appearance.irregularity)


def draw_appearance(z: float, site: str, diameter_mm: float, contrast_offset_hu: float,
                    rng: np.random.Generator) -> LesionAppearance:
    """A lesion's look from the patient's hidden phenotype z (see the constants above)."""
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


def _rotation(angle: float, tilt: float) -> np.ndarray:
    """Rotation about z by ``angle`` then about the new x by ``tilt`` (radians); columns = axes."""
    c, s = math.cos(angle), math.sin(angle)
    ct, st = math.cos(tilt), math.sin(tilt)
    about_z = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
    return about_z @ about_x


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


# Lymph node stations in the rendered torso region: (x, y relative to the spine, z) mm.
NODE_STATIONS = (
    (5.0, -35.0, 60.0),  # paraoesophageal / subcarinal
    (-32.0, None, 40.0), (32.0, None, 40.0),  # internal mammary (y: behind the sternum)
    (-45.0, -75.0, 0.0), (50.0, -75.0, -5.0),  # cardiophrenic
    (-20.0, 5.0, -75.0), (25.0, 5.0, -70.0),  # retrocrural
    (10.0, -55.0, -55.0),  # gastrohepatic ligament
    (35.0, -10.0, -110.0),  # para-aortic
)


def _candidate_centers(site: str, semi: tuple[float, float, float], torso: Torso,
                       rng: np.random.Generator, count: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Possible centres (count, 3) mm and in-plane orientation angles (radians) of a lesion at ``site``."""
    cx, cy, ax, ay = torso.cavity
    vy = torso.spine_y
    if site in ("liver", "lung"):
        label = _T[site]
        low, high = (-150.0, -80.0, -120.0), (150.0, 80.0, 100.0)
        points = rng.uniform(low, high, size=(count * 8, 3))
        reach = 0.9 * max(semi)
        offsets = np.array([[0, 0, 0], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]]) * reach
        probe = (points[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        inside = (torso.tissue_at(probe).reshape(len(points), len(offsets)) == label).all(axis=1)
        points = points[inside][:count]
        return points, rng.uniform(0.0, 2 * math.pi, len(points))
    if site in ("pleura", "chest_wall", "bone"):
        if site == "chest_wall":  # anterior and lateral wall
            theta = rng.uniform(-math.pi + 0.3, -0.3, count)
            depth = -(torso.muscle_mm / 2.0)  # mid muscle layer, outside the cavity
        elif site == "bone":  # soft tissue around a rib, posterolateral
            theta = rng.uniform(0.2, math.pi - 0.2, count) * rng.choice([-1.0, 1.0], count)
            depth = -5.5
        else:  # pleura: lateral and posterior, where the lung touches the wall
            theta = rng.uniform(-0.6, math.pi + 0.6, count)
            depth = semi[1] * 0.8
        z = rng.uniform(-40.0 if site == "pleura" else -60.0, 90.0, count)
        unit = np.stack([np.cos(theta), np.sin(theta)], axis=1)
        scale = 1.0 / np.sqrt((unit[:, 0] / ax) ** 2 + (unit[:, 1] / ay) ** 2)  # distance to the cavity edge
        radial = scale - depth
        points = np.column_stack([cx + unit[:, 0] * radial, cy + unit[:, 1] * radial, z])
        if site == "pleura":  # keep those with lung inside of them
            inner = np.column_stack([cx + unit[:, 0] * (scale - depth - semi[1] * 1.5),
                                     cy + unit[:, 1] * (scale - depth - semi[1] * 1.5), z])
            keep = torso.tissue_at(inner) == _T["lung"]
            points, theta = points[keep], theta[keep]
        return points, theta + math.pi / 2.0  # long axis along the wall
    if site == "adrenal":
        side = rng.choice([-1.0, 1.0], count)
        points = np.column_stack([side * 31.0, np.full(count, vy - 6.0), np.full(count, -91.0)])
        return points + rng.normal(0.0, 3.0, (count, 3)), rng.uniform(0.0, 2 * math.pi, count)
    if site == "lymph_node":
        stations = np.array([(sx, (-torso.half_depth + torso.fat_mm + torso.muscle_mm + 12.0) if sy is None
                              else vy + sy, sz) for sx, sy, sz in NODE_STATIONS])
        picks = stations[rng.integers(0, len(stations), count)] + rng.normal(0.0, 5.0, (count, 3))
        return picks + np.array([0.0, 0.0, torso.dome_shift]), rng.uniform(0.0, 2 * math.pi, count)
    if site == "breast":
        sides = [side for side in (0, 1) if torso.breasts[side]]
        points = []
        for _ in range(count * 4):
            center, semi_b = torso.breast(sides[int(rng.integers(len(sides)))])
            point = np.asarray(center) + rng.uniform(-0.6, 0.6, 3) * np.asarray(semi_b) + np.array([0, -15.0, 0])
            points.append(point)
        points = np.array(points)
        keep = np.zeros(len(points), dtype=bool)
        for side in sides:
            keep |= torso.breast_sdf(side, points[:, 0], points[:, 1], points[:, 2]) < -0.6 * max(semi)
        points = points[keep][:count]
        return points, rng.uniform(0.0, 2 * math.pi, len(points))
    raise ValueError(f"no placement rule for site '{site}'")


def _draw_bumps(rng: np.random.Generator, irregularity: float) -> tuple[tuple[tuple[float, ...], ...], float]:
    """Margin lobes: more and sharper ones for more irregular lesions."""
    n = 4 + int(round(60.0 * irregularity))
    directions = rng.normal(size=(n, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    weights = rng.normal(size=n)
    sharpness = 3.0 + 60.0 * irregularity
    return tuple((*map(float, d), float(w)) for d, w in zip(directions, weights)), float(sharpness)


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


@dataclass(frozen=True)
class PatientPlan:
    """Everything needed to render one patient's CT (a pure function of the plan and an RNG)."""

    patient: SyntheticPatient
    acquisition: Acquisition
    torso: Torso
    lesions: tuple[LesionPlan, ...]
    origin_mm: tuple[float, float, float]
    size: tuple[int, int, int]  # voxels x, y, z


def _candidate_count(site: str, rng: np.random.Generator) -> int:
    if site == "bone" and rng.random() > P_BONE_MEASURABLE:
        return 0
    keys = list(CANDIDATES_PER_SITE)
    return int(rng.choice(keys, p=[CANDIDATES_PER_SITE[k] for k in keys]))


def plan_patient(patient: SyntheticPatient, rng: np.random.Generator,
                 lesions_per_site: int | None = None) -> PatientPlan:
    """Draw the scan, the body, and the target lesions (RECIST 1.1 rules) of one patient.

    Each metastatic site holds 1-3 measurable lesions (bone only sometimes);
    ``abcir.recist.select_targets`` then keeps at most two per site and five in all,
    distinct and visceral sites first, as the paper did. Lesions are placed near the
    first one so that the field of view stays small.
    """
    acquisition = draw_acquisition(patient.center, rng)
    torso = draw_torso(rng, "breast" in patient.metastatic_sites, acquisition.contrast_offset_hu)
    candidates: list[LesionPlan] = []
    counts = {site: (lesions_per_site if lesions_per_site is not None else _candidate_count(site, rng))
              for site in patient.metastatic_sites}
    if not any(counts.values()):  # the paper required measurable disease (Appendix S1)
        counts[patient.metastatic_sites[0]] = 1
    for site, count in counts.items():
        for index in range(count):
            semi = _draw_size(site, rng)
            appearance = draw_appearance(patient.phenotype, site, 2.0 * semi[0], acquisition.contrast_offset_hu, rng)
            bumps, sharpness = _draw_bumps(rng, appearance.irregularity)
            candidates.append(LesionPlan(f"{site}_{index + 1}", site, (0.0, 0.0, 0.0), semi,
                                         tuple(map(tuple, np.eye(3))), appearance, bumps, sharpness))
    targets = select_targets(candidates)
    placed: list[LesionPlan] = []
    for lesion in targets:
        centers, angles = _candidate_centers(lesion.site, lesion.semi_axes_mm, torso, rng)
        free = [i for i in range(len(centers)) if all(
            np.linalg.norm(centers[i] - np.asarray(other.center_mm)) > lesion.reach_mm + other.reach_mm
            + LESION_SPACING_MM for other in placed)
            and (np.ceil(_extent(placed + [replace(lesion, center_mm=tuple(centers[i]))])
                         / np.asarray(acquisition.spacing_mm)) <= FOV_MAX_VOXELS).all()]
        if not free:
            continue  # no room left at this site: the lesion stays a non-target
        # The first lesion lies near a random point of the lower chest, where every site is
        # close by; the next ones near the lesions placed so far.
        anchor = (np.mean([other.center_mm for other in placed], axis=0) if placed
                  else rng.uniform(*HUB_MM) + np.array([0.0, 0.0, torso.dome_shift]))
        distance = np.linalg.norm(centers[free] - anchor, axis=1) + rng.normal(0.0, 8.0, len(free))
        choice = free[int(np.argmin(distance))]
        rotation = _rotation(float(angles[choice]), float(rng.normal(0.0, 0.2)))
        placed.append(replace(lesion, center_mm=tuple(float(v) for v in centers[choice]),
                              rotation=tuple(map(tuple, rotation))))
    # Number lesions per site in their final order (liver_1, liver_2, lung_1, ...).
    numbered, per_site = [], {}
    for lesion in placed:
        per_site[lesion.site] = per_site.get(lesion.site, 0) + 1
        numbered.append(replace(lesion, lesion_id=f"{lesion.site}_{per_site[lesion.site]}"))
    origin, size = field_of_view(numbered, acquisition.spacing_mm)
    return PatientPlan(patient, acquisition, torso, tuple(numbered), origin, size)


def _bounds(lesions: list[LesionPlan]) -> tuple[np.ndarray, np.ndarray]:
    """Low and high corners (mm) of the box holding the lesions and the margin around them."""
    centers = np.array([lesion.center_mm for lesion in lesions])
    reach = np.array([lesion.reach_mm for lesion in lesions])[:, None]
    return (centers - reach).min(axis=0) - FOV_MARGIN_MM, (centers + reach).max(axis=0) + FOV_MARGIN_MM


def _extent(lesions: list[LesionPlan]) -> np.ndarray:
    low, high = _bounds(lesions)
    return high - low


def field_of_view(lesions: list[LesionPlan], spacing) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """Origin and size of a grid covering the lesions with a margin and a minimum extent."""
    low, high = _bounds(lesions)
    middle, extent = (low + high) / 2.0, np.maximum(high - low, FOV_MIN_MM)
    size = np.ceil(extent / np.asarray(spacing)).astype(int)
    origin = middle - (size - 1) * np.asarray(spacing) / 2.0
    return tuple(float(round(v, 3)) for v in origin), tuple(int(v) for v in size)


NOISE_KERNEL_TRUNCATE = 3.0  # Gaussian kernels of noise fields end at 3 sigma

# --- Rendering --------------------------------------------------------------------------------

@dataclass
class PhantomCT:
    """A rendered patient: HU voxels, tissue labels and one mask per target lesion, on one grid."""

    plan: PatientPlan
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


def _on_grid(image: sitk.Image, plan: PatientPlan) -> sitk.Image:
    image.SetSpacing(plan.acquisition.spacing_mm)
    image.SetOrigin(plan.origin_mm)
    return image


def _axes(plan: PatientPlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def render(plan: PatientPlan, rng: np.random.Generator) -> PhantomCT:
    """Render the plan: anatomy, lesions, scanner blur and noise. Deterministic for a given RNG state."""
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
    _paint(hu, tissue, window, fraction.astype(np.float32), value.astype(np.float32), _T["lesion"])
    mask = np.zeros(hu.shape, dtype=bool)
    mask[window] = np.broadcast_to(fraction >= 0.5, mask[window].shape)
    return mask


def check_targets(ct: PhantomCT) -> list[str]:
    """Lesions whose rendered size misses RECIST measurability (empty when all are fine)."""
    problems = []
    for lesion in ct.plan.lesions:
        mask = _on_grid(sitk.GetImageFromArray(ct.masks[lesion.lesion_id].astype(np.uint8)), ct.plan)
        size = measure_lesion(mask)
        if SITES[lesion.site].lymph_node and size.short_axis_mm < MIN_NODE_SHORT_AXIS_MM:
            problems.append(f"{lesion.lesion_id}: short axis {size.short_axis_mm:.1f} mm")
        elif size.longest_axial_diameter_mm < MIN_LONGEST_DIAMETER_MM:
            problems.append(f"{lesion.lesion_id}: longest diameter {size.longest_axial_diameter_mm:.1f} mm")
    return problems
