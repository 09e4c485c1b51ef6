"""Run one job folder: ``python -m abcir.jobs FOLDER``, the child process the Slicer panel starts.

The child computes exactly what the panel would compute in its own process
(``ABCImmunoResponseLib/case.runCase``, ``consensus.runReaderPredictions``),
from the files of the job folder (``abcir.jobs.spec``), and reports through
``FOLDER/events.jsonl`` (``abcir.jobs.events``). Its result is
``FOLDER/result.json``, written whole before the ``done`` event:

* a prediction job: ``{"prediction": Prediction.to_dict(), "features_files": ["features.csv",
  "features.provenance.json"]}`` (empty for the clinical model: no features), the files the parent keeps,
  the CSV (with its provenance sidecar) beside it; with a sensitivity request also
  ``"sensitivity": SensitivityResult.to_dict()``, computed from the prediction's own feature rows (only the
  changed outlines are extracted);
* a readers job: ``{"readers": ReaderPredictions.to_dict()}``;
* an outlines job: ``{"outlines": [{"perturbation": "erode_1mm", "mask": "outline000.nrrd",
  "first_index": [i, j, k]}, ...]}``, each changed outline cropped to its bounding box, which starts at
  voxel ``first_index`` (x, y, z) of the CT; outlines with fewer voxels than the analysis accepts are left out.

Exit codes: 0 done; 2 bad input (``InputError``, the one-line message in an
``error`` event of kind "input"); 1 anything else (kind "bug", the traceback
on stderr, which the parent keeps in the job's log).
"""

from __future__ import annotations

import logging
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from ..errors import InputError
from ..features.parallel import (
    extraction_pool,
    shutdown_pools,
    single_threaded_blas_from_start,
    skip_garbage_collection_at_exit,
)
from ..records import write_new_json
from .events import (
    EVENTS_FILE,
    SENSITIVITY_STEP,
    DoneEvent,
    ErrorEvent,
    Event,
    ProgressEvent,
    StatusEvent,
    one_line,
    write_event,
)
from .spec import FEATURES_FILE, RESULT_FILE, JobLesion, OutlinesJob, PredictJob, ReadersJob, read_job

if TYPE_CHECKING:
    import SimpleITK as sitk

    from ..features.cache import FeatureCache
    from ..features.catalogue import LesionFeatures
    from ..features.extract import ProgressCallback
    from ..models.bundle import WeightBundle
    from ..patient.clinical_facts import ClinicalFacts
    from ..patient.lesions import Lesion
    from ..sensitivity.result import SensitivityResult

# Where abcir.prediction.CTIdentity.from_image finds the DICOM study and series UIDs.
STUDY_INSTANCE_UID_TAG = "0020|000d"
SERIES_INSTANCE_UID_TAG = "0020|000e"

USAGE = "usage: python -m abcir.jobs FOLDER (a folder holding job.json, written by abcir.jobs.write_job)"

Report = Callable[[Event], None]


def _lesions(folder: Path, lesions: Sequence[JobLesion], ct: sitk.Image) -> list[Lesion]:
    """The core's lesions: each mask read, checked on the CT grid and measured (RECIST sizes in mm)."""
    import SimpleITK as sitk

    from ..patient.lesions import Lesion, align_to_ct
    from ..patient.measurements import measure_lesion

    result = []
    for lesion in lesions:
        path = folder / lesion.mask
        try:
            mask = sitk.ReadImage(str(path))
        except RuntimeError as error:
            raise InputError(f"Lesion '{lesion.name}': its mask '{path}' cannot be read "
                             f"({str(error).strip().splitlines()[-1]}); start the prediction again.") from error
        aligned = align_to_ct(lesion.name, mask, ct)
        result.append(Lesion(lesion.name, lesion.site, aligned, measure_lesion(aligned)))
    return result


def _cache(folder: str | None) -> FeatureCache | None:
    from ..features.cache import FeatureCache

    return FeatureCache(folder) if folder else None


def _progress(report: Report) -> ProgressCallback:
    return lambda done, total, what: report(ProgressEvent(done, total, what))


