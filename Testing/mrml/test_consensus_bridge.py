"""The consensus bridge on a real scene: two readers' segmentation nodes of the real CT -> agreement -> new node.

Reader A is the core-written segmentation of the stand-in lesions (pancreas_1,
adrenal_1, colon_1). Reader B is made from A by known changes: pancreas_1 one
2 mm slice further along z and given another site (liver), adrenal_1 dilated by
one voxel, colon_1 missing. The agreement must show exactly those changes, the
consensus must be a new node whose segments and tags follow the chair's
decisions, and the readers' nodes must be unchanged (MTime and voxels).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, load_segmentation, load_volume, whole_grid_mask

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.consensus.session import ChairChoice  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd  # noqa: E402
from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime  # noqa: E402
from ABCImmunoResponseLib.consensus import (SESSION_ATTRIBUTE, collectConsensusInputs, methodsFor,  # noqa: E402
                                            sameReadings, showPairOutlines, startSession)
from ABCImmunoResponseLib.parameters import CaseParameters, getOrCreateParameterNode, writeCaseParameters  # noqa: E402
from ABCImmunoResponseLib.segments import segmentIdByName, segmentIds, segmentTag  # noqa: E402

TAG = "ABCImmunoResponse.Consensus."


@pytest.fixture(scope="module")
def reader_b_file(core_seg_file, tmp_path_factory):
    """Reader B: A's pancreas shifted one slice (site liver), A's adrenal dilated by one voxel, no colon."""
    segments = {segment.name: segment for segment in read_seg_nrrd(core_seg_file)}
    pancreas = segments["pancreas_1"].mask
    shifted = sitk.Resample(pancreas, pancreas, sitk.TranslationTransform(3, (0.0, 0.0, -2.0)),
                            sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    adrenal = segments["adrenal_1"]
    dilated = sitk.BinaryDilate(adrenal.mask, (1, 1, 1), sitk.sitkCross)
    b = [Segment("s1", "pancreas_1", shifted, tags={SITE_TAG: "liver"}),
         Segment("s2", "adrenal_1", dilated, tags={SITE_TAG: "adrenal"})]
    return write_seg_nrrd(tmp_path_factory.mktemp("reader_b") / "B.seg.nrrd", b), {"pancreas_1": shifted,
                                                                                 "adrenal_1": dilated}


@pytest.fixture
def readers(standalone, real_ct, core_seg_file, reader_b_file, tmp_path):
    """Both readers in a scene, the panel's state naming them, and the Logic after 'Compare the readers'."""
    scene = standalone.scene
    volume = load_volume(scene, real_ct["path"])
    a = load_segmentation(scene, core_seg_file, "Reader A")
    b = load_segmentation(scene, reader_b_file[0], "Reader B")
    for node in (a, b):
        node.CreateDefaultDisplayNodes()
    parameter_node = getOrCreateParameterNode(scene)
    writeCaseParameters(parameter_node, CaseParameters(
        ctVolume=volume, readerA=a, readerB=b, readerAName="Dr A", readerBName="Dr B", chairName="Dr C",
        priorLines="1", metastaticSites="1-2", visceral="yes", tnbc="no"))
    logic = CaseLogic(scene, ChildRuntime.forThisProcess(tmp_path / "work"))
    comparison = logic.compareReaders(parameter_node)
    return {"scene": scene, "volume": volume, "a": a, "b": b, "inputs": logic.consensus.inputs,
            "comparison": comparison, "masks_b": reader_b_file[1], "logic": logic, "parameterNode": parameter_node}


def _voxels(node, volume) -> dict[str, np.ndarray]:
    return {node.GetSegmentation().GetSegment(sid).GetName(): sitk.GetArrayFromImage(whole_grid_mask(node, sid, volume))
            for sid in segmentIds(node)}


def _mask_a(readers, name):
    return next(lesion.mask for lesion in readers["inputs"].lesionsA if lesion.lesion_id == name)


