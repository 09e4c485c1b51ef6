"""The lesion table's content: one row per segment with its site, RECIST size and RECIST findings.

Sizes are measured as the prediction will measure them (the core's
``measure_lesion`` on the CT grid), and the RECIST 1.1 findings are the core's
``validate_targets`` over the ticked segments in table order, so what the reader
sees in the table is what Predict will check.
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer
from abcir.patient.measurements import LesionSize
from abcir.patient.recist import Finding, SizedTarget, validate_targets
from abcir.patient.sites import SITE_FROM_NAME, SITES

from .segments import isSegmentIncluded, segmentIds, segmentSite, segmentSize
from .volumes import requireVoxelsOnGrid

MM3_PER_ML = 1000.0
EMPTY_RULE = "empty"
DUPLICATE_RULE = "duplicate_name"


@dataclass(frozen=True)
class LesionRow(SizedTarget):
    """One segment as a candidate target lesion."""

    segmentId: str
    name: str
    site: str | None
    siteSource: str | None  # where the site came from (abcir.patient.sites.SITE_SOURCES); None without a site
    included: bool
    size: LesionSize
    findings: tuple[Finding, ...]

    @property
    def lesion_id(self) -> str:
        """The segment's name, which the RECIST rules cite."""
        return self.name

    @property
    def siteFromName(self) -> bool:
        """The site is a guess from the name; no site tag or terminology entry gave it."""
        return self.siteSource == SITE_FROM_NAME

    @property
    def isLymphNode(self) -> bool:
        return self.site in SITES and SITES[self.site].lymph_node

    @property
    def volumeMl(self) -> float:
        return self.size.volume_mm3 / MM3_PER_ML

    @property
    def blocking(self) -> bool:
        """A ticked row with an error finding stops Predict."""
        return self.included and any(finding.severity == "error" for finding in self.findings)


class SizeCache:
    """RECIST sizes by segment, reused while the segment's voxels, the CT grid and the transforms are unchanged.

    The panel refreshes the table on every edit; measuring every segment again
    each time would make drawing sluggish with large lesions.
    """

    def __init__(self) -> None:
        self._sizes: dict[tuple, LesionSize] = {}

    @staticmethod
    def _key(segmentationNode, segmentId: str, volumeNode) -> tuple:
        segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
        labelmap = segment.GetRepresentation(
            slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName())
        transforms = tuple(node.GetParentTransformNode().GetMTime() if node.GetParentTransformNode() else 0
                           for node in (segmentationNode, volumeNode))
        return (segmentationNode.GetID(), segmentId, segment.GetLabelValue(),
                labelmap.GetMTime() if labelmap is not None else 0, volumeNode.GetID(),
                volumeNode.GetImageData().GetMTime(), transforms)

    def size(self, segmentationNode, segmentId: str, volumeNode) -> LesionSize:
        key = self._key(segmentationNode, segmentId, volumeNode)
        if key not in self._sizes:
            self._sizes = {old: size for old, size in self._sizes.items() if old[:2] != key[:2]}
            self._sizes[key] = segmentSize(segmentationNode, segmentId, volumeNode)
        return self._sizes[key]


def lesionRows(segmentationNode, volumeNode, sizes: SizeCache | None = None) -> list[LesionRow]:
    """Every segment of the segmentation, measured on the CT grid, with its RECIST findings.

    Raises ``InputError`` when the CT is under a non-linear transform (``requireVoxelsOnGrid``): sizes measured
    on its grid would be wrong, and the table says so instead.
    """
    requireVoxelsOnGrid(volumeNode)
    sizes = sizes or SizeCache()
    segmentation = segmentationNode.GetSegmentation()
    measured = []
    for segmentId in segmentIds(segmentationNode):
        segment = segmentation.GetSegment(segmentId)
        site = segmentSite(segment)
        size = sizes.size(segmentationNode, segmentId, volumeNode)
        measured.append(LesionRow(segmentId, segment.GetName(), site.site, site.source,
                                  isSegmentIncluded(segment), size, ()))
    return _withFindings(measured)


def _withFindings(rows: list[LesionRow]) -> list[LesionRow]:
    ticked = [row for row in rows if row.included]
    names = [row.name for row in ticked]
    extra: dict[str, list[Finding]] = {}
    for row in ticked:
        if names.count(row.name) > 1:
            extra.setdefault(row.segmentId, []).append(Finding(
                row.name, "error", DUPLICATE_RULE,
                f"Lesion '{row.name}': {names.count(row.name)} ticked segments have this name; rename one so "
                "each lesion can be told apart in the results."))
        if row.size.voxel_count == 0:
            extra.setdefault(row.segmentId, []).append(Finding(
                row.name, "error", EMPTY_RULE,
                f"Lesion '{row.name}': the segment is empty; draw the lesion in the Segment Editor or untick it."))
    drawn = [row for row in ticked if row.size.voxel_count > 0]
    recist = validate_targets(drawn)
    result = []
    for row in rows:
        findings = list(extra.get(row.segmentId, []))
        if row.included and row.size.voxel_count > 0:
            findings += [finding for finding in recist if finding.lesion_id == row.name]
        result.append(LesionRow(row.segmentId, row.name, row.site, row.siteSource, row.included, row.size,
                                tuple(findings)))
    return result


@dataclass(frozen=True)
class ClinicalPrefill:
    """Clinical facts the ticked lesions imply, in ``abcir.patient.clinical_facts`` words; None where they imply nothing.

    Only the targets are in the table, so "yes" / "3+" are certain while "no" /
    "1-2" hold only if no other (non-target) metastasis says otherwise: the
    reader confirms them.
    """

    visceral: str | None
    metastaticSites: str | None


def clinicalPrefill(rows: list[LesionRow]) -> ClinicalPrefill:
    """Visceral metastasis and site count (1-2 / 3+) from the ticked rows with a known site."""
    sites = {row.site for row in rows if row.included and row.site in SITES}
    if not sites:
        return ClinicalPrefill(None, None)
    visceral = "yes" if any(SITES[site].visceral for site in sites) else "no"
    return ClinicalPrefill(visceral, "3+" if len(sites) >= 3 else "1-2")


def segmentationChangeEvents() -> tuple[int, ...]:
    """The segmentation node events after which the lesion table must be rebuilt.

    Painting or erasing in the Segment Editor changes only the source
    representation (``SourceRepresentationModified``); adding, removing,
    renaming, re-ordering and tagging segments fire the others.
    """
    segmentation = slicer.vtkSegmentation
    return (segmentation.SegmentAdded, segmentation.SegmentRemoved, segmentation.SegmentModified,
            segmentation.SourceRepresentationModified, segmentation.RepresentationModified,
            segmentation.SegmentsOrderModified)
