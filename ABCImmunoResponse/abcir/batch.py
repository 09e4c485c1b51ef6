"""Cohort batches: every patient of a cohort table extracted and predicted, resumably, here or on a Dask cluster.

    abcir batch --cohort cohort.csv --out DIR [--jobs N] [--scheduler tcp://host:port]

The cohort table is the one ``abcir train`` reads and ``abcir make-cohort``
writes (format: ``abcir.cohort_table``). Batch needs ``patient_id``, ``ct`` and
``lesions`` in every row; the clinical facts, when a row gives them, feed the
clinical and combined models; the outcomes and every other column are carried
into predictions.csv, the outcomes and facts as 1/0.

What DIR holds::

    patients/<id>.json   one finished patient: lesion facts, 1130 values per lesion, predictions
    cache/               lesion features (``abcir.feature_cache``), reused by every later run
    features.parquet     all lesions of all finished patients (also features.csv), feature_table layout
    predictions.csv      one row per patient in the ``abcir evaluate`` input format
    failures.csv         the patients that failed in the last run: stage and reason
    batch.json           what the last run used (cohort, models, software) and counted

Resuming: a patient is done when its ``patients/<id>.json`` exists, reads back,
and was made from the same cohort row (as ``cohort_table.cohort_cells`` writes
it), input files (size and modification time), models and software; any other
patient is (re)computed. Every file is written under a temporary name and
renamed, so a run killed at any moment leaves whole files only (and
temporaries, which the next run deletes), and the next run finishes what is
missing. Lesions finished before the kill come from
the cache. Two runs must not write into the same DIR at the same time.

A failing patient (unreadable CT, lesion refused by pyradiomics, ...) is listed
in failures.csv with the reason; the others go on. A prediction that fails
(e.g. RECIST: more than two targets in one organ) keeps the patient's features
and is listed with stage ``predict``.

``--scheduler`` runs the same work on an existing Dask distributed cluster:
per patient one task reads the CT and lesions and resamples them, then one
task per lesion computes its features, then one task predicts. Workers read
the input files and the cache, so DIR and the cohort must be on storage they
share; this process writes every output. The values are those of a local run:
the same functions compute them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from concurrent.futures import as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from . import __version__
from .bundle import BundleError, WeightBundle, bundled_bundle, load_bundle
from .cohort_table import OUTCOME_COLUMNS, PATH_COLUMNS, CohortRow, CohortTable, cohort_cells, read_cohort
from .errors import InputError
from .feature_cache import FeatureCache, cache_key
from .feature_table import LESION_COLUMNS
from .features import (
    LesionFeatures,
    PreparedLesion,
    Provenance,
    check_filter_coverage,
    fast_path_blocker,
    feature_names,
    lesion_provenances,
    lesion_values,
    prepare_lesion,
    software_versions,
    stock_values,
)
from .files import atomic_write, atomic_write_text
from .imaging import read_ct
from .lesions import Lesion, load_lesions
from .models import MODEL_KINDS
from .parallel import single_threaded_blas, worker_pool
from .prediction import CTIdentity, predict_features
from .records import to_json_dict, write_json

RECORD_SCHEMA = "abcir.batch_patient"
RECORD_SCHEMA_VERSION = 1
PATIENTS_FOLDER = "patients"
CACHE_FOLDER = "cache"
FEATURES_PARQUET = "features.parquet"
FEATURES_CSV = "features.csv"
PREDICTIONS_CSV = "predictions.csv"
FAILURES_CSV = "failures.csv"
MANIFEST = "batch.json"
# Columns of a cohort table that are neither inputs nor clinical variables of the predictions file.
NOT_VARIABLES = ("best_response",)
FAILURE_COLUMNS = ("patient_id", "stage", "error", "reason")

# progress(patients done, patients to do, patient id, outcome "done" / "failed")
BatchProgress = Callable[[int, int, str, str], None]


@dataclass(frozen=True)
class ModelChoice:
    """A model to predict with: its kind and the bundle folder holding its weights."""

    kind: str
    bundle: Path


@dataclass(frozen=True)
class LesionRecord:
    """One lesion of a finished patient: facts, provenance and its 1130 values."""

    lesion_id: str
    site: str | None
    visceral: bool | None
    voxel_count: int
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float
    provenance: Provenance
    values: np.ndarray = field(compare=False)


@dataclass(frozen=True)
class PatientRecord:
    """A finished patient: what ``patients/<id>.json`` holds."""

    patient_id: str
    fingerprint: str
    lesions: tuple[LesionRecord, ...]
    predictions: dict[str, dict]
    prediction_errors: dict[str, str]

    def to_json(self) -> dict:
        return {"schema": RECORD_SCHEMA, "schema_version": RECORD_SCHEMA_VERSION, "patient_id": self.patient_id,
                "fingerprint": self.fingerprint,
                "lesions": [{"lesion_id": lesion.lesion_id, "site": lesion.site, "visceral": lesion.visceral,
                             "voxel_count": lesion.voxel_count, "volume_mm3": lesion.volume_mm3,
                             "longest_axial_diameter_mm": lesion.longest_axial_diameter_mm,
                             "short_axis_mm": lesion.short_axis_mm, "provenance": lesion.provenance.to_dict(),
                             "values": [float(v).hex() for v in lesion.values]} for lesion in self.lesions],
                "predictions": self.predictions, "prediction_errors": self.prediction_errors}

    @classmethod
    def from_json(cls, data: dict) -> PatientRecord:
        """Read a record back; raises ValueError/KeyError/TypeError for anything that is not one."""
        if data.get("schema") != RECORD_SCHEMA or data.get("schema_version") != RECORD_SCHEMA_VERSION:
            raise ValueError("not an abcir batch patient record of this version")
        lesions = []
        for item in data["lesions"]:
            provenance = item["provenance"]
            values = np.array([float.fromhex(v) for v in item["values"]], dtype=np.float64)
            if values.shape != (len(feature_names()),):
                raise ValueError(f"lesion '{item['lesion_id']}' has {values.size} values")
            lesions.append(LesionRecord(
                item["lesion_id"], item["site"], item["visceral"], int(item["voxel_count"]),
                float(item["volume_mm3"]), float(item["longest_axial_diameter_mm"]), float(item["short_axis_mm"]),
                Provenance(**{**provenance, "spacing_original_mm": tuple(provenance["spacing_original_mm"]),
                              "spacing_resampled_mm": tuple(provenance["spacing_resampled_mm"])}), values))
        return cls(data["patient_id"], data["fingerprint"], tuple(lesions), dict(data["predictions"]),
                   dict(data["prediction_errors"]))


@dataclass(frozen=True)
class Failure:
    """A patient that did not finish (stage ``extract``) or whose prediction failed (stage ``predict``)."""

    patient_id: str
    stage: str
    error: str
    reason: str


@dataclass(frozen=True)
class BatchModel:
    """A model of a batch run as ``batch.json`` records it."""

    kind: str
    bundle: str


@dataclass(frozen=True)
class BatchManifest:
    """``batch.json``: what the last run used (cohort, models, software) and counted."""

    cohort: str
    abcir_version: str
    software: dict[str, str]
    models: tuple[BatchModel, ...]
    notes: tuple[str, ...]
    patients: int
    finished: int
    computed_this_run: int
    failed: int
    scheduler: str | None
    jobs: int
    seconds: float


@dataclass(frozen=True)
class BatchSummary:
    """What a batch run did, and where its tables are."""

    out: Path
    n_patients: int
    n_finished: int
    n_computed: int  # patients computed in this run (the others were done before)
    failures: tuple[Failure, ...]
    models: tuple[str, ...]
    features_parquet: Path
    features_csv: Path
    predictions_csv: Path | None
    failures_csv: Path
    seconds: float


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


def _input_bytes(spec: CohortRow) -> int:
    """Size of a patient's input files: a rough measure of the work it takes."""
    total = 0
    for path in (spec.ct, *spec.lesions):
        state = _file_state(path)
        entries = state if state and isinstance(state[0], list) else [state]
        total += sum(entry[1] or 0 for entry in entries)
    return total


