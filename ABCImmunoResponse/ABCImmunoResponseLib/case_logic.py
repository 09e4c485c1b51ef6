"""What the module's Logic does, on any MRML scene: predict (with its outline sensitivity), and the consensus
of two readers.

Long work (feature extraction and the models) runs in a child process
(``process.ProcessTask`` running ``python -m abcir.jobs``): Slicer's main
thread holds Python's lock while its Qt event loop runs, so a Python thread
would freeze the panel, and only a process can be stopped at once. A ``Run``
is one such task plus what to do with its result: the caller polls it (the
panel from a Qt timer, scripts and the headless entry through ``wait``), and
only a finished, successful run touches the scene, on the thread that polls.
A cancelled or failed run leaves the scene as it was.

``CaseLogic`` is Qt-free, so the ``slicer-core`` wheel tests it on a real
``vtkMRMLScene``; the Slicer module's ``ABCImmunoResponseLogic`` is this class
with Slicer's scene, ``PythonSlicer`` and Slicer's cache and temporary folders.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

import abcir
from abcir.errors import InputError

from .case import CaseInputs, collectCaseInputs, resolveBundle, writePredictionJob
from .consensus import ConsensusWorkflow
from .i18n import tr as _
from .lesion_table import SizeCache
from .parameters import clinicalFacts, readCaseParameters, writeNodeReference
from .process import Outcome, ProcessTask, Progress
from .results import FEATURES_ATTRIBUTE, addResultTable
from .segments import segmentCrop, segmentIdByName, segmentSite
from .sensitivity import (addOutlineSegmentation, defaultPerturbations, estimateSeconds, lesionIndex, maskVolumeMl,
                          removeOutlineNodes, sensitivityRequest, sensitivityWanted,
                          storedRequest, storedSensitivity, storeSensitivity, writeOutlinesJob)
from .volumes import imageFromVolumeNode

if TYPE_CHECKING:
    from abcir.consensus.building import PairKey
    from abcir.consensus.predictions import ReaderPredictions
    from abcir.consensus.session import ChairChoice
    from abcir.jobs.spec import SensitivityRequest
    from abcir.prediction.result import Prediction
    from abcir.sensitivity.perturbations import PerturbationSet
    from abcir.sensitivity.result import SensitivityResult

POLL_INTERVAL_S = 0.1  # how often ``Run.wait`` looks at the child (the panel's timer uses the same)
RESULTS_FOLDER = "ABCImmunoResponse-results"  # below the work folder: the features of each result


class RunCancelled(Exception):
    """The run was cancelled; nothing was changed."""


class RunFailed(Exception):
    """The child stopped on a bug (not an input problem); ``details`` has the end of its log."""

    def __init__(self, message: str, details: str) -> None:
        super().__init__(message)
        self.details = details


@dataclass(frozen=True)
class ChildRuntime:
    """How child processes are started: interpreter, import path, folders and worker count."""

    python: str  # PythonSlicer inside Slicer (its launcher sets up Slicer's Python), else this interpreter
    pythonPath: tuple[str, ...]  # what this process imports from beyond its interpreter's own folders
    workFolder: Path  # job folders are made here and removed when their run ends
    cacheFolder: Path | None  # feature cache shared by runs: re-predicting recomputes only edited lesions
    jobs: int  # extraction workers in the child

    @classmethod
    def forThisProcess(cls, workFolder: str | os.PathLike | None = None,
                       cacheFolder: str | os.PathLike | None = None, jobs: int | None = None) -> ChildRuntime:
        """Inside Slicer, ``PythonSlicer`` (on Slicer's PATH, as ``slicer.util`` finds it); else ``sys.executable``."""
        from abcir.features.parallel import available_cores

        import slicer

        python = shutil.which("PythonSlicer") if hasattr(slicer, "app") else None
        return cls(python or sys.executable, addedImportPaths(), Path(workFolder or tempfile.gettempdir()),
                   Path(cacheFolder) if cacheFolder else None, jobs or available_cores())


def addedImportPaths() -> tuple[str, ...]:
    """This process's import path less the interpreter's own standard library and site-packages.

    The child is the same interpreter, so it has those already; what Slicer adds
    at run time (the module folders holding ``abcir`` and the bridge, the
    extensions' site-packages such as SlicerRadiomics' pyradiomics) it has not,
    and gets through ``PYTHONPATH``. Passing the whole path would put
    site-packages before the standard library, where a stray backport (e.g.
    ``dataclasses`` 0.6) would shadow it.

    The folder of the ``abcir`` this process has imported comes first, so
    the child runs the same code: in a Slicer with the extension installed,
    a script run from a source checkout (``headless.py``) puts the checkout
    first on the path, but the module imported the installed ``abcir`` already.
    """
    import site
    import sysconfig

    own = {os.path.normcase(os.path.realpath(path)) for path in (
        *(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")),
        *site.getsitepackages(), site.getusersitepackages())}

    def isOwn(entry: str) -> bool:
        real = os.path.normcase(os.path.realpath(entry))
        return real in own or any(real.startswith(folder + os.sep) for folder in own)

    # Absolute: the child runs in its job folder. Missing entries (python3X.zip) are left out.
    imported = str(Path(abcir.__file__).resolve().parents[1])
    return tuple(dict.fromkeys([imported, *(os.path.abspath(entry) for entry in sys.path
                                            if entry and os.path.exists(entry) and not isOwn(entry))]))


@dataclass(frozen=True)
class RunUpdate:
    """What one poll saw: progress, status lines, and once finished the outcome and what was put in the scene."""

    progress: tuple[Progress, ...]
    statuses: tuple[str, ...]
    outcome: Outcome | None
    value: object = None


@dataclass(frozen=True)
class PredictionApplied:
    """A finished prediction in the scene: its new result table, the prediction, its features file, and its
    outline sensitivity (None when not computed)."""

    tableNode: object
    prediction: Prediction
    featuresFile: Path | None
    sensitivity: SensitivityResult | None = None


class Run:
    """A task in its own process and what to do in the scene with its result (``apply``, on success only)."""

    def __init__(self, task: ProcessTask, apply: Callable[[dict, Path], object], steps: int) -> None:
        self.task = task
        self.steps = steps  # progress steps expected (lesions or outlines), for a progress bar
        self._apply = apply

    def poll(self) -> RunUpdate:
        """Never waits: new progress, and when the child has ended, its outcome applied to the scene."""
        progress, statuses, outcome = self.task.poll()
        value = None
        if outcome is not None and outcome.status == "succeeded":
            try:
                value = self._apply(outcome.result, outcome.folder)
            finally:
                self.task.cleanup()
        return RunUpdate(tuple(progress), tuple(statuses), outcome, value)

    def cancel(self) -> None:
        """Stop the child and every process it started; the next poll reports the run as cancelled."""
        self.task.cancel()

    def wait(self, timeoutSeconds: float = 3600.0, tick: Callable[[], None] | None = None,
             onUpdate: Callable[[RunUpdate], None] | None = None) -> object:
        """Poll until the run ends (for scripts, tests and the headless entry); its value, or the reason as error.

        ``tick`` runs between polls (e.g. ``slicer.app.processEvents``). Raises
        ``InputError`` with the child's one-line message, ``RunCancelled``, or
        ``RunFailed`` for a bug; on timeout the run is cancelled first.
        """
        deadline = time.monotonic() + timeoutSeconds
        while True:
            update = self.poll()
            if onUpdate is not None:
                onUpdate(update)
            if update.outcome is not None:
                return valueOf(update.outcome, update.value)
            if time.monotonic() > deadline:
                self.cancel()
                raise InputError(_("The run did not finish within {seconds:.0f} s and was cancelled; try again with "
                                   "fewer lesions or more time.").format(seconds=timeoutSeconds))
            if tick is not None:
                tick()
            time.sleep(POLL_INTERVAL_S)


def valueOf(outcome: Outcome, value: object) -> object:
    """A finished run's value; its failure as ``InputError``/``RunFailed``, a cancel as ``RunCancelled``."""
    if outcome.status == "succeeded":
        return value
    if outcome.status == "cancelled":
        raise RunCancelled(_("Cancelled. The scene was not changed."))
    if outcome.details:
        raise RunFailed(outcome.message, outcome.details)
    raise InputError(outcome.message)


class CaseLogic:
    """Predict on a scene's nodes, and run two readers' consensus, as scripts, the panel and CI call them."""

    def __init__(self, scene=None, runtime: ChildRuntime | None = None) -> None:
        self.scene = scene
        self.runtime = runtime
        self.consensus = ConsensusWorkflow()
        self.perturbations: PerturbationSet | None = None  # the outline changes; None: the core's default set

    # Prediction

    def startPrediction(self, parameterNode, sizes: SizeCache | None = None) -> Run:
        """Check the case, write it for the child and start it; input problems raise ``InputError`` at once."""
        parameters = readCaseParameters(parameterNode)
        inputs = collectCaseInputs(parameters, sizes)
        caseName = parameters.ctVolume.GetName()
        request = self.sensitivityRequest(parameters.outlineSensitivity, inputs)

        def apply(result: dict, folder: Path) -> PredictionApplied:
            from abcir.prediction.result import Prediction
            from abcir.sensitivity.result import SensitivityResult

            prediction = Prediction.from_dict(result["prediction"], "Result of the prediction process")
            sensitivity = (SensitivityResult.from_dict(result["sensitivity"], "Result of the prediction process")
                           if request is not None else None)
            featuresFile = self._keepFeatures(folder, result["features_files"])
            tableNode = addResultTable(self.scene, prediction, caseName, sensitivity)
            if featuresFile is not None:
                tableNode.SetAttribute(FEATURES_ATTRIBUTE, str(featuresFile))
            if sensitivity is not None:
                storeSensitivity(tableNode, sensitivity, request)
            writeNodeReference(parameterNode, "resultTable", tableNode)
            return PredictionApplied(tableNode, prediction, featuresFile, sensitivity)

        return self._start(lambda folder: writePredictionJob(folder, inputs, self.runtime.jobs,
                                                             self.runtime.cacheFolder, request),
                           apply, len(inputs.lesions))

    def sensitivityPlan(self, choice: str, model: str, volumesMl: Sequence[float]) -> tuple[bool, float]:
        """Whether a prediction of target lesions of these volumes (mL) computes the outline sensitivity, and
        its estimated extra seconds (``sensitivity.estimateSeconds``); the panel's checkbox shows both."""
        perturbations = self.perturbations or defaultPerturbations()
        return (sensitivityWanted(choice, model, volumesMl, perturbations),
                estimateSeconds(volumesMl, perturbations))

    def sensitivityRequest(self, choice: str, inputs: CaseInputs) -> SensitivityRequest | None:
        """What the child is asked for: the outline changes when ``choice`` (or, automatic, their cost) says so."""
        volumes = [maskVolumeMl(lesion.mask) for lesion in inputs.lesions]
        wanted, _seconds = self.sensitivityPlan(choice, inputs.bundle.kind, volumes)
        return sensitivityRequest(self.perturbations or defaultPerturbations()) if wanted else None

    def predict(self, parameterNode, timeoutSeconds: float = 3600.0,
                tick: Callable[[], None] | None = None) -> PredictionApplied:
        """Predict and wait for the result (scripts, tests, CI); the panel polls ``startPrediction`` instead."""
        return self.startPrediction(parameterNode).wait(timeoutSeconds, tick)

    def startOutlines(self, parameterNode, lesionName: str) -> Run:
        """Make the changed outlines of one lesion of the last prediction, to show them (a temporary node).

        The child makes them again with the request stored with the result and
        the lesion's place in the prediction, so they are those the analysis
        used, of the lesion's outline as it is in the scene now. The reader's
        segmentation is only read; the new node is not saved with the scene.
        """
        parameters = readCaseParameters(parameterNode)
        table, volume, segmentation = parameters.resultTable, parameters.ctVolume, parameters.segmentation
        request = storedRequest(table)
        index = lesionIndex(storedSensitivity(table), lesionName)
        segmentId = segmentIdByName(segmentation, lesionName) if segmentation is not None else None
        if volume is None or segmentId is None:
            raise InputError(_("Lesion '{name}': no segment of that name in the selected segmentation, or no CT "
                               "selected; select the CT and segmentation of the prediction.").format(name=lesionName))
        segment = segmentation.GetSegmentation().GetSegment(segmentId)
        mask, site, ct = segmentCrop(segmentation, segmentId, volume), segmentSite(segment).site, \
            imageFromVolumeNode(volume)

        def apply(result: dict, folder: Path):
            return addOutlineSegmentation(self.scene, volume, lesionName, result["outlines"], folder)

        return self._start(lambda folder: writeOutlinesJob(folder, ct, lesionName, site, mask, index, request),
                           apply, request.perturbations().size)

    def showOutlines(self, parameterNode, lesionName: str, timeoutSeconds: float = 600.0,
                     tick: Callable[[], None] | None = None):
        """``startOutlines`` and wait; returns the temporary segmentation node."""
        return self.startOutlines(parameterNode, lesionName).wait(timeoutSeconds, tick)

    def removeOutlines(self) -> None:
        """Remove the temporary outlines nodes (only those; the reader's segmentations stay)."""
        removeOutlineNodes(self.scene)

    def _keepFeatures(self, folder: Path, names: list[str]) -> Path | None:
        """Move the child's features table and its provenance out of the job folder before it is removed.

        Only moves: the main thread imports nothing heavy here (the table code needs pandas).
        """
        if not names:
            return None
        kept = self.runtime.workFolder / RESULTS_FOLDER / uuid.uuid4().hex
        kept.mkdir(parents=True)
        for name in names:
            os.replace(folder / name, kept / name)
        return kept / names[0]

    # Two readers

    def compareReaders(self, parameterNode):
        """Match the readers' lesions and measure their agreement (``consensus.comparison``)."""
        parameters = readCaseParameters(parameterNode)
        return self.consensus.compare(parameters.ctVolume, parameters.readerA, parameters.readerB,
                                      parameters.readerAName, parameters.readerBName)

    def createConsensus(self, parameterNode, choices: Mapping[PairKey, ChairChoice]):
        """A new consensus segmentation node from the chair's choices; remembered in the parameter node."""
        parameters = readCaseParameters(parameterNode)
        node = self.consensus.createConsensus(self.scene, parameters.ctVolume, parameters.readerA,
                                              parameters.readerB, parameters.readerAName, parameters.readerBName,
                                              parameters.chairName, choices)
        writeNodeReference(parameterNode, "consensusSegmentation", node)
        return node

    def startReaderPredictions(self, parameterNode) -> Run:
        """Predict under reader A, reader B and the consensus (if built) in the child process."""
        parameters = readCaseParameters(parameterNode)
        clinical = None if parameters.model == "radiomics" else clinicalFacts(parameters)
        resolveBundle(parameters.model, parameters.bundlePath)  # unusable weights are refused before any work
        workflow = self.consensus
        steps = sum(len(lesions) for lesions in (workflow.inputs.lesionsA, workflow.inputs.lesionsB)) \
            if workflow.inputs else 0

        def apply(result: dict, folder: Path) -> ReaderPredictions:
            from abcir.consensus.predictions import ReaderPredictions

            workflow.predictions = ReaderPredictions.from_dict(result["readers"], "Result of the readers' process")
            return workflow.predictions

        return self._start(lambda folder: workflow.writeReadersJob(
            folder, clinical, parameters.model, parameters.bundlePath, self.runtime.jobs, self.runtime.cacheFolder),
            apply, steps)

    def predictReaders(self, parameterNode, timeoutSeconds: float = 3600.0,
                       tick: Callable[[], None] | None = None) -> ReaderPredictions:
        return self.startReaderPredictions(parameterNode).wait(timeoutSeconds, tick)

    def _start(self, writeJob: Callable[[Path], object], apply: Callable[[dict, Path], object], steps: int) -> Run:
        """A new job folder, the job written into it, the child started; the folder goes if anything fails here."""
        self.runtime.workFolder.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="ABCImmunoResponse-job-", dir=self.runtime.workFolder))
        try:
            writeJob(folder)
            task = ProcessTask(folder, self.runtime.python, self.runtime.pythonPath)
            task.start()
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return Run(task, apply, steps)
