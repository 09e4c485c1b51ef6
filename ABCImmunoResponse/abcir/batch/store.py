"""A batch's output folder: its layout, the patient records it keeps, the manifest and the run summary.

A patient record (``patients/<id>.json``) is how a later run knows a patient is finished;
``batch.json`` (``BatchManifest``, written through ``abcir.records``) says what the last run
used and counted. Every file is written under a temporary name and renamed, so only whole
files are ever read back.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cohort.table import CohortRow
from ..features.catalogue import Provenance, feature_names
from ..sensitivity.feature_icc import PerturbedOutlineValues

RECORD_SCHEMA = "abcir.batch_patient"
RECORD_SCHEMA_VERSION = 1
PATIENTS_FOLDER = "patients"
CACHE_FOLDER = "cache"
FEATURES_PARQUET = "features.parquet"
FEATURES_CSV = "features.csv"
PREDICTIONS_CSV = "predictions.csv"
FAILURES_CSV = "failures.csv"
MANIFEST = "batch.json"


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
    """A finished patient: what ``patients/<id>.json`` holds.

    With ``abcir batch --sensitivity``, ``sensitivity`` holds per model the JSON form of its
    ``SensitivityResult`` (or the reason in ``sensitivity_errors``), and ``perturbed`` the features of
    every changed outline, from which the cohort's per-feature ICC is computed.
    """

    patient_id: str
    fingerprint: str
    lesions: tuple[LesionRecord, ...]
    predictions: dict[str, dict]
    prediction_errors: dict[str, str]
    sensitivity: dict[str, dict] = field(default_factory=dict)
    sensitivity_errors: dict[str, str] = field(default_factory=dict)
    perturbed: tuple[PerturbedOutlineValues, ...] = ()

    def to_json(self) -> dict:
        """The record as JSON-ready data; feature values as ``float.hex`` strings, so they read back bit for bit.

        Returns
        -------
        dict
            The schema and its version, the patient's id and fingerprint, per lesion its facts (sizes in mm,
            volume in mm³), provenance and values, and the predictions and prediction errors per model; with
            a sensitivity analysis, its results and errors per model and the changed outlines' values.
        """
        return {"schema": RECORD_SCHEMA, "schema_version": RECORD_SCHEMA_VERSION, "patient_id": self.patient_id,
                "fingerprint": self.fingerprint,
                "lesions": [{"lesion_id": lesion.lesion_id, "site": lesion.site, "visceral": lesion.visceral,
                             "voxel_count": lesion.voxel_count, "volume_mm3": lesion.volume_mm3,
                             "longest_axial_diameter_mm": lesion.longest_axial_diameter_mm,
                             "short_axis_mm": lesion.short_axis_mm, "provenance": lesion.provenance.to_dict(),
                             "values": [float(v).hex() for v in lesion.values]} for lesion in self.lesions],
                "predictions": self.predictions, "prediction_errors": self.prediction_errors,
                "sensitivity": self.sensitivity, "sensitivity_errors": self.sensitivity_errors,
                "perturbed_outlines": [{"lesion_id": item.lesion_id, "perturbation": item.perturbation,
                                        "values": [float(v).hex() for v in item.values]} for item in self.perturbed]}

    @classmethod
    def from_json(cls, data: dict) -> PatientRecord:
        """Read a record back from what ``to_json`` wrote.

        Parameters
        ----------
        data : dict
            Parsed JSON of a ``patients/<id>.json`` file.

        Returns
        -------
        PatientRecord
            The record, every lesion with its 1130 values.

        Raises
        ------
        ValueError, KeyError, TypeError
            ``data`` is not a batch patient record of this schema version, or a lesion lacks values.
        """
        if data.get("schema") != RECORD_SCHEMA or data.get("schema_version") != RECORD_SCHEMA_VERSION:
            raise ValueError("not an abcir batch patient record of this version")
        lesions = []
        for item in data["lesions"]:
            provenance = item["provenance"]
            values = _values(item)
            lesions.append(LesionRecord(
                item["lesion_id"], item["site"], item["visceral"], int(item["voxel_count"]),
                float(item["volume_mm3"]), float(item["longest_axial_diameter_mm"]), float(item["short_axis_mm"]),
                Provenance(**{**provenance, "spacing_original_mm": tuple(provenance["spacing_original_mm"]),
                              "spacing_resampled_mm": tuple(provenance["spacing_resampled_mm"])}), values))
        perturbed = tuple(PerturbedOutlineValues(item["lesion_id"], item["perturbation"], _values(item))
                          for item in data.get("perturbed_outlines", ()))
        return cls(data["patient_id"], data["fingerprint"], tuple(lesions), dict(data["predictions"]),
                   dict(data["prediction_errors"]), dict(data.get("sensitivity", {})),
                   dict(data.get("sensitivity_errors", {})), perturbed)


def _values(item: dict) -> np.ndarray:
    """The 1130 values of a record's lesion or changed outline, read back bit for bit from ``float.hex``."""
    values = np.array([float.fromhex(v) for v in item["values"]], dtype=np.float64)
    if values.shape != (len(feature_names()),):
        raise ValueError(f"lesion '{item['lesion_id']}' has {values.size} values")
    return values


