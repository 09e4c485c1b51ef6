"""A batch's outline sensitivity (issue 17): per patient the analysis ``abcir predict --sensitivity`` makes,
over the cohort the share of patients whose risk group is stable and each feature's ICC under the changes.

Per patient (``analyse_patient``, after its features and predictions): every
model that reads an outline (radiomics, combined) is analysed by
``abcir.sensitivity.analysis.analyse_sensitivity`` from the patient's stored
features and one set of changed outlines' features shared by the models
(``perturbed_outlines``), and the changed outlines are extracted once more, as
``abcir extract`` extracts an outline, for the per-feature ICC
(``abcir.sensitivity.feature_icc``; their values enter the batch's cache). Both
are kept in the patient's record, so a resumed batch recomputes neither.

Over the cohort: ``stable_shares`` and ``perturbation_icc``; the predictions table
gets ``<model>_stable`` (1/0), ``<model>_probability_low`` and ``_high`` (the
range of the probability under the changes) from ``sensitivity_cells``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import pandas as pd

from ..cohort.table import CohortRow
from ..errors import InputError
from ..evaluation.table import HIGH_SUFFIX, LOW_SUFFIX, STABLE_SUFFIX
from ..features.cache import FeatureCache
from ..features.catalogue import LesionFeatures, feature_names
from ..features.parallel import single_threaded_blas
from ..imaging.ct import read_ct
from ..models.bundle import WeightBundle
from ..patient.lesions import load_lesions
from ..sensitivity.analysis import analyse_sensitivity, perturbed_outlines
from ..sensitivity.feature_icc import outline_ratings, perturbed_outline_values
from ..sensitivity.perturbations import PerturbationSet
from ..stats.agreement import feature_icc_table
from .store import PatientRecord, StableShare


@dataclass(frozen=True)
class SensitivitySettings:
    """The outline sensitivity a batch computes per patient: the outline changes and the randomisations' seed."""

    perturbation_set: PerturbationSet
    seed: int = 0


def analyse_patient(spec: CohortRow, record: PatientRecord, cache_folder: str | os.PathLike,
                    bundles: Sequence[WeightBundle], settings: SensitivitySettings) -> PatientRecord:
    """The patient's record with its outline sensitivity per model and its changed outlines' features.

    Parameters
    ----------
    spec : CohortRow
        The patient's cohort row (its CT and lesions are read again).
    record : PatientRecord
        The patient's record with features and predictions (``work.finish_patient``).
    cache_folder : path-like
        The batch's feature cache; the changed outlines' values are read from and added to it.
    bundles : sequence of WeightBundle
        The run's models; the clinical model and models without a prediction for this patient are skipped.
    settings : SensitivitySettings
        The outline changes and seed.

    Returns
    -------
    PatientRecord
        ``record`` with ``sensitivity`` (per model, ``SensitivityResult.to_dict()``: probabilities 0-1,
        volumes in mm³), ``sensitivity_errors`` (per model, an ``InputError``'s message) and ``perturbed``.

    Raises
    ------
    InputError
        The lesions read now are not those of ``record`` (the files changed during the run).
    """
    with single_threaded_blas():
        ct = read_ct(spec.ct)
        lesions = load_lesions(spec.lesions, ct, spec.sites)
        ids = [lesion.lesion_id for lesion in lesions]
        if ids != [lesion.lesion_id for lesion in record.lesions]:
            raise InputError(f"Patient '{spec.patient_id}': lesions {ids} now, {[l.lesion_id for l in record.lesions]} "
                             "when extracted; the lesion files changed during the batch, run it again.")
        rows = [LesionFeatures(spec.patient_id, lesion, stored.values, stored.provenance)
                for lesion, stored in zip(lesions, record.lesions)]
        results, errors = {}, {}
        outlines = None  # the changed outlines' features, computed once for every model that reads them
        for bundle in bundles:
            if bundle.kind == "clinical" or bundle.kind not in record.predictions:
                continue
            try:
                if outlines is None:
                    outlines = perturbed_outlines(ct, lesions, settings.perturbation_set, settings.seed)
                results[bundle.kind] = analyse_sensitivity(
                    ct, lesions, spec.clinical, model=bundle.kind, bundle=bundle, rows=rows,
                    perturbation_set=settings.perturbation_set, seed=settings.seed,
                    patient_id=spec.patient_id, outlines=outlines).to_dict()
            except InputError as error:
                errors[bundle.kind] = str(error)
        perturbed = perturbed_outline_values(ct, lesions, spec.patient_id, settings.perturbation_set, settings.seed,
                                             cache=FeatureCache(cache_folder))
    return replace(record, sensitivity=results, sensitivity_errors=errors, perturbed=tuple(perturbed))


def sensitivity_cells(record: PatientRecord, kind: str) -> dict[str, object]:
    """The predictions table's sensitivity cells of one patient and model ("" where not analysed).

    Parameters
    ----------
    record : PatientRecord
        A finished patient.
    kind : str
        The model kind.

    Returns
    -------
    dict
        ``<kind>_stable``: 1 when the risk group holds (``SensitivityResult.unstable`` False), 0 when it
        flips too often, "" without a risk cut-off; ``<kind>_probability_low`` / ``_high``: the
        probability's range (0-1) under the outline changes.
    """
    result = record.sensitivity.get(kind)
    if result is None:
        return {kind + STABLE_SUFFIX: "", kind + LOW_SUFFIX: "", kind + HIGH_SUFFIX: ""}
    stable = "" if result["risk_group"] is None else int(not result["unstable"])
    return {kind + STABLE_SUFFIX: stable, kind + LOW_SUFFIX: result["probability_low"],
            kind + HIGH_SUFFIX: result["probability_high"]}


def stable_shares(records: Sequence[PatientRecord], kinds: Sequence[str]) -> tuple[StableShare, ...]:
    """Per model, how many analysed patients keep their risk group under the outline changes.

    Parameters
    ----------
    records : sequence of PatientRecord
        The finished patients.
    kinds : sequence of str
        The model kinds of the run; the clinical model, which reads no outline, is left out.

    Returns
    -------
    tuple of StableShare
        One per model that reads an outline; patients without a risk group (no cut-off) do not count.
    """
    shares = []
    for kind in kinds:
        if kind == "clinical":
            continue
        grouped = [record.sensitivity[kind] for record in records
                   if kind in record.sensitivity and record.sensitivity[kind]["risk_group"] is not None]
        stable = sum(not result["unstable"] for result in grouped)
        shares.append(StableShare(kind, len(grouped), stable, stable / len(grouped) if grouped else None))
    return tuple(shares)


def perturbation_icc(records: Sequence[PatientRecord], settings: SensitivitySettings) -> pd.DataFrame | None:
    """Each feature's ICC(2,1) over the cohort's lesions between segmented and changed outlines.

    Parameters
    ----------
    records : sequence of PatientRecord
        The finished patients, with their changed outlines' values.
    settings : SensitivitySettings
        The outline changes (their names are the raters).

    Returns
    -------
    pandas.DataFrame or None
        The readers' ``feature_icc.csv`` columns (``feature_icc_table``), or None when fewer than two
        lesions have changed outlines.
    """
    names = settings.perturbation_set.names
    blocks = [outline_ratings([lesion.lesion_id for lesion in record.lesions],
                              np.vstack([lesion.values for lesion in record.lesions]), record.perturbed, names)
              for record in records if record.perturbed]
    if sum(len(block) for block in blocks) < 2:
        return None
    return feature_icc_table(feature_names(), np.concatenate(blocks))
