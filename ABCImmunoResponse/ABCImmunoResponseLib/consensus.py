"""Two readers' segmentations in the scene -> the core's consensus; the consensus back as a new segmentation node.

The readers' nodes are only read: their ticked segments are copied onto the
CT grid (``segments.lesionInputs``) and measured as the prediction measures
them (``segments.lesionFromInput``). Matching, agreement, the chair's
decisions, STAPLE and the segment tags are the core's (``abcir.consensus``).
The consensus is built completely before anything is added to the scene, so a
refused decision leaves the scene as it was; it becomes a new segmentation
node, with the session (decisions, reasons, who and when) in a node attribute.

Comparison of a few lesions takes well under a second (main thread); the
predictions under each reading extract features and belong on a worker thread
(``runReaderPredictions`` touches no scene object).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

import slicer
from abcir.errors import InputError
from abcir.sites import SITE_TAG, SITES

from .background import ProgressCallback
from .i18n import tr as _
from .segments import lesionFromInput, lesionInputs, segmentIds, setSegmentSite
from .volumes import ijkToRasMatrix, imageFromVolumeNode

if TYPE_CHECKING:
    from abcir.clinical import ClinicalFacts
    from abcir.consensus.agreement import ReaderComparison
    from abcir.consensus.building import ConsensusSegment, PairKey
    from abcir.consensus.predictions import ReaderPredictions
    from abcir.consensus.session import ConsensusSession
    from abcir.lesions import Lesion

SESSION_ATTRIBUTE = "ABCImmunoResponse.ConsensusSession"  # the session JSON on the consensus node
SCENE_SOURCE = "scene node"  # ComparedInputs path prefix: the readers were nodes, not files


@dataclass(frozen=True)
class ConsensusInputs:
    """Both readings copied out of the scene, on the CT's grid (what a worker thread may use)."""

    ct: sitk.Image
    readerA: str
    readerB: str
    lesionsA: tuple[Lesion, ...]
    lesionsB: tuple[Lesion, ...]
    sourceA: str  # the reader's node name, recorded in the session
    sourceB: str


@dataclass(frozen=True)
class ChairChoice:
    """The chair's choice for one lesion pair: method, why, and the site when it overrides the readers'."""

    method: str
    reason: str = ""
    site: str | None = None


def readerLesions(segmentationNode, volumeNode, ct: sitk.Image) -> tuple[Lesion, ...]:
    """The ticked segments of one reader as the core's lesions on the CT grid (the node is only read)."""
    return tuple(lesionFromInput(lesionInput, ct) for lesionInput in lesionInputs(segmentationNode, volumeNode))


def collectConsensusInputs(volumeNode, segmentationA, segmentationB, readerA: str, readerB: str) -> ConsensusInputs:
    """Copy both readings out of the scene; raises ``InputError`` naming what to fix."""
    if volumeNode is None:
        raise InputError(_("CT volume: none selected; select the CT both readers segmented under 'Inputs'."))
    if segmentationA is None or segmentationB is None:
        raise InputError(_("Consensus: select both readers' segmentations."))
    if segmentationA is segmentationB:
        raise InputError(_("Consensus: reader A and reader B are the same segmentation '{name}'; select each "
                           "reader's own segmentation.").format(name=segmentationA.GetName()))
    names = (readerA.strip() or segmentationA.GetName(), readerB.strip() or segmentationB.GetName())
    if names[0] == names[1]:
        raise InputError(_("Consensus: both readers are called '{name}'; give each reader's name.").format(
            name=names[0]))
    ct = imageFromVolumeNode(volumeNode)
    return ConsensusInputs(ct, names[0], names[1], readerLesions(segmentationA, volumeNode, ct),
                           readerLesions(segmentationB, volumeNode, ct), segmentationA.GetName(),
                           segmentationB.GetName())


def compareReadings(inputs: ConsensusInputs) -> ReaderComparison:
    """The core's matching and agreement table (Dice, HD95, Hausdorff, volume and diameter differences)."""
    from abcir.consensus.agreement import compare_readers

    return compare_readers(inputs.lesionsA, inputs.lesionsB, inputs.readerA, inputs.readerB)


