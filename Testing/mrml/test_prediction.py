"""The whole path through the bridge on the real CT: scene -> inputs -> worker thread -> result table.

Two organs stand in for target lesions (pancreas as site 'other', right adrenal);
the weights are small bundles trained on synthetic data for the tests.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, case_parameters, two_lesion_scene

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.errors import BundleError, InputError  # noqa: E402
from abcir.imaging import read_ct  # noqa: E402
from abcir.lesions import load_lesions  # noqa: E402
from ABCImmunoResponseLib.background import BackgroundTask, Progress, TaskCancelled  # noqa: E402
from ABCImmunoResponseLib.case import collectCaseInputs, runCase  # noqa: E402
from ABCImmunoResponseLib.results import RESULT_ATTRIBUTE, addResultTable, predictionFromJson  # noqa: E402


def test_prediction_runs_on_a_worker_thread_with_progress_per_lesion(predicted):
    assert predicted["task"].progress() == [Progress(1, 2, "pancreas_1"), Progress(2, 2, "adrenal_1")]
    prediction = predicted["result"].prediction
    assert prediction.model == "combined"
    assert [lesion.lesion_id for lesion in prediction.lesions] == ["pancreas_1", "adrenal_1"]
    assert 0 < prediction.probability < 1
    assert prediction.risk_group in ("high", "low")
    assert "NOT clinically validated" in prediction.provenance
    assert any("synthetic data" in warning for warning in prediction.warnings)
    assert len(predicted["result"].features) == 2


def test_the_bridge_hands_the_core_the_same_voxels_the_command_line_reads(predicted, real_ct, core_seg_file):
    # Files -> core (what `abcir predict --ct ct.nrrd --lesions lesions.seg.nrrd` loads) ...
    ct = read_ct(real_ct["path"])
    from_files = {lesion.lesion_id: lesion for lesion in load_lesions([core_seg_file], ct)}
    # ... and scene -> bridge -> core must be the same CT and masks, voxel for voxel. (Geometry is compared
    # to 1e-9 mm: Slicer's reader derives spacing from the direction vectors, 0.9765625000000001 here.)
    inputs = predicted["inputs"]
    assert_same_grid_and_voxels(inputs.ct, ct)
    for row in predicted["result"].features:
        assert_same_grid_and_voxels(row.lesion.mask, from_files[row.lesion.lesion_id].mask)
        assert row.lesion.size.voxel_count == from_files[row.lesion.lesion_id].size.voxel_count


def assert_same_grid_and_voxels(actual, expected) -> None:
    assert actual.GetSize() == expected.GetSize()
    for getter in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(actual, getter)() == pytest.approx(getattr(expected, getter)(), abs=1e-9)
    assert actual.GetPixelID() == expected.GetPixelID()
    assert np.array_equal(sitk.GetArrayViewFromImage(actual), sitk.GetArrayViewFromImage(expected))


def test_result_table_has_a_row_per_lesion_and_the_patient_with_units(predicted, tmp_path):
    prediction = predicted["result"].prediction
    table = addResultTable(predicted["scene"], prediction, "CT")
    assert table.GetName() == "CT response prediction"
    assert table.GetNumberOfRows() == 3
    assert table.GetCellText(2, table.GetColumnIndex("row")) == "patient"
    assert table.GetTable().GetValueByName(2, "probability").ToDouble() == prediction.probability
    assert table.GetColumnUnitLabel("longest_axial_diameter_mm") == "mm"
    assert table.GetColumnUnitLabel("volume_ml") == "mL"
    assert "NOT clinically validated" in table.GetCellText(2, table.GetColumnIndex("weights"))
    assert predictionFromJson(table.GetAttribute(RESULT_ATTRIBUTE)) == prediction
    second = addResultTable(predicted["scene"], prediction, "CT")
    assert second.GetID() != table.GetID() and second.GetName() != table.GetName()  # never overwritten

    import slicer

    storage = slicer.vtkMRMLTableStorageNode()
    storage.SetFileName(str(tmp_path / "result.csv"))
    assert storage.WriteData(table)
    with open(tmp_path / "result.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lesion"] for row in rows] == ["pancreas_1", "adrenal_1", ""]
    # Slicer's table writer keeps 6 significant digits.
    assert float(rows[1]["longest_axial_diameter_mm"]) == pytest.approx(
        prediction.lesions[1].longest_axial_diameter_mm, rel=1e-5)
    assert float(rows[2]["probability"]) == pytest.approx(prediction.probability, rel=1e-5)


def test_cancel_leaves_the_scene_as_it_was(real_ct, core_seg_file, bundles):
    nodes = two_lesion_scene(real_ct, core_seg_file)
    scene = nodes["scene"]
    before = [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())]
    segmentation_mtime = nodes["segmentation"].GetMTime()
    inputs = collectCaseInputs(case_parameters(nodes, bundles["combined"]))
    task = BackgroundTask(lambda progress: runCase(inputs, progress))
    task.start()
    task.cancel()
    for _ in range(600):
        if task.wait(0.1):
            break
    with pytest.raises(TaskCancelled):
        task.result()
    assert [scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())] == before
    assert nodes["segmentation"].GetMTime() == segmentation_mtime


@pytest.mark.parametrize("change, message", [
    ({"tnbc": ""}, "triple-negative subtype not entered"),
    ({"visceralPrefilled": True}, "visceral metastasis pre-filled from the target lesions only"),
    ({"ctVolume": None}, "CT volume: none selected"),
])
def test_input_mistakes_are_refused_before_any_work(predicted, bundles, change, message):
    with pytest.raises(InputError, match=message):
        collectCaseInputs(case_parameters(predicted, bundles["combined"], **change))


def test_weights_of_another_model_are_refused(predicted, bundles):
    with pytest.raises(BundleError, match="a combined model, but the clinical model was asked for"):
        collectCaseInputs(case_parameters(predicted, bundles["combined"], model="clinical"))


def test_the_clinical_model_lists_the_lesions_without_extracting(predicted, bundles):
    inputs = collectCaseInputs(case_parameters(predicted, bundles["clinical"], model="clinical"))
    progress = []
    result = runCase(inputs, lambda *report: progress.append(report))
    assert result.features == () and progress == []
    assert result.prediction.model == "clinical"
    assert [lesion.lesion_id for lesion in result.prediction.lesions] == ["pancreas_1", "adrenal_1"]
    assert json.loads(json.dumps(result.prediction.to_dict()))["clinical"]["tnbc"] is False


def test_display_lines_say_probability_risk_cutoff_and_that_the_weights_are_not_validated(predicted, bundles):
    from abcir.bundle import load_bundle
    from ABCImmunoResponseLib.results import annotationText, bundleDescription, resultLines

    prediction = predicted["result"].prediction
    lines = resultLines(prediction)
    assert lines.probability.startswith(f"Response probability {prediction.probability:.2f} (combined model")
    assert f"cut-off {prediction.cutoff:+.2f}" in lines.riskGroup
    assert lines.riskGroup.startswith("Risk group: HIGH" if prediction.risk_group == "high" else "Risk group: low")
    assert lines.provenance == prediction.provenance
    corner = annotationText(prediction).splitlines()
    assert len(corner) == 2 and corner[1] == "Weights 'tiny-combined': NOT clinically validated"
    description = bundleDescription(load_bundle(bundles["combined"]))
    assert description.startswith("'tiny-combined' (combined model), trained on synthetic data 'tiny test set'")
    assert description.endswith("NOT clinically validated: research use only, not for treatment decisions.")
