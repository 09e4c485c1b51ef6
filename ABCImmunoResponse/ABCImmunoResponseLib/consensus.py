"""Two readers' segmentations in the scene -> the core's consensus; the consensus back as a new segmentation node.

``ConsensusWorkflow`` keeps what a chair's session in the panel needs between
clicks (the readings as compared, the comparison, the consensus built from it,
the predictions under each reading), so the Qt widget only shows it. The
readers' nodes are only read: their ticked segments are copied onto the CT
grid (``segments.lesionInputs``) and measured as the prediction measures them.
Matching, agreement, the chair's choices (``abcir.consensus.session.apply_choices``),
STAPLE, every rule and every message are the core's. The consensus is built
completely before anything is added to the scene, so a refused decision leaves
the scene as it was; it becomes a new segmentation node, with the session
(decisions, reasons, who and when) in a node attribute. Each consensus segment
keeps the colour and terminology entry of the reader's segment it was taken from
(``abcir.consensus.building``); only a segment without one gets its site's. The
predictions under each reading run in the child process (``case_logic``), from a
job written here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np
import SimpleITK as sitk

import slicer
from abcir.errors import InputError
from abcir.patient.sites import SITE_TAG, SITES

from .case import CT_FILE, jobLesions, writeImage
from .i18n import tr as _
from .segments import lesionFromInput, lesionInputs, segmentIds, segmentTag, setSegmentSite
from .volumes import imageFromVolumeNode, orientedLabelmap

if TYPE_CHECKING:
    from abcir.patient.clinical_facts import ClinicalFacts
    from abcir.consensus.comparison import ReaderComparison
    from abcir.consensus.building import ConsensusSegment, PairKey, SegmentLook
    from abcir.consensus.predictions import ReaderPredictions
    from abcir.consensus.session import ChairChoice, ConsensusSession
    from abcir.jobs.spec import ReadersJob
    from abcir.patient.lesions import Lesion

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
    looksA: Mapping[str, SegmentLook] = field(default_factory=dict)  # colour and terminology by lesion id
    looksB: Mapping[str, SegmentLook] = field(default_factory=dict)


def readerLesions(segmentationNode, volumeNode, ct: sitk.Image) -> tuple[Lesion, ...]:
    """The ticked segments of one reader as the core's lesions on the CT grid (the node is only read)."""
    return tuple(lesionFromInput(lesionInput, ct) for lesionInput in lesionInputs(segmentationNode, volumeNode))


def readerLooks(segmentationNode) -> dict[str, SegmentLook]:
    """Colour and terminology entry of each segment, by name (the lesion id), for the consensus to keep.

    Only the terminology tag is read: Slicer's Python cannot list a segment's other tags.
    """
    from abcir.consensus.building import TERMINOLOGY_TAG, SegmentLook

    segmentation = segmentationNode.GetSegmentation()
    looks = {}
    for segmentId in segmentIds(segmentationNode):
        segment = segmentation.GetSegment(segmentId)
        terminology = segmentTag(segment, TERMINOLOGY_TAG)
        looks[segment.GetName()] = SegmentLook(tuple(segment.GetColor()),
                                               {TERMINOLOGY_TAG: terminology} if terminology else {})
    return looks


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
                           segmentationB.GetName(), readerLooks(segmentationA), readerLooks(segmentationB))


def compareReadings(inputs: ConsensusInputs) -> ReaderComparison:
    """The core's matching and agreement table (Dice, HD95, Hausdorff, volume and diameter differences)."""
    from abcir.consensus.comparison import compare_readers

    return compare_readers(inputs.lesionsA, inputs.lesionsB, inputs.readerA, inputs.readerB)


def methodsFor(comparison: ReaderComparison, row: int) -> tuple[str, ...]:
    """The methods the chair may choose for a row of the agreement table (pairs: all but 'edited')."""
    from abcir.options import CONSENSUS_PAIR_METHODS

    match = comparison.matches[row]
    if match.a is not None and match.b is not None:
        return ("a", "b", *CONSENSUS_PAIR_METHODS, "exclude")
    return ("a" if match.a is not None else "b", "exclude")


