"""Model and weights, Predict/Cancel, the result with its provenance, and what can be done with it.

Predict asks the Logic to start the prediction in its own process and hands
the run to the panel's ``TaskRunner``; the result appears only when the child
has finished, as a new table node, with the weights' provenance beside the
probability everywhere it is shown. The outline sensitivity (issue 17) is a
checkbox whose automatic state and cost estimate come from the Logic; its range
is shown beside the probability, and one lesion's changed outlines can be shown
as a temporary segmentation (the Logic makes it in the child process). The
widgets of the sensitivity are built here, next to those of the ``.ui`` file.
"""

from __future__ import annotations

import vtk

import qt

import slicer
from slicer.i18n import tr as _

from abcir.errors import InputError
from abcir.models import MODEL_KINDS
from ABCImmunoResponseLib.case import resolveBundle
from ABCImmunoResponseLib.case_files import saveCase
from ABCImmunoResponseLib.dependencies import radiomicsAvailable, unmetRequirements
from ABCImmunoResponseLib.dicom_export import exportResultToDicom, sourceInstanceUids
from ABCImmunoResponseLib.results import (FEATURES_ATTRIBUTE, RESULT_ATTRIBUTE, annotationText, bundleDescription,
                                          predictionFromJson, resultLines, writeTableCsv)
from ABCImmunoResponseLib.sensitivity import COST_LIMIT_S, storedSensitivity

from .Dependencies import ensurePredictionDependencies