def methodsFor(comparison: ReaderComparison, row: int) -> tuple[str, ...]:
    """The methods the chair may choose for a row of the agreement table (pairs: all but 'edited')."""
    from abcir.consensus.building import PAIR_METHODS

    match = comparison.matches[row]
    if match.a is not None and match.b is not None:
        return ("a", "b", *PAIR_METHODS, "exclude")
    return ("a" if match.a is not None else "b", "exclude")


def _lesionsFingerprint(lesions) -> str:
    """SHA-256 of a reading as compared: lesion ids, sites and mask voxels, in order."""
    import hashlib

    from abcir.imaging import voxel_hash

    digest = hashlib.sha256()
    for lesion in lesions:
        digest.update(f"{lesion.lesion_id}\0{lesion.site or ''}\0{voxel_hash(lesion.mask)}\n".encode())
    return digest.hexdigest()


def sameReadings(first: ConsensusInputs, second: ConsensusInputs) -> bool:
    """Whether two copies of the readings hold the same readers, CT voxels, lesion ids, sites and masks."""
    from abcir.imaging import voxel_hash

    return ((first.readerA, first.readerB) == (second.readerA, second.readerB)
            and voxel_hash(first.ct) == voxel_hash(second.ct)
            and _lesionsFingerprint(first.lesionsA) == _lesionsFingerprint(second.lesionsA)
            and _lesionsFingerprint(first.lesionsB) == _lesionsFingerprint(second.lesionsB))


def startSession(inputs: ConsensusInputs, comparison: ReaderComparison, chair: str) -> ConsensusSession:
    """A new session chaired by ``chair``; the readers are recorded by node name and a hash of their masks."""
    from abcir.consensus.agreement import ComparedInputs, InputFile
    from abcir.consensus.session import new_session
    from abcir.imaging import voxel_hash

    compared = ComparedInputs(
        InputFile(f"{SCENE_SOURCE} (CT voxels)", voxel_hash(inputs.ct)),
        InputFile(f"{SCENE_SOURCE} '{inputs.sourceA}' (lesion masks)", _lesionsFingerprint(inputs.lesionsA)),
        InputFile(f"{SCENE_SOURCE} '{inputs.sourceB}' (lesion masks)", _lesionsFingerprint(inputs.lesionsB)))
    return new_session(comparison, compared, chair)


def decideAll(session: ConsensusSession, comparison: ReaderComparison,
              choices: Mapping[PairKey, ChairChoice]) -> ConsensusSession:
    """The session with one decision per lesion pair; every pair needs a choice, and a site where readers differ."""
    from abcir.consensus.building import Decision, describe
    from abcir.consensus.session import now_utc

    missing = [describe(match.key) for match in comparison.matches if not choices.get(match.key)
               or not choices[match.key].method]
    if missing:
        raise InputError(_("Consensus: no method chosen for {lesions}; choose one in the agreement table.").format(
            lesions=", ".join(missing)))
    decidedAt = now_utc()
    for index, (row, match) in enumerate(zip(comparison.lesions, comparison.matches, strict=True)):
        choice = choices[match.key]
        allowed = methodsFor(comparison, index)
        if choice.method not in allowed:
            raise InputError(_("Lesion {lesion}: method '{method}' is not possible here; choose one of "
                               "{methods}.").format(lesion=describe(match.key), method=choice.method,
                                                    methods=", ".join(allowed)))
        needsSite = row.matched and not row.site_agrees and choice.method in ("union", "intersection", "staple")
        if needsSite and choice.site is None:
            raise InputError(_("Lesion {lesion}: the readers gave different sites ({siteA} vs {siteB}); choose the "
                               "site in the agreement table.").format(lesion=describe(match.key), siteA=row.site_a,
                                                                      siteB=row.site_b))
        session = session.decide(Decision(a=match.key[0], b=match.key[1], method=choice.method,
                                          decided_by=session.chair, decided_at=decidedAt,
                                          reason=choice.reason.strip(), site=choice.site))
    return session


def buildConsensus(comparison: ReaderComparison, session: ConsensusSession) -> list[ConsensusSegment]:
    """The core's consensus segments (masks on the CT grid, tagged with their origin)."""
    from abcir.consensus.building import build_consensus

    return build_consensus(comparison.matches, session.decisions, session.reader_a, session.reader_b)