def _lesionsFingerprint(lesions) -> str:
    """SHA-256 of a reading as compared: lesion ids, sites and mask voxels, in order."""
    import hashlib

    from abcir.imaging.ct import voxel_hash

    digest = hashlib.sha256()
    for lesion in lesions:
        digest.update(f"{lesion.lesion_id}\0{lesion.site or ''}\0{voxel_hash(lesion.mask)}\n".encode())
    return digest.hexdigest()


def _sameVoxels(first: sitk.Image, second: sitk.Image) -> bool:
    """Whether two images have equal voxel hashes (``voxel_hash``: voxels, pixel type, size, geometry to 9
    decimals), found by comparing them once instead of hashing both at SHA-256's pace."""
    geometry = (sitk.Image.GetSpacing, sitk.Image.GetOrigin, sitk.Image.GetDirection)
    return (first.GetPixelID() == second.GetPixelID() and first.GetSize() == second.GetSize()
            and all(np.asarray(get(first), dtype=float).round(9).tobytes()
                    == np.asarray(get(second), dtype=float).round(9).tobytes() for get in geometry)
            and np.array_equal(sitk.GetArrayViewFromImage(first), sitk.GetArrayViewFromImage(second)))


def _sameLesions(first, second) -> bool:
    return len(first) == len(second) and all(
        (a.lesion_id, a.site) == (b.lesion_id, b.site) and _sameVoxels(a.mask, b.mask) for a, b in zip(first, second))


def sameReadings(first: ConsensusInputs, second: ConsensusInputs) -> bool:
    """Whether two copies of the readings hold the same readers, CT voxels, lesion ids, sites and masks."""
    return ((first.readerA, first.readerB) == (second.readerA, second.readerB)
            and _sameVoxels(first.ct, second.ct)
            and _sameLesions(first.lesionsA, second.lesionsA) and _sameLesions(first.lesionsB, second.lesionsB))


def startSession(inputs: ConsensusInputs, comparison: ReaderComparison, chair: str) -> ConsensusSession:
    """A new session chaired by ``chair``; the readers are recorded by node name and a hash of their masks."""
    from abcir.consensus.comparison import ComparedInputs, InputFile
    from abcir.consensus.session import new_session
    from abcir.imaging.ct import voxel_hash

    compared = ComparedInputs(
        InputFile(f"{SCENE_SOURCE} (CT voxels)", voxel_hash(inputs.ct)),
        InputFile(f"{SCENE_SOURCE} '{inputs.sourceA}' (lesion masks)", _lesionsFingerprint(inputs.lesionsA)),
        InputFile(f"{SCENE_SOURCE} '{inputs.sourceB}' (lesion masks)", _lesionsFingerprint(inputs.lesionsB)))
    return new_session(comparison, compared, chair)


def buildConsensus(comparison: ReaderComparison, session: ConsensusSession,
                   inputs: ConsensusInputs | None = None) -> list[ConsensusSegment]:
    """The core's consensus segments (masks on the CT grid, tagged with their origin, coloured as ``inputs``)."""
    from abcir.consensus.building import build_consensus

    return build_consensus(comparison.matches, session.decisions, session.reader_a, session.reader_b,
                           looks_a=inputs.looksA if inputs else None, looks_b=inputs.looksB if inputs else None)


def addConsensusSegmentation(scene, volumeNode, segments: list[ConsensusSegment], session: ConsensusSession,
                             name: str = ""):
    """A NEW segmentation node holding the consensus segments with the core's tags; returns it.

    The node is filled before it is added to the scene, so a failure adds nothing.
    ``segments`` must be on the grid of ``volumeNode`` (they are when built from
    ``collectConsensusInputs`` on that volume).
    """
    from abcir.patient.lesions import same_grid
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
                orientedLabelmap(sitk.GetArrayViewFromImage(segment.mask), volumeNode), node, segmentId,
                slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE):
            raise InputError(_("Consensus segment '{name}': Slicer could not store its voxels.").format(
                name=segment.name))
        stored = node.GetSegmentation().GetSegment(segmentId)
        for tag, value in segment.tags.items():
            stored.SetTag(tag, value)
        if segment.tags.get(SITE_TAG) in SITES and not stored.HasTag(stored.GetTerminologyEntryTagName()):
            setSegmentSite(node, segmentId, segment.tags[SITE_TAG])  # the site's terminology and colour
    node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    node.SetAttribute(SESSION_ATTRIBUTE, json.dumps(to_json_dict(session)))
    scene.AddNode(node)
    node.CreateDefaultDisplayNodes()
    return node


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