def patient_fingerprint(spec: CohortRow, folder: Path, models: Sequence[ModelChoice]) -> str:
    """SHA-256 of everything a patient's record depends on: row, input files, models, software.

    The row counts as the table writes it, paths relative to the cohort's ``folder``, so a
    cohort moved with its files keeps its finished patients.
    """
    state = {
        "row": dict(sorted(cohort_cells(spec, folder).items())),
        "files": [_file_state(p) for p in (spec.ct, *spec.lesions, *([spec.sites] if spec.sites else []))],
        "models": [[model.kind, _bundle_identity(model.bundle)] for model in models],
        "software": software_versions(),
        "parameters": _parameter_identity(),
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=str).encode()).hexdigest()


@lru_cache(maxsize=None)
def _parameter_identity() -> str:
    from .imaging import file_sha256
    from .resources import parameter_file

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
    """
    choices = [ModelChoice(_load_bundle(Path(path)).kind, Path(path)) for path in weights]
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


# --- One patient ------------------------------------------------------------------------------

@dataclass
class PatientPlan:
    """A patient read and resampled: its lesions, what is cached, and what remains to compute."""

    spec: CohortRow
    fingerprint: str
    lesions: list[Lesion]
    provenances: list[Provenance]
    study_instance_uid: str
    series_instance_uid: str
    values: dict[int, np.ndarray]
    prepared: dict[int, PreparedLesion]


def plan_patient(spec: CohortRow, fingerprint: str, cache_folder: str | os.PathLike) -> PatientPlan:
    """Read the CT and lesions, take what the cache holds, resample the rest (any process)."""
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

    return PatientPlan(spec, fingerprint, lesions, provenances, tag("0020|000d"), tag("0020|000e"), values,
                       prepared)


def plan_todo(plan: PatientPlan) -> list[int]:
    """Indices of the lesions still to compute."""
    return sorted(plan.prepared)


def plan_lesion(plan: PatientPlan, index: int) -> PreparedLesion:
    """One resampled lesion of a plan (small: the task that computes it needs nothing else)."""
    return plan.prepared[index]


def compute_lesion(prepared: PreparedLesion) -> np.ndarray:
    """The 1130 values of one resampled lesion (one task per lesion on a cluster)."""
    with single_threaded_blas():
        return lesion_values(prepared)


def finish_patient(plan: PatientPlan, computed: dict[int, np.ndarray],
                   models: Sequence[ModelChoice]) -> PatientRecord:
    """The patient's record: every lesion's values and a prediction per model."""
    values = {**plan.values, **computed}
    rows = [LesionFeatures(plan.spec.patient_id, lesion, values[index], plan.provenances[index])
            for index, lesion in enumerate(plan.lesions)]
    identity = CTIdentity(plan.provenances[0].ct_sha256, plan.study_instance_uid, plan.series_instance_uid)
    predictions, errors = {}, {}
    for model in models:
        try:
            prediction = predict_features(rows, plan.spec.clinical, model.kind, _load_bundle(model.bundle), identity)
            predictions[model.kind] = prediction.to_dict()
        except InputError as error:
            errors[model.kind] = str(error)
    lesions = tuple(LesionRecord(row.lesion.lesion_id, row.lesion.site, row.lesion.visceral,
                                 row.lesion.size.voxel_count, row.lesion.size.volume_mm3,
                                 row.lesion.size.longest_axial_diameter_mm, row.lesion.size.short_axis_mm,
                                 row.provenance, row.values) for row in rows)
    return PatientRecord(plan.spec.patient_id, plan.fingerprint, lesions, predictions, errors)


def compute_patient(spec: CohortRow, fingerprint: str, cache_folder: str | os.PathLike,
                    models: Sequence[ModelChoice]) -> PatientRecord:
    """A whole patient in one process; each lesion enters the cache as soon as it is computed."""
    plan = plan_patient(spec, fingerprint, cache_folder)
    cache = FeatureCache(cache_folder)
    computed = {}
    for index in plan_todo(plan):
        computed[index] = compute_lesion(plan.prepared[index])
        cache.put(plan.provenances[index], computed[index])
    return finish_patient(plan, computed, models)


# --- Files ----------------------------------------------------------------------------------------

def _remove_temporaries(out: Path) -> None:
    """Delete what a killed run left half-written (never read: only renamed files count)."""
    for folder in (out, out / PATIENTS_FOLDER):
        if folder.is_dir():
            for path in folder.glob(".tmp-*"):
                path.unlink(missing_ok=True)


def _record_path(out: Path, spec: CohortRow) -> Path:
    """``patients/<id>.json``: the id where it is a safe file name, else the id made safe plus a hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", spec.patient_id)
    if safe != spec.patient_id or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha256(spec.patient_id.encode()).hexdigest()[:8]}"
    return out / PATIENTS_FOLDER / f"{safe}.json"


