"""The phantom's body: analytic tissue shapes of a torso, drawn per patient (generated, not patient data).

The torso is a set of analytic shapes given as signed distance functions (SDF, mm,
negative inside) in patient LPS coordinates, origin at the body's centre at the
height of the right diaphragm dome (x to the patient's left, y posterior, z
superior). The same shapes answer "which tissue is here?" when lesions are placed
(``lesion_plan``) and are painted, with a one-voxel partial-volume ramp, when the CT
is rendered (``rendering``).

Every HU value below is an assumption of this generator, documented in
docs/synthetic_cohort.md; none is measured from patients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

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
        """Signed distance (mm) to the cavity's wall in the axial plane; x, y in mm (LPS)."""
        return _ellipse_sdf(x, y, *self.cavity)

    def dome(self, x, y):
        """Height (z, mm) of the diaphragm: right dome higher, recesses lower laterally and behind."""
        back = 30.0 * ((y + 5.0) / 85.0) ** 2
        right = 2.0 - 42.0 * ((x + 60.0) / 80.0) ** 2 - back
        left = -12.0 - 42.0 * ((x - 60.0) / 80.0) ** 2 - back
        return np.maximum(right, left) + self.dome_shift

    def heart(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes (mm) of the heart, which moves with the organs and the diaphragm."""
        sx, sy, sz = self.organ_shift
        return (15.0 + sx, -25.0 + sy, 48.0 + sz + self.dome_shift), (60.0, 48.0, 52.0)

    def mediastinum_sdf(self, x, y):
        """The space between the lungs, from the sternum to the spine."""
        _, cy, _, ay = self.cavity
        front, back = cy - ay, self.spine_y
        return _ellipse_sdf(x, y, 5.0, (front + back) / 2.0, 30.0, (back - front) / 2.0 + 5.0)

    def lung_sdf(self, x, y, z):
        """Signed distance (mm) to the lungs: the cavity above the dome, outside the mediastinum and heart."""
        center, semi = self.heart()
        return _intersection(
            self.cavity_sdf(x, y), self.dome(x, y) - z, -self.mediastinum_sdf(x, y),
            -(_ellipsoid_sdf(x, y, z, center, semi) - 3.0),
        )

    def below_dome_sdf(self, x, y, z):
        """Signed distance (mm) to the abdominal part of the cavity, 2 mm under the diaphragm."""
        return np.maximum(self.cavity_sdf(x, y), z - self.dome(x, y) + 2.0)

    def liver_sdf(self, x, y, z):
        """Signed distance (mm) to the liver: an ellipsoid cut by the diaphragm."""
        sx, sy, sz = self.organ_shift
        shape = _ellipsoid_sdf(x, y, z, (-40.0 + sx, 0.0 + sy, -55.0 + sz + self.dome_shift), (100.0, 88.0, 85.0))
        return np.maximum(shape, self.below_dome_sdf(x, y, z))

    def breast(self, side: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Centre and semi-axes of the right (side 0) or left (side 1) breast."""
        sign = -1.0 if side == 0 else 1.0
        return (sign * 80.0, -self.half_depth + 10.0, 40.0), (70.0, 48.0, 62.0)

    def breast_sdf(self, side: int, x, y, z):
        """Signed distance (mm) to the right (side 0) or left (side 1) breast, in front of the chest wall."""
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
        """Tissue label at each point: the last layer containing it, as the renderer would paint it.

        Parameters
        ----------
        points : numpy.ndarray
            Shape (n, 3), x y z in mm (LPS, phantom coordinates).

        Returns
        -------
        numpy.ndarray
            Shape (n,), uint8 values of ``TISSUE_LABELS`` (0, air, outside the body).
        """
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
    """A patient's body habitus, organ positions and enhancement; a breast is kept when it holds a target.

    Parameters
    ----------
    rng : numpy.random.Generator
        The patient's random stream.
    need_breast : bool
        True when the patient has a breast metastasis, so at least one breast must be present.
    contrast_offset_hu : float
        Enhancement shift (HU) of the scanner's contrast timing, which enhancing tissues follow.

    Returns
    -------
    Torso
        Sizes and shifts in mm, enhancement in HU, and the lung and liver vessel trees.
    """
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
