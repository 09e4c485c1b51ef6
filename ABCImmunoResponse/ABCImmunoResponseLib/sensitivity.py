"""The prediction's sensitivity to the outlines (issue 17) on the scene's side: whether to compute it, its
result beside the probability, and one lesion's changed outlines as a temporary segmentation.

**Whether.** The parameter node's ``outlineSensitivity`` is "on", "off" or
"automatic"; automatic computes it when the estimated extra time is under
``COST_LIMIT_S`` (issue 17: "on by default when it costs under 10 s"), and the
panel's checkbox shows that decision until the reader changes it. The child
changes each target lesion's outline ``PerturbationSet.size`` times and
extracts each changed outline once (the unperturbed features are the
prediction's own), so the estimate is::

    seconds = sum over target lesions of  size x (SECONDS_PER_OUTLINE + SECONDS_PER_OUTLINE_ML x volume in mL)

The constants were fitted to ``abcir.sensitivity.analysis.analyse_sensitivity``
timed in one process with the default set (10 changes per lesion), after the
prediction's own extraction, on this project's 2-core machine:

* the shared real CT (``../shared/data``; TotalSegmentator organs standing in
  for lesions): pancreas 2.5 mL and adrenal 2.4 mL, 20 outlines in 3.99 s;
  with the colon (19.7 mL) too, 30 outlines in 10.26 s (0.63 s per colon outline);
* the generated example patient (liver 3.0, lung 4.0, lymph node 4.8 mL):
  0.18, 0.23 and 0.24-0.31 s per outline, 30 outlines in 7.3-7.7 s.

The fit is within 0.4 s of each total. ``--jobs 1`` and ``--jobs 2`` took the
same time (each changed outline is made in the child's main process, one lesion
at a time), so the estimate does not divide by the cores. The constants have to
be timed again when the perturbation or extraction code gets faster.

**Shown.** The core's ``SensitivityResult`` travels in ``result.json``; the
bridge keeps it, and the request that made it, as table node attributes;
``results.py`` adds it to the table's columns and to the lines beside the
probability.

**Outlines.** On request, the changed outlines of one lesion are made again in
the child (``abcir.jobs.OutlinesJob``, same set, seed and lesion index, so the
same outlines), each cropped to its bounding box, and put in a NEW segmentation
node that is not saved with the scene: ``SetSaveWithScene(False)`` on the node
and its display node (``vtkMRMLScene::Commit`` skips such nodes), no storage
node, and hidden from editors, so Slicer's Save dialog does not list it and the
subject hierarchy writes no empty item for it. The reader's segmentation is
only read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import SimpleITK as sitk

import slicer
from abcir.errors import InputError

from .case import CT_FILE, jobLesions, writeImage
from .i18n import tr as _
from .results import MM3_PER_ML
from .volumes import orientedLabelmap

if TYPE_CHECKING:
    from abcir.jobs.spec import OutlinesJob, SensitivityRequest
    from abcir.sensitivity.perturbations import PerturbationSet
    from abcir.sensitivity.result import SensitivityResult

#: Issue 17: the sensitivity is on by default when it costs under this many seconds.
COST_LIMIT_S = 10.0
#: Seconds per changed outline, fixed part and per mL of lesion (fitted as the module docstring says).
SECONDS_PER_OUTLINE = 0.15
SECONDS_PER_OUTLINE_ML = 0.025
#: The contour randomisations' seed: fixed, so that the same case gives the same range (issue 17).
SEED = 0

SENSITIVITY_ATTRIBUTE = "ABCImmunoResponse.Sensitivity"  # on the result table: SensitivityResult.to_dict() JSON
REQUEST_ATTRIBUTE = "ABCImmunoResponse.SensitivityRequest"  # on the result table: the SensitivityRequest JSON
OUTLINES_ATTRIBUTE = "ABCImmunoResponse.ChangedOutlinesOf"  # on a temporary outlines node: the lesion's name
#: Colours of the changed outlines: erosion blue, dilation red, the others (randomisations, shifts) yellow.
OUTLINE_COLORS = {"erode": (0.2, 0.4, 1.0), "dilate": (1.0, 0.2, 0.2)}
OTHER_OUTLINE_COLOR = (1.0, 0.85, 0.0)


def defaultPerturbations() -> PerturbationSet:
    """The core's documented default set (erosion, dilation by 1 mm and 8 randomisations)."""
    from abcir.sensitivity.perturbations import DEFAULT_SET

    return DEFAULT_SET


def estimateSeconds(volumesMl: Sequence[float], perturbations: PerturbationSet) -> float:
    """Extra seconds the sensitivity adds to a prediction of lesions of these volumes (module docstring)."""
    return sum(perturbations.size * (SECONDS_PER_OUTLINE + SECONDS_PER_OUTLINE_ML * volume) for volume in volumesMl)


def sensitivityWanted(choice: str, model: str, volumesMl: Sequence[float], perturbations: PerturbationSet) -> bool:
    """Whether a prediction computes the sensitivity: the reader's "on"/"off", or automatic by the estimate.

    Never for the clinical model (it reads no outline) nor without target lesions.
    """
    if model == "clinical" or not volumesMl:
        return False
    if choice == "automatic":
        return estimateSeconds(volumesMl, perturbations) < COST_LIMIT_S
    return choice == "on"


