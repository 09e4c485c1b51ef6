"""The module's test bodies, run inside a real Slicer by ctest and by ``ABCImmunoResponseTest`` (module file).

They go the way a user goes: the example patient from Sample Data (as a
script would load it), the Logic found with ``getModuleLogic``, Predict in its
own ``PythonSlicer`` process, Cancel mid-extraction, the consensus of two
readers, and the panel showing the result. Everything below the widgets is
also tested outside Slicer with slicer-core (``Testing/mrml``); these check
what only Slicer has: the launcher, Sample Data, the widgets, the GUI's event
loop while a child runs.
"""

from __future__ import annotations

import os
import time

import slicer
import slicer.ScriptedLoadableModule as scriptedModule  # not the class itself: unittest would collect it too

MODULE_NAME = "ABCImmunoResponse"
SAMPLE_NAME = "ABCImmunoResponseExamplePatient"


def runAll(test) -> None:
    """Every body, each on an empty scene."""
    for body in (logicIsFoundAndWidgetIsThin, exampleFromSampleDataAsAScript, predictInItsOwnProcess,
                 cancelStopsTheChildAndChangesNothing, consensusOfTwoReaders):
        slicer.mrmlScene.Clear()
        test.delayDisplay(body.__doc__.splitlines()[0])
        body(test)
    test.delayDisplay("Test passed")


class ABCImmunoResponseSlicerTests(scriptedModule.ScriptedLoadableModuleTest):
    """ctest's entry (``slicer_add_python_unittest`` in the module's CMakeLists.txt): the same bodies.

    ctest's Slicer loads the module from the build tree, where the module
    file's ``ABCImmunoResponseTest`` cannot find this folder; ``runUnitTest``
    imports this file from the source tree instead.
    """

    def runTest(self):
        runAll(self)


def exampleCase(test):
    """The example patient, loaded through Sample Data as a script loads it, with the panel's facts entered."""
    import SampleData

    ctVolume, segmentation = SampleData.downloadSamples(SAMPLE_NAME)
    test.assertEqual(ctVolume.GetClassName(), "vtkMRMLScalarVolumeNode")
    test.assertEqual(segmentation.GetClassName(), "vtkMRMLSegmentationNode")
    logic = slicer.util.getModuleLogic(MODULE_NAME)
    logic.setExampleCase(ctVolume, segmentation)
    parameterNode = logic.getParameterNode()
    parameterNode.metastaticSites, parameterNode.visceral = "3+", "yes"  # confirmed by the reader
    parameterNode.metastaticSitesPrefilled = parameterNode.visceralPrefilled = False
    return logic, parameterNode


def logicIsFoundAndWidgetIsThin(test) -> None:
    """getModuleLogic finds the Logic; the widget holds no domain state of its own."""
    logic = slicer.util.getModuleLogic(MODULE_NAME)
    test.assertEqual(type(logic).__name__, "ABCImmunoResponseLogic")
    test.assertIs(slicer.util.getModuleWidget(MODULE_NAME).logic, logic)
    test.assertIn("PythonSlicer", os.path.basename(logic.runtime.python))


def exampleFromSampleDataAsAScript(test) -> None:
    """Sample Data loads the CT and the lesions from a script, without its button."""
    logic, parameterNode = exampleCase(test)
    test.assertEqual(parameterNode.segmentation.GetSegmentation().GetNumberOfSegments(), 3)
    test.assertEqual((parameterNode.priorLines, parameterNode.tnbc), ("1", "yes"))