def read_record(path: Path) -> PatientRecord | None:
    """A patient record, or None when the file is absent or not a whole, valid record."""
    try:
        return PatientRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _finished(out: Path, spec: CohortRow, fingerprint: str) -> PatientRecord | None:
    record = read_record(_record_path(out, spec))
    if record is None or record.fingerprint != fingerprint or record.patient_id != spec.patient_id:
        return None
    return record


def features_table(records: Iterable[PatientRecord]) -> pd.DataFrame:
    """All lesions of the records in ``feature_table``'s layout: lesion facts, then the 1130 features."""
    facts, values = [], []
    for record in records:
        for lesion in record.lesions:
            facts.append({"patient_id": record.patient_id, "lesion_id": lesion.lesion_id, "site": lesion.site or "",
                          "visceral": "" if lesion.visceral is None else int(lesion.visceral),
                          "voxel_count": lesion.voxel_count, "volume_mm3": lesion.volume_mm3,
                          "longest_axial_diameter_mm": lesion.longest_axial_diameter_mm,
                          "short_axis_mm": lesion.short_axis_mm})
            values.append(lesion.values)
    matrix = np.vstack(values) if values else np.empty((0, len(feature_names())))
    return pd.concat([pd.DataFrame(facts, columns=list(LESION_COLUMNS)),
                      pd.DataFrame(matrix, columns=list(feature_names()))], axis=1)