def maskVolumeMl(mask: sitk.Image) -> float:
    """A 0/1 mask's volume in mL (voxels times the voxel volume)."""
    voxels = np.count_nonzero(sitk.GetArrayViewFromImage(mask))
    return voxels * float(np.prod(mask.GetSpacing())) / MM3_PER_ML


def sensitivityRequest(perturbations: PerturbationSet) -> SensitivityRequest:
    """The job's request for ``perturbations``, with the fixed seed and the core's flip limit."""
    from abcir.jobs.spec import SensitivityRequest

    return SensitivityRequest.of(perturbations, SEED)




def storedSensitivity(tableNode) -> SensitivityResult | None:
    """The sensitivity stored with a result table, None when that prediction computed none."""
    from abcir.sensitivity.result import SensitivityResult

    text = tableNode.GetAttribute(SENSITIVITY_ATTRIBUTE) if tableNode is not None else None
    return SensitivityResult.from_dict(json.loads(text), _("Stored outline sensitivity")) if text else None


def storeSensitivity(tableNode, result: SensitivityResult, request: SensitivityRequest) -> None:
    """Keep the result and the request that made it (the outlines are made again from it) on the table node."""
    from abcir.records import to_json_dict

    tableNode.SetAttribute(SENSITIVITY_ATTRIBUTE, json.dumps(result.to_dict()))
    tableNode.SetAttribute(REQUEST_ATTRIBUTE, json.dumps(to_json_dict(request)))


def lesionIndex(result: SensitivityResult, lesionName: str) -> int:
    """The lesion's place among the prediction's lesions (its randomisations' seed depends on it)."""
    names = [item.lesion_id for item in result.lesions]
    if lesionName not in names:
        raise InputError(_("Lesion '{name}': not among the lesions of the last prediction ({names}); predict "
                           "again.").format(name=lesionName, names=", ".join(names)))
    return names.index(lesionName)


def storedRequest(tableNode) -> SensitivityRequest:
    """The request that made the table's sensitivity; refuses a table without one."""
    from abcir.jobs.spec import SensitivityRequest
    from abcir.records import from_json_dict

    text = tableNode.GetAttribute(REQUEST_ATTRIBUTE) if tableNode is not None else None
    if not text:
        raise InputError(_("The last prediction computed no outline sensitivity; tick 'Outline sensitivity' and "
                           "predict again."))
    return from_json_dict(SensitivityRequest, json.loads(text), _("Stored sensitivity request"), InputError)


def writeOutlinesJob(folder: Path, ct: sitk.Image, lesionName: str, site: str | None, mask: sitk.Image,
                     index: int, request: SensitivityRequest) -> OutlinesJob:
    """One lesion's changed outlines as a job folder for the child (the CT and the lesion's mask as NRRD)."""
    from abcir.jobs.spec import OutlinesJob, write_job

    (lesion,) = jobLesions(folder, "lesion", [(lesionName, site, mask)])
    job = OutlinesJob(writeImage(ct, folder, CT_FILE), lesion, index, request)
    write_job(folder, job)
    return job


def outlineColor(perturbation: str) -> tuple[float, float, float]:
    return next((color for prefix, color in OUTLINE_COLORS.items() if perturbation.startswith(prefix)),
                OTHER_OUTLINE_COLOR)


def removeOutlineNodes(scene) -> None:
    """Remove the temporary outline nodes this module made (never any other node)."""
    nodes = [scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
             for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"))]
    for node in nodes:
        if node.GetAttribute(OUTLINES_ATTRIBUTE) is not None and not node.GetSaveWithScene():
            # Its display nodes first: removing a node does not remove the nodes it refers to.
            for display in [node.GetNthDisplayNode(index) for index in range(node.GetNumberOfDisplayNodes())]:
                scene.RemoveNode(display)
            scene.RemoveNode(node)


def addOutlineSegmentation(scene, volumeNode, lesionName: str, outlines: list[dict], folder: Path):
    """A NEW temporary segmentation node holding the child's changed outlines (``abcir.jobs.run``'s format).

    Replaces the previous outlines node of this module. Filled before it is
    added to the scene, so a failure adds nothing; shown as outlines only, in
    ``outlineColor``s, so the reader's own segmentation stays visible under it.
    """
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(scene.GenerateUniqueName(_("{lesion} outline changes (temporary, not saved)").format(
        lesion=lesionName)))
    node.SetSaveWithScene(False)
    node.SetHideFromEditors(True)
    node.SetAttribute(OUTLINES_ATTRIBUTE, lesionName)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)  # first: the crops are placed on the CT grid
    for outline in outlines:
        voxels = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / outline["mask"])))  # a copy: the image goes
        segmentId = node.GetSegmentation().AddEmptySegment(outline["perturbation"], outline["perturbation"],
                                                            outlineColor(outline["perturbation"]))
        if not slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                orientedLabelmap(voxels, volumeNode, outline["first_index"]), node, segmentId,
                slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE):
            raise InputError(_("Changed outline '{name}': Slicer could not store its voxels.").format(
                name=outline["perturbation"]))
    removeOutlineNodes(scene)
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetSaveWithScene(False)
    display.SetVisibility2DFill(False)
    display.SetVisibility2DOutline(True)
    return node