@dataclass(frozen=True)
class Failure:
    """A patient that did not finish (stage ``extract``) or whose prediction failed (stage ``predict``)."""

    patient_id: str
    stage: str
    error: str
    reason: str


@dataclass(frozen=True)
class BatchModel:
    """A model of a batch run as ``batch.json`` records it, with the provenance line of its predictions.

    ``provenance`` is ``Prediction.provenance`` of the first patient it predicted (None: no patient was):
    whose weights, trained on what, and whether they are clinically validated.
    """

    kind: str
    bundle: str
    provenance: str | None = None


@dataclass(frozen=True)
class StableShare:
    """How many patients keep their risk group under the outline changes, for one model.

    ``n_patients`` counts the patients analysed with a risk cut-off; a patient is stable when its risk
    group flips in at most the analysis' flip limit of its outline changes (``SensitivityResult.unstable``).
    ``share`` is None when no patient was analysed.
    """

    model: str
    n_patients: int
    n_stable: int
    share: float | None


@dataclass(frozen=True)
class BatchSensitivity:
    """What ``abcir batch --sensitivity`` used and found over the cohort.

    ``perturbation_icc`` is the per-feature ICC table's path, None when fewer than two lesions had
    changed outlines.
    """

    perturbation_set: str
    perturbations: str
    seed: int
    stable: tuple[StableShare, ...]
    perturbation_icc: str | None


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
    sensitivity: BatchSensitivity | None = None


def recorded_weights(folder: Path) -> dict[str, str]:
    """The provenance line of each model's predictions that a batch run in ``folder`` recorded, by model kind.

    ``abcir evaluate`` shows it beside the probabilities of the ``predictions.csv`` written with it.

    Parameters
    ----------
    folder : Path
        A folder that may hold ``batch.json``.

    Returns
    -------
    dict of str to str
        Model kind -> provenance line; empty when there is no readable ``batch.json`` or it names none.
    """
    from ..records import from_json_dict

    try:
        manifest = from_json_dict(BatchManifest, json.loads((folder / MANIFEST).read_text(encoding="utf-8")),
                                  MANIFEST, ValueError)
    except (OSError, ValueError):  # no batch.json, or not one this version reads (UnicodeDecodeError included)
        return {}
    return {model.kind: model.provenance for model in manifest.models if model.provenance}


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
    sensitivity: BatchSensitivity | None = None
    weights: tuple[BatchModel, ...] = ()


def remove_temporaries(out: Path) -> None:
    """Delete what a killed run left half-written (never read: only renamed files count).

    Parameters
    ----------
    out : Path
        The batch's output folder; it and its ``patients`` folder lose their ``.tmp-*`` files.
    """
    for folder in (out, out / PATIENTS_FOLDER):
        if folder.is_dir():
            for path in folder.glob(".tmp-*"):
                path.unlink(missing_ok=True)


def record_path(out: Path, spec: CohortRow) -> Path:
    """Where a patient's record lives: ``patients/<id>.json``.

    Parameters
    ----------
    out : Path
        The batch's output folder.
    spec : CohortRow
        The patient's cohort row.

    Returns
    -------
    Path
        ``out/patients/<id>.json`` with the id where it is a safe file name, else the id made safe
        plus the first 8 hex digits of its SHA-256, so that two ids never share a file.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", spec.patient_id)
    if safe != spec.patient_id or safe.startswith("."):
        safe = f"{safe}-{hashlib.sha256(spec.patient_id.encode()).hexdigest()[:8]}"
    return out / PATIENTS_FOLDER / f"{safe}.json"


def read_record(path: Path) -> PatientRecord | None:
    """A patient record, or None when the file is absent or not a whole, valid record.

    Parameters
    ----------
    path : Path
        A ``patients/<id>.json`` file.

    Returns
    -------
    PatientRecord or None
        None for anything a later run must recompute rather than trust (missing, cut short, another schema).
    """
    try:
        return PatientRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def finished_record(out: Path, spec: CohortRow, fingerprint: str) -> PatientRecord | None:
    """The record of a patient finished from exactly these inputs, or None when it must be (re)computed.

    Parameters
    ----------
    out : Path
        The batch's output folder.
    spec : CohortRow
        The patient's cohort row.
    fingerprint : str
        The patient's ``work.patient_fingerprint`` in this run (SHA-256, hex).

    Returns
    -------
    PatientRecord or None
        The stored record when it reads back and has this patient's id and fingerprint, else None.
    """
    record = read_record(record_path(out, spec))
    if record is None or record.fingerprint != fingerprint or record.patient_id != spec.patient_id:
        return None
    return record
