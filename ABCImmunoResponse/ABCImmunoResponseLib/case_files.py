"""Save case: the segmentation, the result, the features and the lesion table, into one folder.

All files of a case share one base name. If any of them already exists in the
folder, the whole set gets the next free numbered name (``case_2``), so files
of different saves are never mixed and nothing is overwritten; the caller is
told the name that was used.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from abcir.errors import InputError

from .i18n import tr as _
from .lesion_table import LesionRow

if TYPE_CHECKING:
    from abcir.prediction.result import Prediction

SEGMENTATION_SUFFIX = ".seg.nrrd"
RESULT_SUFFIX = ".result.json"
FEATURES_SUFFIX = ".features.csv"
FEATURES_PROVENANCE_SUFFIX = ".features.provenance.json"  # abcir.features.table.provenance_path of the CSV
LESIONS_SUFFIX = ".lesions.csv"
CASE_SUFFIXES = (SEGMENTATION_SUFFIX, RESULT_SUFFIX, FEATURES_SUFFIX, FEATURES_PROVENANCE_SUFFIX, LESIONS_SUFFIX)
LESION_TABLE_COLUMNS = ("segment_id", "lesion", "site", "site_from_name", "visceral", "included",
                        "longest_axial_diameter_mm", "short_axis_mm", "volume_ml", "findings")


@dataclass(frozen=True)
class SavedCase:
    """What was written: the base name used, whether it differs from the one asked for, the files."""

    baseName: str
    renamed: bool
    files: tuple[Path, ...]


def safeFileName(name: str) -> str:
    """A node name as a file name on every system (no path separators or reserved characters)."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]+', "_", name).strip(" .")
    return cleaned or "case"


def freeBaseName(folder: Path, baseName: str) -> str:
    """``baseName``, or ``baseName_2``, ``_3``, ... : the first for which no file of the case exists."""
    candidate, number = baseName, 1
    while any((folder / f"{candidate}{suffix}").exists() for suffix in CASE_SUFFIXES):
        number += 1
        candidate = f"{baseName}_{number}"
    return candidate


def writeLesionTable(path: Path, rows: Sequence[LesionRow]) -> Path:
    """The panel's lesion table as CSV: every segment, ticked or not, with sizes and RECIST findings."""
    with open(path, "x", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LESION_TABLE_COLUMNS)
        for row in rows:
            writer.writerow([row.segmentId, row.name, row.site or "", int(row.siteFromName),
                             "" if row.visceral is None else int(row.visceral), int(row.included),
                             repr(row.longest_axial_diameter_mm), repr(row.short_axis_mm), repr(row.volumeMl),
                             " ".join(finding.message for finding in row.findings)])
    return path


def binaryLabelmapCopy(segmentationNode):
    """A segmentation node outside the scene holding a deep copy of ``segmentationNode`` with a binary labelmap
    as its source representation, so that Slicer writes it as a ``.seg.nrrd``.

    Slicer's storage node writes the source representation, whatever the file name says: a closed surface or a
    planar contour (RTSTRUCT read by SlicerRT, segments imported from models) would become an XML ``.vtm`` under
    the ``.seg.nrrd`` name that neither Slicer's NRRD reader nor the core reads. The conversion runs on the copy,
    with the segmentation's own conversion parameters (its reference image geometry), as Slicer converts for
    display; the scene's node keeps its source representation. Raises ``InputError`` if no conversion exists.
    """
    import slicer

    labelmap = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    copy = slicer.vtkMRMLSegmentationNode()
    copy.SetName(segmentationNode.GetName())
    segmentation = copy.GetSegmentation()
    segmentation.DeepCopy(segmentationNode.GetSegmentation())
    source = segmentation.GetSourceRepresentationName()
    if source != labelmap:
        if not segmentation.CreateRepresentation(labelmap):
            raise InputError(_("Segmentation '{name}': its source representation '{source}' cannot be converted "
                               "to a binary labelmap here, so it cannot be saved as .seg.nrrd. Create the binary "
                               "labelmap representation in the Segmentations module (planar contours need the "
                               "SlicerRT extension) and save the case again.").format(
                name=segmentationNode.GetName(), source=source))
        segmentation.SetSourceRepresentationName(labelmap)
    return copy


def writeSegmentation(path: Path, segmentationNode) -> Path:
    """The segmentation as Slicer writes it (tags and terminology included), always a labelmap ``.seg.nrrd``.

    A copy is written, never the scene's node: besides the conversion in ``binaryLabelmapCopy``, Slicer's
    labelmap writer merges the layers of the node it writes (``CollapseBinaryLabelmaps``), which would change the
    user's segmentation in the scene.
    """
    import slicer

    copy = binaryLabelmapCopy(segmentationNode)
    temporary = path.with_name(f".tmp-{path.name}")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(temporary))
    try:
        if not storage.WriteData(copy):
            raise InputError(_("Segmentation '{name}': Slicer could not write it to '{path}'.").format(
                name=segmentationNode.GetName(), path=path))
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return path


def copyNew(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target``, which must not exist (never overwritten, even if made meanwhile)."""
    with open(source, "rb") as reading, open(target, "xb") as writing:
        shutil.copyfileobj(reading, writing)
    return target


def saveCase(folder: str | os.PathLike, caseName: str, segmentationNode, prediction: Prediction | None,
             featuresFile: str | os.PathLike | None, lesionRows: Sequence[LesionRow]) -> SavedCase:
    """Write the case's files to ``folder`` (created if needed) under a base name no file there uses yet.

    ``featuresFile`` is the prediction's features table (``abcir.features.table``
    CSV with its provenance sidecar beside it), copied as it is.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = safeFileName(caseName)
    base = freeBaseName(folder, wanted)
    written = []
    if segmentationNode is not None:
        written.append(writeSegmentation(folder / f"{base}{SEGMENTATION_SUFFIX}", segmentationNode))
    if prediction is not None:
        path = folder / f"{base}{RESULT_SUFFIX}"
        with open(path, "x", encoding="utf-8") as handle:
            json.dump(prediction.to_dict(), handle, indent=2, ensure_ascii=False)
        written.append(path)
    if featuresFile:
        from abcir.features.table import provenance_path

        source = Path(featuresFile)
        written += [copyNew(source, folder / f"{base}{FEATURES_SUFFIX}"),
                    copyNew(provenance_path(source), folder / f"{base}{FEATURES_PROVENANCE_SUFFIX}")]
    if lesionRows:
        written.append(writeLesionTable(folder / f"{base}{LESIONS_SUFFIX}", lesionRows))
    if not written:
        raise InputError(_("Save case: nothing to save yet; select a segmentation or run Predict first."))
    return SavedCase(base, base != wanted, tuple(written))
