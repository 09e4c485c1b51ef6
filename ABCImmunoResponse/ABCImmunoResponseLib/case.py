"""One case from the scene: inputs copied and checked on the main thread, written as a job for the child process.

``collectCaseInputs`` reads the scene (main thread only) and verifies the
weights, so every input mistake is reported before any process starts.
``writePredictionJob`` turns those copies into the files the child reads
(``abcir.jobs``): the CT and one mask per target lesion as NRRD, names and
sites in the job's UTF-8 JSON, so nothing of the scene is needed there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import SimpleITK as sitk

from abcir.patient.clinical_facts import ClinicalFacts
from abcir.errors import InputError

from .i18n import tr as _
from .lesion_table import SizeCache, lesionRows
from .parameters import CaseParameters, clinicalFacts
from .segments import LesionInput, lesionInputs
from .volumes import imageFromVolumeNode, requireVoxelsOnGrid

if TYPE_CHECKING:
    from abcir.models.bundle import WeightBundle
    from abcir.jobs.spec import JobLesion, PredictJob, SensitivityRequest


@dataclass(frozen=True)
class CaseInputs:
    """Everything a prediction needs, detached from the scene."""

    patientId: str
    ct: sitk.Image
    lesions: tuple[LesionInput, ...]
    clinical: ClinicalFacts | None
    bundle: WeightBundle
    studyUid: str = ""  # DICOM identity of the CT, when it was loaded from DICOM
    seriesUid: str = ""


def dicomIdentity(volumeNode) -> tuple[str, str]:
    """Study and series instance UIDs of a volume loaded from DICOM ("" when unknown)."""
    scene = volumeNode.GetScene()
    hierarchy = scene.GetSubjectHierarchyNode() if scene is not None else None
    if hierarchy is None:
        return "", ""
    seriesItem = hierarchy.GetItemByDataNode(volumeNode)
    if not seriesItem:
        return "", ""
    studyItem = hierarchy.GetItemParent(seriesItem)
    study = hierarchy.GetItemUID(studyItem, "DICOM") if studyItem else ""
    return study or "", hierarchy.GetItemUID(seriesItem, "DICOM") or ""


def resolveBundle(model: str, bundlePath: str) -> WeightBundle:
    """The verified weights: the site bundle at ``bundlePath``, else those shipped for ``model``."""
    from abcir.prediction.predict import resolve_bundle

    return resolve_bundle(model, bundlePath or None)


def refuseBlockingLesions(segmentationNode, volumeNode, sizes: SizeCache | None = None) -> None:
    """Refuse, before the slow extraction, what the lesion table marks as blocking (RECIST errors, empty, duplicate)."""
    problems = [finding.message for row in lesionRows(segmentationNode, volumeNode, sizes) if row.blocking
                for finding in row.findings if finding.severity == "error"]
    if problems:
        raise InputError(" ".join(problems))


def collectCaseInputs(parameters: CaseParameters, sizes: SizeCache | None = None) -> CaseInputs:
    """Copy the case out of the scene and verify the weights; raises ``InputError`` naming what to fix."""
    ctVolume, segmentation = parameters.ctVolume, parameters.segmentation
    if ctVolume is None:
        raise InputError(_("CT volume: none selected; select the CT series under 'Inputs'."))
    requireVoxelsOnGrid(ctVolume)  # before the lesions are measured on a grid that is not where the voxels are
    bundle = resolveBundle(parameters.model, parameters.bundlePath)
    clinical = None if bundle.kind == "radiomics" else clinicalFacts(parameters)
    lesions: tuple[LesionInput, ...] = ()
    if bundle.kind != "clinical" or segmentation is not None:
        if segmentation is None:
            raise InputError(_("Segmentation: none selected; create one under 'Inputs' and segment the target "
                               "lesions."))
        refuseBlockingLesions(segmentation, ctVolume, sizes)
        lesions = tuple(lesionInputs(segmentation, ctVolume))
    studyUid, seriesUid = dicomIdentity(ctVolume)
    return CaseInputs(ctVolume.GetName(), imageFromVolumeNode(ctVolume), lesions, clinical, bundle, studyUid,
                      seriesUid)


CT_FILE = "ct.nrrd"


def writeImage(image: sitk.Image, folder: Path, name: str) -> str:
    """An image as an uncompressed NRRD in ``folder`` (fast to write and read; deleted with the job)."""
    sitk.WriteImage(image, str(folder / name), False)
    return name


def writeLesionMask(mask: sitk.Image, folder: Path, name: str) -> str:
    """A lesion's mask on the CT grid written cropped to its voxels; the child pastes it back voxel for voxel.

    Segments leave the scene cropped already (``segments.segmentCrop``); the
    readers' and the consensus' lesions lie on the whole grid. A mask on the whole
    grid has the CT's size, almost all zeros: the five lesions of
    ``bench_whole_process.py``'s generated 512 x 512 x 300 case are 393 MB of files,
    written while Slicer waits; cropped they are 2.8 MB (0.08-1.78 s against
    0.03-0.04 s to write, three alternating rounds; the child then reads, checks and
    measures them in 0.28 s either way). The child's ``align_to_ct`` puts a crop of
    the CT grid back on it by copying, so the lesion it measures is the same.
    """
    from abcir.features.resampling_grid import mask_bounding_box

    box = mask_bounding_box(mask)
    if box is not None:  # else the child refuses the mask, naming the lesion
        mask = sitk.RegionOfInterest(mask, [int(extent) for extent in box[3:]], [int(index) for index in box[:3]])
    return writeImage(mask, folder, name)


def jobLesions(folder: Path, prefix: str, lesions: Sequence[tuple[str, str | None, sitk.Image]]
               ) -> tuple[JobLesion, ...]:
    """(name, site, mask) triples as the job's lesions, each mask in a file of its own (names may be any UTF-8)."""
    from abcir.jobs.spec import JobLesion

    return tuple(JobLesion(name, site, writeLesionMask(mask, folder, f"{prefix}{index:03d}.nrrd"))
                 for index, (name, site, mask) in enumerate(lesions))


def writePredictionJob(folder: Path, inputs: CaseInputs, jobs: int, cacheFolder: Path | None,
                       sensitivity: SensitivityRequest | None = None) -> PredictJob:
    """The prediction of ``inputs`` as a job folder the child process runs (``python -m abcir.jobs FOLDER``);
    with ``sensitivity``, the child also computes it under outline changes."""
    from abcir.jobs.spec import PredictJob, write_job

    job = PredictJob(
        patient_id=inputs.patientId, ct=writeImage(inputs.ct, folder, CT_FILE),
        lesions=jobLesions(folder, "lesion", [(item.name, item.site, item.mask) for item in inputs.lesions]),
        clinical=tuple(inputs.clinical.to_tokens()) if inputs.clinical is not None else None, model=inputs.bundle.kind,
        bundle=str(inputs.bundle.path), jobs=jobs, cache=str(cacheFolder) if cacheFolder else None,
        study_uid=inputs.studyUid, series_uid=inputs.seriesUid, sensitivity=sensitivity)
    write_job(folder, job)
    return job