def _predict(folder: Path, job: PredictJob, report: Report) -> dict:
    from ..patient.clinical_facts import clinical_usage, parse_clinical
    from ..features.engine_check import start_engine_check
    from ..features.table import provenance_path, write_features_csv
    from ..features.extract import extract_lesions
    from ..imaging.ct import check_ct, read_image
    from ..prediction.result import CTIdentity
    from ..prediction.predict import predict_features, predict_lesions, resolve_bundle

    # Weights and facts first: a mistake there is reported before the CT is read.
    bundle = resolve_bundle(job.model, job.bundle)
    clinical = None if job.clinical is None else parse_clinical(job.clinical)
    if bundle.kind != "radiomics" and clinical is None:
        raise InputError(f"Clinical facts: none given, but the {bundle.kind} model needs all four "
                         f"({clinical_usage()}); enter them, or choose the radiomics model.")
    if bundle.kind != "clinical":
        start_engine_check(extraction_pool(job.jobs))  # run_job's workers: one checks while the CT is read
    report(StatusEvent("Reading the CT and the lesion masks"))
    ct = read_image(folder / job.ct)
    for tag, uid in ((STUDY_INSTANCE_UID_TAG, job.study_uid), (SERIES_INSTANCE_UID_TAG, job.series_uid)):
        if uid:
            ct.SetMetaData(tag, uid)
    check_ct(ct, job.patient_id)
    lesions = _lesions(folder, job.lesions, ct)
    if bundle.kind == "clinical":
        prediction = predict_lesions(ct, lesions, clinical, "clinical", bundle, patient_id=job.patient_id)
        return {"prediction": prediction.to_dict(), "features_files": []}
    report(StatusEvent(f"Extracting radiomics features of {len(lesions)} lesions"))
    rows = extract_lesions(ct, lesions, job.patient_id, jobs=job.jobs, progress=_progress(report),
                           cache=_cache(job.cache))
    if job.sensitivity is None:
        shutdown_pools(wait=False)  # the workers exit while this process predicts and writes
    report(StatusEvent("Predicting"))
    prediction = predict_features(rows, clinical, bundle.kind, bundle, CTIdentity.from_image(ct))
    table = write_features_csv(folder / FEATURES_FILE, rows)
    # Named here, so the parent (Slicer's main thread) need not import the table code (pandas) to find them.
    result = {"prediction": prediction.to_dict(), "features_files": [table.name, provenance_path(table).name]}
    if job.sensitivity is not None:
        result["sensitivity"] = _sensitivity(job, ct, lesions, clinical, bundle, rows, report).to_dict()
        shutdown_pools(wait=False)
    return result


def _sensitivity(job: PredictJob, ct: sitk.Image, lesions: Sequence[Lesion], clinical: ClinicalFacts | None,
                 bundle: WeightBundle, rows: Sequence[LesionFeatures], report: Report) -> SensitivityResult:
    """The outline sensitivity of the prediction just made, from its feature rows (the workers still running)."""
    from ..sensitivity.analysis import FLIP_LIMIT, analyse_sensitivity

    request = job.sensitivity
    perturbations = request.perturbations()
    count = perturbations.extra_extractions(len(lesions))
    report(StatusEvent(f"Outline sensitivity: predicting again under {count} outline changes of "
                       f"{len(lesions)} lesions ({perturbations.describe()})"))
    result = analyse_sensitivity(ct, lesions, clinical, model=bundle.kind, bundle=bundle, rows=rows,
                                 perturbation_set=perturbations, seed=request.seed, jobs=job.jobs,
                                 flip_limit=FLIP_LIMIT if request.flip_limit is None else request.flip_limit,
                                 patient_id=job.patient_id,
                                 progress=lambda done, total, _lesion: report(ProgressEvent(done, total,
                                                                                            SENSITIVITY_STEP)))
    return result


