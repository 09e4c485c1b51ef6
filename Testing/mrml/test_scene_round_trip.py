"""A saved scene (.mrb) brings the panel back: parameter node values, site tags and the last result."""

from __future__ import annotations

import pytest
from mrml_scene import SLICER_CORE_MISSING, load_segmentation, load_volume

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.patient.clinical_facts import ClinicalFacts  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from ABCImmunoResponseLib.parameters import (MODULE_NAME, CaseParameters, clinicalFacts,  # noqa: E402
                                             findParameterNode, readCaseParameters, writeNodeReference)
from ABCImmunoResponseLib.results import RESULT_ATTRIBUTE, predictionFromJson  # noqa: E402
from ABCImmunoResponseLib.segments import (INCLUDE_TAG, isSegmentIncluded, segmentSite,  # noqa: E402
                                           setSegmentIncluded, setSegmentSite)
from ABCImmunoResponseLib.standalone import newStandaloneScene  # noqa: E402


def panel_node(scene):
    """A parameter node as ScriptedLoadableModuleLogic creates it and @parameterNodeWrapper fills it."""
    node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
    node.SetSingletonTag(MODULE_NAME)
    node.SetAttribute("ModuleName", MODULE_NAME)
    for name, value in (("priorLines", "2+"), ("metastaticSites", "3+"), ("visceral", "yes"), ("tnbc", "no"),
                        ("model", "radiomics"), ("bundlePath", "/site/bundles/radiomics-2026")):
        node.SetParameter(name, value)
    node.SetParameter("metastaticSitesPrefilled", "True")
    node.SetParameter("visceralPrefilled", "False")
    return node


def test_reading_the_parameter_node_decodes_what_the_wrapper_wrote(standalone):
    scene = standalone.scene
    node = panel_node(scene)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    writeNodeReference(node, "ctVolume", volume)
    assert findParameterNode(scene) is node
    parameters = readCaseParameters(node)
    assert parameters.ctVolume is volume and parameters.segmentation is None
    assert (parameters.priorLines, parameters.metastaticSites, parameters.visceral, parameters.tnbc) == \
        ("2+", "3+", "yes", "no")
    assert parameters.metastaticSitesPrefilled is True and parameters.visceralPrefilled is False
    assert (parameters.model, parameters.bundlePath) == ("radiomics", "/site/bundles/radiomics-2026")


def test_clinical_facts_need_all_four_and_confirmed_prefills():
    parameters = CaseParameters(priorLines="2+", metastaticSites="1-2", visceral="no", tnbc="yes")
    assert clinicalFacts(parameters) == ClinicalFacts(prior_lines_ge2=True, metastatic_sites_ge3=False,
                                                      visceral=False, tnbc=True)
    parameters.metastaticSitesPrefilled = True
    with pytest.raises(InputError, match="number of metastatic sites pre-filled .* press 'Confirm'"):
        clinicalFacts(parameters)
    parameters.metastaticSitesPrefilled, parameters.priorLines = False, ""
    with pytest.raises(InputError, match="prior lines of therapy not entered"):
        clinicalFacts(parameters)


def test_mrb_round_trip_keeps_panel_state_site_tags_ticks_and_the_result(real_ct, core_seg_file, bundles, tmp_path):
    from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime
    from ABCImmunoResponseLib.parameters import writeCaseParameters

    first = newStandaloneScene()
    scene = first.scene
    volume = load_volume(scene, real_ct["path"])
    segmentation = load_segmentation(scene, core_seg_file)
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    for node in (volume, segmentation):
        node.AddDefaultStorageNode()
    setSegmentSite(segmentation, "Segment_7", "lymph_node")
    for segmentId in ("Segment_7", "Segment_20"):
        setSegmentIncluded(segmentation, segmentId, False)
    parameters = CaseParameters(ctVolume=volume, segmentation=segmentation, model="clinical", priorLines="1",
                                metastaticSites="1-2", visceral="yes", tnbc="no", bundlePath=str(bundles["clinical"]))
    node = panel_node(scene)
    writeCaseParameters(node, parameters)
    applied = CaseLogic(scene, ChildRuntime.forThisProcess(tmp_path / "work")).predict(node, timeoutSeconds=120)
    prediction, table = applied.prediction, applied.tableNode
    table.AddDefaultStorageNode()
    scene.SetRootDirectory(str(tmp_path))
    assert scene.WriteToMRB(str(tmp_path / "case.mrb"))

    second = newStandaloneScene()
    second.load(tmp_path / "case.mrb")
    restored = readCaseParameters(findParameterNode(second.scene))
    assert restored.ctVolume.GetName() == "CT" and restored.ctVolume.GetImageData().GetDimensions() == (512, 512, 20)
    reloaded = restored.segmentation.GetSegmentation()
    assert segmentSite(reloaded.GetSegment("Segment_7")).site == "lymph_node"
    assert segmentSite(reloaded.GetSegment("Segment_8")).site == "adrenal"
    assert [isSegmentIncluded(reloaded.GetSegment(i)) for i in ("Segment_7", "Segment_8", "Segment_20")] == \
        [False, True, False]
    assert reloaded.GetSegment("Segment_7").HasTag(INCLUDE_TAG)
    assert predictionFromJson(restored.resultTable.GetAttribute(RESULT_ATTRIBUTE)) == prediction
    assert restored.resultTable.GetNumberOfRows() == 2  # the adrenal and the patient


def test_the_parameter_node_is_found_or_made_as_slicer_s_logic_does(standalone):
    from ABCImmunoResponseLib.parameters import getOrCreateParameterNode

    scene = standalone.scene
    node = getOrCreateParameterNode(scene)
    assert node.GetSingletonTag() == MODULE_NAME and node.GetAttribute("ModuleName") == MODULE_NAME
    assert getOrCreateParameterNode(scene) is node
    assert scene.GetNumberOfNodesByClass("vtkMRMLScriptedModuleNode") == 1


def test_a_new_parameter_node_is_complete_when_the_scene_announces_it(standalone):
    """Observers of NodeAddedEvent (node selectors filter on ModuleName) must see the tag and the attribute."""
    from ABCImmunoResponseLib.parameters import getOrCreateParameterNode

    scene = standalone.scene
    seen = []

    def added(caller, event, node=None):
        added_node = caller.GetNthNode(caller.GetNumberOfNodes() - 1)
        seen.append((added_node.GetSingletonTag(), added_node.GetAttribute("ModuleName")))

    tag = scene.AddObserver(scene.NodeAddedEvent, added)
    try:
        getOrCreateParameterNode(scene)
    finally:
        scene.RemoveObserver(tag)
    assert seen == [(MODULE_NAME, MODULE_NAME)]
