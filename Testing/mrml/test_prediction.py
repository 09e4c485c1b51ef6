"""The whole path through the Logic on the real CT: scene -> job folder -> child process -> result table.

Two organs stand in for target lesions (pancreas as site 'other', right adrenal);
the weights are small bundles trained on synthetic data for the tests. The
child is the real ``python -m abcir.jobs``, polled as the panel polls it.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, case_logic, case_parameter_node, case_parameters

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.errors import BundleError, InputError  # noqa: E402
from abcir.jobs import SENSITIVITY_STEP  # noqa: E402
from abcir.imaging.ct import read_ct  # noqa: E402
from abcir.patient.lesions import align_to_ct, load_lesions  # noqa: E402
from ABCImmunoResponseLib.case import collectCaseInputs  # noqa: E402
from ABCImmunoResponseLib.process import Progress  # noqa: E402
from ABCImmunoResponseLib.results import (FEATURES_ATTRIBUTE, RESULT_ATTRIBUTE, addResultTable,  # noqa: E402
                                          predictionFromJson)


def test_prediction_runs_in_a_child_process_with_progress_per_lesion(predicted):
    # Then the outline sensitivity (automatic: two lesions of 2.4-2.5 mL are estimated at about 4 s), a step per
    # outline change as it ends.
    assert predicted["progress"] == [Progress(1, 2, "pancreas_1"), Progress(2, 2, "adrenal_1"),
                                     *(Progress(done, 20, SENSITIVITY_STEP) for done in range(1, 21))]
    prediction = predicted["applied"].prediction
    assert prediction.model == "combined"
    assert [lesion.lesion_id for lesion in prediction.lesions] == ["pancreas_1", "adrenal_1"]
    assert 0 < prediction.probability < 1
    assert prediction.risk_group in ("high", "low")
    assert "NOT clinically validated" in prediction.provenance
    assert any("synthetic data" in warning for warning in prediction.warnings)
    table = predicted["applied"].tableNode
    assert predicted["parameterNode"].GetNodeReference("resultTable") is table
    assert predictionFromJson(table.GetAttribute(RESULT_ATTRIBUTE)) == prediction
    with open(table.GetAttribute(FEATURES_ATTRIBUTE), newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lesion_id"] for row in rows] == ["pancreas_1", "adrenal_1"]
    assert len(rows[0]) == 9 + 1130  # lesion facts (feature_table.LESION_COLUMNS), then the features


def test_the_child_gets_the_same_voxels_the_command_line_reads(predicted, real_ct, core_seg_file):
    # Files -> core (what `abcir predict --ct ct.nrrd --lesions lesions.seg.nrrd` loads) ...
    ct = read_ct(real_ct["path"])
    from_files = {lesion.lesion_id: lesion for lesion in load_lesions([core_seg_file], ct)}
    # ... and scene -> bridge -> job files must be the same CT and masks, voxel for voxel. (Geometry is compared
    # to 1e-9 mm: Slicer's reader derives spacing from the direction vectors, 0.9765625000000001 here.)
    # The masks leave the scene cropped to the lesion, on the CT's grid; placed on the whole grid, as the child
    # places them, they are the command line's.
    inputs = predicted["inputs"]
    assert_same_grid_and_voxels(inputs.ct, ct)
    for lesion in inputs.lesions:
        assert np.prod(lesion.mask.GetSize()) < np.prod(ct.GetSize()) / 10
        assert_same_grid_and_voxels(align_to_ct(lesion.name, lesion.mask, ct), from_files[lesion.name].mask)
    # and the child measured them as the command line does
    for lesion in predicted["applied"].prediction.lesions:
        expected = from_files[lesion.lesion_id].size
        # (to 1e-12: the voxel volume is Slicer's spacing, cubed)
        assert (lesion.volume_mm3, lesion.longest_axial_diameter_mm) == pytest.approx(
            (expected.volume_mm3, expected.longest_axial_diameter_mm), rel=1e-12)


def assert_same_grid_and_voxels(actual, expected) -> None:
    assert actual.GetSize() == expected.GetSize()
    for getter in ("GetSpacing", "GetOrigin", "GetDirection"):
        assert getattr(actual, getter)() == pytest.approx(getattr(expected, getter)(), abs=1e-9)
    assert actual.GetPixelID() == expected.GetPixelID()
    assert np.array_equal(sitk.GetArrayViewFromImage(actual), sitk.GetArrayViewFromImage(expected))


def test_result_table_has_a_row_per_lesion_and_the_patient_with_units(predicted, tmp_path):
    prediction = predicted["applied"].prediction
    table = addResultTable(predicted["scene"], prediction, "CT")
    assert predicted["applied"].tableNode.GetName() == "CT response prediction"
    # A second result never takes the first's name (the suffix counts earlier results in this shared scene).
    assert table.GetName().startswith("CT response prediction_") and table is not predicted["applied"].tableNode
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


@pytest.mark.parametrize("change, message", [
    ({"tnbc": ""}, "triple-negative subtype not entered"),
    ({"visceralPrefilled": True}, "visceral metastasis pre-filled from the target lesions only"),
    ({"ctVolume": None}, "CT volume: none selected"),
])
def test_input_mistakes_are_refused_before_any_process_starts(predicted, bundles, change, message, tmp_path):
    node = case_parameter_node(predicted, bundles["combined"], **change)
    with pytest.raises(InputError, match=message):
        case_logic(predicted, tmp_path).startPrediction(node)
    assert list(tmp_path.iterdir()) == []


def test_weights_of_another_model_are_refused(predicted, bundles):
    with pytest.raises(BundleError, match="a combined model, but the clinical model was asked for"):
        collectCaseInputs(case_parameters(predicted, bundles["combined"], model="clinical"))


def test_the_clinical_model_lists_the_lesions_without_extracting(predicted, bundles, tmp_path):
    node = case_parameter_node(predicted, bundles["clinical"], model="clinical")
    updates = []
    applied = case_logic(predicted, tmp_path).startPrediction(node).wait(timeoutSeconds=120,
                                                                        onUpdate=updates.append)
    assert applied.featuresFile is None and not any(update.progress for update in updates)
    assert applied.tableNode.GetAttribute(FEATURES_ATTRIBUTE) is None
    assert applied.prediction.model == "clinical"
    assert [lesion.lesion_id for lesion in applied.prediction.lesions] == ["pancreas_1", "adrenal_1"]
    assert json.loads(json.dumps(applied.prediction.to_dict()))["clinical"]["tnbc"] is False


def test_display_lines_say_probability_risk_cutoff_and_that_the_weights_are_not_validated(predicted, bundles):
    from abcir.models.bundle import load_bundle
    from ABCImmunoResponseLib.results import annotationText, bundleDescription, resultLines

    prediction = predicted["applied"].prediction
    lines = resultLines(prediction)
    assert lines.probability.startswith(f"Response probability {prediction.probability:.2f} (combined model")
    assert f"cut-off {prediction.cutoff:+.2f}" in lines.riskGroup
    assert lines.riskGroup.startswith("Risk group: HIGH" if prediction.risk_group == "high" else "Risk group: low")
    assert lines.provenance == prediction.provenance
    corner = annotationText(prediction).splitlines()
    assert len(corner) == 2 and corner[1] == (f"Weights 'tiny-combined', trained on {prediction.weights.trained_on}: "
                                              "NOT clinically validated")
    assert prediction.weights.trained_on.startswith("synthetic data 'tiny test set'")
    description = bundleDescription(load_bundle(bundles["combined"]))
    assert description.startswith("'tiny-combined' (combined model), trained on synthetic data 'tiny test set'")
    assert description.endswith("NOT clinically validated: research use only, not for treatment decisions.")


def test_exporting_the_table_never_overwrites_the_csv_or_its_schema(predicted, tmp_path):
    import slicer
    from ABCImmunoResponseLib.results import tableFiles, writeTableCsv

    table = predicted["applied"].tableNode
    csv_file, schema_file = writeTableCsv(table, tmp_path / "result.csv")
    assert csv_file.is_file() and schema_file.is_file()
    storage = slicer.vtkMRMLTableStorageNode()  # Slicer's own idea of where the schema goes
    storage.SetFileName(str(tmp_path / "check.csv"))
    assert storage.WriteData(table)
    assert storage.GetSchemaFileName() == str(tableFiles(tmp_path / "check.csv")[1])
    schema_only = tmp_path / "other.schema.csv"
    schema_only.write_text("someone else's schema")
    with pytest.raises(InputError, match="other.schema.csv' already exists"):
        writeTableCsv(table, tmp_path / "other.csv")
    assert schema_only.read_text() == "someone else's schema" and not (tmp_path / "other.csv").exists()