def test_agreement_shows_the_known_changes(readers):
    comparison = readers["comparison"]
    rows = {(row.a, row.b): row for row in comparison.lesions}
    assert set(rows) == {("pancreas_1", "pancreas_1"), ("adrenal_1", "adrenal_1"), ("colon_1", None)}
    shifted = rows[("pancreas_1", "pancreas_1")]
    assert shifted.centroid_distance_mm == pytest.approx(2.0, abs=1e-6)
    assert shifted.volume_diff_percent == pytest.approx(0.0) and shifted.diameter_diff_mm == pytest.approx(0.0)
    assert (shifted.site_a, shifted.site_b, shifted.site_agrees) == ("other", "liver", False)
    dilated = rows[("adrenal_1", "adrenal_1")]
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(_mask_a(readers, "adrenal_1"), readers["masks_b"]["adrenal_1"])
    assert dilated.dice == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
    assert dilated.volume_diff_percent > 0 and dilated.hausdorff_mm >= dilated.hd95_mm > 0
    assert methodsFor(comparison, 2) == ("a", "exclude")
    assert "staple" in methodsFor(comparison, 0)


def test_consensus_is_a_new_tagged_node_and_the_readers_are_unchanged(readers):
    scene, volume, a, b, comparison = (readers[k] for k in ("scene", "volume", "a", "b", "comparison"))
    before = {"mtime": (a.GetMTime(), b.GetMTime()), "voxels": (_voxels(a, volume), _voxels(b, volume)),
              "segmentations": scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")}
    node = readers["logic"].createConsensus(readers["parameterNode"], {
        ("pancreas_1", "pancreas_1"): ChairChoice("union", "B is one slice lower", site="other"),
        ("adrenal_1", "adrenal_1"): ChairChoice("a", "B includes fat"),
        ("colon_1", None): ChairChoice("exclude", "not a target")})
    assert readers["parameterNode"].GetNodeReference("consensusSegmentation") is node

    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == before["segmentations"] + 1
    assert node not in (a, b) and node.GetScene() is scene and node.GetDisplayNode() is not None
    assert (a.GetMTime(), b.GetMTime()) == before["mtime"]
    for after, earlier in zip((_voxels(a, volume), _voxels(b, volume)), before["voxels"], strict=True):
        assert after.keys() == earlier.keys()
        assert all(np.array_equal(after[name], earlier[name]) for name in after)

    voxels = _voxels(node, volume)
    assert list(voxels) == ["pancreas_1", "adrenal_1"]  # colon excluded, agreement table order
    union = sitk.Or(_mask_a(readers, "pancreas_1"), readers["masks_b"]["pancreas_1"])
    assert np.array_equal(voxels["pancreas_1"], sitk.GetArrayFromImage(union))
    assert np.array_equal(voxels["adrenal_1"], sitk.GetArrayFromImage(_mask_a(readers, "adrenal_1")))
    segmentation = node.GetSegmentation()
    pancreas = segmentation.GetSegment(segmentIdByName(node, "pancreas_1"))
    assert segmentTag(pancreas, TAG + "Method") == "union"
    assert segmentTag(pancreas, TAG + "ReaderA") == "Dr A: pancreas_1"
    assert segmentTag(pancreas, TAG + "ReaderB") == "Dr B: pancreas_1"
    assert segmentTag(pancreas, TAG + "DecidedBy") == "Dr C"
    assert segmentTag(pancreas, SITE_TAG) == "other"  # the chair's site, not B's liver
    adrenal = segmentation.GetSegment(segmentIdByName(node, "adrenal_1"))
    assert segmentTag(adrenal, TAG + "Method") == "a" and segmentTag(adrenal, SITE_TAG) == "adrenal"
    logged = json.loads(node.GetAttribute(SESSION_ATTRIBUTE))
    assert logged["chair"] == "Dr C" and (logged["reader_a"], logged["reader_b"]) == ("Dr A", "Dr B")
    reasons = {d["a"]: (d["method"], d["reason"]) for d in logged["decisions"]}
    assert reasons == {"pancreas_1": ("union", "B is one slice lower"), "adrenal_1": ("a", "B includes fat"),
                       "colon_1": ("exclude", "not a target")}


def test_consensus_segments_keep_the_taken_readers_colour_and_terminology(readers):
    a, b = readers["a"], readers["b"]
    terminology_a = ("Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered "
                     "Structure~SCT^14799000^Neoplasm, Secondary~^^~Anatomic codes - DICOM master list~SCT^15776009^"
                     "Pancreas~^^")
    terminology_b = terminology_a.replace("SCT^15776009^Pancreas", "SCT^23451007^Adrenal gland")
    pancreas_a = a.GetSegmentation().GetSegment(segmentIdByName(a, "pancreas_1"))
    adrenal_b = b.GetSegmentation().GetSegment(segmentIdByName(b, "adrenal_1"))
    for segment, color, terminology in ((pancreas_a, (0.1, 0.2, 0.9), terminology_a),
                                        (adrenal_b, (0.9, 0.1, 0.6), terminology_b)):
        segment.SetColor(*color)
        segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
    node = readers["logic"].createConsensus(readers["parameterNode"], {
        ("pancreas_1", "pancreas_1"): ChairChoice("a", site="other"),  # A's outline and A's site
        ("adrenal_1", "adrenal_1"): ChairChoice("b"),
        ("colon_1", None): ChairChoice("exclude")})
    segmentation = node.GetSegmentation()
    pancreas = segmentation.GetSegment(segmentIdByName(node, "pancreas_1"))
    adrenal = segmentation.GetSegment(segmentIdByName(node, "adrenal_1"))
    assert pancreas.GetColor() == pytest.approx((0.1, 0.2, 0.9))
    assert segmentTag(pancreas, "TerminologyEntry") == terminology_a
    assert adrenal.GetColor() == pytest.approx((0.9, 0.1, 0.6))
    assert segmentTag(adrenal, "TerminologyEntry") == terminology_b
    assert segmentTag(pancreas, SITE_TAG) == "other" and segmentTag(adrenal, SITE_TAG) == "adrenal"


def test_refused_decisions_leave_the_scene_as_it_was(readers):
    """The core's rules and messages, once: the panel's choices go through ``apply_choices`` and ``build_consensus``."""
    scene, logic, node = readers["scene"], readers["logic"], readers["parameterNode"]
    nodes = scene.GetNumberOfNodes()
    choices = {("pancreas_1", "pancreas_1"): ChairChoice("staple", site="other"),
               ("adrenal_1", "adrenal_1"): ChairChoice("b")}
    with pytest.raises(InputError, match=r"no decision yet for A colon_1 \(only A\)"):
        logic.createConsensus(node, choices)
    choices[("colon_1", None)] = ChairChoice("union")
    with pytest.raises(InputError, match="'union' needs both readers' outlines"):
        logic.createConsensus(node, choices)
    choices[("colon_1", None)] = ChairChoice("a")
    choices[("pancreas_1", "pancreas_1")] = ChairChoice("staple")
    with pytest.raises(InputError, match=r"different sites \(liver vs other\)"):
        logic.createConsensus(node, choices)
    choices[("pancreas_1", "pancreas_1")] = ChairChoice(reason="a reason without a method")
    with pytest.raises(InputError, match="a site or reason without a method"):
        logic.createConsensus(node, choices)
    assert scene.GetNumberOfNodes() == nodes and logic.consensus.segments is None
    again = collectConsensusInputs(readers["volume"], readers["a"], readers["b"], "Dr A", "Dr B")
    assert sameReadings(readers["inputs"], again)
    assert not sameReadings(readers["inputs"], collectConsensusInputs(readers["volume"], readers["b"], readers["a"],
                                                                      "Dr A", "Dr B"))
    with pytest.raises(InputError, match="same segmentation"):
        collectConsensusInputs(readers["volume"], readers["a"], readers["a"], "Dr A", "Dr B")
    with pytest.raises(InputError, match="chair"):
        startSession(readers["inputs"], readers["comparison"], "  ")


def test_same_readings_says_what_equal_voxel_hashes_say(readers):
    """Compared, not hashed: a voxel, a site, the CT's voxels or its geometry changed make other readings."""
    from dataclasses import replace

    from abcir.imaging.ct import voxel_hash

    inputs = readers["inputs"]
    first, rest = inputs.lesionsA[0], inputs.lesionsA[1:]
    edited = sitk.Image(first.mask)
    edited[0, 0, 0] = 1 - edited[0, 0, 0]
    moved = sitk.Image(inputs.ct)
    moved.SetOrigin(tuple(value + 1e-6 for value in moved.GetOrigin()))
    variants = {"a voxel": replace(inputs, lesionsA=(replace(first, mask=edited), *rest)),
                "a site": replace(inputs, lesionsA=(replace(first, site="bone"), *rest)),
                "a lesion less": replace(inputs, lesionsA=rest),
                "the CT's voxels": replace(inputs, ct=inputs.ct + 1),
                "the CT's place": replace(inputs, ct=moved)}
    for name, variant in variants.items():
        assert not sameReadings(inputs, variant), name
    assert voxel_hash(moved) != voxel_hash(inputs.ct)
    assert sameReadings(inputs, replace(inputs, ct=sitk.Image(inputs.ct),
                                        lesionsA=tuple(replace(lesion, mask=sitk.Image(lesion.mask))
                                                       for lesion in inputs.lesionsA)))


def test_a_failed_comparison_forgets_the_earlier_one(readers):
    """After comparing again fails, nothing of the earlier session can be used (no stale 'Predict under A, B')."""
    logic, node = readers["logic"], readers["parameterNode"]
    assert logic.consensus.compared
    node.SetNodeReferenceID("readerB", readers["a"].GetID())
    with pytest.raises(InputError, match="same segmentation"):
        logic.compareReaders(node)
    assert not logic.consensus.compared and logic.consensus.inputs is None
    with pytest.raises(InputError, match="compare the readers first"):
        logic.startReaderPredictions(node)


def test_clicking_a_row_shows_both_outlines_in_two_colours(readers):
    a, b = readers["a"], readers["b"]
    mtimes = a.GetMTime(), b.GetMTime()
    idA, idB = segmentIdByName(a, "adrenal_1"), segmentIdByName(b, "adrenal_1")
    showPairOutlines(((a, idA), (b, idB)))
    colours = [node.GetDisplayNode().GetSegmentOverrideColor(sid) for node, sid in ((a, idA), (b, idB))]
    assert colours[0] != colours[1]
    assert not a.GetDisplayNode().GetVisibility2DFill() and b.GetDisplayNode().GetVisibility2DOutline()
    assert (a.GetMTime(), b.GetMTime()) == mtimes  # display only


def _predict_readings(readers, methods: tuple[str, str, str], model: str, bundle):
    """Decide (pancreas, adrenal, colon) with ``methods``, then predict under A, B and the consensus in the child."""
    logic, node = readers["logic"], readers["parameterNode"]
    keys = (("pancreas_1", "pancreas_1"), ("adrenal_1", "adrenal_1"), ("colon_1", None))
    logic.createConsensus(node, {key: ChairChoice(method) for key, method in zip(keys, methods, strict=True)})
    node.SetParameter("model", model)
    node.SetParameter("bundlePath", str(bundle))
    updates = []
    predictions = logic.startReaderPredictions(node).wait(timeoutSeconds=300, onUpdate=updates.append)
    assert logic.consensus.predictions is predictions
    return predictions, [step for update in updates for step in update.progress]


def test_predictions_under_each_reading_run_in_a_child_process(readers, bundles):
    predictions, _ = _predict_readings(readers, ("a", "b", "exclude"), "clinical", bundles["clinical"])
    assert [side for side, _ in predictions.computed()] == ["a", "b", "consensus"]
    # The clinical model ignores the outlines: all three readings give the same probability and risk group.
    assert predictions.a.probability == predictions.b.probability == predictions.consensus.probability
    assert not any(predictions.risk_group_changes().values())
    assert "not clinically validated" in predictions.a.provenance.lower()


def test_radiomics_predictions_follow_the_outlines_each_reading_has(readers, bundles):
    predictions, progress = _predict_readings(readers, ("a", "a", "a"), "combined", bundles["combined"])
    assert len(progress) == 5  # A's three masks and B's two changed ones; the consensus (all A) is not extracted again
    assert predictions.consensus.probability == predictions.a.probability  # the consensus is reader A's reading
    assert predictions.b.probability != predictions.a.probability
