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
    """A finished patient: what ``patients/<id>.json`` holds."""

    patient_id: str
    fingerprint: str
    lesions: tuple[LesionRecord, ...]
    predictions: dict[str, dict]
    prediction_errors: dict[str, str]

    def to_json(self) -> dict:
        """The record as JSON-ready data; feature values as ``float.hex`` strings, so they read back bit for bit.

        Returns
        -------
        dict
            The schema and its version, the patient's id and fingerprint, per lesion its facts (sizes in mm,
            volume in mm³), provenance and values, and the predictions and prediction errors per model.
        """
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
