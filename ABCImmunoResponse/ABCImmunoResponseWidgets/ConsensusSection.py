"""Two readers and their chair: compare, decide per lesion, build the consensus, predict under each reading.

The session's state and rules are the Logic's (``ConsensusWorkflow`` and the
core's ``apply_choices``); this section fills the agreement table, collects
the chair's choices from it and shows the predictions under each reading.
"""

from __future__ import annotations

import qt

import slicer
from slicer.i18n import tr as _

from abcir.patient.sites import SITES
from ABCImmunoResponseLib.consensus import showPairOutlines
from ABCImmunoResponseLib.segments import segmentIdByName
from ABCImmunoResponseLib.segments import centreSliceViewsOnSegment

from .Dependencies import ensurePredictionDependencies

METHOD_COLUMN, SITE_COLUMN, REASON_COLUMN = 8, 9, 10
SIDES = ("a", "b", "consensus")


class ConsensusSection:
    """The 'Consensus of two readers' section."""

    def __init__(self, ui, logic, runner) -> None:
        self.ui, self.logic, self.runner = ui, logic, runner
        self.parameterNode = None
        for table in (ui.agreementTable, ui.readerPredictionsTable):
            table.horizontalHeader().setSectionResizeMode(qt.QHeaderView.ResizeToContents)
            table.horizontalHeader().setStretchLastSection(True)
        ui.agreementTable.verticalHeader().setVisible(False)
        ui.agreementTable.connect("cellClicked(int,int)", self.onAgreementRowClicked)
        ui.compareReadersButton.connect("clicked(bool)", self.onCompareReaders)
        ui.createConsensusButton.connect("clicked(bool)", self.onCreateConsensus)
        ui.predictReadersButton.connect("clicked(bool)", self.onPredictReadersButton)

    @property
    def workflow(self):
        return self.logic.consensus

    def update(self, node) -> None:
        self.parameterNode = node
        text, enabled = self.runner.buttonState(self, _("Predict under A, B and the consensus"))
        self.ui.predictReadersButton.text = text
        self.ui.predictReadersButton.enabled = enabled and self.workflow.compared
        for widget in (self.ui.readerASelector, self.ui.readerBSelector, self.ui.compareReadersButton):
            widget.enabled = not self.runner.busy
        self.ui.createConsensusButton.enabled = self.workflow.compared and not self.runner.busy

    def forget(self) -> None:
        """Clear the section (scene closed, or a new comparison)."""
        self.workflow.forget()
        self.ui.agreementTable.setRowCount(0)
        self._fillReaderPredictions(None)
        self.ui.consensusStatusLabel.text = ""

    def onCompareReaders(self) -> None:
        self.forget()
        try:  # tryWithErrorDisplay shows an error, then raises it again: the buttons follow the state either way
            with slicer.util.tryWithErrorDisplay(_("The readers could not be compared."), waitCursor=True):
                comparison = self.logic.compareReaders(self.parameterNode.parameterNode)
                self._fillAgreementTable(comparison)
                self.ui.consensusStatusLabel.text = _(
                    "{matched} matched pair(s), {onlyA} only in A, {onlyB} only in B, {sites} with different "
                    "sites. Choose a method for every row, then create the consensus.").format(
                    matched=sum(row.matched for row in comparison.lesions), onlyA=len(comparison.unmatched("a")),
                    onlyB=len(comparison.unmatched("b")), sites=len(comparison.site_disagreements()))
        finally:
            self.update(self.parameterNode)

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
            for method in self.workflow.methodsFor(index):
                methodCombo.addItem(methodLabels[method], method)
            table.setCellWidget(index, METHOD_COLUMN, methodCombo)
            siteCombo = qt.QComboBox()
            siteCombo.addItem(_("as the readers") if row.site_agrees else _("(choose a site)"), "")
            for key, site in SITES.items():
                siteCombo.addItem(site.label, key)
            table.setCellWidget(index, SITE_COLUMN, siteCombo)
            reason = qt.QTableWidgetItem("")
            reason.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEditable)
            reason.setToolTip(_("Why this method (recorded with the decision)."))
            table.setItem(index, REASON_COLUMN, reason)

    def chairChoices(self) -> dict:
        """The chair's choice per lesion pair, as set in the agreement table (empty cells choose nothing)."""
        from abcir.consensus.session import ChairChoice  # with pynrrd, which Predict installs

        table = self.ui.agreementTable
        choices = {}
        for index, match in enumerate(self.workflow.comparison.matches):
            reason = table.item(index, REASON_COLUMN)
            choices[match.key] = ChairChoice(method=table.cellWidget(index, METHOD_COLUMN).currentData or None,
                                             reason=(reason.text().strip() if reason else "") or None,
                                             site=table.cellWidget(index, SITE_COLUMN).currentData or None)
        return choices

    def onAgreementRowClicked(self, row: int, column: int) -> None:
        node, comparison = self.parameterNode, self.workflow.comparison
        if comparison is None or row >= len(comparison.matches):
            return
        match = comparison.matches[row]
        segmentA = segmentIdByName(node.readerA, match.a.lesion_id) if node.readerA and match.a else None
        segmentB = segmentIdByName(node.readerB, match.b.lesion_id) if node.readerB and match.b else None
        with slicer.util.tryWithErrorDisplay(_("The lesion could not be shown.")):
            if segmentA or segmentB:
                centreSliceViewsOnSegment(slicer.mrmlScene, node.readerA if segmentA else node.readerB,
                                          segmentA or segmentB)
            showPairOutlines(((node.readerA, segmentA), (node.readerB, segmentB)))

    def onCreateConsensus(self) -> None:
        try:  # as onCompareReaders: the buttons follow the state whether or not this failed
            with slicer.util.tryWithErrorDisplay(_("The consensus segmentation was not created."), waitCursor=True):
                consensusNode = self.logic.createConsensus(self.parameterNode.parameterNode, self.chairChoices())
                self.ui.consensusStatusLabel.text = _(
                    "Consensus segmentation '{name}' created with {count} segment(s); the readers' segmentations "
                    "are unchanged. Predict under each reading to see whether the risk group changes.").format(
                    name=consensusNode.GetName(), count=len(self.workflow.segments))
                self._fillReaderPredictions(None)
        finally:
            self.update(self.parameterNode)

    def onPredictReadersButton(self) -> None:
        if self.runner.busy:
            self.runner.cancel()
            return
        if not ensurePredictionDependencies():
            return
        with slicer.util.tryWithErrorDisplay(_("The predictions cannot start."), waitCursor=True):
            run = self.logic.startReaderPredictions(self.parameterNode.parameterNode)
            self.runner.start(run, self, _("Extracting the features under each reading in a separate process..."),
                              _("Predictions under each reading done."), self._fillReaderPredictions)

    def _fillReaderPredictions(self, predictions) -> None:
        """Probability, score, risk group and risk group changes per reading; the weights' provenance below."""
        table = self.ui.readerPredictionsTable
        changes = predictions.risk_group_changes() if predictions is not None else {}
        yesNo = {True: _("yes"), False: _("no")}
        sideNames = {"a": _("A"), "b": _("B"), "consensus": _("consensus")}
        for column, side in enumerate(SIDES):
            prediction = getattr(predictions, side) if predictions is not None else None
            if prediction is None:
                texts = ("", "", "", "")
            else:
                differs = [_("vs {other}: {changed}").format(other=sideNames[other], changed=yesNo[changes[key]])
                           for other in SIDES for key in (f"{other}_vs_{side}",) if key in changes]
                texts = (f"{prediction.probability:.3f}", f"{prediction.score:+.3f}",
                         prediction.risk_group or _("none (no cut-off)"), ", ".join(differs))
            for row, text in enumerate(texts):
                item = qt.QTableWidgetItem(text)
                if row == 3 and any(changes.get(f"{other}_vs_{side}") for other in SIDES):
                    item.setForeground(qt.QBrush(qt.QColor("#c62828")))
                table.setItem(row, column, item)
        computed = predictions.computed() if predictions is not None else []
        lines = [computed[0][1].provenance] if computed else []
        if predictions is not None and predictions.note:
            lines.append(predictions.note)
        self.ui.readerProvenanceLabel.text = "\n".join(lines)