def writeReadersJob(folder: Path, inputs: ConsensusInputs, consensus: list[ConsensusSegment] | None,
                    clinical: ClinicalFacts | None, model: str, bundlePath: str, jobs: int,
                    cacheFolder: Path | None) -> ReadersJob:
    """Predictions under reader A, reader B and the consensus (None: not built yet) as a job folder for the child."""
    from abcir.jobs.spec import ReadersJob, write_job

    def triples(lesions):
        return [(lesion.lesion_id, lesion.site, lesion.mask) for lesion in lesions]

    job = ReadersJob(
        ct=writeImage(inputs.ct, folder, CT_FILE), reader_a=inputs.readerA, reader_b=inputs.readerB,
        lesions_a=jobLesions(folder, "a", triples(inputs.lesionsA)),
        lesions_b=jobLesions(folder, "b", triples(inputs.lesionsB)),
        consensus=(None if consensus is None else
                   jobLesions(folder, "consensus", triples(item.lesion for item in consensus))),
        clinical=tuple(clinical.to_tokens()) if clinical is not None else None, model=model,
        bundle=bundlePath or None, jobs=jobs, cache=str(cacheFolder) if cacheFolder else None)
    write_job(folder, job)
    return job


class ConsensusWorkflow:
    """One chair's session in the panel: compare, decide, build, predict under each reading.

    Each step starts from the one before it; comparing again forgets everything
    after it, so a failed comparison leaves nothing that later steps could use.
    """

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Back to the start (after a scene close, or before comparing again)."""
        self.inputs: ConsensusInputs | None = None
        self.comparison: ReaderComparison | None = None
        self.segments: list[ConsensusSegment] | None = None
        self.predictions: ReaderPredictions | None = None

    @property
    def compared(self) -> bool:
        return self.comparison is not None

    def compare(self, volumeNode, segmentationA, segmentationB, readerA: str, readerB: str) -> ReaderComparison:
        """Copy both readings out of the scene and compare them.

        On Slicer's GUI thread: for five lesions per reader on a 512 x 512 x 300
        CT, the comparison took 0.65 s (``bench_consensus_compare.py``) and copying
        the readings 0.9-1.3 s.
        """
        self.forget()
        inputs = collectConsensusInputs(volumeNode, segmentationA, segmentationB, readerA, readerB)
        comparison = compareReadings(inputs)
        self.inputs, self.comparison = inputs, comparison
        return comparison

    def methodsFor(self, row: int) -> tuple[str, ...]:
        return methodsFor(self._comparison(), row)

    def createConsensus(self, scene, volumeNode, segmentationA, segmentationB, readerA: str, readerB: str,
                        chair: str, choices: Mapping[PairKey, ChairChoice]):
        """A new consensus segmentation node from the chair's choices; the readers' nodes are not changed.

        The readers may have been edited since they were compared: the chair
        decides only on what the agreement table shows, so a changed reading is
        refused until it is compared again.
        """
        from abcir.consensus.session import apply_choices

        comparison = self._comparison()
        current = collectConsensusInputs(volumeNode, segmentationA, segmentationB, readerA, readerB)
        if not sameReadings(current, self.inputs):
            raise InputError(_("Consensus: the readers' segmentations, names or the CT changed since they were "
                               "compared; press 'Compare the readers' again."))
        session = apply_choices(startSession(current, comparison, chair), comparison, choices)
        segments = buildConsensus(comparison, session, current)
        node = addConsensusSegmentation(scene, volumeNode, segments, session)
        self.segments, self.predictions = segments, None
        return node

    def writeReadersJob(self, folder: Path, clinical: ClinicalFacts | None, model: str, bundlePath: str,
                        jobs: int, cacheFolder: Path | None) -> ReadersJob:
        self._comparison()
        return writeReadersJob(folder, self.inputs, self.segments, clinical, model, bundlePath, jobs, cacheFolder)

    def _comparison(self) -> ReaderComparison:
        if self.comparison is None:
            raise InputError(_("Consensus: compare the readers first."))
        return self.comparison
