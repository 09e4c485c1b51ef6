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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..features.catalogue import LesionFeatures
from ..features.engine import engine_values
from ..features.extract import ProgressCallback, extract_lesions
from ..features.preparation import fast_path_blocker
from ..models.bundle import WeightBundle
from ..options import DEFAULT_FLIP_LIMIT
from ..patient.clinical_facts import ClinicalFacts
from ..patient.lesions import Lesion
from ..patient.measurements import measure_lesion
from ..prediction.predict import SensitivityAnalysis, predict_features, resolve_bundle
from ..prediction.result import Prediction
from .perturbations import DEFAULT_SET, MIN_VOXELS, PerturbationSet, perturb
from .result import LesionInfluence, PerturbedPrediction, SensitivityResult, SkippedPerturbation
from .shared_extraction import compute_outlines, outline_pieces, share_region

#: The risk group is called unstable when it flips in more than this share of the outline changes
#: (``abcir.options`` says why; defined there for the command line).
FLIP_LIMIT = DEFAULT_FLIP_LIMIT
#: A 90 % interval needs at least this many perturbed probabilities: with fewer, the empirical 5th and 95th
#: percentiles are interpolations between the two most extreme values, not a statement about 90 % of them.
MIN_FOR_INTERVAL = 20


def _perturbed_lesions(ct: sitk.Image, lesions: Sequence[Lesion], perturbation_set: PerturbationSet, seed: int,
                       skip: Callable[[SkippedPerturbation], None]) -> Iterator[tuple[int, str, Lesion, sitk.Image]]:
    """(lesion index, perturbation name, lesion with the changed outline's size, changed mask)."""
    for index, lesion in enumerate(lesions):
        for perturbation in perturb(lesion.lesion_id, lesion.mask, ct, perturbation_set, seed, index):
            if perturbation.voxel_count < MIN_VOXELS:
                skip(SkippedPerturbation(lesion.lesion_id, perturbation.name,
                                         f"{perturbation.voxel_count} voxels left"))
                continue
            # The prediction reads a lesion's id, site and size (volume weights, RECIST); the mask stays the
            # segmented one, so no CT-sized perturbed mask is kept after its features are computed.
            yield index, perturbation.name, replace(lesion, size=measure_lesion(perturbation.mask)), perturbation.mask


@dataclass(frozen=True)
class PerturbedOutlines:
    """A patient's changed outlines and their features: what the analysis of every model shares.

    ``changed`` and ``values`` are keyed by (lesion index, perturbation name):
    the lesion with the changed outline's size (its mask stays the segmented
    one), and its 1130 values in ``feature_names()`` order. ``skipped`` lists the
    changes with too few voxels or refused by pyradiomics.
    """

    changed: dict[tuple[int, str], Lesion]
    values: dict[tuple[int, str], np.ndarray]
    skipped: tuple[SkippedPerturbation, ...]


def perturbed_outlines(ct: sitk.Image, lesions: Sequence[Lesion], perturbation_set: PerturbationSet = DEFAULT_SET,
                       seed: int = 0, jobs: int = 1, progress: ProgressCallback | None = None) -> PerturbedOutlines:
    """Every lesion's outline changes and the features of each, independent of the model that reads them.

    Each changed outline reuses its lesion's resampled region and filtered images
    (``shared_extraction``); with the stock engine each is extracted whole.

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU).
    lesions : sequence of Lesion
        The target lesions, binary masks on the CT's grid.
    perturbation_set : PerturbationSet, default DEFAULT_SET
        The outline changes per lesion.
    seed : int, default 0
        Fixes the contour randomisations.
    jobs : int, default 1
        Processes for the feature extraction.
    progress : callable, optional
        ``progress(done, total, lesion id)`` after each outline change, computed or
        skipped; ``total`` is ``perturbation_set.extra_extractions(len(lesions))``.

    Returns
    -------
    PerturbedOutlines
        The changed lesions, their values and the skipped changes.

    Raises
    ------
    RuntimeError
        pyradiomics did not return the 1130 features of an outline, or workers cannot be started.
    """
    total, finished = perturbation_set.extra_extractions(len(lesions)), 0

    def done(lesion_id: str) -> None:
        nonlocal finished
        finished += 1
        if progress is not None:
            progress(finished, total, lesion_id)

    changed: dict[tuple[int, str], Lesion] = {}
    skipped: list[SkippedPerturbation] = []

    def skip(item: SkippedPerturbation) -> None:
        skipped.append(item)
        done(item.lesion_id)

    outlines = _perturbed_lesions(ct, lesions, perturbation_set, seed, skip)
    if fast_path_blocker():  # the stock engine: nothing to share
        values = {}
        for index, name, lesion, mask in outlines:
            changed[index, name] = lesion
            values[index, name] = engine_values(ct, mask, lesion.lesion_id)
            done(lesion.lesion_id)
        return PerturbedOutlines(changed, values, tuple(skipped))

    def pieces() -> Iterator:
        regions: dict[int, object] = {}
        for index, name, lesion, mask in outlines:
            if index not in regions:
                regions = {index: share_region(ct, lesions[index].mask, lesion.lesion_id)}  # one lesion at a time
            try:
                outline = outline_pieces(regions[index], ct, mask)
            except InputError as error:
                skip(SkippedPerturbation(lesion.lesion_id, name, str(error)))
                continue
            changed[index, name] = lesion
            yield (index, name), lesion.lesion_id, outline

    values = compute_outlines(pieces(), jobs, done=lambda key: done(lesions[key[0]].lesion_id))
    return PerturbedOutlines(changed, values, tuple(skipped))