def predictions_table(cohort: CohortTable, records: dict[str, PatientRecord],
                      kinds: Sequence[str]) -> pd.DataFrame:
    """One row per finished patient: id, outcomes, ``<model>_score``/``_probability``, clinical variables.

    Outcomes and facts are written as the cohort table writes them (1/0), so that
    ``abcir evaluate`` reads whatever yes/no spelling the cohort used.
    """
    rows = []
    for spec in cohort.rows:
        record = records.get(spec.patient_id)
        if record is None:
            continue
        cells = cohort_cells(spec, cohort.folder)
        row: dict = {"patient_id": spec.patient_id}
        row.update({column: cells.get(column, "") for column in OUTCOME_COLUMNS if cohort.has(column)})
        for kind in kinds:
            prediction = record.predictions.get(kind)
            row[f"{kind}_score"] = prediction["score"] if prediction else ""
            row[f"{kind}_probability"] = prediction["probability"] if prediction else ""
        row.update({column: value for column, value in cells.items()
                    if column not in ("patient_id", *PATH_COLUMNS, *OUTCOME_COLUMNS, *NOT_VARIABLES)})
        rows.append(row)
    return pd.DataFrame(rows)


def _csv_text(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.17g", lineterminator="\n")
    return buffer.getvalue()


def _failures_text(failures: Sequence[Failure]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FAILURE_COLUMNS)
    writer.writerows([failure.patient_id, failure.stage, failure.error, failure.reason] for failure in failures)
    return buffer.getvalue()


def _failure(patient_id: str, error: BaseException) -> Failure:
    reason = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    return Failure(patient_id, "extract", type(error).__name__, reason)


# --- Running ---------------------------------------------------------------------------------------

def _run_local(todo: list[tuple[CohortRow, str]], cache: Path, models: Sequence[ModelChoice], jobs: int,
               finished: Callable[[CohortRow, PatientRecord | None, BaseException | None], None]) -> None:
    if jobs <= 1 or len(todo) <= 1:
        for spec, fingerprint in todo:
            try:
                record = compute_patient(spec, fingerprint, cache, models)
            except Exception as error:  # noqa: BLE001 (one patient's failure, whatever it is, stops only it)
                finished(spec, None, error)
            else:
                finished(spec, record, None)
        return
    pool = worker_pool(jobs, "process")
    # Largest inputs first, so that no worker is left alone with a big patient at the end.
    ordered = sorted(todo, key=lambda item: -_input_bytes(item[0]))
    futures = {pool.submit(compute_patient, spec, fingerprint, cache, models): spec for spec, fingerprint in ordered}
    for future in as_completed(futures):
        error = future.exception()
        finished(futures[future], None if error else future.result(), error)


def _run_dask(todo: list[tuple[CohortRow, str]], cache: Path, models: Sequence[ModelChoice], scheduler: str,
              finished: Callable[[CohortRow, PatientRecord | None, BaseException | None], None]) -> None:
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as error:
        raise InputError("--scheduler needs the 'distributed' package (pip install \"dask[distributed]\").") from error
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, TimeoutError) as error:
        raise InputError(f"Dask scheduler '{scheduler}': cannot connect ({error}). Start the cluster first, or "
                         "run without --scheduler.") from error
    with client:
        # At most a few patients per worker thread in flight: a plan holds its lesions' full-size masks.
        window = max(2, 2 * sum(client.nthreads().values()))
        waiting = list(todo)
        # future -> (stage, patient, the patient's plan future); stages: plan, todo, finish
        stages: dict = {}
        pending = dask_completed()

        def start_next() -> None:
            if waiting:
                spec, fingerprint = waiting.pop(0)
                plan = client.submit(plan_patient, spec, fingerprint, cache, pure=False)
                stages[plan] = ("plan", spec, plan)
                pending.add(plan)

        for _ in range(window):
            start_next()
        for future in pending:
            stage, spec, plan = stages.pop(future)
            if future.status == "error":
                finished(spec, None, future.exception())
                start_next()
                continue
            if stage == "plan":
                following = client.submit(plan_todo, plan, pure=False)
                stages[following] = ("todo", spec, plan)
            elif stage == "todo":
                values = {index: client.submit(compute_lesion, client.submit(plan_lesion, plan, index, pure=False),
                                               pure=False) for index in future.result()}
                following = client.submit(finish_patient, plan, values, models, pure=False)
                stages[following] = ("finish", spec, plan)
            else:
                finished(spec, future.result(), None)
                start_next()
                continue
            pending.add(following)


