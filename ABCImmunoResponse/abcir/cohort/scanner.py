"""The generated centres' CT protocols and the scan drawn for one phantom patient (Table S1; assumed detail)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    """Spacing and noise for a scan at ``center``, drawn within that centre's protocol.

    Parameters
    ----------
    center : str
        A key of ``SCANNERS`` (``"center_A"``, ``"center_B"`` or ``"center_C"``).
    rng : numpy.random.Generator
        The patient's random stream.

    Returns
    -------
    Acquisition
        Voxel spacing (mm, x y z), noise SD in water (HU), noise grain (mm) and contrast offset (HU).

    Raises
    ------
    KeyError
        When ``center`` is not a generated centre.
    """
    scanner = SCANNERS[center]
    in_plane = round(float(rng.uniform(*scanner.in_plane_mm)), 4)
    slice_mm = float(rng.choice(scanner.slice_mm, p=scanner.slice_probability))
    return Acquisition((in_plane, in_plane, slice_mm), float(rng.uniform(*scanner.noise_hu)),
                       scanner.noise_grain_mm, scanner.contrast_offset_hu)
