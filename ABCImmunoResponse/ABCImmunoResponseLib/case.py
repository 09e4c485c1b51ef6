"""One case from the scene to a prediction: inputs copied on the main thread, computed anywhere.

``collectCaseInputs`` reads the scene (main thread only) and verifies the
weights, so every input mistake is reported before any work starts.
``runCase`` is pure computation on those copies: the panel runs it on a worker
thread, the headless entry and the tests call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import SimpleITK as sitk

from abcir.clinical import ClinicalFacts
from abcir.errors import InputError

from .background import ProgressCallback
from .lesion_table import SizeCache, lesionRows
from .parameters import CaseParameters, clinicalFacts
from .segments import LesionInput, lesionFromInput, lesionInputs
from .volumes import imageFromVolumeNode

if TYPE_CHECKING:
    from abcir.bundle import WeightBundle
    from abcir.features import LesionFeatures
    from abcir.prediction import Prediction


@dataclass(frozen=True)
class CaseInputs:
    """Everything a prediction needs, detached from the scene."""

    patientId: str
    ct: sitk.Image  # with the DICOM study and series UIDs in its metadata when known
    lesions: tuple[LesionInput, ...]
    clinical: ClinicalFacts | None
    bundle: WeightBundle


@dataclass(frozen=True)
class CaseResult:
    """The prediction and the per-lesion features it used (none for the clinical model)."""

    prediction: Prediction
    features: tuple[LesionFeatures, ...]


STUDY_INSTANCE_UID_TAG = "0020|000d"  # where abcir.prediction.CTIdentity.from_image looks for the UIDs
SERIES_INSTANCE_UID_TAG = "0020|000e"


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
    from abcir.prediction import resolve_bundle

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
        raise InputError("CT volume: none selected; select the CT series under 'Inputs'.")
    bundle = resolveBundle(parameters.model, parameters.bundlePath)
    clinical = None if bundle.kind == "radiomics" else clinicalFacts(parameters)
    lesions: tuple[LesionInput, ...] = ()
    if bundle.kind != "clinical" or segmentation is not None:
        if segmentation is None:
            raise InputError("Segmentation: none selected; create one under 'Inputs' and segment the target lesions.")
        refuseBlockingLesions(segmentation, ctVolume, sizes)
        lesions = tuple(lesionInputs(segmentation, ctVolume))
    ct = imageFromVolumeNode(ctVolume)
    for tag, uid in zip((STUDY_INSTANCE_UID_TAG, SERIES_INSTANCE_UID_TAG), dicomIdentity(ctVolume), strict=True):
        if uid:
            ct.SetMetaData(tag, uid)
    return CaseInputs(ctVolume.GetName(), ct, lesions, clinical, bundle)


def runCase(inputs: CaseInputs, progress: ProgressCallback | None = None) -> CaseResult:
    """Check the CT and lesions, extract features and predict (no scene access; any thread)."""
    from abcir.features import extract_lesions
    from abcir.imaging import check_ct
    from abcir.prediction import CTIdentity, predict_features, predict_lesions

    check_ct(inputs.ct, inputs.patientId)
    lesions = [lesionFromInput(lesion, inputs.ct) for lesion in inputs.lesions]
    if inputs.bundle.kind == "clinical":
        prediction = predict_lesions(inputs.ct, lesions, inputs.clinical, "clinical", inputs.bundle,
                                     patient_id=inputs.patientId)
        return CaseResult(prediction, ())
    features = extract_lesions(inputs.ct, lesions, inputs.patientId, jobs=1, progress=progress)
    prediction = predict_features(features, inputs.clinical, inputs.bundle.kind, inputs.bundle,
                                  CTIdentity.from_image(inputs.ct))
    return CaseResult(prediction, tuple(features))