class TerminalProgress:
    """A progress line on stderr with the elapsed time and an ETA; redrawn in place on a terminal."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.failed = 0

    def __call__(self, done: int, total: int, patient_id: str, outcome: str) -> None:
        self.failed += outcome == "failed"
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * (total - done) if done else math.nan
        width = 24
        filled = int(width * done / total) if total else width
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} patients, elapsed {_clock(elapsed)}, "
                f"ETA {_clock(eta)}" + (f", {self.failed} failed" if self.failed else "") + f"  {patient_id}")
        if self.stream.isatty():
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    if math.isnan(seconds):
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def run_batch(cohort: str | os.PathLike, out: str | os.PathLike, jobs: int = 1, scheduler: str | None = None,
              models: Sequence[str] | None = None, weights: Sequence[str | os.PathLike] = (),
              progress: BatchProgress | None = None) -> BatchSummary:
    """Extract and predict every patient of ``cohort`` not yet finished in ``out``; write the tables."""
    start = time.monotonic()
    if jobs < 1:
        raise InputError(f"Jobs {jobs}: give 1 or more parallel processes.")
    patients = read_cohort(cohort)
    specs = patients.rows
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"Output '{out}' is a file; give a folder for the batch.")
    choices, notes = choose_models(models, weights)
    _remove_temporaries(out)
    cache = out / CACHE_FOLDER
    feature_cache = FeatureCache(cache)
    records: dict[str, PatientRecord] = {}
    todo = []
    for spec in specs:
        fingerprint = patient_fingerprint(spec, patients.folder, choices)
        record = _finished(out, spec, fingerprint)
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
            atomic_write_text(_record_path(out, spec), json.dumps(record.to_json()))
            records[spec.patient_id] = record
        if progress:
            progress(done, len(todo), spec.patient_id, "failed" if record is None else "done")

    if todo:
        if scheduler:
            _run_dask(todo, cache, choices, scheduler, finished)
        else:
            _run_local(todo, cache, choices, jobs, finished)
    ordered = [records[spec.patient_id] for spec in specs if spec.patient_id in records]
    for record in ordered:
        failures += [Failure(record.patient_id, "predict", "InputError", message)
                     for message in record.prediction_errors.values()]
    table = features_table(ordered)
    parquet = atomic_write(out / FEATURES_PARQUET, lambda name: table.to_parquet(name, index=False))
    features_csv = atomic_write_text(out / FEATURES_CSV, _csv_text(table))
    kinds = [choice.kind for choice in choices]
    predictions_csv = atomic_write_text(out / PREDICTIONS_CSV, _csv_text(predictions_table(patients, records, kinds))) \
        if kinds else None
    failures_csv = atomic_write_text(out / FAILURES_CSV, _failures_text(failures))
    seconds = time.monotonic() - start
    computed = len(todo) - sum(failure.stage == "extract" for failure in failures)
    write_json(out / MANIFEST, to_json_dict(BatchManifest(
        str(Path(cohort).resolve()), __version__, software_versions(),
        tuple(BatchModel(choice.kind, str(choice.bundle)) for choice in choices), tuple(notes), len(specs),
        len(ordered), computed, len(failures), scheduler, jobs, round(seconds, 3))))
    return BatchSummary(out, len(specs), len(ordered), computed, tuple(failures), tuple(kinds), parquet,
                        features_csv, predictions_csv, failures_csv, seconds)
