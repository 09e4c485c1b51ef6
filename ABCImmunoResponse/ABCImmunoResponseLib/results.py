"""A prediction as a table node (one row per lesion, then the patient) and as short display lines.

The table carries units and descriptions per column, as Segment Statistics'
tables do, so a saved or exported CSV explains itself; every table repeats the
weights' provenance line, which says whether they are clinically validated.
Each prediction gets a new table node: an earlier result is never overwritten.
When the prediction was also computed under outline changes (issue 17), its
range and how often the risk group holds are in the ``outline_*`` columns (per
lesion: under that lesion's changes) and beside the probability.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import vtk

from .i18n import tr as _

if TYPE_CHECKING:
    from abcir.models.bundle import WeightBundle
    from abcir.prediction.result import Prediction
    from abcir.sensitivity.result import SensitivityResult

MM3_PER_ML = 1000.0
RESULT_ATTRIBUTE = "ABCImmunoResponse.Prediction"  # the table node attribute holding the result JSON
# The table node attribute naming the features table of the result (in Slicer's temporary folder, so only
# for predictions made since Slicer started; Save case copies it).
FEATURES_ATTRIBUTE = "ABCImmunoResponse.FeaturesFile"


@dataclass(frozen=True)
class Column:
    """One table column: a stable name (the CSV header), VTK array type, translated title, unit, description."""

    name: str
    arrayType: type
    title: str
    unit: str
    description: str


def resultColumns() -> tuple[Column, ...]:
    return (
        Column("row", vtk.vtkStringArray, _("Row"), "",
               _("'lesion' for a target lesion, 'patient' for the prediction")),
        Column("lesion", vtk.vtkStringArray, _("Lesion"), "", _("Segment name of the target lesion")),
        Column("site", vtk.vtkStringArray, _("Site"), "",
               _("Organ or site of the lesion (RECIST counts targets per site)")),
        Column("visceral", vtk.vtkStringArray, _("Visceral"), "", _("Whether the site is visceral")),
        Column("longest_axial_diameter_mm", vtk.vtkDoubleArray, _("Longest axial diameter"), "mm",
               _("Longest diameter on an axial slice, edge to edge (RECIST 1.1)")),
        Column("short_axis_mm", vtk.vtkDoubleArray, _("Short axis"), "mm",
               _("Short axis on an axial slice (RECIST 1.1 measures lymph nodes by it)")),
        Column("volume_ml", vtk.vtkDoubleArray, _("Volume"), "mL", _("Segmented volume on the CT grid")),
        Column("recist_findings", vtk.vtkStringArray, _("RECIST findings"), "",
               _("RECIST 1.1 rules the lesion does not meet")),
        Column("model", vtk.vtkStringArray, _("Model"), "", _("combined, radiomics or clinical")),
        Column("probability", vtk.vtkDoubleArray, _("Response probability"), "",
               _("Predicted probability of response (CR or PR by RECIST 1.1)")),
        Column("score", vtk.vtkDoubleArray, _("Score"), "log-odds",
               _("Model output; probability = 1 / (1 + exp(-score))")),
        Column("risk_group", vtk.vtkStringArray, _("Risk group"), "",
               _("high when the score is at or below the cut-off, else low")),
        Column("cutoff", vtk.vtkDoubleArray, _("Cut-off"), "log-odds",
               _("Risk cut-off on the score, from the weights")),
        Column("outline_changes", vtk.vtkDoubleArray, _("Outline changes"), "",
               _("How many changed outlines the prediction was computed again under (lesion: that lesion's; "
                 "empty: not computed)")),
        Column("outline_probability_low", vtk.vtkDoubleArray, _("Lowest probability under outline changes"), "",
               _("Lowest response probability under the outline changes; sensitivity to the outline, not a "
                 "confidence interval")),
        Column("outline_probability_high", vtk.vtkDoubleArray, _("Highest probability under outline changes"), "",
               _("Highest response probability under the outline changes")),
        Column("outline_same_risk_group", vtk.vtkDoubleArray, _("Same risk group"), "",
               _("How many of the outline changes keep the risk group")),
        Column("warnings", vtk.vtkStringArray, _("Warnings"), "", _("What limits this prediction")),
        Column("weights", vtk.vtkStringArray, _("Weights"), "",
               _("Which weights made the prediction, what they were trained on, and whether they are "
                 "clinically validated")),
    )


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _outlineCells(sensitivity: SensitivityResult | None, lesionId: str | None) -> list:
    """The ``outline_*`` cells of the patient (``lesionId`` None) or of one lesion; empty without a sensitivity."""
    if sensitivity is None:
        return [None] * 4
    if lesionId is None:
        return [sensitivity.n_perturbations, sensitivity.probability_low, sensitivity.probability_high,
                sensitivity.n_same_risk_group]
    influence = next((item for item in sensitivity.lesions if item.lesion_id == lesionId), None)
    if influence is None:
        return [None] * 4
    same = influence.n_perturbations - influence.flips if sensitivity.risk_group is not None else None
    return [influence.n_perturbations, influence.probability_low, influence.probability_high, same]


def _warnings(prediction: Prediction, sensitivity: SensitivityResult | None) -> tuple[str, ...]:
    """What limits the prediction: the outline warning first (it says the risk group itself is uncertain)."""
    outline = (sensitivity.warning,) if sensitivity is not None and sensitivity.warning else ()
    return (*outline, *prediction.warnings)


def _rows(prediction: Prediction, sensitivity: SensitivityResult | None) -> list[list]:
    findings: dict[str, list[str]] = {}
    for finding in prediction.recist:
        findings.setdefault(finding.lesion_id, []).append(finding.message)
    rows = []
    for lesion in prediction.lesions:
        rows.append(["lesion", lesion.lesion_id, lesion.site or "", lesion.visceral, lesion.longest_axial_diameter_mm,
                     lesion.short_axis_mm, lesion.volume_mm3 / MM3_PER_ML, " ".join(findings.get(lesion.lesion_id, [])),
                     None, None, None, None, None, *_outlineCells(sensitivity, lesion.lesion_id), None,
                     prediction.provenance if sensitivity is not None else None])  # beside the outline_* range
    rows.append(["patient", "", "", None, None, None, None, "", prediction.model, prediction.probability,
                 prediction.score, prediction.risk_group or "", prediction.cutoff, *_outlineCells(sensitivity, None),
                 " ".join(_warnings(prediction, sensitivity)), prediction.provenance])
    return rows


def fillResultTable(tableNode, prediction: Prediction, sensitivity: SensitivityResult | None = None) -> None:
    """Replace the table's content with the prediction and its outline sensitivity (columns with units and
    descriptions); the sensitivity's own attributes are ``sensitivity.storeSensitivity``'s."""
    import json

    columns = resultColumns()
    rows = _rows(prediction, sensitivity)
    wasModifying = tableNode.StartModify()
    table = tableNode.GetTable()
    table.Initialize()
    for column in columns:
        array = column.arrayType()
        array.SetName(column.name)
        array.SetNumberOfTuples(len(rows))
        table.AddColumn(array)
    for rowIndex, row in enumerate(rows):
        for columnIndex, (column, value) in enumerate(zip(columns, row, strict=True)):
            array = table.GetColumn(columnIndex)
            if column.arrayType is vtk.vtkDoubleArray:
                array.SetValue(rowIndex, float("nan") if value is None else float(value))
            else:
                array.SetValue(rowIndex, _cell(value))
    for column in columns:
        tableNode.SetColumnTitle(column.name, column.title)
        tableNode.SetColumnUnitLabel(column.name, column.unit)
        tableNode.SetColumnDescription(column.name, column.description)
    tableNode.SetAttribute(RESULT_ATTRIBUTE, json.dumps(prediction.to_dict()))
    table.Modified()
    tableNode.EndModify(wasModifying)


def addResultTable(scene, prediction: Prediction, caseName: str, sensitivity: SensitivityResult | None = None):
    """A new table node holding the prediction, named after the case; earlier tables stay as they are."""
    tableNode = scene.AddNewNodeByClass("vtkMRMLTableNode",
                                        scene.GenerateUniqueName(_("{case} response prediction").format(case=caseName)))
    fillResultTable(tableNode, prediction, sensitivity)
    return tableNode


@dataclass(frozen=True)
class ResultLines:
    """The prediction in a few lines, for the panel and the slice views' corner.

    ``sensitivity`` is the range under outline changes ("" when not computed);
    the outline warning, when the risk group flips too often, leads ``warnings``.
    """

    probability: str
    riskGroup: str
    sensitivity: str
    provenance: str
    warnings: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(line for line in (self.probability, self.riskGroup, self.sensitivity, self.provenance,
                                            *self.warnings) if line)


def sensitivityLine(sensitivity: SensitivityResult) -> str:
    """Translated: "Under 20 outline changes (...): probability 0.52-0.67; risk group low in 20 of 20. ..."."""
    line = _("Under {count} outline changes ({what}): probability {low:.2f}-{high:.2f}").format(
        count=sensitivity.n_perturbations, what=sensitivity.perturbations_described, low=sensitivity.probability_low,
        high=sensitivity.probability_high)
    if sensitivity.interval_90 is not None:
        line += _(", 90 % of them {low:.2f}-{high:.2f}").format(low=sensitivity.interval_90[0],
                                                                high=sensitivity.interval_90[1])
    if sensitivity.n_same_risk_group is not None:
        line += _("; risk group {group} in {same} of {count}").format(
            group=sensitivity.risk_group, same=sensitivity.n_same_risk_group, count=sensitivity.n_perturbations)
    return line + _(". A range under outline changes, not a confidence interval.")


def resultLines(prediction: Prediction, sensitivity: SensitivityResult | None = None) -> ResultLines:
    """Probability with model, score and risk group with the cut-off, the range under outline changes,
    provenance, warnings (the outline warning, naming the lesion that decides, is the core's, as the command
    line prints it)."""
    probability = _("Response probability {probability:.2f} ({model} model, score {score:+.2f})").format(
        probability=prediction.probability, model=prediction.model, score=prediction.score)
    if prediction.risk_group is None:
        risk = _("Risk group: none (the weights carry no cut-off)")
    elif prediction.risk_group == "high":
        risk = _("Risk group: HIGH (score {score:+.2f} <= cut-off {cutoff:+.2f})").format(
            score=prediction.score, cutoff=prediction.cutoff)
    else:
        risk = _("Risk group: low (score {score:+.2f} > cut-off {cutoff:+.2f})").format(
            score=prediction.score, cutoff=prediction.cutoff)
    return ResultLines(probability, risk, sensitivityLine(sensitivity) if sensitivity is not None else "",
                       prediction.provenance, _warnings(prediction, sensitivity))


def annotationText(prediction: Prediction, sensitivity: SensitivityResult | None = None) -> str:
    """Two short lines for the slice views: the probability and risk group, and whose weights (trained on what)
    made it and whether they are clinically validated."""
    if prediction.risk_group == "high":
        risk = _("high risk")
    elif prediction.risk_group == "low":
        risk = _("low risk")
    else:
        risk = _("no risk group")
    first = _("Response probability {probability:.2f} ({model}), {risk}").format(
        probability=prediction.probability, model=prediction.model, risk=risk)
    if sensitivity is not None:
        first += _(", {low:.2f}-{high:.2f} under outline changes").format(low=sensitivity.probability_low,
                                                                         high=sensitivity.probability_high)
        if sensitivity.unstable:
            first += _(": risk group depends on the outline")
    second = (_("Weights '{name}', trained on {trainedOn}: clinically validated")
              if prediction.weights.clinically_validated
              else _("Weights '{name}', trained on {trainedOn}: NOT clinically validated")).format(
        name=prediction.weights.name, trainedOn=prediction.weights.trained_on)
    return f"{first}\n{second}"


def bundleDescription(bundle: WeightBundle) -> str:
    """The weights in use, before any prediction: name, model, training data, hash, validation status."""
    manifest = bundle.manifest
    status = (_("clinically validated") if manifest.clinically_validated
              else _("NOT clinically validated: research use only, not for treatment decisions"))
    return _("'{name}' ({kind} model), trained on {trainedOn}; sha256 {sha256}; {status}.").format(
        name=manifest.name, kind=manifest.model, trainedOn=manifest.training_data.describe(),
        sha256=bundle.weights_sha256[:12], status=status)


def predictionFromJson(text: str):
    """A Prediction back from the JSON stored with the result (None for an empty text)."""
    import json

    from abcir.prediction.result import Prediction

    return Prediction.from_dict(json.loads(text), "Stored result") if text else None


def tableFiles(path: str | os.PathLike) -> tuple[Path, Path]:
    """The CSV and the schema file Slicer's table storage writes beside it (``x.csv`` -> ``x.schema.csv``)."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_name(path.name + ".csv")
    return path, path.with_name(f"{path.stem}.schema.csv")


def writeTableCsv(tableNode, path: str | os.PathLike) -> tuple[Path, Path]:
    """The table as Slicer writes it (CSV with units and descriptions in the schema); never overwrites either file."""
    import slicer

    from abcir.errors import InputError

    files = tableFiles(path)
    for existing in (file for file in files if file.exists()):
        raise InputError(_("'{path}' already exists; choose another name (it is not overwritten).").format(
            path=existing))
    storage = slicer.vtkMRMLTableStorageNode()  # not added to the scene: exporting changes nothing there
    storage.SetFileName(str(files[0]))
    if not storage.WriteData(tableNode):
        raise InputError(_("Slicer could not write '{path}'; check that the folder is writable.").format(
            path=files[0]))
    return files
