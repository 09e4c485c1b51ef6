"""Per-feature reproducibility under outline perturbation: the features of each changed outline, and their ICC.

A site that trains on its own cohort wants to know which features a slightly
different outline changes. Each lesion is a subject; its segmented outline and
each of its ``PerturbationSet`` outlines (``erode_1mm``, ``dilate_1mm``,
``random_1`` ...) are the raters. The ICC(2,1) of a feature over the lesions of a
cohort (two-way random, absolute agreement, single rater: the readers' statistic,
``abcir.stats.agreement.icc_2_1``) says how much of its between-lesion variation
survives an outline change; the table has the readers' ``feature_icc.csv``
columns, with ``n_readers`` the number of outlines per lesion (1 + perturbations).

The changed outlines are extracted as ``abcir extract`` extracts any outline
(``features.extract.extract_lesions``): resampled onto the 1 mm grid of their own
bounding box, as a second reader's outline would be. So this ICC and the
readers' ICC measure the same thing, one for simulated and one for real second
outlines. (The prediction's sensitivity, ``analysis``, keeps the segmented
outline's grid instead, to measure the outline alone.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..features.cache import FeatureCache
from ..features.extract import extract_lesions
from ..patient.lesions import Lesion
from ..patient.measurements import measure_lesion
from .perturbations import DEFAULT_SET, MIN_VOXELS, PerturbationSet, perturb


@dataclass(frozen=True)
class PerturbedOutlineValues:
    """The 1130 values of one changed outline of one lesion (``perturbation``, a ``PerturbationSet`` name).

    ``values`` are in ``abcir.features.catalogue.feature_names`` order, each in
    its feature's own unit (mm, mm², mm³, HU, or none).
    """

    lesion_id: str
    perturbation: str
    values: np.ndarray


def perturbed_outline_values(ct: sitk.Image, lesions: Sequence[Lesion], patient_id: str,
                             perturbation_set: PerturbationSet = DEFAULT_SET, seed: int = 0, jobs: int = 1,
                             cache: FeatureCache | None = None) -> list[PerturbedOutlineValues]:
    """Features of every changed outline of every lesion, in lesion then ``perturbation_set.names`` order.

    The outlines are those of ``analysis.analyse_sensitivity`` with the same
    ``perturbation_set`` and ``seed`` (``perturbations.perturb``, lesion ``i``
    seeded by (seed, i)). An outline that is no outline of the lesion (fewer
    than ``MIN_VOXELS`` voxels) or that pyradiomics refuses is left out: the
    ICC then uses that lesion only for the features it has all outlines of.

    Parameters
    ----------
    ct : SimpleITK.Image
        The CT in HU, on whose grid the lesion masks lie.
    lesions : sequence of Lesion
        The patient's target lesions as segmented.
    patient_id : str
        The patient's id (carried into messages).
    perturbation_set : PerturbationSet
        The outline changes (default ``DEFAULT_SET``: 1 mm erosion and dilation, 8 randomisations).
    seed : int
        Seed of the contour randomisations.
    jobs : int
        Processes per extraction (``extract_lesions``).
    cache : FeatureCache, optional
        Where changed outlines' values are kept and found again (a rerun recomputes nothing).

    Returns
    -------
    list of PerturbedOutlineValues
        One entry per extracted changed outline.
    """
    results = []
    for index, lesion in enumerate(lesions):
        for perturbation in perturb(lesion.lesion_id, lesion.mask, ct, perturbation_set, seed, index):
            if perturbation.voxel_count < MIN_VOXELS:
                continue
            changed = replace(lesion, mask=perturbation.mask, size=measure_lesion(perturbation.mask))
            try:
                row, = extract_lesions(ct, [changed], patient_id, jobs=jobs, cache=cache)
            except InputError:  # pyradiomics refuses the changed outline (too thin after resampling, ...)
                continue
            results.append(PerturbedOutlineValues(lesion.lesion_id, perturbation.name, row.values))
    return results


def outline_ratings(lesion_ids: Sequence[str], values: np.ndarray, perturbed: Sequence[PerturbedOutlineValues],
                    names: Sequence[str]) -> np.ndarray:
    """The (lesions x outlines x features) array of one patient: segmented outline first, then ``names``.

    Parameters
    ----------
    lesion_ids : sequence of str
        The patient's lesions.
    values : numpy.ndarray
        (lesions x features): the segmented outlines' values, rows in ``lesion_ids`` order.
    perturbed : sequence of PerturbedOutlineValues
        The changed outlines' values of the same lesions.
    names : sequence of str
        The perturbation names, in ``PerturbationSet.names`` order.

    Returns
    -------
    numpy.ndarray
        float64, NaN where a changed outline was left out.
    """
    values = np.asarray(values, dtype=float)
    changed = {(item.lesion_id, item.perturbation): item.values for item in perturbed}
    ratings = np.full((len(lesion_ids), 1 + len(names), values.shape[1]), np.nan)
    ratings[:, 0] = values
    for i, lesion_id in enumerate(lesion_ids):
        for j, name in enumerate(names, start=1):
            if (lesion_id, name) in changed:
                ratings[i, j] = changed[lesion_id, name]
    return ratings
