"""ABCImmunoResponse: the Slicer module (Module, Widget, Logic and Test).

A thin GUI over the MRML bridge ``ABCImmunoResponseLib`` (scene <-> core types,
the child process runner) and the core ``abcir``. The panel's sections are Qt
classes in ``ABCImmunoResponseWidgets``; long work runs in its own process,
started, watched and cancelled by the Logic. The test bodies live in
``Testing/application/``.
"""

from pathlib import Path
from typing import Annotated

import qt
import vtk

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleLogic,
                                           ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from abcir.resources import resources_dir
from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime
from ABCImmunoResponseLib.parameters import MODULE_NAME, CaseParameters, nodesOfExactClass, wrapperFields
from ABCImmunoResponseWidgets.ConsensusSection import ConsensusSection
from ABCImmunoResponseWidgets.ExamplePatient import registerSampleData
from ABCImmunoResponseWidgets.LesionSection import LesionSection
from ABCImmunoResponseWidgets.PredictionSection import PredictionSection
from ABCImmunoResponseWidgets.TaskRunner import TaskRunner


class ABCImmunoResponse(ScriptedLoadableModule):
    """Module description; the panel is ABCImmunoResponseWidget, scripts use ABCImmunoResponseLogic."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("ABC Immuno Response")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["ABCImmunoResponse developers"]
        self.parent.helpText = _("""
Predicts whether advanced breast cancer will respond to anti-PD-1 combination therapy, from a pre-treatment
contrast CT with segmented RECIST 1.1 target lesions and four clinical facts (Zhao et al., J Immunother Cancer
2023;11:e006514). Segment the target lesions, give each its site, enter the clinical facts and press Predict.
<b>Research software, not clinically validated.</b> The bundled weights were trained on generated data and only
demonstrate the software; load weights trained on your site's cohort for research use.
""")
        self.parent.acknowledgementText = _("""
Implements the radiomics, clinical and combined models of Zhao et al. (2023). Features are computed with
pyradiomics (van Griethuysen et al., Cancer Research 2017) as provided by the SlicerRadiomics extension.
""")
        self.parent.icon = qt.QIcon(str(resources_dir() / "Icons" / f"{MODULE_NAME}.png"))
        slicer.app.connect("startupCompleted()", registerSampleData)


def _wrapperClass():
    """The parameter node wrapper, built from the one declaration of the state (``CaseParameters``)."""
    annotations, namespace = {}, {"__doc__": CaseParameters.__doc__}
    for field in wrapperFields():
        if field.nodeClass:
            annotations[field.name] = getattr(slicer, field.nodeClass)
            continue
        annotations[field.name] = (Annotated[field.valueType, Choice(list(field.choices))] if field.choices
                                   else field.valueType)
        namespace[field.name] = field.default
    namespace["__annotations__"] = annotations
    return parameterNodeWrapper(type("ABCImmunoResponseParameterNode", (), namespace))


ABCImmunoResponseParameterNode = _wrapperClass()


class ABCImmunoResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: binds the parameter node to the sections and keeps them in step."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(resources_dir() / "UI" / f"{MODULE_NAME}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = ABCImmunoResponseLogic()
        self.runner = TaskRunner(self.ui.progressBar, self.ui.statusLabel, self.updateGUIFromParameterNode)
        self.lesions = LesionSection(self.ui, self)
        self.prediction = PredictionSection(self.ui, self.logic, self.runner, self.lesions)
        self.consensus = ConsensusSection(self.ui, self.logic, self.runner)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndClose)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.runner.cancel()
        self.lesions.cleanup()
        self.removeObservers()

    def enter(self) -> None:
        self.lesions.removeReturnButton()
        self.initializeParameterNode()
        self.lesions.scheduleRefresh()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.runner.cancel()  # its result would belong to a scene that no longer exists
        self.setParameterNode(None)
        self.consensus.forget()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.ctVolume:
            volumes = nodesOfExactClass(slicer.mrmlScene, "vtkMRMLScalarVolumeNode")  # as the CT selector shows them
            if volumes:
                self._parameterNode.ctVolume = volumes[0]

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        node = self._parameterNode
        if node is None:
            return
        self.lesions.update(node, self.runner.busy)
        self.prediction.update(node)
        self.consensus.update(node)


class ABCImmunoResponseLogic(ScriptedLoadableModuleLogic, CaseLogic):
    """What scripts and other modules call: ``slicer.util.getModuleLogic("ABCImmunoResponse")``.

    ``predict(parameterNode)``, ``compareReaders``, ``createConsensus`` and
    ``predictReaders`` (or their ``start...`` forms, which return a ``Run`` to
    poll and cancel) are ``CaseLogic``'s, on Slicer's scene. The work runs in
    ``PythonSlicer``, with every core, and keeps a feature cache in Slicer's
    cache folder, so re-predicting after editing one lesion recomputes only it.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.scene = slicer.mrmlScene
        self.runtime = ChildRuntime.forThisProcess(
            workFolder=slicer.app.temporaryPath,
            cacheFolder=Path(slicer.app.cachePath) / MODULE_NAME / "features")

    def getParameterNode(self):
        return ABCImmunoResponseParameterNode(super().getParameterNode())

    def setExampleCase(self, ctVolume, segmentation) -> None:
        """Open the generated example patient: its CT, its lesions and the facts its record holds."""
        from abcir.cohort.generator import EXAMPLE_FACTS

        parameterNode = self.getParameterNode()
        with slicer.util.NodeModify(parameterNode):
            parameterNode.ctVolume, parameterNode.segmentation = ctVolume, segmentation
            # Visceral and the site count are pre-filled from the lesions for the reader to confirm.
            facts = dict(token.split("=", 1) for token in EXAMPLE_FACTS.to_tokens())
            parameterNode.priorLines, parameterNode.tnbc = facts["lines"], facts["tnbc"]


class ABCImmunoResponseTest(ScriptedLoadableModuleTest):
    """The module in a real Slicer: the process path, Cancel, the consensus (bodies in Testing/application/)."""

    def runTest(self):
        import sys

        bodies = Path(__file__).resolve().parents[1] / "Testing" / "application"
        if not bodies.is_dir():
            self.fail(f"the test bodies are not at {bodies}; run the test from a source checkout")
        sys.path.insert(0, str(bodies))
        import ABCImmunoResponseSlicerTests

        ABCImmunoResponseSlicerTests.runAll(self)