def _check_flip_limit(flip_limit: float) -> None:
    if not 0 <= flip_limit < 1:
        raise InputError(f"Flip limit {flip_limit}: give a share between 0 and 1 (default {FLIP_LIMIT}).")


def _influence(lesion_id: str, items: Sequence[PerturbedPrediction], base: Prediction) -> LesionInfluence:
    probabilities = [item.probability for item in items] or [base.probability]
    flips = sum(item.risk_group != base.risk_group for item in items) if base.risk_group is not None else 0
    return LesionInfluence(lesion_id, len(items), min(probabilities), max(probabilities),
                           max(abs(p - base.probability) for p in probabilities), flips)


def summarise(base: Prediction, perturbed: Sequence[PerturbedPrediction], lesion_ids: Sequence[str],
              perturbation_set: PerturbationSet, seed: int, flip_limit: float = FLIP_LIMIT,
              skipped: Sequence[SkippedPerturbation] = ()) -> SensitivityResult:
    """The result from the unperturbed prediction and the perturbed ones (no extraction).

    Parameters
    ----------
    base : Prediction
        The prediction with the outlines as segmented.
    perturbed : sequence of PerturbedPrediction
        One per changed outline that could be computed.
    lesion_ids : sequence of str
        The patient's target lesions, in order; one ``LesionInfluence`` each.
    perturbation_set : PerturbationSet
        The outline changes, recorded by name and description.
    seed : int
        The seed of the contour randomisations, recorded.
    flip_limit : float, default FLIP_LIMIT
        Share of perturbations in another risk group above which the group is
        called unstable (0.10).
    skipped : sequence of SkippedPerturbation, default ()
        Outline changes left out, with the reason.

    Returns
    -------
    SensitivityResult
        The probability range (including ``base``), the 90 % interval of the
        perturbed probabilities (None below ``MIN_FOR_INTERVAL`` of them), the
        flip share (None without a risk group or perturbations), whether the
        group is unstable, the per-lesion influence and the deciding lesion
        (most flips when unstable, else the largest probability change).
    """
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
                        flip_limit: float = FLIP_LIMIT, patient_id: str = "patient",
                        progress: ProgressCallback | None = None,
                        outlines: PerturbedOutlines | None = None) -> SensitivityResult:
    """The prediction of ``predict_lesions`` recomputed under ``perturbation_set`` for each lesion in turn.

    ``rows`` are the unperturbed features of ``lesions`` (from the prediction
    just made); without them they are extracted first. ``seed`` fixes the
    contour randomisations. ``flip_limit`` is the share of flips above which the
    risk group is called unstable. The clinical model reads no outline and is refused.

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU).
    lesions : sequence of Lesion
        The target lesions, binary masks on the CT's grid; at least one.
    clinical : ClinicalFacts or None
        The four clinical facts; None for the radiomics model.
    model : {"radiomics", "combined"} or None, default "combined"
        The model kind; None means the kind of ``bundle``. The clinical model is refused.
    bundle : WeightBundle, str, os.PathLike or None
        Weights (a bundle or its folder); None means the bundled weights of ``model``.
    rows : sequence of LesionFeatures, optional
        The unperturbed features of ``lesions``, in their order; None extracts them.
    perturbation_set : PerturbationSet, default DEFAULT_SET
        The outline changes: erosion and dilation by 1 mm and 8 randomisations by default.
    seed : int, default 0
        Fixes the contour randomisations.
    jobs : int, default 1
        Processes for the feature extraction.
    flip_limit : float, default FLIP_LIMIT
        Share of flips, in [0, 1), above which the risk group is unstable.
    patient_id : str, default "patient"
        The id recorded when ``rows`` are extracted here.
    progress : callable, optional
        ``progress(done, total, lesion id)`` after each outline change, computed or
        skipped; ``total`` is ``perturbation_set.extra_extractions(len(lesions))``.
    outlines : PerturbedOutlines, optional
        The changes' features from ``perturbed_outlines`` with the same lesions,
        ``perturbation_set`` and ``seed`` (another model's analysis of the same
        patient); None computes them.

    Returns
    -------
    SensitivityResult
        See ``summarise``; changes with fewer than ``MIN_VOXELS`` voxels or refused
        by pyradiomics are listed as skipped.

    Raises
    ------
    InputError
        The model is clinical, there are no lesions, ``flip_limit`` is outside
        [0, 1), ``rows`` are not of ``lesions`` in order, or the prediction or
        extraction refuses the input (see ``predict_features``, ``extract_lesions``).
    BundleError
        The weights fail verification or are of another kind than ``model``.
    """
    bundle = resolve_bundle(model, bundle)
    if bundle.kind == "clinical":
        raise InputError("The clinical model reads no outline, so its probability cannot change with one; "
                         "use the radiomics or combined model for the outline sensitivity.")
    if not lesions:
        raise InputError(f"The {bundle.kind} model needs target lesions to change the outlines of.")
    _check_flip_limit(flip_limit)
    if rows is None:
        rows = extract_lesions(ct, lesions, patient_id, jobs=jobs)
    ids = [lesion.lesion_id for lesion in lesions]
    if [row.lesion.lesion_id for row in rows] != ids:
        raise InputError(f"Sensitivity: the feature rows are of lesions {[row.lesion.lesion_id for row in rows]}, "
                         f"not {ids}; pass the rows extracted for these lesions, in their order.")
    base = predict_features(rows, clinical, bundle.kind, bundle)
    if outlines is None:
        outlines = perturbed_outlines(ct, lesions, perturbation_set, seed, jobs, progress)
    perturbed = []
    for (index, name), lesion in outlines.changed.items():
        variant = list(rows)
        # Same engine, parameter file and CT as the unperturbed row, whose provenance the prediction checks.
        variant[index] = LesionFeatures(rows[index].patient_id, lesion, outlines.values[index, name],
                                        rows[index].provenance)
        prediction = predict_features(variant, clinical, bundle.kind, bundle)
        perturbed.append(PerturbedPrediction(lesion.lesion_id, name, lesion.size.volume_mm3, prediction.probability,
                                             prediction.score, prediction.risk_group))
    return summarise(base, perturbed, ids, perturbation_set, seed, flip_limit, outlines.skipped)


