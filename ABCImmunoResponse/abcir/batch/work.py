"""One patient of a batch: its fingerprint, its reading and resampling, its lesions' values and its predictions.

The work is split in steps small enough to be tasks on a Dask cluster (``plan_work`` per patient,
``compute_lesion`` per lesion, ``finish_patient`` per patient); ``compute_patient`` runs them one after
the other in one process. Every step is a module-level function of plain arguments, so it pickles to
any worker, and a local run and a cluster run compute the same values with the same functions.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from ..models.bundle import BundleError, WeightBundle, bundled_bundle, load_bundle
from ..cohort.table import CohortRow, cohort_cells
from ..errors import InputError
from ..features.cache import FeatureCache
from ..features.catalogue import LesionFeatures, Provenance, software_versions
from ..features.preparation import PreparedLesion, check_filter_coverage, fast_path_blocker, prepare_lesion
from ..features.engine import lesion_values, stock_values
from ..features.extract import lesion_provenances
from ..imaging.ct import read_ct
from ..patient.lesions import Lesion, load_lesions
from ..models import MODEL_KINDS
from ..features.parallel import single_threaded_blas
from ..prediction.result import CTIdentity
from ..prediction.predict import predict_features
from .sensitivity import SensitivitySettings, analyse_patient
from .store import LesionRecord, PatientRecord


@dataclass(frozen=True)
class ModelChoice:
    """A model to predict with: its kind and the bundle folder holding its weights."""

    kind: str
    bundle: Path


def _file_state(path: Path) -> list:
    """Name, size and modification time of a file, or of the files in a folder (a DICOM series)."""
    try:
        if path.is_dir():
            return [[entry.name, entry.stat().st_size, entry.stat().st_mtime_ns]
                    for entry in sorted(path.iterdir(), key=lambda e: e.name) if entry.is_file()]
        stat = path.stat()
        return [path.name, stat.st_size, stat.st_mtime_ns]
    except OSError:
        return [path.name, None]


def input_bytes(spec: CohortRow) -> int:
    """Size of a patient's input files: a rough measure of the work it takes.

    Parameters
    ----------
    spec : CohortRow
        The patient's cohort row.

    Returns
    -------
    int
        Bytes of the CT (every file of a DICOM series folder) and of the lesion files; a file that
        cannot be read counts 0.
    """
    total = 0
    for path in (spec.ct, *spec.lesions):
        state = _file_state(path)
        entries = state if state and isinstance(state[0], list) else [state]
        total += sum(entry[1] or 0 for entry in entries)
    return total


def patient_fingerprint(spec: CohortRow, folder: Path, models: Sequence[ModelChoice],
                        sensitivity: SensitivitySettings | None = None) -> str:
    """SHA-256 of everything a patient's record depends on: row, input files, models, software, sensitivity.

    The row counts as the table writes it, paths relative to the cohort's ``folder``, so a
    cohort moved with its files keeps its finished patients.

    Parameters
    ----------
    spec : CohortRow
        The patient's cohort row.
    folder : Path
        The folder of the cohort table, against which its paths are written.
    models : sequence of ModelChoice
        The models the run predicts with; their bundles count by their manifest's SHA-256.
    sensitivity : SensitivitySettings, optional
        The outline sensitivity the run computes; without it the fingerprint is that of a run without
        (so turning ``--sensitivity`` on or off recomputes the patients, their features from the cache).

    Returns
    -------
    str
        64 hex digits. Input files count by name, size (bytes) and modification time (ns), the
        software by its versions, the pyradiomics parameter file by its SHA-256.

    Raises
    ------
    BundleError
        A model's bundle cannot be read.
    """
    state = {
        "row": dict(sorted(cohort_cells(spec, folder).items())),
        "files": [_file_state(p) for p in (spec.ct, *spec.lesions, *([spec.sites] if spec.sites else []))],
        "models": [[model.kind, _bundle_identity(model.bundle)] for model in models],
        "software": software_versions(),
        "parameters": _parameter_identity(),
    }
    if sensitivity is not None:
        state["sensitivity"] = asdict(sensitivity)
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


@lru_cache(maxsize=None)
def _parameter_identity() -> str:
    from ..imaging.ct import file_sha256
    from ..resources import parameter_file

    return file_sha256(parameter_file())


@lru_cache(maxsize=None)
def _bundle_identity(folder: Path) -> str:
    return _load_bundle(folder).manifest_sha256


@lru_cache(maxsize=None)
def _load_bundle(folder: Path) -> WeightBundle:
    return load_bundle(folder)


def choose_models(models: Sequence[str] | None = None,
                  weights: Sequence[str | os.PathLike] = ()) -> tuple[list[ModelChoice], list[str]]:
    """The models to predict with, and notes on those left out.

    Given weights are used as they are; ``models`` (default: every kind)
    adds the bundled weights of each kind not given, where the installation
    ships them.

    Parameters
    ----------
    models : sequence of str, optional
        Model kinds (``abcir.models.MODEL_KINDS``) to predict with; None means every kind.
    weights : sequence of path-like
        Weight bundle folders to use instead of the bundled weights of their kind.

    Returns
    -------
    choices : list of ModelChoice
        The given bundles first, then the bundled ones.
    notes : list of str
        One line per asked-for kind that has no bundled weights in this installation.

    Raises
    ------
    InputError
        A kind is unknown, or two given bundles are of the same kind.
    BundleError
        A given bundle folder cannot be read.
    """
    choices = [ModelChoice(_load_bundle(Path(path)).kind, Path(path)) for path in weights]
    given: dict[str, Path] = {}
    for choice in choices:  # the predictions table has one column per kind
        if choice.kind in given:
            raise InputError(f"--weights '{given[choice.kind]}' and '{choice.bundle}' are both {choice.kind} models; "
                             "give one bundle per model kind (run the batch again into another folder for the other).")
        given[choice.kind] = choice.bundle
    notes = []
    kinds = [kind for kind in (models or MODEL_KINDS) if kind not in {choice.kind for choice in choices}]
    for kind in kinds:
        if kind not in MODEL_KINDS:
            raise InputError(f"Model '{kind}' is unknown; use one of {', '.join(MODEL_KINDS)}.")
        try:
            choices.append(ModelChoice(kind, bundled_bundle(kind).path))
        except BundleError as error:
            notes.append(f"no {kind} predictions: {error}")
    return choices, notes


@dataclass
class PatientWork:
    """A patient read and resampled: its lesions, what is cached, and what remains to compute."""

    spec: CohortRow
    fingerprint: str
    lesions: list[Lesion]
    provenances: list[Provenance]
    study_instance_uid: str
    series_instance_uid: str
    values: dict[int, np.ndarray]
    prepared: dict[int, PreparedLesion]


def plan_work(spec: CohortRow, fingerprint: str, cache_folder: str | os.PathLike) -> PatientWork:
    """Read the CT and lesions, take what the cache holds, resample the rest (any process).

    Parameters
    ----------
    spec : CohortRow
        The patient's cohort row.
    fingerprint : str
        The patient's ``patient_fingerprint`` (SHA-256, hex), carried into its record.
    cache_folder : path-like
        The batch's feature cache (``abcir.features.cache``); it is only read here.

    Returns
    -------
    PatientWork
        Cached values by lesion index, and the resampled lesions (``PreparedLesion``) still to compute.
        Where the fast path is blocked, the values are computed here with stock pyradiomics instead.

    Raises
    ------
    InputError
        The CT or a lesion file cannot be read, the patient has no target lesions, the CT is too thin
        for the LoG filters (``check_filter_coverage``), or pyradiomics refuses a lesion on the stock path.
    """
    with single_threaded_blas():
        ct = read_ct(spec.ct)
        lesions = load_lesions(spec.lesions, ct, spec.sites)
        if not lesions:
            raise InputError(f"Patient '{spec.patient_id}': no target lesions in {spec.lesions}.")
        check_filter_coverage(ct, lesions)
        provenances = lesion_provenances(ct, lesions)
        cache = FeatureCache(cache_folder)
        values: dict[int, np.ndarray] = {}
        prepared: dict[int, PreparedLesion] = {}
        blocked = fast_path_blocker()
        for index, (lesion, provenance) in enumerate(zip(lesions, provenances)):
            cached = cache.get(provenance)
            if cached is not None:
                values[index] = cached
            elif blocked:
                values[index] = stock_values(ct, lesion.mask, lesion.lesion_id)
            else:
                prepared[index] = prepare_lesion(ct, lesion.mask, lesion.lesion_id)

    def tag(key: str) -> str:
        return ct.GetMetaData(key).strip() if ct.HasMetaDataKey(key) else ""

    return PatientWork(spec, fingerprint, lesions, provenances, tag("0020|000d"), tag("0020|000e"), values,
                       prepared)


def work_todo(work: PatientWork) -> list[int]:
    """Indices of the lesions still to compute.

    Parameters
    ----------
    work : PatientWork
        A patient read and resampled by ``plan_work``.

    Returns
    -------
    list of int
        Lesion indices in ascending order.
    """
    return sorted(work.prepared)


def work_lesion(work: PatientWork, index: int) -> PreparedLesion:
    """One resampled lesion of a patient's work (small: the task that computes it needs nothing else).

    Parameters
    ----------
    work : PatientWork
        A patient read and resampled by ``plan_work``.
    index : int
        A lesion index from ``work_todo``.

    Returns
    -------
    PreparedLesion
        The lesion resampled to the extraction grid.
    """
    return work.prepared[index]


def compute_lesion(prepared: PreparedLesion) -> np.ndarray:
    """The 1130 values of one resampled lesion (one task per lesion on a cluster).

    Parameters
    ----------
    prepared : PreparedLesion
        A lesion resampled by ``plan_work``.

    Returns
    -------
    numpy.ndarray
        float64, in ``abcir.features.catalogue.feature_names`` order, in each feature's own unit.
    """
    with single_threaded_blas():
        return lesion_values(prepared)


def finish_patient(work: PatientWork, computed: dict[int, np.ndarray],
                   models: Sequence[ModelChoice]) -> PatientRecord:
    """The patient's record: every lesion's values and a prediction per model.

    Parameters
    ----------
    work : PatientWork
        The patient read and resampled by ``plan_work``.
    computed : dict of int to numpy.ndarray
        The 1130 values of each lesion of ``work_todo``, by lesion index.
    models : sequence of ModelChoice
        The models to predict with.

    Returns
    -------
    PatientRecord
        Lesion facts (sizes in mm, volume in mm³), values and provenance; per model the prediction, or the
        reason it was refused (an ``InputError`` such as a RECIST rule) in ``prediction_errors``.
    """
    values = {**work.values, **computed}
    rows = [LesionFeatures(work.spec.patient_id, lesion, values[index], work.provenances[index])
            for index, lesion in enumerate(work.lesions)]
    identity = CTIdentity(work.provenances[0].ct_sha256, work.study_instance_uid, work.series_instance_uid)
    predictions, errors = {}, {}
    for model in models:
        try:
            prediction = predict_features(rows, work.spec.clinical, model.kind, _load_bundle(model.bundle), identity)
            predictions[model.kind] = prediction.to_dict()
        except InputError as error:
            errors[model.kind] = str(error)
    lesions = tuple(LesionRecord(row.lesion.lesion_id, row.lesion.site, row.lesion.visceral,
                                 row.lesion.size.voxel_count, row.lesion.size.volume_mm3,
                                 row.lesion.size.longest_axial_diameter_mm, row.lesion.size.short_axis_mm,
                                 row.provenance, row.values) for row in rows)
    return PatientRecord(work.spec.patient_id, work.fingerprint, lesions, predictions, errors)


def compute_patient(spec: CohortRow, fingerprint: str, cache_folder: str | os.PathLike,
                    models: Sequence[ModelChoice], sensitivity: SensitivitySettings | None = None) -> PatientRecord:
    """A whole patient in one process; each lesion enters the cache as soon as it is computed.

    Parameters
    ----------
    spec : CohortRow
        The patient's cohort row.
    fingerprint : str
        The patient's ``patient_fingerprint`` (SHA-256, hex).
    cache_folder : path-like
        The batch's feature cache, read and written.
    models : sequence of ModelChoice
        The models to predict with.
    sensitivity : SensitivitySettings, optional
        The outline sensitivity to add (``abcir.batch.sensitivity.analyse_patient``); None adds none.

    Returns
    -------
    PatientRecord
        As ``finish_patient`` makes it, then ``analyse_patient`` with ``sensitivity``.

    Raises
    ------
    InputError
        As ``plan_work`` raises it; other exceptions (e.g. pyradiomics refusing a lesion) pass through.
    """
    work = plan_work(spec, fingerprint, cache_folder)
    cache = FeatureCache(cache_folder)
    computed = {}
    for index in work_todo(work):
        computed[index] = compute_lesion(work.prepared[index])
        cache.put(work.provenances[index], computed[index])
    record = finish_patient(work, computed, models)
    if sensitivity is None:
        return record
    return analyse_patient(spec, record, cache_folder, model_bundles(models), sensitivity)


def model_bundles(models: Sequence[ModelChoice]) -> list[WeightBundle]:
    """The weight bundles of ``models``, each read once per process.

    Parameters
    ----------
    models : sequence of ModelChoice
        The models of the run.

    Returns
    -------
    list of WeightBundle
        In the order of ``models``.
    """
    return [_load_bundle(model.bundle) for model in models]
