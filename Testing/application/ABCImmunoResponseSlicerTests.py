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
import shutil
import tempfile
import time

import slicer
import slicer.ScriptedLoadableModule as scriptedModule  # not the class itself: unittest would collect it too

MODULE_NAME = "ABCImmunoResponse"
SAMPLE_NAME = "ABCImmunoResponseExamplePatient"
RUN_TIMEOUT_S = 600  # a prediction that has not ended by then has hung


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
    """The example patient, loaded through Sample Data as a script loads it, with the panel's facts entered.

    Skips (the run then counts as not tested) when this Slicer lacks the prediction's packages: Slicer
    ships none of pandas, pynrrd, pyyaml, safetensors and threadpoolctl, which the first Predict installs
    with the user's consent, and the example patient is generated only with them.
    """
    import SampleData

    from ABCImmunoResponseLib.dependencies import radiomicsAvailable, unmetRequirements
    from ABCImmunoResponseWidgets.ExamplePatient import FILE_NAMES, ensureExampleFiles

    missing = [item.describe() for item in unmetRequirements()]
    if not radiomicsAvailable():
        missing.append("pyradiomics (the SlicerRadiomics extension)")
    if missing:
        test.skipTest("this Slicer lacks what the prediction needs: " + "; ".join(missing) + " (press Predict "
                      "once and accept the installation, or install them with slicer.util.pip_install)")
    ensureExampleFiles()  # start-up generates them only when the packages were already there
    cache = slicer.mrmlScene.GetCacheManager().GetRemoteCacheDirectory()
    for name in FILE_NAMES:  # a copy an earlier version left in Sample Data's cache is not what is tested
        if os.path.isfile(os.path.join(cache, name)):
            os.remove(os.path.join(cache, name))
    nodes = SampleData.downloadSamples(SAMPLE_NAME)
    test.assertEqual(len(nodes), 2, "Sample Data loaded nothing; its error is in the Python console")
    ctVolume, segmentation = nodes
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
    longestTick, progress, deadline = 0.0, [], time.monotonic() + RUN_TIMEOUT_S
    while True:
        started = time.perf_counter()
        update = run.poll()
        slicer.app.processEvents()
        longestTick = max(longestTick, time.perf_counter() - started)
        progress.extend(update.progress)
        if update.outcome is not None:
            break
        if time.monotonic() > deadline:
            run.cancel()
            test.fail(f"the prediction did not end within {RUN_TIMEOUT_S} s")
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
    test.assertIsNotNone(applied.sensitivity)
    test.assertTrue(os.path.isfile(applied.featuresFile))
    widget = slicer.util.getModuleWidget(MODULE_NAME)
    # Without a main window the panel is never entered: bind it, and build the lesion table now, which its
    # timer would do 300 ms after the scene changed (the sensitivity's automatic choice reads the table).
    widget.initializeParameterNode()
    widget.lesions.refreshLesionTable()
    widget.updateGUIFromParameterNode()
    test.assertIn("Response probability", widget.ui.probabilityLabel.text)
    test.assertIn("NOT clinically validated", widget.ui.provenanceLabel.text)
    test.assertTrue(widget.ui.sensitivityCheckBox.checked)
    test.assertIn("outline changes", widget.ui.sensitivityLabel.text)


def cancelStopsTheChildAndChangesNothing(test) -> None:
    """Cancel ends the child and all it started within a second; the scene is as it was."""
    logic, parameterNode = exampleCase(test)
    slicer.mrmlScene.SetSaveToXMLString(1)
    try:
        slicer.mrmlScene.Commit()
        before = slicer.mrmlScene.GetSceneXMLString()
        run = logic.startPrediction(parameterNode.parameterNode)
        deadline, extracting = time.monotonic() + 120, False
        while time.monotonic() < deadline and not extracting:
            update = run.poll()
            test.assertIsNone(update.outcome)
            extracting = any("Extracting" in text for text in update.statuses)
            slicer.app.processEvents()
            time.sleep(0.05)
        test.assertTrue(extracting, "the child never said it was extracting")
        pid = run.task.pid
        started = time.monotonic()
        run.cancel()
        while run.poll().outcome is None:
            time.sleep(0.05)
        test.assertLess(time.monotonic() - started, 1.5)
        if os.name == "posix":
            test.assertEqual(livingGroupMembers(pid), [])  # launcher, python-real, workers: all gone
        test.assertFalse(run.task.folder.exists())
        slicer.mrmlScene.Commit()
        test.assertEqual(slicer.mrmlScene.GetSceneXMLString(), before)
    finally:
        slicer.mrmlScene.SetSaveToXMLString(0)


def livingGroupMembers(group: int, seconds: float = 5.0) -> list[int]:
    """The processes of process group ``group`` still alive after up to ``seconds`` (zombies are not alive).

    The child's python-real and workers are Slicer's grandchildren: after SIGKILL they stay zombies until
    init (or a subreaper) reaps them, and ``killpg(group, 0)`` succeeds while one is left.
    """
    deadline = time.monotonic() + seconds
    while True:
        if os.path.isdir("/proc"):
            members = []
            for entry in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                        state, _parent, processGroup = stat.read().rsplit(")", 1)[1].split()[:3]
                except OSError:  # ended meanwhile
                    continue
                if int(processGroup) == group and state != "Z":
                    members.append(int(entry))
        else:  # macOS: no /proc; only "none left at all" can be seen
            try:
                os.killpg(group, 0)
                members = [group]
            except ProcessLookupError:
                members = []
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


def consensusOfTwoReaders(test) -> None:
    """Reader B is reader A with the liver lesion dilated and the lymph node left out; the chair decides."""
    import SimpleITK as sitk

    from abcir.consensus.session import ChairChoice
    from abcir.imaging.segfile import Segment, read_seg_nrrd, write_seg_nrrd

    from ABCImmunoResponseWidgets.ExamplePatient import FILE_NAMES, exampleFolder

    logic, parameterNode = exampleCase(test)
    readerA = parameterNode.segmentation
    # Sample Data removes the storage nodes of what it loads: reader A's file is the example's own.
    segments = read_seg_nrrd(exampleFolder() / FILE_NAMES[1])
    changed = [Segment(s.segment_id, s.name, sitk.BinaryDilate(s.mask, (1, 1, 1)) if s.name == "liver_1" else s.mask,
                       s.color, s.tags) for s in segments if s.name != "lymph_node_1"]
    folder = tempfile.mkdtemp(prefix="ABCImmunoResponseTest-", dir=slicer.app.temporaryPath)
    try:
        readerB = slicer.util.loadSegmentation(str(write_seg_nrrd(os.path.join(folder, "readerB.seg.nrrd"), changed)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
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