def _outlines(folder: Path, job: OutlinesJob, report: Report) -> dict:
    """The changed outlines of one lesion, each cropped to its bounding box (small files for the parent)."""
    import numpy as np
    import SimpleITK as sitk

    from ..imaging.ct import read_image
    from ..sensitivity.perturbations import MIN_VOXELS, perturb

    report(StatusEvent(f"Changing the outline of lesion '{job.lesion.name}'"))
    ct = read_image(folder / job.ct)
    (lesion,) = _lesions(folder, [job.lesion], ct)
    perturbations = job.sensitivity.perturbations()
    outlines = []
    changed = perturb(lesion.lesion_id, lesion.mask, ct, perturbations, job.sensitivity.seed, job.lesion_index)
    for done, perturbation in enumerate(changed, start=1):
        if perturbation.voxel_count >= MIN_VOXELS:
            voxels = sitk.GetArrayViewFromImage(perturbation.mask)
            # numpy's axes are (z, y, x); the bounding box is kept as (x, y, z) indices, as SimpleITK counts.
            hits = [np.flatnonzero(voxels.any(axis=tuple(other for other in range(3) if other != axis)))
                    for axis in (2, 1, 0)]
            first = [int(hit[0]) for hit in hits]
            size = [int(hit[-1]) - start + 1 for hit, start in zip(hits, first)]
            name = f"outline{len(outlines):03d}.nrrd"
            sitk.WriteImage(sitk.RegionOfInterest(perturbation.mask, size, first), str(folder / name), True)
            outlines.append({"perturbation": perturbation.name, "mask": name, "first_index": first})
        report(ProgressEvent(done, perturbations.size, perturbation.name))
    return {"outlines": outlines}


def _readers(folder: Path, job: ReadersJob, report: Report) -> dict:
    from ..consensus.predictions import predict_readers
    from ..imaging.ct import check_ct, read_image

    report(StatusEvent("Reading the CT and both readers' lesion masks"))
    ct = read_image(folder / job.ct)
    check_ct(ct, "CT")
    lesions_a = _lesions(folder, job.lesions_a, ct)
    lesions_b = _lesions(folder, job.lesions_b, ct)
    consensus = None if job.consensus is None else _lesions(folder, job.consensus, ct)
    report(StatusEvent(f"Predicting under {job.reader_a}, {job.reader_b}"
                       + (" and the consensus" if consensus is not None else "")))
    readers = predict_readers(ct, lesions_a, lesions_b, consensus, job.clinical, job.model, job.bundle,
                              jobs=job.jobs, progress=_progress(report), cache=_cache(job.cache))
    return {"readers": readers.to_dict()}


def run_job(folder: str | Path, report: Report) -> None:
    """Compute the job in ``folder`` and write its result; ``report(event)`` receives status and progress.

    Parameters
    ----------
    folder : str or Path
        The job folder, holding ``job.json`` and the files it names.
    report : callable
        Called with each ``StatusEvent`` and ``ProgressEvent``, then a ``DoneEvent``
        once ``result.json`` is written.

    Raises
    ------
    InputError
        The job, its weights, clinical facts, CT or masks are refused (BundleError
        included), or ``result.json`` already exists.
    """
    folder = Path(folder)
    job = read_job(folder)
    if not isinstance(job, OutlinesJob) and job.model != "clinical":
        # Before anything heavy is imported: the workers import pyradiomics while this process does.
        extraction_pool(job.jobs)
    compute = {PredictJob: _predict, ReadersJob: _readers, OutlinesJob: _outlines}[type(job)]
    result = compute(folder, job, report)
    write_new_json(folder / RESULT_FILE, result, "Job result")
    report(DoneEvent())


def main(argv: Sequence[str]) -> int:
    """Run the job folder ``argv[0]``; returns the exit code (0 done, 2 bad input, 1 bug).

    Parameters
    ----------
    argv : sequence of str
        The command-line arguments after the module name: exactly one, an existing job folder.

    Returns
    -------
    int
        0 when the job is done; 2 for a wrong command line (usage on stderr) or an
        ``InputError`` (an "input" error event); 1 for any other exception (a "bug"
        error event, the traceback on stderr). Events go to ``FOLDER/events.jsonl``.
    """
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print(USAGE, file=sys.stderr)
        return 2
    folder = Path(argv[0])
    skip_garbage_collection_at_exit()
    single_threaded_blas_from_start()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)
    # newline="\n": one line per event on every platform, whatever the parent's reader expects.
    with open(folder / EVENTS_FILE, "a", encoding="utf-8", newline="\n") as stream:
        def report(event: Event) -> None:
            write_event(stream, event)

        try:
            run_job(folder, report)
        except InputError as error:  # BundleError included
            print(f"abcir.jobs: error: {error}", file=sys.stderr)
            report(ErrorEvent("input", one_line(str(error))))
            return 2
        except Exception as error:
            traceback.print_exc()
            report(ErrorEvent("bug", one_line(f"{type(error).__name__}: {error}")))
            return 1
    return 0
