"""ABCImmunoResponse: the Slicer panel (Module, Widget and Test).

A thin GUI over the MRML bridge ``ABCImmunoResponseLib`` (scene <-> core types)
and the core ``abcir`` (lesions, RECIST, features, models). Numerics, rules and
file formats live there; this file loads the panel, keeps it in step with the
parameter node, runs the prediction on a worker thread and shows the result.
"""

import logging
import os
import tempfile
import traceback
from typing import Annotated

import qt
import vtk

import slicer
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import ScriptedLoadableModule, ScriptedLoadableModuleTest, \
    ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from abcir.errors import InputError
from abcir.models import MODEL_KINDS
from abcir.resources import resources_dir
from abcir.sites import SITES
from ABCImmunoResponseLib.background import BackgroundTask, TaskCancelled
from ABCImmunoResponseLib.case import collectCaseInputs, resolveBundle, runCase
from ABCImmunoResponseLib.case_files import saveCase
from ABCImmunoResponseLib.consensus import (ChairChoice, addConsensusSegmentation, buildConsensus,
                                            collectConsensusInputs, compareReadings, decideAll, methodsFor,
                                            runReaderPredictions, sameReadings, segmentIdByName, showPairOutlines,
                                            startSession)
from ABCImmunoResponseLib.dependencies import RADIOMICS_EXTENSION, radiomicsAvailable, unmetRequirements
from ABCImmunoResponseLib.dicom_export import exportResultToDicom, sourceInstanceUids
from ABCImmunoResponseLib.lesion_table import ClinicalPrefill, SizeCache, clinicalPrefill, lesionRows
from ABCImmunoResponseLib.parameters import (DEFAULT_MODEL, METASTATIC_SITES_CHOICES, MODULE_NAME,
                                             PRIOR_LINES_CHOICES, YES_NO_CHOICES, clinicalFacts,
                                             getOrCreateParameterNode, readCaseParameters)
from ABCImmunoResponseLib.results import (RESULT_ATTRIBUTE, addResultTable, annotationText, bundleDescription,
                                          predictionFromJson, resultLines)
from ABCImmunoResponseLib.segments import centreSliceViewsOnSegment, setSegmentIncluded, setSegmentSite

EXAMPLE_SEED = 0
POLL_INTERVAL_MS = 100  # the panel's timer while a prediction runs
WORKER_SLICE_S = 0.08  # of each tick, the time the main thread lets the worker hold Python's lock
TABLE_REFRESH_DELAY_MS = 300  # editing fires many events; the lesion table is rebuilt once they settle
AGREEMENT_METHOD_COLUMN, AGREEMENT_SITE_COLUMN, AGREEMENT_REASON_COLUMN = 8, 9, 10


#
# ABCImmunoResponse
#


class ABCImmunoResponse(ScriptedLoadableModule):
    """Module description; the panel is ABCImmunoResponseWidget."""

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


#
# Python packages: checked when they are first needed, installed only with the user's consent
#


def ensurePredictionDependencies() -> bool:
    """True when everything the prediction imports is present; offers to install what is missing."""
    if not radiomicsAvailable():
        slicer.util.errorDisplay(_(
            "pyradiomics is not available in Slicer. Install the {extension} extension with the Extensions "
            "Manager, restart Slicer and try again.").format(extension=RADIOMICS_EXTENSION))
        return False
    unmet = unmetRequirements()
    if not unmet:
        return True
    requirements = [item.requirement for item in unmet]
    if hasattr(slicer, "packaging"):  # Slicer 5.12+: consent, progress and restart prompt in one call
        try:
            slicer.packaging.pip_ensure(requirements, requester=MODULE_NAME)
        except RuntimeError:  # the user declined
            return False
    else:
        if not slicer.util.confirmOkCancelDisplay(
                _("The prediction needs Python packages that are missing or too old in this Slicer. "
                  "Install them now into Slicer's Python?"),
                detailedText="\n".join(item.describe() for item in unmet)):
            return False
        with slicer.util.tryWithErrorDisplay(_("Installing the Python packages failed."), waitCursor=True):
            slicer.util.pip_install(requirements)
        if any(item.installed is not None for item in unmet):
            slicer.util.infoDisplay(_("Packages that Slicer had already loaded were upgraded. Restart Slicer "
                                      "before predicting."))
            return False
    remaining = unmetRequirements()
    if remaining:
        slicer.util.errorDisplay(_("These Python packages are still missing or too old:") + "\n"
                                 + "\n".join(item.describe() for item in remaining))
        return False
    return True


#
# Sample data: a generated example patient, made on demand (nothing is downloaded)
#


def registerSampleData():
    """Add the generated example patient to the Sample Data module."""
    import SampleData

    if hasattr(SampleData.SampleDataLogic, "registerCustomSampleDataCategory"):
        SampleData.SampleDataLogic.registerCustomSampleDataCategory(MODULE_NAME, title=_("ABC Immuno Response"))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=MODULE_NAME,
        sampleName="ABCImmunoResponseExamplePatient",
        thumbnailFileName=str(resources_dir() / "Icons" / f"{MODULE_NAME}.png"),
        # Generated locally by customDownloader; Sample Data needs a name per file all the same.
        uris="generated:abcir.cohort.make_example_patient",
        fileNames="SYN-EXAMPLE.seg.nrrd",
        nodeNames="SYN-EXAMPLE",
        customDownloader=lambda source: loadExamplePatient(),
    )


def loadExamplePatient():
    """Generate the example patient (CT and three target lesions), load it and open the panel on it."""
    if not ensurePredictionDependencies():
        return None
    from abcir.cohort import make_example_patient

    with slicer.util.tryWithErrorDisplay(_("The example patient could not be made."), waitCursor=True):
        folder = tempfile.mkdtemp(prefix="ABCImmunoResponse-example-", dir=slicer.app.temporaryPath)
        example = make_example_patient(folder, EXAMPLE_SEED)
        ctVolume = slicer.util.loadVolume(str(example.ct))
        segmentation = slicer.util.loadSegmentation(str(example.lesions))
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(ctVolume)
        parameterNode = ABCImmunoResponseParameterNode(getOrCreateParameterNode(slicer.mrmlScene))
        parameterNode.ctVolume, parameterNode.segmentation = ctVolume, segmentation
        # Facts from the record; visceral and site count are pre-filled from the lesions for the reader to confirm.
        facts = dict(token.split("=", 1) for token in example.clinical.to_tokens())
        parameterNode.priorLines, parameterNode.tnbc = facts["lines"], facts["tnbc"]
        if slicer.util.mainWindow():
            slicer.util.selectModule(MODULE_NAME)
        return ctVolume, segmentation
    return None


#
# ABCImmunoResponseParameterNode
#


