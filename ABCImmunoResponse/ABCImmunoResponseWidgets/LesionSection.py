"""Inputs, lesion table and clinical facts: the reader's case before Predict.

The table shows what the bridge computes (``lesion_table.lesionRows``: site,
RECIST size and findings, as Predict will check them) and writes the reader's
choices back where Slicer keeps them (segment tags). It is rebuilt once edits
settle, also after painting in the Segment Editor.
"""

from __future__ import annotations

import qt

import slicer
from slicer.i18n import tr as _

from abcir.errors import InputError
from abcir.patient.sites import SITE_FROM_NAME, SITE_FROM_TERMINOLOGY, SITES
from ABCImmunoResponseLib.lesion_table import SizeCache, clinicalPrefill, lesionRows, segmentationChangeEvents
from ABCImmunoResponseLib.parameters import MODULE_NAME
from ABCImmunoResponseLib.segments import centreSliceViewsOnSegment, setSegmentIncluded, setSegmentSite

TABLE_REFRESH_DELAY_MS = 300  # editing fires many events; the table is rebuilt once they settle
CLINICAL_FACTS = ("priorLines", "metastaticSites", "visceral", "tnbc")


class LesionSection:
    """The 'Inputs', 'Target lesions' and 'Clinical facts' sections of the panel."""

    def __init__(self, ui, observer) -> None:
        """``observer`` is the widget (``VTKObservationMixin``) that owns the node observations."""
        self.ui, self._observer = ui, observer
        self.parameterNode = None
        self.sizes = SizeCache()
        self.rows = []
        self._observedSegmentation = None
        self._updatingTable = False
        self._returnButton = None
        self._combos = {
            "priorLines": (ui.priorLinesComboBox, {"": _("not entered"), "1": "1", "2+": _("2 or more")}),
            "metastaticSites": (ui.metastaticSitesComboBox,
                                {"": _("not entered"), "1-2": _("1-2"), "3+": _("3 or more")}),
            "visceral": (ui.visceralComboBox, {"": _("not entered"), "no": _("no"), "yes": _("yes")}),
            "tnbc": (ui.tnbcComboBox, {"": _("not entered"), "no": _("no"), "yes": _("yes")}),
        }
        for name, (combo, labels) in self._combos.items():
            for key, text in labels.items():
                combo.addItem(text, key)
            combo.connect("activated(int)", lambda index, name=name: self.onClinicalFactEntered(name))
        table = ui.lesionTable
        table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.verticalHeader().setVisible(False)
        table.connect("itemChanged(QTableWidgetItem*)", self.onLesionItemChanged)
        table.connect("cellClicked(int,int)", self.onLesionRowClicked)
        self._refreshTimer = qt.QTimer()
        self._refreshTimer.setSingleShot(True)
        self._refreshTimer.setInterval(TABLE_REFRESH_DELAY_MS)
        self._refreshTimer.connect("timeout()", self.refreshLesionTable)
        ui.segmentEditorButton.connect("clicked(bool)", self.onOpenSegmentEditor)
        ui.confirmPrefillButton.connect("clicked(bool)", self.onConfirmPrefill)

    def cleanup(self) -> None:
        self.removeReturnButton()
        self._observeSegmentation(None)
        self._refreshTimer.stop()  # last: letting go of the segmentation schedules a refresh

    def update(self, node, busy: bool) -> None:
        """Show the parameter node's state (called whenever it changes)."""
        self.parameterNode = node
        for name, (combo, _labels) in self._combos.items():
            wasBlocked = combo.blockSignals(True)
            combo.currentIndex = combo.findData(getattr(node, name))
            combo.blockSignals(wasBlocked)
        prefilled = [label for label, flag in ((_("metastatic sites"), node.metastaticSitesPrefilled),
                                               (_("visceral metastasis"), node.visceralPrefilled)) if flag]
        self.ui.prefillLabel.text = _("Pre-filled from the target lesions: {facts}. Non-target metastases may "
                                      "change them; check and confirm.").format(facts=", ".join(prefilled)) \
            if prefilled else ""
        self.ui.confirmPrefillButton.visible = bool(prefilled)
        for widget in (self.ui.inputsCollapsibleButton, self.ui.lesionsCollapsibleButton,
                       self.ui.clinicalCollapsibleButton):
            widget.enabled = not busy
        self.ui.segmentEditorButton.enabled = bool(node.ctVolume)
        self._observeSegmentation(node.segmentation)

    # Segment Editor

    def onOpenSegmentEditor(self) -> None:
        node = self.parameterNode
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
        self.removeReturnButton()
        self._returnButton = qt.QPushButton(_("Back to ABC Immuno Response"))
        self._returnButton.toolTip = _("Return to the lesion table, clinical facts and Predict.")
        self._returnButton.connect("clicked(bool)", lambda checked: slicer.util.selectModule(MODULE_NAME))
        slicer.modules.SegmentEditorWidget.layout.insertWidget(0, self._returnButton)

    def removeReturnButton(self) -> None:
        if self._returnButton is not None:
            self._returnButton.deleteLater()
            self._returnButton = None

    # Lesion table

    def _observeSegmentation(self, segmentation) -> None:
        if segmentation is self._observedSegmentation:
            return
        for event in segmentationChangeEvents():
            if self._observedSegmentation is not None:
                self._observer.removeObserver(self._observedSegmentation, event, self.scheduleRefresh)
            if segmentation is not None:
                self._observer.addObserver(segmentation, event, self.scheduleRefresh)
        self._observedSegmentation = segmentation
        self.scheduleRefresh()

    def scheduleRefresh(self, caller=None, event=None) -> None:
        self._refreshTimer.start()

    def refreshLesionTable(self) -> None:
        node = self.parameterNode
        self.rows = []
        problem = None
        if node and node.segmentation and node.ctVolume and node.ctVolume.GetImageData():
            try:
                self.rows = lesionRows(node.segmentation, node.ctVolume, self.sizes)
            except InputError as error:  # shown in the table's status line, not in a dialog on every edit
                problem = str(error)
        self._fill(self.rows)
        if problem:
            self.ui.lesionStatusLabel.text = problem
        self._applyClinicalPrefill()

    def _fill(self, rows) -> None:
        table = self.ui.lesionTable
        self._updatingTable = True
        table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            include = qt.QTableWidgetItem()
            include.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable)
            include.setCheckState(qt.Qt.Checked if row.included else qt.Qt.Unchecked)
            include.setData(qt.Qt.UserRole, row.segmentId)
            table.setItem(index, 0, include)
            table.setItem(index, 1, qt.QTableWidgetItem(row.name))
            table.setCellWidget(index, 2, self._siteCombo(row))
            visceral = "" if row.visceral is None else (_("yes") if row.visceral else _("no"))
            table.setItem(index, 3, qt.QTableWidgetItem(visceral))
            table.setItem(index, 4, qt.QTableWidgetItem(f"{row.longest_axial_diameter_mm:.1f}"))
            table.setItem(index, 5, qt.QTableWidgetItem(f"{row.short_axis_mm:.1f}" if row.isLymphNode else ""))
            table.setItem(index, 6, qt.QTableWidgetItem(f"{row.volumeMl:.2f}"))
            finding = qt.QTableWidgetItem(" ".join(f.message for f in row.findings) or _("OK"))
            finding.setToolTip("\n".join(f.message for f in row.findings))
            if row.findings:
                finding.setForeground(qt.QBrush(qt.QColor("#c62828" if row.blocking else "#b26a00")))
            table.setItem(index, 7, finding)
        self._updatingTable = False
        blocking = sum(row.blocking for row in rows)
        ticked = sum(row.included for row in rows)
        self.ui.lesionStatusLabel.text = (
            _("{ticked} target lesion(s) ticked; {blocking} must be fixed before Predict.").format(
                ticked=ticked, blocking=blocking) if blocking else
            _("{ticked} target lesion(s) ticked.").format(ticked=ticked) if rows else
            _("No segments yet: segment each target lesion in the Segment Editor."))

    def _siteCombo(self, row):
        combo = qt.QComboBox()
        for key in ("", *SITES):
            combo.addItem(SITES[key].label if key else _("(choose a site)"), key)
        combo.currentIndex = combo.findData(row.site or "")
        guessedFrom = {SITE_FROM_NAME: _("the segment name"), SITE_FROM_TERMINOLOGY: _("the segment's terminology")}
        if row.siteSource in guessedFrom:
            combo.toolTip = _("Taken from {source}; choose it to confirm.").format(source=guessedFrom[row.siteSource])
        combo.connect("activated(int)", lambda index, segmentId=row.segmentId: self.onSiteChosen(segmentId, combo))
        return combo

    def onLesionItemChanged(self, item) -> None:
        if self._updatingTable or item.column() != 0:
            return
        setSegmentIncluded(self.parameterNode.segmentation, item.data(qt.Qt.UserRole),
                           item.checkState() == qt.Qt.Checked)

    def onSiteChosen(self, segmentId: str, combo) -> None:
        if combo.currentData:
            setSegmentSite(self.parameterNode.segmentation, segmentId, combo.currentData)

    def onLesionRowClicked(self, row: int, column: int) -> None:
        if row < len(self.rows) and self.rows[row].size.voxel_count:
            centreSliceViewsOnSegment(slicer.mrmlScene, self.parameterNode.segmentation, self.rows[row].segmentId)

    # Clinical facts

    def _applyClinicalPrefill(self) -> None:
        """Fill visceral and site count from the table where the reader has not entered them."""
        node = self.parameterNode
        if node is None:
            return
        prefill = clinicalPrefill(self.rows)
        with slicer.util.NodeModify(node):
            for name, flag, value in (("visceral", "visceralPrefilled", prefill.visceral),
                                      ("metastaticSites", "metastaticSitesPrefilled", prefill.metastaticSites)):
                enteredByReader = getattr(node, name) and not getattr(node, flag)
                if value and not enteredByReader and getattr(node, name) != value:
                    setattr(node, name, value)
                    setattr(node, flag, True)

    def onClinicalFactEntered(self, name: str) -> None:
        node = self.parameterNode
        with slicer.util.NodeModify(node):
            setattr(node, name, self._combos[name][0].currentData)
            if name in ("visceral", "metastaticSites"):
                setattr(node, f"{name}Prefilled", False)

    def onConfirmPrefill(self) -> None:
        with slicer.util.NodeModify(self.parameterNode):
            self.parameterNode.visceralPrefilled = False
            self.parameterNode.metastaticSitesPrefilled = False