def sensitivity_analysis(perturbation_set: PerturbationSet = DEFAULT_SET, seed: int = 0, jobs: int = 1,
                         flip_limit: float = FLIP_LIMIT) -> SensitivityAnalysis:
    """``analyse_sensitivity`` with these settings, for ``predict_lesions`` to run on the rows it has extracted.

    The prediction module cannot import this one (this one imports it), so the
    command line hands it this function instead: the prediction's CT, lesions,
    clinical facts, feature rows and weights then go in unchanged, and no
    lesion is extracted twice.

    Parameters
    ----------
    perturbation_set : PerturbationSet, default DEFAULT_SET
        The outline changes per lesion.
    seed : int, default 0
        Fixes the contour randomisations.
    jobs : int, default 1
        Processes in all for the changed outlines' features.
    flip_limit : float, default FLIP_LIMIT
        Share of flips above which the risk group is called unstable.

    Returns
    -------
    SensitivityAnalysis
        (CT, lesions, clinical facts, feature rows, bundle) -> ``SensitivityResult``.
    """
    _check_flip_limit(flip_limit)  # before the prediction's extraction, not after it

    def analyse(ct: sitk.Image, lesions: Sequence[Lesion], clinical: ClinicalFacts | None,
                rows: Sequence[LesionFeatures], bundle: WeightBundle) -> SensitivityResult:
        return analyse_sensitivity(ct, lesions, clinical, bundle.kind, bundle, rows=rows,
                                   perturbation_set=perturbation_set, seed=seed, jobs=jobs, flip_limit=flip_limit)

    return analyse