@parameterNodeWrapper
class ABCImmunoResponseParameterNode:
    """The panel's state, saved with the scene (names and encodings: ABCImmunoResponseLib.parameters).

    ctVolume, segmentation - the CT and its target lesions (one segment each; site and tick in segment tags).
    priorLines, metastaticSites, visceral, tnbc - clinical facts as entered ("" = not yet).
    metastaticSitesPrefilled, visceralPrefilled - taken from the lesion table, not yet confirmed by the reader.
    model, bundlePath - the model and a site's weight bundle ("" = the bundled weights).
    resultTable - the last result (the prediction's JSON is in its attribute).
    readerA, readerB, readerAName, readerBName - two readers' segmentations of ctVolume, for the consensus.
    chairName - who decides the consensus; consensusSegmentation - the last consensus made (a new node each time).
    """

    ctVolume: vtkMRMLScalarVolumeNode
    segmentation: vtkMRMLSegmentationNode
    priorLines: Annotated[str, Choice(PRIOR_LINES_CHOICES)] = ""
    metastaticSites: Annotated[str, Choice(METASTATIC_SITES_CHOICES)] = ""
    visceral: Annotated[str, Choice(YES_NO_CHOICES)] = ""
    tnbc: Annotated[str, Choice(YES_NO_CHOICES)] = ""
    metastaticSitesPrefilled: bool = False
    visceralPrefilled: bool = False
    model: Annotated[str, Choice(MODEL_KINDS)] = DEFAULT_MODEL
    bundlePath: str = ""
    resultTable: vtkMRMLTableNode
    readerA: vtkMRMLSegmentationNode
    readerB: vtkMRMLSegmentationNode
    readerAName: str = ""
    readerBName: str = ""
    chairName: str = ""
    consensusSegmentation: vtkMRMLSegmentationNode


#
# ABCImmunoResponseWidget
#


class ABCImmunoResponseWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel: inputs, lesion table, clinical facts, model, Predict/Cancel, result, save case, consensus."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._observedSegmentation = None
        self._sizes = SizeCache()
        self._rows = []
        self._task = None
        self._features = {}  # result table ID -> per-lesion features of predictions made in this session
        self._bundleDescriptions = {}
        self._returnButton = None
        self._updatingTable = False
        self._readerTask = None  # predictions under reader A, B and the consensus
        self._consensusInputs = None  # the readings as last compared (copies, on the CT grid)
        self._comparison = None
        self._consensusSegments = None  # the consensus last created from that comparison

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(str(resources_dir() / "UI" / f"{MODULE_NAME}.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self._clinicalCombos = {
            "priorLines": (self.ui.priorLinesComboBox, {"": _("not entered"), "1": "1", "2+": _("2 or more")}),
            "metastaticSites": (self.ui.metastaticSitesComboBox,
                                {"": _("not entered"), "1-2": _("1-2"), "3+": _("3 or more")}),
            "visceral": (self.ui.visceralComboBox, {"": _("not entered"), "no": _("no"), "yes": _("yes")}),
            "tnbc": (self.ui.tnbcComboBox, {"": _("not entered"), "no": _("no"), "yes": _("yes")}),
        }
        for name, (combo, labels) in self._clinicalCombos.items():
            for key, text in labels.items():
                combo.addItem(text, key)
            combo.connect("activated(int)", lambda index, name=name: self.onClinicalFactEntered(name))
        modelLabels = {"combined": _("Combined (radiomics + clinical)"), "radiomics": _("Radiomics"),
                       "clinical": _("Clinical")}
        for kind in MODEL_KINDS:
            self.ui.modelComboBox.addItem(modelLabels[kind], kind)
        self.ui.modelComboBox.connect("activated(int)", self.onModelSelected)

        table = self.ui.lesionTable
        table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().setVisible(False)
        table.connect("itemChanged(QTableWidgetItem*)", self.onLesionItemChanged)
        table.connect("cellClicked(int,int)", self.onLesionRowClicked)

        self._tableRefreshTimer = qt.QTimer()
        self._tableRefreshTimer.setSingleShot(True)
        self._tableRefreshTimer.setInterval(TABLE_REFRESH_DELAY_MS)
        self._tableRefreshTimer.connect("timeout()", self.refreshLesionTable)
        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(POLL_INTERVAL_MS)
        self._pollTimer.connect("timeout()", self.onPollPrediction)
        self._readerPollTimer = qt.QTimer()
        self._readerPollTimer.setInterval(POLL_INTERVAL_MS)
        self._readerPollTimer.connect("timeout()", self.onPollReaderPredictions)

        for table in (self.ui.agreementTable, self.ui.readerPredictionsTable):
            table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
            table.horizontalHeader().setStretchLastSection(True)
        self.ui.agreementTable.verticalHeader().setVisible(False)
        self.ui.agreementTable.connect("cellClicked(int,int)", self.onAgreementRowClicked)

        self.ui.segmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        self.ui.confirmPrefillButton.connect("clicked(bool)", self.onConfirmPrefill)
        self.ui.loadWeightsButton.connect("clicked(bool)", self.onLoadWeights)
        self.ui.bundledWeightsButton.connect("clicked(bool)", self.onUseBundledWeights)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.showTableButton.connect("clicked(bool)", self.onShowResultTable)
        self.ui.exportTableButton.connect("clicked(bool)", self.onExportResultTable)
        self.ui.saveCaseButton.connect("clicked(bool)", self.onSaveCase)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        self.ui.compareReadersButton.connect("clicked(bool)", self.onCompareReaders)
        self.ui.createConsensusButton.connect("clicked(bool)", self.onCreateConsensus)
        self.ui.predictReadersButton.connect("clicked(bool)", self.onPredictReadersButton)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        for task in (self._task, self._readerTask):
            if task is not None:
                task.cancel()
        self._pollTimer.stop()
        self._readerPollTimer.stop()
        self._tableRefreshTimer.stop()
        self._removeReturnButton()
        self.removeObservers()

    def enter(self) -> None:
        self._removeReturnButton()
        self.initializeParameterNode()
        self.scheduleLesionTableRefresh()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)

    def onSceneStartClose(self, caller, event) -> None:
        for task in (self._task, self._readerTask):  # their results would belong to a scene that no longer exists
            if task is not None:
                task.cancel()
        self.setParameterNode(None)
        self._features.clear()
        self._forgetComparison()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def onSceneEndImport(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    # Parameter node

    def initializeParameterNode(self) -> None:
        self.setParameterNode(ABCImmunoResponseParameterNode(getOrCreateParameterNode(slicer.mrmlScene)))
        if not self._parameterNode.ctVolume:
            firstVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolume:
                self._parameterNode.ctVolume = firstVolume

    def setParameterNode(self, parameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self._parameterNode = parameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateGUIFromParameterNode)
        self.updateGUIFromParameterNode()

    def caseParameters(self):
        """The parameter node as the bridge reads it (the same reader the headless entry uses)."""
        return readCaseParameters(self._parameterNode.parameterNode)

    def updateGUIFromParameterNode(self, caller=None, event=None) -> None:
        node = self._parameterNode
        if node is None:
            return
        for name, (combo, _labels) in self._clinicalCombos.items():
            wasBlocked = combo.blockSignals(True)
            combo.currentIndex = combo.findData(getattr(node, name))
            combo.blockSignals(wasBlocked)
        prefilled = [label for label, flag in ((_("metastatic sites"), node.metastaticSitesPrefilled),
                                               (_("visceral metastasis"), node.visceralPrefilled)) if flag]
        self.ui.prefillLabel.text = _("Pre-filled from the target lesions: {facts}. Non-target metastases may "
                                      "change them; check and confirm.").format(facts=", ".join(prefilled)) \
            if prefilled else ""
        self.ui.confirmPrefillButton.visible = bool(prefilled)
        wasBlocked = self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.currentIndex = self.ui.modelComboBox.findData(node.model)
        self.ui.modelComboBox.blockSignals(wasBlocked)
        self.ui.weightsLabel.text = self._weightsText(node.model, node.bundlePath)
        self._observeSegmentation(node.segmentation)
        self._updateButtons()
        self._showResult(node.resultTable)

    def _updateButtons(self) -> None:
        node = self._parameterNode
        running = self._task is not None
        readersRunning = self._readerTask is not None
        self.ui.predictButton.text = (_("Cancelling...") if running and self._task.cancelRequested
                                      else _("Cancel") if running else _("Predict"))
        self.ui.predictButton.enabled = (bool(node and node.ctVolume) and not (running and self._task.cancelRequested)
                                         and not readersRunning)
        for widget in (self.ui.inputsCollapsibleButton, self.ui.lesionsCollapsibleButton,
                       self.ui.clinicalCollapsibleButton, self.ui.modelCollapsibleButton, self.ui.saveCaseButton):
            widget.enabled = not running and not readersRunning
        self.ui.segmentEditorButton.enabled = bool(node and node.ctVolume)
        hasResult = bool(node and node.resultTable)
        self.ui.showTableButton.enabled = self.ui.exportTableButton.enabled = hasResult
        self.ui.exportDicomButton.enabled = hasResult and bool(node and sourceInstanceUids(node.ctVolume))
        self.ui.predictReadersButton.text = (
            _("Cancelling...") if readersRunning and self._readerTask.cancelRequested
            else _("Cancel") if readersRunning else _("Predict under A, B and the consensus"))
        self.ui.predictReadersButton.enabled = (self._comparison is not None and not running
                                                and not (readersRunning and self._readerTask.cancelRequested))
        for widget in (self.ui.readerASelector, self.ui.readerBSelector, self.ui.compareReadersButton,
                       self.ui.createConsensusButton):
            widget.enabled = not readersRunning
        self.ui.createConsensusButton.enabled = self._comparison is not None and not readersRunning

    # Inputs and the Segment Editor

    def onOpenSegmentEditor(self) -> None:
        node = self._parameterNode
        if not node.segmentation:
            segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode",
                                                              slicer.mrmlScene.GenerateUniqueName(_("Target lesions")))
            segmentation.CreateDefaultDisplayNodes()
            node.segmentation = segmentation
        node.segmentation.SetReferenceImageGeometryParameterFromVolumeNode(node.ctVolume)
        slicer.util.selectModule("SegmentEditor")
        editor = slicer.modules.SegmentEditorWidget.editor
        editor.setSegmentationNode(node.segmentation)
        editor.setSourceVolumeNode(node.ctVolume)
        self._removeReturnButton()
        self._returnButton = qt.QPushButton(_("Back to ABC Immuno Response"))
        self._returnButton.toolTip = _("Return to the lesion table, clinical facts and Predict.")
        self._returnButton.connect("clicked(bool)", lambda checked: slicer.util.selectModule(MODULE_NAME))
        slicer.modules.SegmentEditorWidget.layout.insertWidget(0, self._returnButton)

    def _removeReturnButton(self) -> None:
        if self._returnButton is not None:
            self._returnButton.deleteLater()
            self._returnButton = None

    # Lesion table

    def _observeSegmentation(self, segmentation) -> None:
        if segmentation is self._observedSegmentation:
            return
        events = (slicer.vtkSegmentation.SegmentAdded, slicer.vtkSegmentation.SegmentRemoved,
                  slicer.vtkSegmentation.SegmentModified, slicer.vtkSegmentation.RepresentationModified,
                  slicer.vtkSegmentation.SegmentsOrderModified)
        if self._observedSegmentation is not None:
            for event in events:
                self.removeObserver(self._observedSegmentation, event, self.scheduleLesionTableRefresh)
        self._observedSegmentation = segmentation
        if segmentation is not None:
            for event in events:
                self.addObserver(segmentation, event, self.scheduleLesionTableRefresh)
        self.scheduleLesionTableRefresh()

    def scheduleLesionTableRefresh(self, caller=None, event=None) -> None:
        self._tableRefreshTimer.start()

    def refreshLesionTable(self) -> None:
        node = self._parameterNode
        self._rows = []
        problem = None
        if node and node.segmentation and node.ctVolume and node.ctVolume.GetImageData():
            try:
                self._rows = lesionRows(node.segmentation, node.ctVolume, self._sizes)
            except InputError as error:  # shown in the table's status line, not in a dialog on every edit
                problem = str(error)
        self._fillLesionTable(self._rows)
        if problem:
            self.ui.lesionStatusLabel.text = problem
        self._applyClinicalPrefill()

    def _fillLesionTable(self, rows) -> None:
        table = self.ui.lesionTable
        self._updatingTable = True
        table.setRowCount(len(rows))
        siteKeys = ["", *SITES]
        for index, row in enumerate(rows):
            include = qt.QTableWidgetItem()
            include.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
            include.setCheckState(qt.Qt.Checked if row.included else qt.Qt.Unchecked)
            include.setData(qt.Qt.UserRole, row.segmentId)
            table.setItem(index, 0, include)
            table.setItem(index, 1, qt.QTableWidgetItem(row.name))
            siteCombo = qt.QComboBox()
            for key in siteKeys:
                siteCombo.addItem(SITES[key].label if key else _("(choose a site)"), key)
            siteCombo.currentIndex = siteCombo.findData(row.site or "")
            if row.siteFromName:
                siteCombo.toolTip = _("Guessed from the segment name; choose it to confirm.")
            siteCombo.connect("activated(int)",
                              lambda i, combo=siteCombo, segmentId=row.segmentId: self.onSiteChosen(segmentId, combo))
            table.setCellWidget(index, 2, siteCombo)
            visceral = "" if row.visceral is None else (_("yes") if row.visceral else _("no"))
            table.setItem(index, 3, qt.QTableWidgetItem(visceral))
            table.setItem(index, 4, qt.QTableWidgetItem(f"{row.longest_axial_diameter_mm:.1f}"))
            table.setItem(index, 5, qt.QTableWidgetItem(f"{row.short_axis_mm:.1f}" if row.isLymphNode else ""))
            table.setItem(index, 6, qt.QTableWidgetItem(f"{row.volumeMl:.2f}"))
            finding = qt.QTableWidgetItem(" ".join(f.message for f in row.findings) or _("OK"))
            finding.setToolTip("\n".join(f.message for f in row.findings))
            if row.findings:
                colour = "#c62828" if row.blocking else "#b26a00"
                finding.setForeground(qt.QBrush(qt.QColor(colour)))
            table.setItem(index, 7, finding)
        self._updatingTable = False
        blocking = sum(row.blocking for row in rows)
        ticked = sum(row.included for row in rows)
        self.ui.lesionStatusLabel.text = (
            _("{ticked} target lesion(s) ticked; {blocking} must be fixed before Predict.").format(
                ticked=ticked, blocking=blocking) if blocking else
            _("{ticked} target lesion(s) ticked.").format(ticked=ticked) if rows else
            _("No segments yet: segment each target lesion in the Segment Editor."))

    def onLesionItemChanged(self, item) -> None:
        if self._updatingTable or item.column() != 0:
            return
        setSegmentIncluded(self._parameterNode.segmentation, item.data(qt.Qt.UserRole),
                           item.checkState() == qt.Qt.Checked)

    def onSiteChosen(self, segmentId: str, combo) -> None:
        site = combo.currentData
        if site:
            setSegmentSite(self._parameterNode.segmentation, segmentId, site)

    def onLesionRowClicked(self, row: int, column: int) -> None:
        if row < len(self._rows) and self._rows[row].size.voxel_count:
            centreSliceViewsOnSegment(slicer.mrmlScene, self._parameterNode.segmentation, self._rows[row].segmentId)

    # Clinical facts

    def _applyClinicalPrefill(self) -> None:
        """Fill visceral and site count from the table where the reader has not entered them."""
        node = self._parameterNode
        if node is None:
            return
        prefill = clinicalPrefill(self._rows)
        with slicer.util.NodeModify(node):
            for name, flag, value in (("visceral", "visceralPrefilled", prefill.visceral),
                                      ("metastaticSites", "metastaticSitesPrefilled", prefill.metastaticSites)):
                enteredByReader = getattr(node, name) and not getattr(node, flag)
                if value and not enteredByReader and getattr(node, name) != value:
                    setattr(node, name, value)
                    setattr(node, flag, True)

    def onClinicalFactEntered(self, name: str) -> None:
        combo = self._clinicalCombos[name][0]
        with slicer.util.NodeModify(self._parameterNode):
            setattr(self._parameterNode, name, combo.currentData)
            if name == "visceral":
                self._parameterNode.visceralPrefilled = False
            elif name == "metastaticSites":
                self._parameterNode.metastaticSitesPrefilled = False

    def onConfirmPrefill(self) -> None:
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.visceralPrefilled = False
            self._parameterNode.metastaticSitesPrefilled = False

    # Model and weights

    def _weightsText(self, model: str, bundlePath: str) -> str:
        key = (model, bundlePath)
        if key not in self._bundleDescriptions:
            if unmetRequirements() or not radiomicsAvailable():
                return _("Bundled demonstration weights for the {model} model; they are verified when Predict is "
                         "first pressed. Not clinically validated.").format(model=model)
            try:
                self._bundleDescriptions[key] = bundleDescription(resolveBundle(model, bundlePath))
            except InputError as error:
                return _("Not usable: {error}").format(error=error)
        return self._bundleDescriptions[key]

    def onModelSelected(self, index: int) -> None:
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.model = self.ui.modelComboBox.currentData
            self._parameterNode.bundlePath = ""  # a site's bundle holds one model; the others use the bundled ones

    def onLoadWeights(self) -> None:
        if not ensurePredictionDependencies():
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Weight bundle folder"))
        if not folder:
            return
        from abcir.bundle import load_bundle

        with slicer.util.tryWithErrorDisplay(_("These weights cannot be used."), waitCursor=True):
            bundle = load_bundle(folder)  # verified: hashes, schema, tensors, feature list
            self._bundleDescriptions[(bundle.kind, folder)] = bundleDescription(bundle)
            with slicer.util.NodeModify(self._parameterNode):
                self._parameterNode.model = bundle.kind
                self._parameterNode.bundlePath = folder

    def onUseBundledWeights(self) -> None:
        self._parameterNode.bundlePath = ""

    # Predict, in the background

    def onPredictButton(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.ui.statusLabel.text = _("Cancelling: stopping when the current lesion's features are done (they "
                                         "cannot be interrupted)...")
            self._updateButtons()
            return
        if not ensurePredictionDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("The prediction cannot start."), waitCursor=True):
            inputs = collectCaseInputs(self.caseParameters(), self._sizes)
            self._task = BackgroundTask(lambda progress: runCase(inputs, progress))
            self._task.start()
            self.ui.progressBar.visible = True
            self.ui.progressBar.setRange(0, max(len(inputs.lesions), 1))
            self.ui.progressBar.value = 0
            self.ui.statusLabel.text = _("Extracting the features of {count} lesion(s)...").format(
                count=len(inputs.lesions))
            self._pollTimer.start()
        self._updateButtons()

    def onPollPrediction(self) -> None:
        if self._task is None:
            self._pollTimer.stop()
            return
        # Slicer's main thread holds Python's lock while Qt runs; waiting here hands it to the worker.
        finished = self._task.wait(WORKER_SLICE_S)
        for progress in self._task.progress():
            self.ui.progressBar.setRange(0, progress.total)
            self.ui.progressBar.value = progress.done
            self.ui.statusLabel.text = _("Features of lesion {done} of {total} ({lesion}) done...").format(
                done=progress.done, total=progress.total, lesion=progress.what)
        if finished:
            self._pollTimer.stop()
            self._finishPrediction()

    def _taskResult(self, task, stoppedText: str, failedText: str):
        """The finished task's result, or None after saying why there is none (cancelled, input problem, bug)."""
        try:
            if task.cancelRequested or self._parameterNode is None:  # also when cancel came after the last lesion
                raise TaskCancelled()
            return task.result()
        except TaskCancelled:
            self.ui.statusLabel.text = _("Cancelled. The scene was not changed.")
        except InputError as error:
            self.ui.statusLabel.text = stoppedText
            slicer.util.errorDisplay(str(error))
        except Exception as error:  # a bug rather than an input problem: show it with the traceback
            details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            logging.error("ABCImmunoResponse: %s\n%s", failedText, details)
            self.ui.statusLabel.text = failedText
            slicer.util.errorDisplay(_("{failed} {error}").format(failed=failedText, error=error),
                                     detailedText=details)
        return None

    def _finishPrediction(self) -> None:
        task, self._task = self._task, None
        self.ui.progressBar.visible = False
        result = self._taskResult(task, _("The prediction stopped: see the message."), _("The prediction failed."))
        if result is not None:
            tableNode = addResultTable(slicer.mrmlScene, result.prediction, self._parameterNode.ctVolume.GetName())
            self._features[tableNode.GetID()] = result.features
            self._parameterNode.resultTable = tableNode
            self.ui.statusLabel.text = _("Done. Result table: '{table}'.").format(table=tableNode.GetName())
        self._updateButtons()

    # Result

    def _showResult(self, tableNode) -> None:
        prediction = None
        if tableNode is not None and tableNode.GetAttribute(RESULT_ATTRIBUTE):
            try:
                prediction = predictionFromJson(tableNode.GetAttribute(RESULT_ATTRIBUTE))
            except ImportError:
                self.ui.probabilityLabel.text = _("The result is in table '{table}'; install the prediction's "
                                                  "packages (press Predict) to show it here.").format(
                    table=tableNode.GetName())
                return
        if prediction is None:
            self.ui.probabilityLabel.text = _("No prediction yet.")
            for label in (self.ui.riskLabel, self.ui.provenanceLabel, self.ui.warningsLabel):
                label.text = ""
            self._setSliceAnnotation("")
            return
        lines = resultLines(prediction)
        self.ui.probabilityLabel.text = f"<b>{lines.probability}</b>"
        self.ui.riskLabel.text = lines.riskGroup
        self.ui.provenanceLabel.text = lines.provenance
        colour = "#1b5e20" if prediction.weights.clinically_validated else "#c62828"
        self.ui.provenanceLabel.setStyleSheet(f"color: {colour}")
        self.ui.warningsLabel.text = "\n".join(lines.warnings)
        self._setSliceAnnotation(annotationText(prediction))

    def _setSliceAnnotation(self, text: str) -> None:
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window
            return
        for viewName in layoutManager.sliceViewNames():
            view = layoutManager.sliceWidget(viewName).sliceView()
            # The upper edge: Slice View Annotations rewrite the four corners on every update.
            view.cornerAnnotation().SetText(vtk.vtkCornerAnnotation.UpperEdge, text)
            view.scheduleRender()

    def onShowResultTable(self) -> None:
        tableNode = self._parameterNode.resultTable
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def onExportResultTable(self) -> None:
        tableNode = self._parameterNode.resultTable
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export the result table"),
                                              f"{tableNode.GetName()}.csv", _("CSV files (*.csv)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The table could not be exported.")):
            if os.path.exists(path):
                raise InputError(_("'{path}' already exists; choose another name (it is not overwritten).").format(
                    path=path))
            storage = slicer.vtkMRMLTableStorageNode()  # not added to the scene: exporting changes nothing there
            storage.SetFileName(path)
            if not storage.WriteData(tableNode):
                raise InputError(_("Slicer could not write '{path}'.").format(path=path))
            self.ui.statusLabel.text = _("Exported to {path}.").format(path=path)

    def onExportDicom(self) -> None:
        node = self._parameterNode
        if not ensurePredictionDependencies():
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                     _("Folder for the DICOM Segmentation and Structured Report"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("The result could not be exported to DICOM."), waitCursor=True):
            prediction = predictionFromJson(node.resultTable.GetAttribute(RESULT_ATTRIBUTE))
            written = exportResultToDicom(prediction, node.segmentation, node.ctVolume,
                                          self._dicomFiles(node.ctVolume), folder, slicer.app.temporaryPath,
                                          node.resultTable.GetName())
            message = _("Written (nothing was overwritten):") + f"\n{written.seg_path}\n{written.sr_path}"
            if written.warnings:
                message += "\n\n" + _("Warnings:") + "\n" + "\n".join(written.warnings)
            self.ui.statusLabel.text = _("Exported to DICOM in {folder}.").format(folder=folder)
            slicer.util.infoDisplay(message)

    @staticmethod
    def _dicomFiles(volumeNode) -> list[str]:
        """The files of the volume's DICOM instances, as Slicer's DICOM database knows them."""
        database = getattr(slicer, "dicomDatabase", None)
        if database is None or not database.isOpen:
            raise InputError(_("Slicer's DICOM database is not open; open it in the DICOM module and try again."))
        return [path for path in (database.fileForInstance(uid) for uid in sourceInstanceUids(volumeNode)) if path]

    # Consensus of two readers

    def _forgetComparison(self) -> None:
        self._consensusInputs = self._comparison = self._consensusSegments = None
        self.ui.agreementTable.setRowCount(0)
        self._fillReaderPredictions(None)
        self.ui.consensusStatusLabel.text = ""

    def onCompareReaders(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The readers could not be compared."), waitCursor=True):
            self._forgetComparison()
            inputs = collectConsensusInputs(node.ctVolume, node.readerA, node.readerB, node.readerAName,
                                            node.readerBName)
            comparison = compareReadings(inputs)
            self._consensusInputs, self._comparison = inputs, comparison
            self._fillAgreementTable(comparison)
            self.ui.consensusStatusLabel.text = _(
                "{matched} matched pair(s), {onlyA} only in A, {onlyB} only in B, {sites} with different sites. "
                "Choose a method for every row, then create the consensus.").format(
                matched=sum(row.matched for row in comparison.lesions), onlyA=len(comparison.unmatched("a")),
                onlyB=len(comparison.unmatched("b")), sites=len(comparison.site_disagreements()))
        self._updateButtons()

    def _fillAgreementTable(self, comparison) -> None:
        def number(value, form):
            return "" if value is None else form.format(value)

        methodLabels = {"a": _("A: {reader}").format(reader=comparison.reader_a),
                        "b": _("B: {reader}").format(reader=comparison.reader_b), "union": _("union"),
                        "intersection": _("intersection"), "staple": _("STAPLE"), "exclude": _("exclude")}
        table = self.ui.agreementTable
        table.setRowCount(len(comparison.lesions))
        for index, row in enumerate(comparison.lesions):
            sites = (row.site_a or row.site_b or "") if row.site_agrees else _("A {siteA} / B {siteB}").format(
                siteA=row.site_a, siteB=row.site_b)
            texts = (row.a or "-", row.b or "-", sites, number(row.dice, "{:.3f}"), number(row.hd95_mm, "{:.1f}"),
                     number(row.hausdorff_mm, "{:.1f}"), number(row.volume_diff_percent, "{:+.1f}"),
                     number(row.diameter_diff_mm, "{:+.1f}"))
            for column, text in enumerate(texts):
                item = qt.QTableWidgetItem(text)
                item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
                if row.note:
                    item.setToolTip(row.note)
                if column == 2 and not row.site_agrees:
                    item.setForeground(qt.QBrush(qt.QColor("#c62828")))
                table.setItem(index, column, item)
            methodCombo = qt.QComboBox()
            methodCombo.addItem(_("(choose)"), "")
            for method in methodsFor(comparison, index):
                methodCombo.addItem(methodLabels[method], method)
            table.setCellWidget(index, AGREEMENT_METHOD_COLUMN, methodCombo)
            siteCombo = qt.QComboBox()
            siteCombo.addItem(_("as the readers") if row.site_agrees else _("(choose a site)"), "")
            for key, site in SITES.items():
                siteCombo.addItem(site.label, key)
            table.setCellWidget(index, AGREEMENT_SITE_COLUMN, siteCombo)
            reason = qt.QTableWidgetItem("")
            reason.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEditable)
            reason.setToolTip(_("Why this method (recorded with the decision)."))
            table.setItem(index, AGREEMENT_REASON_COLUMN, reason)

    def _chairChoices(self) -> dict:
        """The chair's choice per lesion pair, as set in the agreement table."""
        table = self.ui.agreementTable
        choices = {}
        for index, match in enumerate(self._comparison.matches):
            site = table.cellWidget(index, AGREEMENT_SITE_COLUMN).currentData
            reason = table.item(index, AGREEMENT_REASON_COLUMN)
            choices[match.key] = ChairChoice(table.cellWidget(index, AGREEMENT_METHOD_COLUMN).currentData,
                                             reason.text() if reason else "", site or None)
        return choices

    def onAgreementRowClicked(self, row: int, column: int) -> None:
        node = self._parameterNode
        if self._comparison is None or row >= len(self._comparison.matches):
            return
        match = self._comparison.matches[row]
        segmentA = segmentIdByName(node.readerA, match.a.lesion_id) if node.readerA and match.a else None
        segmentB = segmentIdByName(node.readerB, match.b.lesion_id) if node.readerB and match.b else None
        with slicer.util.tryWithErrorDisplay(_("The lesion could not be shown.")):
            if segmentA or segmentB:
                centreSliceViewsOnSegment(slicer.mrmlScene, node.readerA if segmentA else node.readerB,
                                          segmentA or segmentB)
            showPairOutlines(((node.readerA, segmentA), (node.readerB, segmentB)))

    def onCreateConsensus(self) -> None:
        node = self._parameterNode
        with slicer.util.tryWithErrorDisplay(_("The consensus segmentation was not created."), waitCursor=True):
            if self._comparison is None:
                raise InputError(_("Consensus: compare the readers first."))
            # The readers may have been edited since they were compared: decide only on what the table shows.
            current = collectConsensusInputs(node.ctVolume, node.readerA, node.readerB, node.readerAName,
                                             node.readerBName)
            if not sameReadings(current, self._consensusInputs):
                raise InputError(_("Consensus: the readers' segmentations, names or the CT changed since they were "
                                   "compared; press 'Compare the readers' again."))
            session = decideAll(startSession(current, self._comparison, node.chairName), self._comparison,
                                self._chairChoices())
            segments = buildConsensus(self._comparison, session)
            consensusNode = addConsensusSegmentation(slicer.mrmlScene, node.ctVolume, segments, session)
            self._consensusSegments = segments
            node.consensusSegmentation = consensusNode
            self.ui.consensusStatusLabel.text = _(
                "Consensus segmentation '{name}' created with {count} segment(s); the readers' segmentations are "
                "unchanged. Predict under each reading to see whether the risk group changes.").format(
                name=consensusNode.GetName(), count=len(segments))
            self._fillReaderPredictions(None)
        self._updateButtons()

    def onPredictReadersButton(self) -> None:
        if self._readerTask is not None:
            self._readerTask.cancel()
            self.ui.statusLabel.text = _("Cancelling: stopping when the current lesion's features are done...")
            self._updateButtons()
            return
        if not ensurePredictionDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("The predictions cannot start."), waitCursor=True):
            parameters = self.caseParameters()
            clinical = None if parameters.model == "radiomics" else clinicalFacts(parameters)
            resolveBundle(parameters.model, parameters.bundlePath)  # refuse unusable weights before any work
            inputs, consensus = self._consensusInputs, self._consensusSegments
            model, bundlePath = parameters.model, parameters.bundlePath
            self._readerTask = BackgroundTask(
                lambda progress: runReaderPredictions(inputs, consensus, clinical, model, bundlePath, progress),
                name="ABCImmunoResponse reader predictions")
            self._readerTask.start()
            self.ui.progressBar.visible = True
            self.ui.progressBar.setRange(0, 0)  # busy until the first lesion is done
            self.ui.statusLabel.text = _("Extracting the features under each reading...")
            self._readerPollTimer.start()
        self._updateButtons()

    def onPollReaderPredictions(self) -> None:
        if self._readerTask is None:
            self._readerPollTimer.stop()
            return
        finished = self._readerTask.wait(WORKER_SLICE_S)
        for progress in self._readerTask.progress():
            self.ui.progressBar.setRange(0, progress.total)
            self.ui.progressBar.value = progress.done
            self.ui.statusLabel.text = _("Features of outline {done} of {total} ({lesion}) done...").format(
                done=progress.done, total=progress.total, lesion=progress.what)
        if finished:
            self._readerPollTimer.stop()
            task, self._readerTask = self._readerTask, None
            self.ui.progressBar.visible = False
            predictions = self._taskResult(task, _("The predictions stopped: see the message."),
                                           _("The predictions failed."))
            if predictions is not None:
                self._fillReaderPredictions(predictions)
                self.ui.statusLabel.text = _("Predictions under each reading done.")
            self._updateButtons()

    def _fillReaderPredictions(self, predictions) -> None:
        """Probability, score, risk group and risk group changes per reading; the weights' provenance below."""
        table = self.ui.readerPredictionsTable
        sides = ("a", "b", "consensus")
        changes = predictions.risk_group_changes() if predictions is not None else {}
        yesNo = {True: _("yes"), False: _("no")}
        sideNames = {"a": _("A"), "b": _("B"), "consensus": _("consensus")}
        for column, side in enumerate(sides):
            prediction = getattr(predictions, side) if predictions is not None else None
            if prediction is None:
                texts = ("", "", "", "")
            else:
                differs = [_("vs {other}: {changed}").format(other=sideNames[other], changed=yesNo[changes[key]])
                           for other in sides for key in (f"{other}_vs_{side}",) if key in changes]
                texts = (f"{prediction.probability:.3f}", f"{prediction.score:+.3f}",
                         prediction.risk_group or _("none (no cut-off)"), ", ".join(differs))
            for row, text in enumerate(texts):
                item = qt.QTableWidgetItem(text)
                if row == 3 and any(changes.get(f"{other}_vs_{side}") for other in sides):
                    item.setForeground(qt.QBrush(qt.QColor("#c62828")))
                table.setItem(row, column, item)
        computed = predictions.computed() if predictions is not None else []
        lines = [computed[0][1].provenance] if computed else []
        if predictions is not None and predictions.note:
            lines.append(predictions.note)
        self.ui.readerProvenanceLabel.text = "\n".join(lines)

    # Save case

    def onSaveCase(self) -> None:
        node = self._parameterNode
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the case files"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("The case could not be saved."), waitCursor=True):
            prediction = None
            if node.resultTable and node.resultTable.GetAttribute(RESULT_ATTRIBUTE):
                prediction = predictionFromJson(node.resultTable.GetAttribute(RESULT_ATTRIBUTE))
            features = self._features.get(node.resultTable.GetID(), ()) if node.resultTable else ()
            caseName = node.ctVolume.GetName() if node.ctVolume else _("case")
            saved = saveCase(folder, caseName, node.segmentation, prediction, features, self._rows)
            message = _("Saved {count} files in {folder}:").format(count=len(saved.files), folder=folder)
            message += "\n" + "\n".join(path.name for path in saved.files)
            if saved.renamed:
                message += "\n\n" + _("Files named '{base}' because files of an earlier save are in the folder "
                                      "(nothing was overwritten).").format(base=saved.baseName)
            if prediction is not None and not features:
                message += "\n\n" + _("The features are kept only for predictions made since the scene was "
                                      "loaded; press Predict again to save them.")
            slicer.util.infoDisplay(message)


