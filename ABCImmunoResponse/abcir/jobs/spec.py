"""What a background job computes, as a ``job.json`` in the job's own folder.

The Slicer panel cannot compute in its own process (its Qt loop holds the
GIL), so it writes the CT, one mask per lesion and this description into a
fresh folder and starts ``python -m abcir.jobs FOLDER``. Everything crosses
the process boundary as files: NRRD images and UTF-8 JSON, never pickles, so
the parent and the child share no memory and the child can be killed at any
moment without leaving the parent in a half state.

Paths in a job are relative to the job folder, so the folder can be moved
or inspected as a whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..records import from_json_dict, to_json_dict, write_new_json

JOB_FILE = "job.json"
RESULT_FILE = "result.json"
FEATURES_FILE = "features.csv"


@dataclass(frozen=True)
class JobLesion:
    """One target lesion: ``mask`` is an NRRD of a 0/1 uint8 mask on the CT grid, relative to the job folder."""

    name: str
    site: str | None
    mask: str


@dataclass(frozen=True)
class PredictJob:
    """One patient's prediction, as the panel's Apply computes it.

    ``clinical`` holds the ``key=value`` words ``abcir.patient.clinical_facts.parse_clinical``
    reads (None for the radiomics model); ``bundle`` a weight bundle folder, or
    None for the weights shipped for ``model``; ``jobs`` the extraction worker
    processes; ``cache`` a ``FeatureCache`` folder or None; the UIDs, when the
    CT came from DICOM, identify it in the result.
    """

    patient_id: str
    ct: str
    lesions: tuple[JobLesion, ...]
    clinical: tuple[str, ...] | None
    model: str
    bundle: str | None
    jobs: int
    cache: str | None
    study_uid: str = ""
    series_uid: str = ""


@dataclass(frozen=True)
class ReadersJob:
    """Predictions under reader A, reader B and the consensus (None: not built yet) on one CT."""

    ct: str
    reader_a: str
    reader_b: str
    lesions_a: tuple[JobLesion, ...]
    lesions_b: tuple[JobLesion, ...]
    consensus: tuple[JobLesion, ...] | None
    clinical: tuple[str, ...] | None
    model: str
    bundle: str | None
    jobs: int
    cache: str | None


Job = PredictJob | ReadersJob
_KINDS: dict[str, type] = {"predict": PredictJob, "readers": ReadersJob}


def write_job(folder: str | os.PathLike, job: Job) -> Path:
    """Write ``FOLDER/job.json`` (never replacing one); returns its path."""
    kind = next(name for name, cls in _KINDS.items() if isinstance(job, cls))
    return write_new_json(Path(folder) / JOB_FILE, {"kind": kind, **to_json_dict(job)}, "Job")


def read_job(folder: str | os.PathLike) -> Job:
    """The job in ``FOLDER/job.json``; a missing or malformed file raises ``InputError`` naming it."""
    path = Path(folder) / JOB_FILE
    where = f"Job '{path}'"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: no such file; write the job with abcir.jobs.write_job before starting "
                         "the job.") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{where}: cannot be read as UTF-8 JSON ({error}); write it again with "
                         "abcir.jobs.write_job.") from error
    if not isinstance(data, dict) or data.get("kind") not in _KINDS:
        found = data.get("kind") if isinstance(data, dict) else None
        raise InputError(f"{where}: field 'kind' is {found!r}, not one of {', '.join(_KINDS)}; write it again "
                         "with abcir.jobs.write_job.")
    fields = {key: value for key, value in data.items() if key != "kind"}
    job = from_json_dict(_KINDS[data["kind"]], fields, where, InputError)
    if job.jobs < 1:
        raise InputError(f"{where}: field 'jobs' is {job.jobs}; give at least 1 worker process.")
    return job

