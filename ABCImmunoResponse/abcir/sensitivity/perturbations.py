"""The outline changes a prediction is recomputed under: a small, named, documented set.

Each perturbation is a pure function of the lesion's mask, the CT (its grid, and
for contour randomisation its intensities) and a seed; the input mask is never
modified. Per lesion, in this order:

* ``erode_1mm`` and ``dilate_1mm``: the outline 1 mm narrower and wider, physical
  distance on the CT's own grid (``morphology``);
* ``random_1`` .. ``random_k``: contour randomisations of Zwanenburg et al. 2019
  (``supervoxels``), the seed of lesion ``i`` drawn from (seed, i);
* optionally ``shift_+x`` .. ``shift_-z``: the outline moved by one voxel along each
  image axis (six).

A perturbation that leaves fewer than ``MIN_VOXELS`` voxels (erosion of a lesion
thinner than 2 mm) is not a plausible outline of that lesion and is left out,
with the reason, by the analysis.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..options import DEFAULT_PERTURBATION_SET
from .morphology import dilate_mm, erode_mm, shift_voxels
from .supervoxels import contour_randomisations

#: Fewer voxels than this are no outline of a lesion (``lesions.align_to_ct`` refuses a single voxel).
MIN_VOXELS = 2
SHIFTS = (("+x", (1, 0, 0)), ("-x", (-1, 0, 0)), ("+y", (0, 1, 0)), ("-y", (0, -1, 0)),
          ("+z", (0, 0, 1)), ("-z", (0, 0, -1)))


@dataclass(frozen=True)
class PerturbationSet:
    """Which outline changes, and how many: ``size`` extra feature extractions per lesion.

    ``radius_mm`` is the erosion / dilation distance (mm); ``randomisations`` the
    number of supervoxel contour randomisations; ``shifts`` adds the six one-voxel
    shifts.
    """

    name: str
    radius_mm: float = 1.0
    randomisations: int = 8
    shifts: bool = False

    def __post_init__(self) -> None:
        if self.radius_mm <= 0 or self.randomisations < 0:
            raise ValueError(f"Perturbation set '{self.name}': radius_mm must be > 0 and randomisations >= 0 "
                             f"(got {self.radius_mm}, {self.randomisations}).")

    @property
    def names(self) -> tuple[str, ...]:
        """The perturbations of one lesion, in the order they are computed."""
        radius = f"{self.radius_mm:g}mm"
        shifts = tuple(f"shift_{axis}" for axis, _ in SHIFTS) if self.shifts else ()
        return (f"erode_{radius}", f"dilate_{radius}",
                *(f"random_{i}" for i in range(1, self.randomisations + 1)), *shifts)

    @property
    def size(self) -> int:
        """Extra extractions per lesion."""
        return len(self.names)

    def extra_extractions(self, n_lesions: int) -> int:
        """Extra extractions for a patient (one lesion perturbed at a time)."""
        return self.size * n_lesions

    def describe(self) -> str:
        """A short phrase for a message: what the outline changes were."""
        parts = [f"+/-{self.radius_mm:g} mm"]
        if self.randomisations:
            parts.append(f"{self.randomisations} supervoxel randomisations")
        if self.shifts:
            parts.append("+/-1 voxel shifts")
        return ", ".join(parts)


#: The default: erosion and dilation by 1 mm and 8 randomisations, 10 extra extractions per lesion
#: (30 for a 3-lesion patient): enough for the 90 % interval (``analysis.MIN_FOR_INTERVAL``) at 2 or more
#: lesions (the cost is measured in the README, "Outline sensitivity").
DEFAULT_SET = PerturbationSet(DEFAULT_PERTURBATION_SET)
#: The sets ``--perturbations`` names (``abcir.options.PERTURBATION_SETS``): the default; the morphological
#: changes only, +/-1 mm and +/-1 voxel shifts (8 per lesion), for lesions too small for the randomisation
#: (``supervoxels``' measurements); and everything (16 per lesion).
NAMED_SETS = {DEFAULT_SET.name: DEFAULT_SET,
              "morphology-1mm": PerturbationSet("morphology-1mm", randomisations=0, shifts=True),
              "extended": PerturbationSet("extended", shifts=True)}


def perturbation_set_named(value: str) -> PerturbationSet:
    """The perturbation set a user names: one of ``NAMED_SETS``, or N for the default with N randomisations.

    Parameters
    ----------
    value : str
        A set's name, or a whole number N >= 0 (erosion and dilation by 1 mm and N
        contour randomisations per lesion; the set is named ``outline-1mm-N``).

    Returns
    -------
    PerturbationSet
        The set.

    Raises
    ------
    InputError
        ``value`` is neither a set's name nor a whole number >= 0.
    """
    if value in NAMED_SETS:
        return NAMED_SETS[value]
    if value.isdigit():
        return PerturbationSet(f"{DEFAULT_SET.name}-{int(value)}", randomisations=int(value))
    raise InputError(f"Perturbations '{value}': neither a set ({', '.join(NAMED_SETS)}) nor a number of contour "
                     "randomisations; give one of those names or a whole number such as 8.")


@dataclass(frozen=True)
class Perturbation:
    """One changed outline of one lesion (uint8 0/1 on the CT grid)."""

    lesion_id: str
    name: str
    mask: sitk.Image

    @property
    def voxel_count(self) -> int:
        """Voxels inside the changed outline."""
        return int(np.count_nonzero(sitk.GetArrayViewFromImage(self.mask)))


def lesion_seed(seed: int, lesion_index: int) -> np.random.SeedSequence:
    """The randomisations' seed of the ``lesion_index``-th lesion: independent streams per lesion.

    Parameters
    ----------
    seed : int
        The analysis' seed (non-negative).
    lesion_index : int
        The lesion's position among the patient's target lesions, from 0.

    Returns
    -------
    np.random.SeedSequence
        A seed sequence over ``[seed, lesion_index]``.
    """
    return np.random.SeedSequence([seed, lesion_index])


def perturb(lesion_id: str, mask: sitk.Image, ct: sitk.Image, perturbation_set: PerturbationSet = DEFAULT_SET,
            seed: int = 0, lesion_index: int = 0) -> Iterator[Perturbation]:
    """The perturbations of one lesion, in ``perturbation_set.names`` order, one at a time (each CT-sized).

    Parameters
    ----------
    lesion_id : str
        The lesion's name, copied into each perturbation.
    mask : sitk.Image
        The lesion's outline (non-zero inside) on ``ct``'s grid; not modified.
    ct : sitk.Image
        The CT (HU); its intensities guide the contour randomisations.
    perturbation_set : PerturbationSet, default DEFAULT_SET
        Erosion/dilation radius (mm), number of randomisations, and whether to shift.
    seed : int, default 0
        The analysis' seed; with ``lesion_index`` it fixes the randomisations.
    lesion_index : int, default 0
        The lesion's position among the patient's target lesions, from 0.

    Yields
    ------
    Perturbation
        Eroded, dilated, each randomised outline, then the six shifts if asked
        for; uint8 0/1 masks on ``ct``'s grid, possibly with fewer than
        ``MIN_VOXELS`` voxels (the analysis skips those).
    """
    names = iter(perturbation_set.names)
    yield Perturbation(lesion_id, next(names), erode_mm(mask, perturbation_set.radius_mm))
    yield Perturbation(lesion_id, next(names), dilate_mm(mask, perturbation_set.radius_mm))
    if perturbation_set.randomisations:
        rng_seed = int(lesion_seed(seed, lesion_index).generate_state(1)[0])
        for outline in contour_randomisations(mask, ct, rng_seed, perturbation_set.randomisations):
            yield Perturbation(lesion_id, next(names), outline)
    if perturbation_set.shifts:
        for _, offset in SHIFTS:
            yield Perturbation(lesion_id, next(names), shift_voxels(mask, offset))
