"""The outline sensitivity (issue 17) on the Slicer side, on a real scene with the real child process.

The prediction of the stand-in patient (``predicted``, two lesions of the real
CT, automatic choice) carries the sensitivity into the result table; the child's
numbers are the core's on the same voxels; one lesion's changed outlines become
a temporary node that the scene does not save, while the reader's segmentation
stays byte for byte; job folders written before the field existed still run;
Cancel during the sensitivity stops every process.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import (SLICER_CORE_MISSING, case_logic, case_parameter_node, case_parameters, scene_state,
                        still_running, two_lesion_scene, whole_grid_mask)

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402

from abcir.errors import InputError  # noqa: E402
from abcir.jobs import JOB_FILE, JobLesion, OutlinesJob, SensitivityRequest, read_job, write_job  # noqa: E402
from abcir.models.bundle import BundleError, bundled_bundle  # noqa: E402
from abcir.prediction.result import Prediction  # noqa: E402
from abcir.sensitivity.perturbations import DEFAULT_SET, MIN_VOXELS, PerturbationSet, perturb  # noqa: E402
from ABCImmunoResponseLib.case import collectCaseInputs, writePredictionJob  # noqa: E402
from ABCImmunoResponseLib.case_logic import RunCancelled  # noqa: E402
from ABCImmunoResponseLib.parameters import writeNodeReference  # noqa: E402
from ABCImmunoResponseLib.process import ProcessTask  # noqa: E402
from ABCImmunoResponseLib.results import addResultTable, annotationText, resultLines  # noqa: E402
from ABCImmunoResponseLib.segments import lesionFromInput, segmentIds, setSegmentIncluded  # noqa: E402
from ABCImmunoResponseLib.sensitivity import (OUTLINES_ATTRIBUTE, estimateSeconds, sensitivityWanted,  # noqa: E402
                                              storedSensitivity)

# The volumes (mL) of the cases the estimate was fitted to (ABCImmunoResponseLib/sensitivity.py), and what the
# default set took on them: the generated example patient 7.3-7.7 s, three organs of the real CT 10.26 s.
EXAMPLE_VOLUMES = (3.03, 4.02, 4.81)
REAL_CT_VOLUMES = (2.53, 2.39, 19.72)


def cell(table, row: int, column: str) -> float:
    return table.GetTable().GetValueByName(row, column).ToDouble()


def test_the_default_is_on_when_the_estimate_is_under_10_s():
    assert estimateSeconds(EXAMPLE_VOLUMES, DEFAULT_SET) == pytest.approx(7.5, abs=0.5)
    assert estimateSeconds(REAL_CT_VOLUMES, DEFAULT_SET) == pytest.approx(10.26, abs=0.5)
    assert sensitivityWanted("automatic", "combined", EXAMPLE_VOLUMES, DEFAULT_SET)
    assert not sensitivityWanted("automatic", "combined", REAL_CT_VOLUMES, DEFAULT_SET)
    # The reader's choice wins either way; the clinical model reads no outline; no lesions, nothing to change.
    assert sensitivityWanted("on", "radiomics", REAL_CT_VOLUMES, DEFAULT_SET)
    assert not sensitivityWanted("off", "combined", EXAMPLE_VOLUMES, DEFAULT_SET)
    assert not sensitivityWanted("on", "clinical", EXAMPLE_VOLUMES, DEFAULT_SET)
    assert not sensitivityWanted("automatic", "combined", (), DEFAULT_SET)


def test_the_logic_asks_the_child_for_the_sensitivity_by_the_scene_s_lesions(real_ct, core_seg_file, bundles,
                                                                            tmp_path):
    nodes = two_lesion_scene(real_ct, core_seg_file)
    logic = case_logic(nodes, tmp_path)
    two = collectCaseInputs(case_parameters(nodes, bundles["combined"]))
    request = logic.sensitivityRequest("automatic", two)
    assert request is not None and request.perturbations() == DEFAULT_SET and request.seed == 0
    setSegmentIncluded(nodes["segmentation"], "Segment_20", True)  # the colon (19.7 mL): about 10.7 s in all
    three = collectCaseInputs(case_parameters(nodes, bundles["combined"]))
    assert logic.sensitivityRequest("automatic", three) is None
    assert logic.sensitivityRequest("on", three) is not None
    assert logic.sensitivityPlan("automatic", "combined", REAL_CT_VOLUMES) == (
        False, pytest.approx(estimateSeconds(REAL_CT_VOLUMES, DEFAULT_SET)))


def test_the_sensitivity_reaches_the_scene_beside_the_probability(predicted):
    applied = predicted["applied"]
    prediction, sensitivity, table = applied.prediction, applied.sensitivity, applied.tableNode
    assert sensitivity is not None and sensitivity.n_perturbations == 2 * DEFAULT_SET.size
    assert sensitivity.probability == pytest.approx(prediction.probability, rel=1e-12)  # from the same rows
    assert storedSensitivity(table) == sensitivity
    patient = table.GetNumberOfRows() - 1
    assert cell(table, patient, "outline_changes") == sensitivity.n_perturbations
    low, high = cell(table, patient, "outline_probability_low"), cell(table, patient, "outline_probability_high")
    assert (low, high) == (sensitivity.probability_low, sensitivity.probability_high)
    assert low <= prediction.probability <= high
    assert cell(table, patient, "outline_same_risk_group") == sensitivity.n_same_risk_group
    for row, lesion in enumerate(sensitivity.lesions):
        assert table.GetCellText(row, table.GetColumnIndex("lesion")) == lesion.lesion_id
        assert cell(table, row, "outline_changes") == lesion.n_perturbations == DEFAULT_SET.size
        assert cell(table, row, "outline_probability_high") == lesion.probability_high
        # a lesion's probability range says whose weights made it, as the patient row does
        assert table.GetCellText(row, table.GetColumnIndex("weights")) == prediction.provenance
    lines = resultLines(prediction, sensitivity)
    assert f"probability {sensitivity.probability_low:.2f}-{sensitivity.probability_high:.2f}" in lines.sensitivity
    assert f"risk group {prediction.risk_group} in {sensitivity.n_same_risk_group} of 20" in lines.sensitivity
    assert "not a confidence interval" in lines.sensitivity
    assert lines.provenance == prediction.provenance  # the provenance note stays beside it
    assert "under outline changes" in annotationText(prediction, sensitivity)


def test_the_child_s_sensitivity_is_the_core_s_on_the_job_s_files(predicted, tmp_path):
    """Independent of the process and the result's path back: the core's analysis in this process, on the files a
    job folder holds (the CT as NRRD carries its direction to the last bit only: 0.9999999999999999 for 1.0, which
    moves a few changed outlines' features; so the reference reads the same files the child reads)."""
    from abcir.imaging.ct import read_image
    from abcir.patient.lesions import Lesion, align_to_ct
    from abcir.patient.measurements import measure_lesion
    from abcir.sensitivity.analysis import analyse_sensitivity

    inputs = predicted["inputs"]
    job = writePredictionJob(tmp_path, inputs, 1, None)
    ct = read_image(tmp_path / job.ct)
    lesions = []
    for item in job.lesions:
        mask = align_to_ct(item.name, sitk.ReadImage(str(tmp_path / item.mask)), ct)
        lesions.append(Lesion(item.name, item.site, mask, measure_lesion(mask)))
    expected = analyse_sensitivity(ct, lesions, inputs.clinical, model="combined", bundle=inputs.bundle)
    actual = predicted["applied"].sensitivity
    assert [(item.lesion_id, item.perturbation) for item in actual.perturbations] == \
        [(item.lesion_id, item.perturbation) for item in expected.perturbations]
    assert [item.probability for item in actual.perturbations] == pytest.approx(
        [item.probability for item in expected.perturbations], rel=1e-9)
    assert actual.n_same_risk_group == expected.n_same_risk_group


def test_a_risk_group_that_flips_too_often_is_a_warning_naming_the_lesion(predicted):
    from abcir.sensitivity.analysis import FLIP_LIMIT, summarise
    from abcir.sensitivity.result import PerturbedPrediction

    base = predicted["applied"].prediction
    other = "low" if base.risk_group == "high" else "high"

    def changes(lesion: str, flips: int) -> list[PerturbedPrediction]:
        return [PerturbedPrediction(lesion, f"random_{index}", 1000.0, 0.5, 0.0,
                                    other if index <= flips else base.risk_group) for index in range(1, 11)]

    flipping = summarise(base, changes("pancreas_1", 0) + changes("adrenal_1", 3), ["pancreas_1", "adrenal_1"],
                         DEFAULT_SET, 0)
    assert flipping.flip_share == 3 / 20 > FLIP_LIMIT and flipping.deciding_lesion == "adrenal_1"
    table = addResultTable(predicted["scene"], base, "CT", flipping)
    try:
        warnings = table.GetCellText(table.GetNumberOfRows() - 1, table.GetColumnIndex("warnings"))
        assert flipping.warning in warnings and "lesion 'adrenal_1'" in flipping.warning
        assert resultLines(base, flipping).warnings[0] == flipping.warning
        assert "risk group depends on the outline" in annotationText(base, flipping)
        steady = summarise(base, changes("pancreas_1", 0) + changes("adrenal_1", 2), ["pancreas_1", "adrenal_1"],
                           DEFAULT_SET, 0)  # 2 of 20 = 10 %: not more than the limit
        assert steady.warning is None and resultLines(base, steady).warnings == tuple(base.warnings)
    finally:
        predicted["scene"].RemoveNode(table)


def segmentation_bytes(segmentation, path) -> bytes:
    """The segmentation as Slicer writes it (a storage node outside the scene: writing changes nothing there)."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)
    assert storage.WriteData(segmentation)
    return path.read_bytes()


def outline_nodes(scene) -> list:
    return [node for node in (scene.GetNthNodeByClass(index, "vtkMRMLSegmentationNode")
                              for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")))
            if node.GetAttribute(OUTLINES_ATTRIBUTE) is not None]


def test_changed_outlines_are_a_temporary_node_and_the_segmentation_is_untouched(predicted, tmp_path):
    scene, segmentation, volume = predicted["scene"], predicted["segmentation"], predicted["volume"]
    logic, parameter_node = predicted["logic"], predicted["parameterNode"]
    # Other tests predict again on this parameter node: show the outlines of the fixture's own result.
    earlier = parameter_node.GetNodeReference("resultTable")
    writeNodeReference(parameter_node, "resultTable", predicted["applied"].tableNode)
    before = segmentation_bytes(segmentation, tmp_path / "before.seg.nrrd")
    mrml_before, ids_before = scene_state(scene)
    try:
        node = logic.showOutlines(parameter_node, "adrenal_1", timeoutSeconds=300)
        # The outlines the analysis used: the core's perturbations of the second lesion (index 1), same seed.
        inputs = predicted["inputs"]
        adrenal = lesionFromInput(inputs.lesions[1], inputs.ct)
        expected = {item.name: sitk.GetArrayFromImage(item.mask)
                    for item in perturb("adrenal_1", adrenal.mask, inputs.ct, DEFAULT_SET, 0, 1)
                    if item.voxel_count >= MIN_VOXELS}
        shown = {node.GetSegmentation().GetSegment(segmentId).GetName(): segmentId for segmentId in segmentIds(node)}
        assert list(shown) == list(expected) and len(shown) == DEFAULT_SET.size
        for name, voxels in expected.items():
            assert np.array_equal(sitk.GetArrayFromImage(whole_grid_mask(node, shown[name], volume)), voxels), name
        assert not node.GetSaveWithScene() and not node.GetDisplayNode().GetSaveWithScene()
        assert node.GetStorageNode() is None and node.GetHideFromEditors()
        mrml_after, ids_after = scene_state(scene)
        assert mrml_after == mrml_before  # what a save writes: the same text, without the new nodes
        assert node.GetID() not in mrml_after and node.GetDisplayNode().GetID() not in mrml_after
        assert set(ids_after) - set(ids_before) == {node.GetID(), node.GetDisplayNode().GetID()}
        assert segmentation_bytes(segmentation, tmp_path / "after.seg.nrrd") == before

        second = logic.showOutlines(parameter_node, "pancreas_1", timeoutSeconds=300)
        assert outline_nodes(scene) == [second] and node.GetScene() is None  # the earlier outlines were replaced
        with pytest.raises(InputError, match="'colon_1': not among the lesions of the last prediction"):
            logic.startOutlines(parameter_node, "colon_1")
    finally:
        logic.removeOutlines()
    assert outline_nodes(scene) == [] and scene_state(scene) == (mrml_before, ids_before)
    assert segmentation_bytes(segmentation, tmp_path / "end.seg.nrrd") == before
    writeNodeReference(parameter_node, "resultTable", earlier)


def test_the_sensitivity_request_and_the_outlines_job_round_trip(tmp_path):
    small = PerturbationSet("small", randomisations=2, shifts=True)
    request = SensitivityRequest.of(small, 7)
    assert request.perturbations() == small and request.flip_limit is None
    job = OutlinesJob("ct.nrrd", JobLesion("lésion du foie", "liver", "lesion000.nrrd"), 2, request)
    (tmp_path / "outlines").mkdir()
    write_job(tmp_path / "outlines", job)
    assert read_job(tmp_path / "outlines") == job
    broken = OutlinesJob("ct.nrrd", job.lesion, 0, SensitivityRequest("broken", 1.0, -1, False, 0))
    (tmp_path / "broken").mkdir()
    write_job(tmp_path / "broken", broken)
    with pytest.raises(InputError, match="field 'sensitivity'.*randomisations"):
        read_job(tmp_path / "broken")


def test_a_prediction_job_for_the_clinical_model_with_a_sensitivity_is_refused(predicted, tmp_path):
    folder = tmp_path / "clinical"
    folder.mkdir()
    job = writePredictionJob(folder, predicted["inputs"], 1, None, SensitivityRequest.of(DEFAULT_SET, 0))
    data = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    (folder / JOB_FILE).write_text(json.dumps({**data, "model": "clinical"}), encoding="utf-8")
    assert job.sensitivity is not None
    with pytest.raises(InputError, match="'sensitivity' is set for the clinical model"):
        read_job(folder)


def run_task(task: ProcessTask, timeout: float = 300):
    task.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, outcome = task.poll()
        if outcome is not None:
            return outcome
        time.sleep(0.1)
    task.cancel()
    raise AssertionError(f"job '{task.folder}' did not finish in {timeout} s")


def test_a_job_folder_written_before_the_sensitivity_existed_still_runs(predicted, tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    writePredictionJob(folder, predicted["inputs"], 1, None)
    data = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    assert data.pop("sensitivity") is None
    (folder / JOB_FILE).write_text(json.dumps(data), encoding="utf-8")  # as the previous version wrote it
    assert read_job(folder).sensitivity is None
    task = ProcessTask(folder, sys.executable, predicted["logic"].runtime.pythonPath)
    try:
        outcome = run_task(task)
        assert outcome.status == "succeeded", outcome.message + outcome.details
        assert set(outcome.result) == {"prediction", "features_files"}
        prediction = Prediction.from_dict(outcome.result["prediction"])
        assert prediction.probability == pytest.approx(predicted["applied"].prediction.probability, rel=1e-12)
    finally:
        task.cleanup()


def test_cancel_during_the_sensitivity_kills_every_process_and_changes_nothing(real_ct, core_seg_file, tmp_path):
    psutil = pytest.importorskip("psutil")
    try:
        weights = bundled_bundle("combined").path
    except BundleError as error:
        pytest.skip(f"no bundled combined weights in this checkout: {error}")
    nodes = two_lesion_scene(real_ct, core_seg_file)
    parameter_node = case_parameter_node(nodes, weights, outlineSensitivity="on")
    before = scene_state(nodes["scene"])
    seg_before = segmentation_bytes(nodes["segmentation"], tmp_path.parent / f"{tmp_path.name}-before.seg.nrrd")
    run = case_logic(nodes, tmp_path, jobs=2).startPrediction(parameter_node)
    processes, deadline = [], time.monotonic() + 120
    while time.monotonic() < deadline:
        update = run.poll()
        assert update.outcome is None, update.outcome
        if any(text.startswith("Outline sensitivity") for text in update.statuses):
            parent = psutil.Process(run.task.pid)
            processes = [parent, *parent.children(recursive=True)]
            break
        time.sleep(0.05)
    assert len(processes) >= 2, "the sensitivity did not start, or without its extraction worker"
    run.cancel()
    running = still_running(processes, timeout=1.0)
    assert not running, f"still running after cancel: {running}"
    with pytest.raises(RunCancelled):
        run.wait(timeoutSeconds=5)
    assert list(tmp_path.iterdir()) == []  # no job folder, no result kept
    assert scene_state(nodes["scene"]) == before
    assert segmentation_bytes(nodes["segmentation"], tmp_path.parent / f"{tmp_path.name}-after.seg.nrrd") \
        == seg_before
