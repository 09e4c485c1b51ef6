"""The panel's process path with the bundled weights (no torch needed: this runs on Slicer's Python 3.12 too).

The real child (``python -m abcir.jobs``) on the real CT, polled as the panel's
timer polls it: each poll returns at once, Cancel stops every process and
leaves the scene byte for byte as it was, a refused input comes back as one
line, and the feature cache spares unchanged lesions.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import (SLICER_CORE_MISSING, case_logic, case_parameter_node, case_parameters, load_volume,
                        scene_state, still_running, two_lesion_scene)

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.models.bundle import BundleError, bundled_bundle  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from ABCImmunoResponseLib.case import collectCaseInputs  # noqa: E402
from ABCImmunoResponseLib.case_logic import RunCancelled  # noqa: E402

@pytest.fixture(scope="module")
def bundled():
    """The shipped combined weights (numpy inference, no torch)."""
    try:
        return {"combined": bundled_bundle("combined").path}
    except BundleError as error:
        pytest.skip(f"no bundled combined weights in this checkout: {error}")


POLL_SCRIPT = """
import json, sys, time
sys.path[:0] = sys.argv[1:3]
from mrml_scene import start_two_lesion_prediction

nodes, run = start_two_lesion_prediction(*sys.argv[3:7])
polls, imported, update = 0, set(), None
while update is None or update.outcome is None:
    time.sleep(0.02)
    before = set(sys.modules)
    update = run.poll()
    polls += 1
    imported |= set(sys.modules) - before
print(json.dumps({"status": update.outcome.status, "message": update.outcome.message, "polls": polls,
                  "imported": sorted(imported),
                  "inScene": update.value is not None and update.value.tableNode.GetScene() is nodes["scene"]}))