#
# ABCImmunoResponseTest
#


class ABCImmunoResponseTest(ScriptedLoadableModuleTest):
    """The whole path on the generated example patient, without a main window (ctest runs it)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PredictionOnTheExamplePatient()
        self.setUp()
        self.test_CancelLeavesTheSceneAsItWas()
        self.setUp()
        self.test_ConsensusOfTwoReaders()

    def _requireDependencies(self):
        missing = [item.describe() for item in unmetRequirements()]
        if not radiomicsAvailable():
            missing.append(f"pyradiomics (the {RADIOMICS_EXTENSION} extension)")
        if missing:
            self.skipTest("the prediction's Python packages are missing in this Slicer: " + ", ".join(missing))

    def _exampleCase(self, folder):
        from abcir.cohort import make_example_patient

        example = make_example_patient(folder, EXAMPLE_SEED)
        ctVolume = slicer.util.loadVolume(str(example.ct))
        segmentation = slicer.util.loadSegmentation(str(example.lesions))
        return example, ctVolume, segmentation

    def _weights(self, folder):
        """(model, bundle folder): the bundled combined weights, or, in a checkout without bundled weights,
        a clinical bundle written here with fixed coefficients (training needs packages Slicer does not have)."""
        from abcir.bundle import (SCHEMA, SCHEMA_VERSION, BundleError, Cutoff, TrainingData, WeightsManifest,
                                  bundled_bundle, write_bundle)
        from abcir.clinical import CLINICAL_ENCODING
        from abcir.models import LogisticArchitecture

        try:
            return "combined", bundled_bundle("combined").path
        except BundleError:
            pass
        import numpy as np

        manifest = WeightsManifest(
            schema=SCHEMA, schema_version=SCHEMA_VERSION, name="slicer-self-test", created="2026-01-01T00:00:00+00:00",
            model="clinical", architecture=LogisticArchitecture(tuple(CLINICAL_ENCODING)), features=None,
            preprocessing=None, clinical_encoding=dict(CLINICAL_ENCODING), cutoff=Cutoff(0.0, "fixed for the test"),
            training_data=TrainingData("synthetic", "Slicer self-test", 80, 30), validation=(), training={},
            software={}, clinically_validated=False, files={})
        tensors = {"coef": np.array([-1.0, -0.5, 0.2, -0.3]), "intercept": np.array([0.1])}
        return "clinical", write_bundle(os.path.join(folder, "clinical"), manifest, tensors)

    def _parameters(self, ctVolume, segmentation, model, bundlePath):
        parameterNode = ABCImmunoResponseParameterNode(getOrCreateParameterNode(slicer.mrmlScene))
        parameterNode.ctVolume, parameterNode.segmentation = ctVolume, segmentation
        parameterNode.priorLines, parameterNode.metastaticSites = "1", "3+"
        parameterNode.visceral, parameterNode.tnbc = "yes", "yes"
        parameterNode.model, parameterNode.bundlePath = model, str(bundlePath)
        return parameterNode

    def _waitFor(self, task, seconds=600):
        for _tick in range(int(seconds / 0.1)):
            if task.wait(0.05):
                return
            slicer.app.processEvents()
        self.fail(f"the prediction did not finish within {seconds} s")

    def test_PredictionOnTheExamplePatient(self):
        self._requireDependencies()
        self.delayDisplay("Generating the example patient")
        folder = tempfile.mkdtemp(prefix="ABCImmunoResponseTest-", dir=slicer.app.temporaryPath)
        example, ctVolume, segmentation = self._exampleCase(folder)
        registerSampleData()
        import SampleData

        self.assertTrue(any(source.sampleName == "ABCImmunoResponseExamplePatient"
                            for source in SampleData.SampleDataLogic.sampleDataSourcesByCategory(MODULE_NAME)))

        rows = lesionRows(segmentation, ctVolume)
        self.assertEqual([row.site for row in rows], ["liver", "lung", "lymph_node"])
        self.assertEqual(clinicalPrefill(rows), ClinicalPrefill("yes", "3+"))
        self.assertFalse(any(row.blocking for row in rows))

        model, bundlePath = self._weights(folder)
        parameterNode = self._parameters(ctVolume, segmentation, model, bundlePath)
        parameters = readCaseParameters(parameterNode.parameterNode)
        self.assertEqual((parameters.model, parameters.visceral, parameters.ctVolume), (model, "yes", ctVolume))

        self.delayDisplay(f"Predicting with the {model} model on a worker thread")
        inputs = collectCaseInputs(parameters)
        task = BackgroundTask(lambda progress: runCase(inputs, progress))
        task.start()
        self._waitFor(task)
        result = task.result()
        prediction = result.prediction
        self.assertTrue(0.0 <= prediction.probability <= 1.0)
        self.assertEqual([lesion.lesion_id for lesion in prediction.lesions], ["liver_1", "lung_1", "lymph_node_1"])
        if model != "clinical":
            self.assertEqual([p.what for p in task.progress()], ["liver_1", "lung_1", "lymph_node_1"])

        table = addResultTable(slicer.mrmlScene, prediction, ctVolume.GetName())
        parameterNode.resultTable = table
        self.assertEqual(table.GetNumberOfRows(), 4)
        self.assertIn("NOT clinically validated", table.GetCellText(3, table.GetColumnIndex("weights")))

        saved = saveCase(os.path.join(folder, "case"), ctVolume.GetName(), segmentation, prediction,
                         result.features, rows)
        again = saveCase(os.path.join(folder, "case"), ctVolume.GetName(), segmentation, prediction,
                         result.features, rows)
        self.assertFalse(saved.renamed)
        self.assertTrue(again.renamed)

        self.delayDisplay("Showing the result in the panel")
        widget = slicer.util.getModuleWidget(MODULE_NAME)  # made without a main window too
        widget.initializeParameterNode()
        self.assertIn("Response probability", widget.ui.probabilityLabel.text)
        self.assertIn("NOT clinically validated", widget.ui.provenanceLabel.text)
        self.delayDisplay("Test passed")

    def test_CancelLeavesTheSceneAsItWas(self):
        self._requireDependencies()
        folder = tempfile.mkdtemp(prefix="ABCImmunoResponseTest-", dir=slicer.app.temporaryPath)
        example, ctVolume, segmentation = self._exampleCase(folder)
        model, bundlePath = self._weights(folder)
        if model != "combined":
            self.skipTest("cancelling is tested with the combined model, whose weights are not bundled here")
        parameterNode = self._parameters(ctVolume, segmentation, model, bundlePath)
        nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
        segmentationTime = segmentation.GetMTime()
        inputs = collectCaseInputs(readCaseParameters(parameterNode.parameterNode))
        task = BackgroundTask(lambda progress: runCase(inputs, progress))
        task.start()
        task.cancel()
        self._waitFor(task)
        with self.assertRaises(TaskCancelled):
            task.result()
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodesBefore)
        self.assertEqual(segmentation.GetMTime(), segmentationTime)
        self.delayDisplay("Test passed")

    def test_ConsensusOfTwoReaders(self):
        """Reader B is reader A with the liver lesion dilated by one voxel and the lymph node left out."""
        self._requireDependencies()
        import numpy as np
        import SimpleITK as sitk

        from abcir.segfile import Segment, read_seg_nrrd, write_seg_nrrd

        self.delayDisplay("Comparing two readers of the example patient")
        folder = tempfile.mkdtemp(prefix="ABCImmunoResponseTest-", dir=slicer.app.temporaryPath)
        example, ctVolume, readerA = self._exampleCase(folder)
        segments = read_seg_nrrd(example.lesions)
        changed = [Segment(segment.segment_id, segment.name,
                                     sitk.BinaryDilate(segment.mask, (1, 1, 1), sitk.sitkCross)
                                     if segment.name == "liver_1" else segment.mask, segment.color, segment.tags)
                   for segment in segments if segment.name != "lymph_node_1"]
        readerB = slicer.util.loadSegmentation(str(write_seg_nrrd(os.path.join(folder, "readerB.seg.nrrd"), changed)))
        readerTimes = readerA.GetMTime(), readerB.GetMTime()
        voxelsBefore = slicer.util.arrayFromSegmentBinaryLabelmap(readerA, readerA.GetSegmentation().GetNthSegmentID(0),
                                                                  ctVolume).copy()

        model, bundlePath = self._weights(folder)
        parameterNode = self._parameters(ctVolume, readerA, model, bundlePath)
        parameterNode.readerA, parameterNode.readerB = readerA, readerB
        parameterNode.readerAName, parameterNode.readerBName, parameterNode.chairName = "Dr A", "Dr B", "Dr C"
        widget = slicer.util.getModuleWidget(MODULE_NAME)
        widget.initializeParameterNode()
        widget.onCompareReaders()
        comparison = widget._comparison
        self.assertEqual([match.key for match in comparison.matches],
                         [("liver_1", "liver_1"), ("lung_1", "lung_1"), ("lymph_node_1", None)])
        self.assertEqual(widget.ui.agreementTable.rowCount, 3)
        liver = comparison.lesions[0]
        self.assertLess(liver.dice, 1.0)
        self.assertGreater(liver.volume_diff_percent, 0.0)
        self.assertEqual(comparison.lesions[1].dice, 1.0)

        self.delayDisplay("Creating the consensus segmentation")
        table = widget.ui.agreementTable
        for row, method in enumerate(("union", "a", "exclude")):
            combo = table.cellWidget(row, AGREEMENT_METHOD_COLUMN)
            combo.currentIndex = combo.findData(method)
        table.item(0, AGREEMENT_REASON_COLUMN).setText("B drew the rim")
        segmentationsBefore = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
        widget.onCreateConsensus()
        consensus = parameterNode.consensusSegmentation
        self.assertIsNotNone(consensus)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode"), segmentationsBefore + 1)
        self.assertNotIn(consensus, (readerA, readerB))
        segmentation = consensus.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["liver_1", "lung_1"])
        self.assertEqual(segmentation.GetNthSegment(0).GetTag("ABCImmunoResponse.Consensus.Method"), "union")
        self.assertEqual((readerA.GetMTime(), readerB.GetMTime()), readerTimes)
        voxelsAfter = slicer.util.arrayFromSegmentBinaryLabelmap(readerA, readerA.GetSegmentation().GetNthSegmentID(0),
                                                                 ctVolume)
        self.assertTrue(np.array_equal(voxelsBefore, voxelsAfter))

        self.delayDisplay(f"Predicting under A, B and the consensus with the {model} model")
        inputs = widget._consensusInputs
        task = BackgroundTask(lambda progress: runReaderPredictions(
            inputs, widget._consensusSegments, clinicalFacts(readCaseParameters(parameterNode.parameterNode)),
            model, str(bundlePath), progress))
        task.start()
        self._waitFor(task)
        predictions = task.result()
        self.assertEqual([side for side, _prediction in predictions.computed()], ["a", "b", "consensus"])
        widget._fillReaderPredictions(predictions)
        self.assertIn("NOT clinically validated", widget.ui.readerProvenanceLabel.text)
        self.delayDisplay("Test passed")
