"""``run_batch``: every patient of a cohort not yet finished in the output folder, computed, then the tables."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from .. import __version__
from ..cohort.table import CohortRow, read_cohort
from ..consensus.feature_icc import feature_icc_text
from ..errors import InputError
from ..features.cache import FeatureCache, cache_key
from ..features.catalogue import software_versions
from ..files import atomic_write, atomic_write_text, check_writable_folder
from ..options import PERTURBATION_ICC_FILE
from ..records import to_json_dict, write_json
from .runners import run_dask, run_local
from .sensitivity import SensitivitySettings, perturbation_icc, stable_shares
from .store import (
    CACHE_FOLDER,
    FAILURES_CSV,
    FEATURES_CSV,
    FEATURES_PARQUET,
    MANIFEST,
    PREDICTIONS_CSV,
    BatchManifest,
    BatchModel,
    BatchSensitivity,
    BatchSummary,
    Failure,
    PatientRecord,
    finished_record,
    record_path,
    remove_temporaries,
)
from .tables import csv_text, failures_text, features_table, predictions_table
from .work import choose_models, patient_fingerprint

# progress(patients done, patients to do, patient id, outcome "done" / "failed")
BatchProgress = Callable[[int, int, str, str], None]


def _failure(patient_id: str, error: BaseException) -> Failure:
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    return Failure(patient_id, "extract", type(error).__name__, reason)


def run_batch(cohort: str | os.PathLike, out: str | os.PathLike, jobs: int = 1, scheduler: str | None = None,
              models: Sequence[str] | None = None, weights: Sequence[str | os.PathLike] = (),
              progress: BatchProgress | None = None, sensitivity: SensitivitySettings | None = None) -> BatchSummary:
    """Extract and predict every patient of ``cohort`` not yet finished in ``out``; write the tables.

    Parameters
    ----------
    cohort : path-like
        The cohort table (``abcir.cohort.table``); each row needs ``patient_id``, ``ct`` and ``lesions``.
    out : path-like
        The output folder, created when absent; what an earlier run finished there is reused.
    jobs : int
        Patients computed in parallel by local worker processes (ignored with ``scheduler``).
    scheduler : str, optional
        Address of an existing Dask distributed cluster (``tcp://host:port``) to compute on instead.
    models : sequence of str, optional
        Model kinds to predict with; None means every kind with bundled or given weights.
    weights : sequence of path-like
        Weight bundle folders to use instead of the bundled weights of their kind.
    progress : callable, optional
        Called as ``progress(done, to_do, patient_id, "done" | "failed")`` each time a patient finishes.
    sensitivity : SensitivitySettings, optional
        Also analyse each patient's outline sensitivity (``abcir.batch.sensitivity``): its results in the
        patient's record and the predictions table, the share of stable patients in ``batch.json``, and
        each feature's ICC under the outline changes in ``perturbation_icc.csv``.

    Returns
    -------
    BatchSummary
        Counts, failures, the models used, the tables' paths, the run's wall time in seconds, and with
        ``sensitivity`` the cohort's stable shares and the ICC table's path.

    Raises
    ------
    InputError
        ``jobs`` is below 1, ``out`` is a file or cannot be written, the cohort table or a model kind is
        refused, or the scheduler cannot be reached. A patient's own failure raises nothing: it is listed in
        failures.csv.
    """
    start = time.monotonic()
    if jobs < 1:
        raise InputError(f"Jobs {jobs}: give 1 or more parallel processes.")
    patients = read_cohort(cohort)
    specs = patients.rows
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output '{out}' is a file; give a folder for the batch.")
    check_writable_folder(out)
    choices, notes = choose_models(models, weights)
    remove_temporaries(out)
    cache = out / CACHE_FOLDER
    feature_cache = FeatureCache(cache)
    records: dict[str, PatientRecord] = {}
    todo = []
    for spec in specs:
        fingerprint = patient_fingerprint(spec, patients.folder, choices, sensitivity)
        record = finished_record(out, spec, fingerprint)
        if record is None:
            todo.append((spec, fingerprint))
        else:
            records[spec.patient_id] = record
    failures: list[Failure] = []
    done = 0

    def finished(spec: CohortRow, record: PatientRecord | None, error: BaseException | None) -> None:
        nonlocal done
        done += 1
        if record is None:
            failures.append(_failure(spec.patient_id, error))
        else:
            for lesion in record.lesions:  # lesions computed on a cluster enter the cache here
                if not feature_cache.path(cache_key(lesion.provenance)).exists():
                    feature_cache.put(lesion.provenance, lesion.values)
            atomic_write_text(record_path(out, spec), json.dumps(record.to_json()))
            records[spec.patient_id] = record
        if progress:
            progress(done, len(todo), spec.patient_id, "failed" if record is None else "done")

    if todo:
        if scheduler:
            run_dask(todo, cache, choices, scheduler, finished, sensitivity)
        else:
            run_local(todo, cache, choices, jobs, finished, sensitivity)
    ordered = [records[spec.patient_id] for spec in specs if spec.patient_id in records]
    for record in ordered:
        failures += [Failure(record.patient_id, "predict", "InputError", message)
                     for message in record.prediction_errors.values()]
        failures += [Failure(record.patient_id, "sensitivity", "InputError", message)
                     for message in record.sensitivity_errors.values()]
    table = features_table(ordered)
    parquet = atomic_write(out / FEATURES_PARQUET, lambda name: table.to_parquet(name, index=False))
    features_csv = atomic_write_text(out / FEATURES_CSV, csv_text(table))
    kinds = [choice.kind for choice in choices]
    predictions_csv = atomic_write_text(out / PREDICTIONS_CSV, csv_text(
        predictions_table(patients, records, kinds, sensitivity is not None))) if kinds else None
    outline = None
    (out / PERTURBATION_ICC_FILE).unlink(missing_ok=True)  # an earlier run's table describes other records
    if sensitivity is not None:
        icc = perturbation_icc(ordered, sensitivity)
        icc_csv = atomic_write_text(out / PERTURBATION_ICC_FILE, feature_icc_text(icc)) if icc is not None else None
        outline = BatchSensitivity(sensitivity.perturbation_set.name, sensitivity.perturbation_set.describe(),
                                   sensitivity.seed, stable_shares(ordered, kinds),
                                   None if icc_csv is None else str(icc_csv))
    failures_csv = atomic_write_text(out / FAILURES_CSV, failures_text(failures))
    seconds = time.monotonic() - start
    computed = len(todo) - sum(failure.stage == "extract" for failure in failures)
    models = tuple(BatchModel(choice.kind, str(choice.bundle),
                              next((record.predictions[choice.kind]["provenance"] for record in ordered
                                    if choice.kind in record.predictions), None)) for choice in choices)
    write_json(out / MANIFEST, to_json_dict(BatchManifest(
        str(Path(cohort).resolve()), __version__, software_versions(), models, tuple(notes), len(specs),
        len(ordered), computed, len(failures), scheduler, jobs, round(seconds, 3), outline)))
    return BatchSummary(out, len(specs), len(ordered), computed, tuple(failures), tuple(kinds), parquet,
                        features_csv, predictions_csv, failures_csv, seconds, outline, models)