"""


def test_the_panel_s_poll_never_blocks_while_the_prediction_runs(real_ct, core_seg_file, bundled, tmp_path):
    """The timer's call (read the child's new lines; at the end, put the result in the scene) returns at once.

    In a fresh interpreter, as in Slicer at the first Predict: no call imports a module, so a result that needs
    a heavy import to be applied (pandas took 0.55 s) fails here. How long the calls take against their 20 ms
    budget is measured by ``Testing/benchmarks/bench_panel_poll.py``.
    """
    import json
    import subprocess
    import sys
    from pathlib import Path

    testing = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", POLL_SCRIPT, str(testing.parent / "ABCImmunoResponse"),
                           str(testing / "mrml"), str(real_ct["path"]), str(core_seg_file), str(bundled["combined"]),
                           str(tmp_path / "work")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["status"] == "succeeded", measured["message"]
    assert measured["inScene"]
    assert measured["polls"] >= 10  # each call returned while the child ran: the run spanned many ticks
    assert measured["imported"] == []  # not even the call that applies the result imports anything


def test_cancel_mid_extraction_leaves_the_scene_byte_for_byte_and_no_process(real_ct, core_seg_file, bundled,
                                                                             tmp_path):
    psutil = pytest.importorskip("psutil")
    nodes = two_lesion_scene(real_ct, core_seg_file)
    parameter_node = case_parameter_node(nodes, bundled["combined"])
    before = scene_state(nodes["scene"])
    voxels = sitk.GetArrayFromImage(collectCaseInputs(case_parameters(nodes, bundled["combined"])).lesions[0].mask)
    logic = case_logic(nodes, tmp_path, jobs=2)
    run = logic.startPrediction(parameter_node)
    processes = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # until the child says extraction has started
        update = run.poll()
        assert update.outcome is None, update.outcome
        parent = psutil.Process(run.task.pid)
        processes = [parent, *parent.children(recursive=True)]
        if any("Extracting" in text for text in update.statuses) or update.progress:
            break
        time.sleep(0.05)
    run.cancel()
    running = still_running(processes, timeout=1.0)
    assert not running, f"still running after cancel: {running}"
    with pytest.raises(RunCancelled):
        run.wait(timeoutSeconds=5)
    assert not run.task.folder.exists()
    assert scene_state(nodes["scene"]) == before
    after = collectCaseInputs(case_parameters(nodes, bundled["combined"])).lesions[0].mask
    assert np.array_equal(sitk.GetArrayFromImage(after), voxels)
    assert list(tmp_path.iterdir()) == []  # no job folder, no result kept


def test_a_child_refusing_its_input_reports_one_line_and_changes_nothing(real_ct, core_seg_file, bundled, tmp_path):
    # A volume of 0..255 (a screenshot or a rescaled export, not HU) passes the scene checks; the child's CT
    # check refuses it.
    nodes = two_lesion_scene(real_ct, core_seg_file)
    rescaled = sitk.Cast(sitk.RescaleIntensity(sitk.ReadImage(str(real_ct["path"])), 0, 255), sitk.sitkUInt8)
    sitk.WriteImage(rescaled, str(tmp_path / "rescaled.nrrd"))
    nodes["volume"] = load_volume(nodes["scene"], tmp_path / "rescaled.nrrd", "rescaled")
    parameter_node = case_parameter_node(nodes, bundled["combined"])
    before = scene_state(nodes["scene"])
    work = tmp_path / "work"
    run = case_logic(nodes, work).startPrediction(parameter_node)
    with pytest.raises(InputError) as refused:
        run.wait(timeoutSeconds=120)
    message = str(refused.value)
    assert "does not look like CT in Hounsfield units" in message and "\n" not in message
    assert run.task.returncode == 2
    assert scene_state(nodes["scene"]) == before
    assert list(work.iterdir()) == []


def test_predicting_again_after_editing_one_lesion_recomputes_only_that_lesion(real_ct, core_seg_file, bundled,
                                                                              tmp_path):
    """The child keeps the feature cache in the folder the Logic gives it (Slicer's cache folder in Slicer)."""
    from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime
    from ABCImmunoResponseLib.volumes import orientedLabelmap
    from mrml_scene import whole_grid_mask

    import slicer

    nodes = two_lesion_scene(real_ct, core_seg_file)
    cache = tmp_path / "cache"
    logic = CaseLogic(nodes["scene"], ChildRuntime.forThisProcess(tmp_path / "work", cacheFolder=cache, jobs=1))
    node = case_parameter_node(nodes, bundled["combined"])
    first = logic.predict(node, timeoutSeconds=300)
    entries = set(cache.rglob("*.*"))
    assert len([path for path in entries if path.is_file()]) >= 2
    segmentation, volume = nodes["segmentation"], nodes["volume"]
    edited = sitk.BinaryDilate(whole_grid_mask(segmentation, "Segment_8", volume), (1, 1, 0))
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        orientedLabelmap(sitk.GetArrayViewFromImage(edited), volume), segmentation, "Segment_8", slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    second = logic.predict(node, timeoutSeconds=300)
    added = {path for path in cache.rglob("*.*") if path.is_file()} - entries
    assert len(added) == 1  # the adrenal's new outline; the pancreas came from the cache
    assert second.prediction.lesions[0] == first.prediction.lesions[0]
    assert second.prediction.lesions[1] != first.prediction.lesions[1]


def test_the_child_imports_the_abcir_this_process_imported(tmp_path, monkeypatch):
    """A script run from another checkout puts that checkout first on the path, after the module imported abcir:
    the child must still get the imported one first, or the job is written by one abcir and read by another."""
    import abcir
    from ABCImmunoResponseLib.case_logic import addedImportPaths

    checkout = tmp_path / "checkout"
    (checkout / "abcir").mkdir(parents=True)
    (checkout / "abcir" / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(checkout))
    paths = addedImportPaths()
    assert paths[0] == str(Path(abcir.__file__).resolve().parents[1])
    assert paths.index(str(checkout)) > 0  # still passed on, after it
