"""Recompute one patient's prediction under plausible outline changes of each target lesion.

One lesion's outline is changed at a time, the others kept as segmented, so
that the result can say which lesion's outline the prediction rests on. Only
the changed outlines are extracted: the unperturbed features are those of the
prediction itself (``rows``), and each changed outline reuses its lesion's
resampled CT region and filtered images (``shared_extraction``). The perturbed
probabilities come from ``prediction.predict_features`` with the same weights
and clinical facts, so they are what the prediction would have been with that
outline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import SimpleITK as sitk

from ..models.bundle import WeightBundle
from ..patient.clinical_facts import ClinicalFacts
from ..errors import InputError
from ..features.catalogue import LesionFeatures
from ..features.engine import engine_values, fast_path_blocker
from ..features.extract import extract_lesions
from ..patient.lesions import Lesion
from ..patient.measurements import measure_lesion
from ..prediction.predict import Prediction, predict_features, resolve_bundle
from .perturbations import DEFAULT_SET, MIN_VOXELS, PerturbationSet, perturb
from .result import LesionInfluence, PerturbedPrediction, SensitivityResult, SkippedPerturbation
from .shared_extraction import compute_outlines, outline_pieces, share_region

#: The risk group is called unstable when it flips in more than this share of the outline changes: one
#: change in ten may be an implausible outline, more says the group depends on where the border is drawn.
FLIP_LIMIT = 0.10
#: A 90 % interval needs at least this many perturbed probabilities: with fewer, the empirical 5th and 95th
#: percentiles are interpolations between the two most extreme values, not a statement about 90 % of them.
MIN_FOR_INTERVAL = 20


def _perturbed_lesions(ct: sitk.Image, lesions: Sequence[Lesion], perturbation_set: PerturbationSet, seed: int,
                       skipped: list[SkippedPerturbation]) -> Iterator[tuple[int, str, Lesion, sitk.Image]]:
    """(lesion index, perturbation name, lesion with the changed outline's size, changed mask)."""
    for index, lesion in enumerate(lesions):
        for perturbation in perturb(lesion.lesion_id, lesion.mask, ct, perturbation_set, seed, index):
            if perturbation.voxel_count < MIN_VOXELS:
                skipped.append(SkippedPerturbation(lesion.lesion_id, perturbation.name,
                                                   f"{perturbation.voxel_count} voxels left"))
                continue
            # The prediction reads a lesion's id, site and size (volume weights, RECIST); the mask stays the
            # segmented one, so no CT-sized perturbed mask is kept after its features are computed.
            yield index, perturbation.name, replace(lesion, size=measure_lesion(perturbation.mask)), perturbation.mask


def _perturbed_values(ct: sitk.Image, lesions: Sequence[Lesion], perturbation_set: PerturbationSet, seed: int,
                      jobs: int, skipped: list[SkippedPerturbation]
                      ) -> tuple[dict[tuple[int, str], Lesion], dict[tuple[int, str], np.ndarray]]:
    """The changed lesions and the features of their changed outlines, keyed by (lesion index, perturbation)."""
    changed: dict[tuple[int, str], Lesion] = {}
    outlines = _perturbed_lesions(ct, lesions, perturbation_set, seed, skipped)
    if fast_path_blocker():  # the stock engine: nothing to share
        values = {}
        for index, name, lesion, mask in outlines:
            changed[index, name] = lesion
            values[index, name] = engine_values(ct, mask, lesion.lesion_id)
        return changed, values

    def pieces() -> Iterator:
        regions: dict[int, object] = {}
        for index, name, lesion, mask in outlines:
            if index not in regions:
                regions = {index: share_region(ct, lesions[index].mask, lesion.lesion_id)}  # one lesion at a time
            try:
                outline = outline_pieces(regions[index], ct, mask)
            except InputError as error:
                skipped.append(SkippedPerturbation(lesion.lesion_id, name, str(error)))
                continue
            changed[index, name] = lesion
            yield (index, name), lesion.lesion_id, outline

    return changed, compute_outlines(pieces(), jobs)


def _influence(lesion_id: str, items: Sequence[PerturbedPrediction], base: Prediction) -> LesionInfluence:
    probabilities = [item.probability for item in items] or [base.probability]
    flips = sum(item.risk_group != base.risk_group for item in items) if base.risk_group is not None else 0
    return LesionInfluence(lesion_id, len(items), min(probabilities), max(probabilities),
                           max(abs(p - base.probability) for p in probabilities), flips)


def summarise(base: Prediction, perturbed: Sequence[PerturbedPrediction], lesion_ids: Sequence[str],
              perturbation_set: PerturbationSet, seed: int, flip_limit: float = FLIP_LIMIT,
              skipped: Sequence[SkippedPerturbation] = ()) -> SensitivityResult:
    """The result from the unperturbed prediction and the perturbed ones (no extraction)."""
    probabilities = np.array([item.probability for item in perturbed])
    interval = None
    if probabilities.size >= MIN_FOR_INTERVAL:
        low, high = np.percentile(probabilities, [5, 95])
        interval = (float(low), float(high))
    lesions = tuple(_influence(lesion_id, [item for item in perturbed if item.lesion_id == lesion_id], base)
                    for lesion_id in lesion_ids)
    same = share = None
    unstable = False
    if base.risk_group is not None and perturbed:
        same = sum(item.risk_group == base.risk_group for item in perturbed)
        share = (len(perturbed) - same) / len(perturbed)
        unstable = share > flip_limit
    deciding = None
    if lesions and perturbed:
        rank = (lambda item: (item.flips, item.largest_change)) if unstable else (lambda item: item.largest_change)
        deciding = max(lesions, key=rank).lesion_id
    return SensitivityResult(
        model=base.model, perturbation_set=perturbation_set.name,
        perturbations_described=perturbation_set.describe(), seed=seed, probability=base.probability,
        score=base.score, risk_group=base.risk_group, cutoff=base.cutoff,
        probability_low=float(min(probabilities.min(initial=base.probability), base.probability)),
        probability_high=float(max(probabilities.max(initial=base.probability), base.probability)),
        interval_90=interval, min_for_interval=MIN_FOR_INTERVAL, n_perturbations=len(perturbed),
        n_same_risk_group=same, flip_share=share, flip_limit=flip_limit, unstable=unstable,
        deciding_lesion=deciding, lesions=lesions, perturbations=tuple(perturbed), skipped=tuple(skipped))


def analyse_sensitivity(ct: sitk.Image, lesions: Sequence[Lesion], clinical: ClinicalFacts | None,
                        model: str | None = "combined", bundle: WeightBundle | str | os.PathLike | None = None,
                        rows: Sequence[LesionFeatures] | None = None,
                        perturbation_set: PerturbationSet = DEFAULT_SET, seed: int = 0, jobs: int = 1,
                        flip_limit: float = FLIP_LIMIT, patient_id: str = "patient") -> SensitivityResult:
    """The prediction of ``predict_lesions`` recomputed under ``perturbation_set`` for each lesion in turn.

    ``rows`` are the unperturbed features of ``lesions`` (from the prediction
    just made); without them they are extracted first. ``seed`` fixes the
    contour randomisations. ``flip_limit`` is the share of flips above which the
    risk group is called unstable. The clinical model reads no outline and is refused.
    """
    bundle = resolve_bundle(model, bundle)
    if bundle.kind == "clinical":
        raise InputError("The clinical model reads no outline, so its probability cannot change with one; "
                         "use the radiomics or combined model for the outline sensitivity.")
    if not lesions:
        raise InputError(f"The {bundle.kind} model needs target lesions to change the outlines of.")
    if not 0 <= flip_limit < 1:
        raise InputError(f"Flip limit {flip_limit}: give a share between 0 and 1 (default {FLIP_LIMIT}).")
    if rows is None:
        rows = extract_lesions(ct, lesions, patient_id, jobs=jobs)
    ids = [lesion.lesion_id for lesion in lesions]
    if [row.lesion.lesion_id for row in rows] != ids:
        raise InputError(f"Sensitivity: the feature rows are of lesions {[row.lesion.lesion_id for row in rows]}, "
                         f"not {ids}; pass the rows extracted for these lesions, in their order.")
    base = predict_features(rows, clinical, bundle.kind, bundle)
    skipped: list[SkippedPerturbation] = []
    changed, values = _perturbed_values(ct, lesions, perturbation_set, seed, jobs, skipped)
    perturbed = []
    for (index, name), lesion in changed.items():
        variant = list(rows)
        # Same engine, parameter file and CT as the unperturbed row, whose provenance the prediction checks.
        variant[index] = LesionFeatures(rows[index].patient_id, lesion, values[index, name], rows[index].provenance)
        prediction = predict_features(variant, clinical, bundle.kind, bundle)
        perturbed.append(PerturbedPrediction(lesion.lesion_id, name, lesion.size.volume_mm3, prediction.probability,
                                             prediction.score, prediction.risk_group))
    return summarise(base, perturbed, ids, perturbation_set, seed, flip_limit, skipped)