def predictInItsOwnProcess(test) -> None:
    """Predict runs in PythonSlicer; the GUI keeps running; the result and its provenance reach the panel."""
    logic, parameterNode = exampleCase(test)
    run = logic.startPrediction(parameterNode.parameterNode)
    longestTick, progress = 0.0, []
    while True:
        started = time.perf_counter()
        update = run.poll()
        slicer.app.processEvents()
        longestTick = max(longestTick, time.perf_counter() - started)
        progress.extend(update.progress)
        if update.outcome is not None:
            break
        time.sleep(0.1)
    test.assertEqual(update.outcome.status, "succeeded", update.outcome.message + update.outcome.details)
    test.assertLess(longestTick, 0.5, "the main thread was held up")
    from abcir.jobs import SENSITIVITY_STEP

    # The example's three small lesions cost about 7.5 s of outline changes: the automatic choice adds them.
    test.assertEqual(sorted({step.what for step in progress}), ["liver_1", "lung_1", "lymph_node_1", SENSITIVITY_STEP])
    test.assertEqual([step.done for step in progress if step.what == SENSITIVITY_STEP], list(range(1, 31)))
    applied = update.value
    test.assertIs(parameterNode.resultTable, applied.tableNode)
    test.assertIn("NOT clinically validated", applied.prediction.provenance)
    test.assertTrue(os.path.isfile(applied.featuresFile))
    widget = slicer.util.getModuleWidget(MODULE_NAME)
    widget.initializeParameterNode()
    test.assertIn("Response probability", widget.ui.probabilityLabel.text)
    test.assertIn("NOT clinically validated", widget.ui.provenanceLabel.text)
    test.assertTrue(widget.ui.sensitivityCheckBox.checked)
    test.assertIn("outline changes", widget.ui.sensitivityLabel.text)


def cancelStopsTheChildAndChangesNothing(test) -> None:
    """Cancel ends the child and all it started within a second; the scene is as it was."""
    logic, parameterNode = exampleCase(test)
    slicer.mrmlScene.SetSaveToXMLString(1)
    slicer.mrmlScene.Commit()
    before = slicer.mrmlScene.GetSceneXMLString()
    run = logic.startPrediction(parameterNode.parameterNode)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        update = run.poll()
        test.assertIsNone(update.outcome)
        if any("Extracting" in text for text in update.statuses):
            break
        slicer.app.processEvents()
        time.sleep(0.05)
    pid = run.task.pid
    started = time.monotonic()
    run.cancel()
    while run.poll().outcome is None:
        time.sleep(0.05)
    test.assertLess(time.monotonic() - started, 1.5)
    if os.name == "posix":
        with test.assertRaises(ProcessLookupError):
            os.killpg(pid, 0)  # the child's process group (launcher, python-real, workers) is gone
    test.assertFalse(run.task.folder.exists())
    slicer.mrmlScene.Commit()
    test.assertEqual(slicer.mrmlScene.GetSceneXMLString(), before)
    slicer.mrmlScene.SetSaveToXMLString(0)


def consensusOfTwoReaders(test) -> None:
    """Reader B is reader A with the liver lesion dilated and the lymph node left out; the chair decides."""
    import SimpleITK as sitk

    from abcir.consensus.session import ChairChoice
    from abcir.imaging.segfile import Segment, read_seg_nrrd, write_seg_nrrd

    logic, parameterNode = exampleCase(test)
    readerA = parameterNode.segmentation
    folder = slicer.app.temporaryPath
    segments = read_seg_nrrd(readerA.GetStorageNode().GetFileName())
    changed = [Segment(s.segment_id, s.name, sitk.BinaryDilate(s.mask, (1, 1, 1)) if s.name == "liver_1" else s.mask,
                       s.color, s.tags) for s in segments if s.name != "lymph_node_1"]
    path = os.path.join(folder, f"ABCImmunoResponseTest-readerB-{os.getpid()}.seg.nrrd")
    readerB = slicer.util.loadSegmentation(str(write_seg_nrrd(path, changed)))
    parameterNode.readerA, parameterNode.readerB = readerA, readerB
    parameterNode.readerAName, parameterNode.readerBName, parameterNode.chairName = "Dr A", "Dr B", "Dr C"
    comparison = logic.compareReaders(parameterNode.parameterNode)
    test.assertEqual([match.key for match in comparison.matches],
                     [("liver_1", "liver_1"), ("lung_1", "lung_1"), ("lymph_node_1", None)])
    times = readerA.GetMTime(), readerB.GetMTime()
    consensus = logic.createConsensus(parameterNode.parameterNode, {
        ("liver_1", "liver_1"): ChairChoice("union", "B drew the rim"), ("lung_1", "lung_1"): ChairChoice("a"),
        ("lymph_node_1", None): ChairChoice("exclude")})
    test.assertIs(parameterNode.consensusSegmentation, consensus)
    test.assertEqual((readerA.GetMTime(), readerB.GetMTime()), times)
    predictions = logic.predictReaders(parameterNode.parameterNode, timeoutSeconds=600, tick=slicer.app.processEvents)
    test.assertEqual([side for side, _prediction in predictions.computed()], ["a", "b", "consensus"])
    test.assertIn("NOT clinically validated", predictions.a.provenance)