def _orientedMask(mask: sitk.Image, volumeNode) -> slicer.vtkOrientedImageData:
    """A mask on the volume's voxel grid as a labelmap Slicer's segmentations take (same IJK to RAS)."""
    voxels = np.ascontiguousarray(sitk.GetArrayViewFromImage(mask), dtype=np.uint8)
    image = slicer.vtkOrientedImageData()
    image.SetDimensions(*voxels.shape[::-1])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.GetPointData().GetScalars().DeepCopy(numpy_support.numpy_to_vtk(voxels.ravel(), deep=True,
                                                                          array_type=vtk.VTK_UNSIGNED_CHAR))
    image.SetImageToWorldMatrix(ijkToRasMatrix(volumeNode))
    return image


def addConsensusSegmentation(scene, volumeNode, segments: list[ConsensusSegment], session: ConsensusSession,
                             name: str = ""):
    """A NEW segmentation node holding the consensus segments with the core's tags; returns it.

    The node is filled before it is added to the scene, so a failure adds nothing.
    ``segments`` must be on the grid of ``volumeNode`` (they are when built from
    ``collectConsensusInputs`` on that volume).
    """
    from abcir.lesions import same_grid
    from abcir.records import to_json_dict

    grid = imageFromVolumeNode(volumeNode)
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(scene.GenerateUniqueName(name or _("{a} + {b} consensus").format(a=session.reader_a,
                                                                                 b=session.reader_b)))
    for item in segments:
        segment = item.segment
        if not same_grid(segment.mask, grid):
            raise InputError(_("Consensus segment '{name}': not on the grid of CT '{ct}'; compare the readers on "
                               "this CT again.").format(name=segment.name, ct=volumeNode.GetName()))
        segmentId = node.GetSegmentation().AddEmptySegment(segment.segment_id, segment.name, segment.color)
        if not slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
                _orientedMask(segment.mask, volumeNode), node, segmentId,
                slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE):
            raise InputError(_("Consensus segment '{name}': Slicer could not store its voxels.").format(
                name=segment.name))
        stored = node.GetSegmentation().GetSegment(segmentId)
        for tag, value in segment.tags.items():
            stored.SetTag(tag, value)
        if segment.tags.get(SITE_TAG) in SITES:  # terminology entry and colour, as the lesion table sets them
            setSegmentSite(node, segmentId, segment.tags[SITE_TAG])
    node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    node.SetAttribute(SESSION_ATTRIBUTE, json.dumps(to_json_dict(session)))
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    return node


def runReaderPredictions(inputs: ConsensusInputs, consensus: list[ConsensusSegment] | None,
                         clinical: ClinicalFacts | None, model: str, bundlePath: str,
                         progress: ProgressCallback | None = None) -> ReaderPredictions:
    """Predict under reader A, reader B and the consensus (None: not built yet); no scene access, any thread."""
    from abcir.consensus.predictions import predict_readers

    return predict_readers(inputs.ct, inputs.lesionsA, inputs.lesionsB,
                           None if consensus is None else [item.lesion for item in consensus],
                           clinical.to_tokens() if clinical is not None else None, model, bundlePath or None,
                           progress=progress)


READER_OUTLINE_COLORS = ((1.0, 0.85, 0.0), (0.0, 0.85, 1.0))  # reader A yellow, reader B cyan


def showPairOutlines(pair: tuple[tuple[object, str | None], tuple[object, str | None]]) -> None:
    """Show one lesion of each reader as outlines in two colours (display nodes only; segments untouched).

    ``pair`` is ((segmentation A, segment id or None), (segmentation B, segment id or None)).
    """
    for (segmentationNode, segmentId), color in zip(pair, READER_OUTLINE_COLORS, strict=True):
        if segmentationNode is None or segmentId is None:
            continue
        display = segmentationNode.GetDisplayNode()
        if display is None:
            continue
        display.SetVisibility(True)
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)
        display.SetSegmentVisibility(segmentId, True)
        display.SetSegmentOverrideColor(segmentId, *color)


def segmentIdByName(segmentationNode, name: str | None) -> str | None:
    """The id of the segment called ``name`` (the core's lesion id), or None."""
    if name is None:
        return None
    segmentation = segmentationNode.GetSegmentation()
    for segmentId in segmentIds(segmentationNode):
        if segmentation.GetSegment(segmentId).GetName() == name:
            return segmentId
    return None
