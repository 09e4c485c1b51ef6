"""The generated example patient (what Sample Data offers) through the Logic with the bundled weights.

The same steps as the module's ScriptedLoadableModuleTest, minus the widgets, so they are
checked on every machine and not only where a Slicer executable is available.
"""

from __future__ import annotations

from dataclasses import astuple

import pytest
from mrml_scene import SLICER_CORE_MISSING, load_segmentation, load_volume

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.models.bundle import BundleError, bundled_bundle  # noqa: E402
from abcir.cohort import make_example_patient  # noqa: E402
from abcir.jobs import SENSITIVITY_STEP  # noqa: E402
from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime  # noqa: E402
from ABCImmunoResponseLib.lesion_table import clinicalPrefill, lesionRows  # noqa: E402
from ABCImmunoResponseLib.parameters import CaseParameters, getOrCreateParameterNode, writeCaseParameters  # noqa: E402


def test_example_patient_from_sample_data_to_result_table(standalone, tmp_path):
    try:
        bundled_bundle("combined")
    except BundleError as error:
        pytest.skip(f"no bundled combined weights in this checkout: {error}")
    example = make_example_patient(tmp_path / "example", seed=0)
    volume = load_volume(standalone.scene, example.ct, "SYN-EXAMPLE")
    segmentation = load_segmentation(standalone.scene, example.lesions)

    rows = lesionRows(segmentation, volume)
    assert [(row.name, row.site) for row in rows] == [("liver_1", "liver"), ("lung_1", "lung"),
                                                      ("lymph_node_1", "lymph_node")]
    assert not any(row.blocking for row in rows)
    assert rows[2].isLymphNode and rows[2].short_axis_mm >= 15.0  # a measurable node
    prefill = clinicalPrefill(rows)
    assert astuple(prefill) == ("yes", "3+")
    facts = dict(token.split("=", 1) for token in example.clinical.to_tokens())
    assert (facts["visceral"], facts["sites"]) == (prefill.visceral, prefill.metastaticSites)

    parameters = CaseParameters(ctVolume=volume, segmentation=segmentation, priorLines=facts["lines"],
                                metastaticSites=prefill.metastaticSites, visceral=prefill.visceral, tnbc=facts["tnbc"])
    parameterNode = getOrCreateParameterNode(standalone.scene)
    writeCaseParameters(parameterNode, parameters)
    logic = CaseLogic(standalone.scene, ChildRuntime.forThisProcess(tmp_path / "work", jobs=2))
    updates = []
    applied = logic.startPrediction(parameterNode).wait(timeoutSeconds=300, onUpdate=updates.append)
    progress = [step for update in updates for step in update.progress]
    # Counted as lesions finish; with two processes the order of finishing varies. Three lesions of 3-5 mL are
    # estimated at about 7.5 s of outline changes, under 10 s, so the automatic choice adds the sensitivity.
    assert [(step.done, step.total) for step in progress] == [(1, 3), (2, 3), (3, 3),
                                                              *((done, 30) for done in range(1, 31))]
    assert sorted(step.what for step in progress[:3]) == ["liver_1", "lung_1", "lymph_node_1"]
    assert {step.what for step in progress[3:]} == {SENSITIVITY_STEP}
    assert applied.sensitivity is not None and applied.sensitivity.n_perturbations == 30
    prediction = applied.prediction
    assert prediction.weights.path == str(bundled_bundle("combined").path)
    assert not prediction.weights.clinically_validated and "NOT clinically validated" in prediction.provenance
    assert applied.tableNode.GetNumberOfRows() == 4
    assert parameterNode.GetNodeReference("resultTable") is applied.tableNode