class PredictionSection:
    """The 'Model', 'Result' sections and the Predict button."""

    def __init__(self, ui, logic, runner, lesions) -> None:
        """``lesions`` is the panel's ``LesionSection`` (its size cache and rows are used by Predict and Save)."""
        self.ui, self.logic, self.runner, self.lesions = ui, logic, runner, lesions
        self.parameterNode = None
        self._descriptions = {}
        labels = {"combined": _("Combined (radiomics + clinical)"), "radiomics": _("Radiomics"),
                  "clinical": _("Clinical")}
        for kind in MODEL_KINDS:
            ui.modelComboBox.addItem(labels[kind], kind)
        ui.modelComboBox.connect("activated(int)", self.onModelSelected)
        ui.loadWeightsButton.connect("clicked(bool)", self.onLoadWeights)
        ui.bundledWeightsButton.connect("clicked(bool)", lambda checked: setattr(self.parameterNode, "bundlePath", ""))
        ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        ui.showTableButton.connect("clicked(bool)", self.onShowResultTable)
        ui.exportTableButton.connect("clicked(bool)", self.onExportResultTable)
        ui.saveCaseButton.connect("clicked(bool)", self.onSaveCase)
        ui.exportDicomButton.connect("clicked(bool)", self.onExportDicom)
        ui.sensitivityCheckBox.connect("toggled(bool)", self.onSensitivityToggled)
        ui.showOutlinesButton.connect("clicked(bool)", self.onShowOutlines)
        ui.hideOutlinesButton.connect("clicked(bool)", lambda checked: self.logic.removeOutlines())

    def update(self, node) -> None:
        self.parameterNode = node
        wasBlocked = self.ui.modelComboBox.blockSignals(True)
        self.ui.modelComboBox.currentIndex = self.ui.modelComboBox.findData(node.model)
        self.ui.modelComboBox.blockSignals(wasBlocked)
        self.ui.weightsLabel.text = self._weightsText(node.model, node.bundlePath)
        self._showSensitivityChoice(node)
        text, enabled = self.runner.buttonState(self, _("Predict"))
        self.ui.predictButton.text = text
        self.ui.predictButton.enabled = enabled and bool(node.ctVolume)
        self.ui.modelCollapsibleButton.enabled = self.ui.saveCaseButton.enabled = not self.runner.busy
        hasResult = bool(node.resultTable)
        self.ui.showTableButton.enabled = self.ui.exportTableButton.enabled = hasResult
        self.ui.exportDicomButton.enabled = hasResult and bool(node.ctVolume and sourceInstanceUids(node.ctVolume))
        self._showResult(node.resultTable)

    # Model and weights

    def _weightsText(self, model: str, bundlePath: str) -> str:
        key = (model, bundlePath)
        if key not in self._descriptions:
            if unmetRequirements() or not radiomicsAvailable():
                return _("Bundled demonstration weights for the {model} model; they are verified when Predict is "
                         "first pressed. Not clinically validated.").format(model=model)
            try:
                self._descriptions[key] = bundleDescription(resolveBundle(model, bundlePath))
            except (InputError, TypeError, ValueError) as error:  # the panel must come up whatever the weights
                return _("Not usable: {error}").format(error=error)
        return self._descriptions[key]

    def onModelSelected(self, index: int) -> None:
        with slicer.util.NodeModify(self.parameterNode):
            self.parameterNode.model = self.ui.modelComboBox.currentData
            self.parameterNode.bundlePath = ""  # a site's bundle holds one model; the others use the bundled ones

    def onLoadWeights(self) -> None:
        if not ensurePredictionDependencies():
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Weight bundle folder"))
        if not folder:
            return
        from abcir.models.bundle import load_bundle

        with slicer.util.tryWithErrorDisplay(_("These weights cannot be used."), waitCursor=True):
            bundle = load_bundle(folder)  # verified: hashes, schema, tensors, feature list
            self._descriptions[(bundle.kind, folder)] = bundleDescription(bundle)
            with slicer.util.NodeModify(self.parameterNode):
                self.parameterNode.model = bundle.kind
                self.parameterNode.bundlePath = folder

    # Outline sensitivity

    def _showSensitivityChoice(self, node) -> None:
        volumes = [row.volumeMl for row in self.lesions.rows if row.included]
        checked, seconds = self.logic.sensitivityPlan(node.outlineSensitivity, node.model, volumes)
        wasBlocked = self.ui.sensitivityCheckBox.blockSignals(True)
        self.ui.sensitivityCheckBox.checked = checked
        self.ui.sensitivityCheckBox.blockSignals(wasBlocked)
        self.ui.sensitivityCheckBox.enabled = node.model != "clinical"
        self.ui.sensitivityCheckBox.text = _("Outline sensitivity (about {seconds:.0f} s more)").format(seconds=seconds)
        why = (_("Chosen automatically: on when the estimate is under {limit:.0f} s.").format(limit=COST_LIMIT_S)
               if node.outlineSensitivity == "automatic" else _("Your choice."))
        self.ui.sensitivityCheckBox.toolTip = _(
            "Predicts again with each target lesion's outline changed a little (1 mm narrower and wider, and "
            "randomised along image edges) and shows how far the probability moves and whether the risk group "
            "holds. {why}").format(why=why)

    def onSensitivityToggled(self, checked: bool) -> None:
        self.parameterNode.outlineSensitivity = "on" if checked else "off"

    def onShowOutlines(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("The changed outlines cannot be shown."), waitCursor=True):
            lesion = self.ui.outlinesComboBox.currentText
            run = self.logic.startOutlines(self.parameterNode.parameterNode, lesion)
            self.runner.start(run, self, _("Changing the outline of lesion '{lesion}' in a separate process...").format(
                lesion=lesion), _("Done."), self._onOutlinesShown)

    def _onOutlinesShown(self, node) -> None:
        self.ui.statusLabel.text = _("Shown as '{name}' (temporary: not saved with the scene).").format(
            name=node.GetName())

    # Predict

    def onPredictButton(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            return
        if not ensurePredictionDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("The prediction cannot start."), waitCursor=True):
            run = self.logic.startPrediction(self.parameterNode.parameterNode, self.lesions.sizes)
            startText = _("Extracting the features of {count} lesion(s) in a separate process...").format(count=run.steps)
            self.runner.start(run, self, startText, _("Done."), self._onPredicted)

    def _onPredicted(self, applied) -> None:
        self.ui.statusLabel.text = _("Done. Result table: '{table}'.").format(table=applied.tableNode.GetName())

    # Result

    def _showResult(self, tableNode) -> None:
        prediction = sensitivity = unreadable = None
        if tableNode is not None and tableNode.GetAttribute(RESULT_ATTRIBUTE):
            try:
                prediction = predictionFromJson(tableNode.GetAttribute(RESULT_ATTRIBUTE))
                sensitivity = storedSensitivity(tableNode)
            except ImportError:
                unreadable = _("The result is in table '{table}'; install the prediction's packages (press "
                               "Predict) to show it here.").format(table=tableNode.GetName())
            except (InputError, ValueError, KeyError, TypeError) as error:  # damaged, or from another version
                unreadable = _("The result stored with table '{table}' cannot be read ({error}); press Predict to "
                               "compute it again.").format(table=tableNode.GetName(), error=error)
            if unreadable:
                prediction = sensitivity = None
        self._fillOutlineLesions(sensitivity)
        if prediction is None:
            self.ui.probabilityLabel.text = unreadable or _("No prediction yet.")
            for label in (self.ui.riskLabel, self.ui.sensitivityLabel, self.ui.provenanceLabel, self.ui.warningsLabel):
                label.text = ""
            self._setSliceAnnotation("")
            return
        lines = resultLines(prediction, sensitivity)
        self.ui.probabilityLabel.text = f"<b>{lines.probability}</b>"
        self.ui.riskLabel.text = lines.riskGroup
        self.ui.sensitivityLabel.text = lines.sensitivity
        self.ui.provenanceLabel.text = lines.provenance
        colour = "#1b5e20" if prediction.weights.clinically_validated else "#c62828"
        self.ui.provenanceLabel.setStyleSheet(f"color: {colour}")
        self.ui.warningsLabel.text = "\n".join(lines.warnings)
        self._setSliceAnnotation(annotationText(prediction, sensitivity))

    def _fillOutlineLesions(self, sensitivity) -> None:
        """The result's lesions, the one whose outline moves the prediction most first."""
        names = [] if sensitivity is None else sorted(
            (item.lesion_id for item in sensitivity.lesions), key=lambda name: name != sensitivity.deciding_lesion)
        if [self.ui.outlinesComboBox.itemText(index) for index in range(self.ui.outlinesComboBox.count)] != names:
            self.ui.outlinesComboBox.clear()
            for name in names:
                self.ui.outlinesComboBox.addItem(name)
        for widget in (self.ui.outlinesComboBox, self.ui.showOutlinesButton, self.ui.hideOutlinesButton):
            widget.visible = bool(names)
        self.ui.showOutlinesButton.enabled = bool(names) and not self.runner.busy

    @staticmethod
    def _setSliceAnnotation(text: str) -> None:
        layoutManager = slicer.app.layoutManager()
        if layoutManager is None:  # no main window
            return
        for viewName in layoutManager.sliceViewNames():
            view = layoutManager.sliceWidget(viewName).sliceView()
            # The upper edge: Slice View Annotations rewrite the four corners on every update.
            view.cornerAnnotation().SetText(vtk.vtkCornerAnnotation.UpperEdge, text)
            view.scheduleRender()

    def onShowResultTable(self) -> None:
        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        selection = slicer.app.applicationLogic().GetSelectionNode()
        selection.SetActiveTableID(self.parameterNode.resultTable.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def onExportResultTable(self) -> None:
        tableNode = self.parameterNode.resultTable
        path = qt.QFileDialog.getSaveFileName(slicer.util.mainWindow(), _("Export the result table"),
                                              f"{tableNode.GetName()}.csv", _("CSV files (*.csv)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("The table could not be exported.")):
            csvFile, schemaFile = writeTableCsv(tableNode, path)
            self.ui.statusLabel.text = _("Exported to {csv} (units and descriptions in {schema}).").format(
                csv=csvFile, schema=schemaFile.name)

    def onExportDicom(self) -> None:
        node = self.parameterNode
        if not ensurePredictionDependencies():
            return
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(),
                                                     _("Folder for the DICOM Segmentation and Structured Report"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("The result could not be exported to DICOM."), waitCursor=True):
            database = getattr(slicer, "dicomDatabase", None)
            if database is None or not database.isOpen:
                raise InputError(_("Slicer's DICOM database is not open; open it in the DICOM module and try "
                                   "again."))
            files = [path for path in (database.fileForInstance(uid) for uid in sourceInstanceUids(node.ctVolume))
                     if path]
            prediction = predictionFromJson(node.resultTable.GetAttribute(RESULT_ATTRIBUTE))
            written = exportResultToDicom(prediction, node.segmentation, node.ctVolume, files, folder,
                                          slicer.app.temporaryPath, node.resultTable.GetName())
            message = _("Written (nothing was overwritten):") + f"\n{written.seg_path}\n{written.sr_path}"
            if written.warnings:
                message += "\n\n" + _("Warnings:") + "\n" + "\n".join(written.warnings)
            self.ui.statusLabel.text = _("Exported to DICOM in {folder}.").format(folder=folder)
        slicer.util.infoDisplay(message)  # after the block: its wait cursor is restored only when the block ends

    def onSaveCase(self) -> None:
        node = self.parameterNode
        folder = qt.QFileDialog.getExistingDirectory(slicer.util.mainWindow(), _("Folder for the case files"))
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay(_("The case could not be saved."), waitCursor=True):
            table = node.resultTable
            prediction = predictionFromJson(table.GetAttribute(RESULT_ATTRIBUTE) or "") if table else None
            featuresFile = table.GetAttribute(FEATURES_ATTRIBUTE) if table else None
            if featuresFile and not qt.QFileInfo(featuresFile).exists():
                featuresFile = None
            caseName = node.ctVolume.GetName() if node.ctVolume else _("case")
            saved = saveCase(folder, caseName, node.segmentation, prediction, featuresFile, self.lesions.rows)
            message = _("Saved {count} files in {folder}:").format(count=len(saved.files), folder=folder)
            message += "\n" + "\n".join(path.name for path in saved.files)
            if saved.renamed:
                message += "\n\n" + _("Files named '{base}' because files of an earlier save are in the folder "
                                      "(nothing was overwritten).").format(base=saved.baseName)
            if prediction is not None and not featuresFile:
                message += "\n\n" + _("The features are kept only for predictions made since Slicer started; press "
                                      "Predict again to save them.")
        slicer.util.infoDisplay(message)  # after the block, as in onExportDicom
