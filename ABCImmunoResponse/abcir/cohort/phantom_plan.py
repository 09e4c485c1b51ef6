"""Plan one phantom patient: the scan, the body, where the RECIST target lesions lie, and the field of view."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..patient.recist import select_targets
from .anatomy import TISSUE_LABELS, Torso, draw_torso
from .lesion_plan import LesionPlan, draw_lesion
from .patients import SyntheticPatient
from .scanner import Acquisition, draw_acquisition

# Measurable lesions a site holds (before RECIST picks <= 2 per site, <= 5 in all), and the
# chance that a bone metastasis has a measurable soft-tissue component.
CANDIDATES_PER_SITE = {1: 0.55, 2: 0.30, 3: 0.15}
P_BONE_MEASURABLE = 0.6
LESION_SPACING_MM = 4.0  # minimum gap between lesions
FOV_MARGIN_MM = 15.0
FOV_MIN_MM = (100.0, 100.0, 64.0)
HUB_MM = ((-110.0, -70.0, -50.0), (110.0, 60.0, 40.0))  # box the first lesion is drawn towards
FOV_MAX_VOXELS = (208, 208, 100)  # keeps a patient well under a second; farther lesions stay non-targets


def _rotation(angle: float, tilt: float) -> np.ndarray:
    """Rotation about z by ``angle`` then about the new x by ``tilt`` (radians); columns = axes."""
    c, s = math.cos(angle), math.sin(angle)
    ct, st = math.cos(tilt), math.sin(tilt)
    about_z = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    about_x = np.array([[1.0, 0.0, 0.0], [0.0, ct, -st], [0.0, st, ct]])
    return about_z @ about_x


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
        label = TISSUE_LABELS[site]
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
            keep = torso.tissue_at(inner) == TISSUE_LABELS["lung"]
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


@dataclass(frozen=True)
class PhantomPlan:
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


def plan_phantom(patient: SyntheticPatient, rng: np.random.Generator,
                 lesions_per_site: int | None = None) -> PhantomPlan:
    """Draw the scan, the body, and the target lesions (RECIST 1.1 rules) of one patient.

    Each metastatic site holds 1-3 measurable lesions (bone only sometimes);
    ``abcir.patient.recist.select_targets`` then keeps at most two per site and five in all,
    distinct and visceral sites first, as the paper did. Lesions are placed near the
    first one so that the field of view stays small.

    Parameters
    ----------
    patient : SyntheticPatient
        The patient's centre, metastatic sites and hidden phenotype.
    rng : numpy.random.Generator
        The patient's random stream (``generator.patient_rng``); rendering continues it.
    lesions_per_site : int or None
        Candidate lesions per site; None draws 1-3 (``CANDIDATES_PER_SITE``).

    Returns
    -------
    PhantomPlan
        Scan, torso, placed target lesions (mm, LPS) and the grid to render (origin mm, size voxels).
        A target with no room left in the field of view is dropped, so fewer may come back.

    Raises
    ------
    KeyError
        When the patient has a centre or a site the phantom does not know.
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
            candidates.append(draw_lesion(f"{site}_{index + 1}", site, patient.phenotype,
                                          acquisition.contrast_offset_hu, rng))
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
    return PhantomPlan(patient, acquisition, torso, tuple(numbered), origin, size)


def _bounds(lesions: list[LesionPlan]) -> tuple[np.ndarray, np.ndarray]:
    """Low and high corners (mm) of the box holding the lesions and the margin around them."""
    centers = np.array([lesion.center_mm for lesion in lesions])
    reach = np.array([lesion.reach_mm for lesion in lesions])[:, None]
    return (centers - reach).min(axis=0) - FOV_MARGIN_MM, (centers + reach).max(axis=0) + FOV_MARGIN_MM


def _extent(lesions: list[LesionPlan]) -> np.ndarray:
    low, high = _bounds(lesions)
    return high - low


def field_of_view(lesions: list[LesionPlan], spacing) -> tuple[tuple[float, float, float], tuple[int, int, int]]:
    """Origin and size of a grid covering the lesions with a margin and a minimum extent.

    Parameters
    ----------
    lesions : list of LesionPlan
        Placed lesions (at least one).
    spacing : sequence of float
        Voxel spacing (mm), x y z.

    Returns
    -------
    origin : tuple of float
        Centre of the first voxel (mm, LPS).
    size : tuple of int
        Voxels along x, y, z; the grid spans at least ``FOV_MIN_MM`` and
        ``FOV_MARGIN_MM`` around every lesion.
    """
    low, high = _bounds(lesions)
    middle, extent = (low + high) / 2.0, np.maximum(high - low, FOV_MIN_MM)
    size = np.ceil(extent / np.asarray(spacing)).astype(int)
    origin = middle - (size - 1) * np.asarray(spacing) / 2.0
    return tuple(float(round(v, 3)) for v in origin), tuple(int(v) for v in size)
