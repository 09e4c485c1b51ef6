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
from typing import TYPE_CHECKING

from ..errors import InputError
from ..records import from_json_dict, to_json_dict, write_new_json

if TYPE_CHECKING:
    from ..sensitivity.perturbations import PerturbationSet

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
class SensitivityRequest:
    """Recompute the prediction under outline changes (issue 17): which changes, their seed, the flip limit.

    The fields of ``abcir.sensitivity.perturbations.PerturbationSet`` written
    out, so that the parent, which writes jobs on Slicer's main thread, need not
    import the perturbation code (SciPy) to do so. ``flip_limit`` is the share
    of changes above which a flipping risk group is called unstable; None for
    the core's ``abcir.sensitivity.analysis.FLIP_LIMIT`` (the analysis imports
    pyradiomics, which the parent does not).
    """

    perturbation_set: str
    radius_mm: float
    randomisations: int
    shifts: bool
    seed: int
    flip_limit: float | None = None

    @classmethod
    def of(cls, perturbations: PerturbationSet, seed: int, flip_limit: float | None = None) -> SensitivityRequest:
        """The request for ``perturbations`` with ``seed``; ``flip_limit`` None means the core's (10 %)."""
        return cls(perturbations.name, perturbations.radius_mm, perturbations.randomisations, perturbations.shifts,
                   seed, flip_limit)

    def perturbations(self) -> PerturbationSet:
        """The ``PerturbationSet`` this request names (imported here: only the child needs it)."""
        from ..sensitivity.perturbations import PerturbationSet

        return PerturbationSet(self.perturbation_set, self.radius_mm, self.randomisations, self.shifts)


@dataclass(frozen=True)
class PredictJob:
    """One patient's prediction, as the panel's Apply computes it.

    ``clinical`` holds the ``key=value`` words ``abcir.patient.clinical_facts.parse_clinical``
    reads (None for the radiomics model); ``bundle`` a weight bundle folder, or
    None for the weights shipped for ``model``; ``jobs`` the extraction worker
    processes; ``cache`` a ``FeatureCache`` folder or None; the UIDs, when the
    CT came from DICOM, identify it in the result; ``sensitivity``, when given,
    asks for the outline sensitivity after the prediction (job folders written
    before it existed have none).
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
    sensitivity: SensitivityRequest | None = None


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


@dataclass(frozen=True)
class OutlinesJob:
    """The changed outlines of one lesion, to be shown (issue 17), as the sensitivity analysis made them.

    ``lesion_index`` is the lesion's place among the prediction's lesions: its
    contour randomisations are seeded from (seed, index), so the same index gives
    the outlines the analysis used.
    """

    ct: str
    lesion: JobLesion
    lesion_index: int
    sensitivity: SensitivityRequest


Job = PredictJob | ReadersJob | OutlinesJob
_KINDS: dict[str, type] = {"predict": PredictJob, "readers": ReadersJob, "outlines": OutlinesJob}


def write_job(folder: str | os.PathLike, job: Job) -> Path:
    """Write ``FOLDER/job.json`` (never replacing one); returns its path.

    Parameters
    ----------
    folder : str or os.PathLike
        The job folder (created when missing); paths in ``job`` are relative to it.
    job : PredictJob, ReadersJob or OutlinesJob
        The job; written with ``"kind"`` "predict", "readers" or "outlines".

    Returns
    -------
    Path
        ``FOLDER/job.json``.

    Raises
    ------
    InputError
        ``FOLDER/job.json`` already exists.
    """
    kind = next(name for name, cls in _KINDS.items() if isinstance(job, cls))
    return write_new_json(Path(folder) / JOB_FILE, {"kind": kind, **to_json_dict(job)}, "Job")


def read_job(folder: str | os.PathLike) -> Job:
    """The job in ``FOLDER/job.json``; a missing or malformed file raises ``InputError`` naming it.

    Parameters
    ----------
    folder : str or os.PathLike
        The job folder.

    Returns
    -------
    PredictJob, ReadersJob or OutlinesJob
        The job its ``"kind"`` names.

    Raises
    ------
    InputError
        The file is missing, is not UTF-8 JSON, names no known kind, its fields do
        not fit that kind, ``jobs`` is below 1, or its sensitivity request is unusable (a bad perturbation
        set, or any request for the clinical model, which reads no outline).
    """
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
    if not isinstance(job, OutlinesJob) and job.jobs < 1:
        raise InputError(f"{where}: field 'jobs' is {job.jobs}; give at least 1 worker process.")
    if isinstance(job, PredictJob) and job.sensitivity is not None and job.model == "clinical":
        raise InputError(f"{where}: field 'sensitivity' is set for the clinical model, which reads no outline; "
                         "leave it out, or choose the radiomics or combined model.")
    request = job.sensitivity if isinstance(job, (PredictJob, OutlinesJob)) else None
    if request is not None:
        try:
            request.perturbations()
        except ValueError as error:
            raise InputError(f"{where}: field 'sensitivity': {error}") from error
    return job

