"""Segments of a segmentation node as target lesions: site, inclusion and mask on the CT grid.

Facts about a segment live where Slicer keeps them, so they survive saving the
``.seg.nrrd`` and the scene: the site in the tag ``abcir.imaging.segfile.SITE_TAG`` (the
tag the command line reads), whether the reader counts the segment as a target
in ``INCLUDE_TAG``, and the site again as the segment's terminology entry
(anatomic region with its SNOMED CT code), which DICOM SEG export carries. A
segment without a site tag takes its site from its name, else from the SNOMED code
of its terminology entry, by the command line's rule (``abcir.patient.sites.choose_site``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk
import vtk

import slicer
from abcir.errors import InputError
from abcir.patient.measurements import LesionSize, measure_lesion
from abcir.patient.sites import SITE_FROM_NAME, SITE_TAG, SITES, choose_site

from .i18n import tr as _
from .volumes import imageOnVolumeGrid, ijkToRasMatrix, voxelArray

if TYPE_CHECKING:
    from abcir.patient.lesions import Lesion

INCLUDE_TAG = "ABCImmunoResponse.Include"

# DICOM terminology of a target lesion: category "Morphologically Altered Structure",
# type "Neoplasm, Secondary" (SNOMED CT), from Slicer's DICOM master lists.
TERMINOLOGY_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
LESION_CATEGORY = ("49755003", "SCT", "Morphologically Altered Structure")
LESION_TYPE = ("14799000", "SCT", "Neoplasm, Secondary")


@dataclass(frozen=True)
class SegmentSite:
    """A segment's site key and where it came from (``abcir.patient.sites.SITE_SOURCES``); both None if unknown."""

    site: str | None
    source: str | None

    @property
    def fromName(self) -> bool:
        """The site is only a guess from the segment's name (no tag, no terminology entry gave it)."""
        return self.source == SITE_FROM_NAME


def segmentTag(segment, tag: str) -> str | None:
    """The value of a segment tag, or None when the segment does not have it."""
    value = vtk.mutable("")
    return str(value) if segment.GetTag(tag, value) else None


def segmentSite(segment) -> SegmentSite:
    """The site in the segment's tag; without one, from a name such as ``liver_1``, else from the SNOMED code
    of the segment's terminology entry (anatomic region or type), as the command line decides."""
    choice = choose_site(segment.GetName(), tag=segmentTag(segment, SITE_TAG),
                         terminology=segmentTag(segment, segment.GetTerminologyEntryTagName()))
    return SegmentSite(choice.site, choice.source)


def setSegmentSite(segmentationNode, segmentId: str, site: str) -> None:
    """Store the site in the tag and the terminology entry, and colour the segment as the site."""
    if site not in SITES:
        raise InputError(_("Site '{site}': not in the site list ({sites}); choose one from the list.").format(
            site=site, sites=", ".join(SITES)))
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
    entry = SITES[site]
    wasModifying = segmentationNode.StartModify()
    segment.SetTag(SITE_TAG, site)
    terminology = slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        TERMINOLOGY_CONTEXT, *LESION_CATEGORY, *LESION_TYPE, "", "", "",
        ANATOMIC_CONTEXT, entry.snomed_code, "SCT", entry.snomed_meaning, "", "", "")
    segment.SetTag(segment.GetTerminologyEntryTagName(), terminology)
    segment.SetColor(*entry.color)
    segmentationNode.EndModify(wasModifying)


def isSegmentIncluded(segment) -> bool:
    """Whether the reader counts the segment as a target lesion (yes unless unticked)."""
    return segmentTag(segment, INCLUDE_TAG) != "0"


def setSegmentIncluded(segmentationNode, segmentId: str, included: bool) -> None:
    segmentationNode.GetSegmentation().GetSegment(segmentId).SetTag(INCLUDE_TAG, "1" if included else "0")


def segmentIds(segmentationNode) -> list[str]:
    """Segment IDs in the segmentation's order (the lesion table's order)."""
    segmentation = segmentationNode.GetSegmentation()
    return [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]


def segmentIdByName(segmentationNode, name: str | None) -> str | None:
    """The id of the segment called ``name`` (the core's lesion id), or None."""
    if name is None:
        return None
    segmentation = segmentationNode.GetSegmentation()
    for segmentId in segmentIds(segmentationNode):
        if segmentation.GetSegment(segmentId).GetName() == name:
            return segmentId
    return None


def _lesionExtentOnVolume(labelmap, transform, reference) -> list[int] | None:
    """The reference's voxels (IJK extent) that can hold the segment, or None when none can.

    Resampling only these is what makes a mask cheap: a segment is a few thousand
    voxels, the CT grid up to 80 million, and resampling all of it took most of the
    time Slicer waits when Predict is pressed. The box is the segment's non-zero
    extent carried into the CT's voxels by Slicer's own corner mapping, one voxel
    wider on each side; exact for a linear transform, so a non-linear one gets the
    whole grid (Slicer's ``TransformExtent`` may miss voxels there).
    """
    resample = slicer.vtkOrientedImageDataResample
    effective = [0, -1, 0, -1, 0, -1]
    if not resample.CalculateEffectiveExtent(labelmap, effective):
        return None  # an empty segment
    whole = list(reference.GetExtent())
    if transform is not None and not slicer.vtkMRMLTransformNode.IsGeneralTransformLinear(transform):
        return whole
    labelmapToReference = vtk.vtkGeneralTransform()
    labelmapToReference.PostMultiply()
    labelmapToWorld, worldToReference = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(labelmapToWorld)
    reference.GetWorldToImageMatrix(worldToReference)
    labelmapToReference.Concatenate(labelmapToWorld)
    if transform is not None:
        labelmapToReference.Concatenate(transform)
    labelmapToReference.Concatenate(worldToReference)
    box = [0, -1, 0, -1, 0, -1]
    resample.TransformExtent(effective, labelmapToReference, box)
    box = [max(whole[2 * axis], box[2 * axis] - 1) if side == 0 else min(whole[2 * axis + 1], box[2 * axis + 1] + 1)
           for axis in range(3) for side in (0, 1)]
    return box if all(box[2 * axis] <= box[2 * axis + 1] for axis in range(3)) else None


def segmentOnVolumeGrid(segmentationNode, segmentId: str, volumeNode):
    """What resampling a segment onto the volume's grid takes: the segment's binary labelmap (0/1), the
    volume's whole grid as a reference image, and the transform between the two nodes (None without one).

    Returns
    -------
    tuple
        (slicer.vtkOrientedImageData, slicer.vtkOrientedImageData, vtk.vtkGeneralTransform or None).
    """
    if not segmentationNode.GetSegmentation().ContainsRepresentation(
            slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()):
        segmentationNode.CreateBinaryLabelmapRepresentation()
    labelmap = slicer.vtkOrientedImageData()
    if not segmentationNode.GetBinaryLabelmapRepresentation(segmentId, labelmap):
        raise InputError(_("Segment '{segment}': it has no binary labelmap; draw it in the Segment Editor.").format(
            segment=segmentId))
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volumeNode.GetImageData().GetExtent())
    reference.SetImageToWorldMatrix(ijkToRasMatrix(volumeNode))
    transform = None
    if segmentationNode.GetParentTransformNode() or volumeNode.GetParentTransformNode():
        transform = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(
            segmentationNode.GetParentTransformNode(), volumeNode.GetParentTransformNode(), transform)
    return labelmap, reference, transform


def _resampledAroundSegment(segmentationNode, segmentId: str, volumeNode
                            ) -> tuple[np.ndarray, list[int]] | None:
    """The segment's 0/1 voxels (z, y, x) on the volume's grid around it and their first index (i, j, k) in the
    volume's array; None for a segment on no voxel of the volume."""
    labelmap, reference, transform = segmentOnVolumeGrid(segmentationNode, segmentId, volumeNode)
    whole = list(reference.GetExtent())
    box = _lesionExtentOnVolume(labelmap, transform, reference)
    if box is None:
        return None
    reference.SetExtent(box)
    resampled = slicer.vtkOrientedImageData()
    if not slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
            labelmap, reference, resampled, False, False, transform):
        raise InputError(_("Segment '{segment}': it could not be resampled onto the CT's grid.").format(
            segment=segmentId))
    return (voxelArray(resampled) != 0).view(np.uint8), [box[2 * axis] - whole[2 * axis] for axis in range(3)]


def _segmentCropAndIndex(segmentationNode, segmentId: str, volumeNode) -> tuple[sitk.Image, list[int]]:
    """``segmentCrop`` and the (i, j, k) index of its first voxel on the volume's grid."""
    resampled = _resampledAroundSegment(segmentationNode, segmentId, volumeNode)
    if resampled is None:
        return imageOnVolumeGrid(np.zeros((1, 1, 1), dtype=np.uint8), volumeNode), [0, 0, 0]
    voxels, firstIndex = resampled
    return imageOnVolumeGrid(voxels, volumeNode, firstIndex), firstIndex


def segmentCrop(segmentationNode, segmentId: str, volumeNode) -> sitk.Image:
    """The segment as a uint8 0/1 mask on the volume's voxel grid (LPS), cropped to the voxels around it.

    A transform between the segmentation and the volume (e.g. after registration)
    is applied, so the mask covers the voxels the reader drew on. Only the voxels
    around the segment are resampled (``_lesionExtentOnVolume``); the rest of the
    grid would be 0. The crop lies on the CT's grid, so ``align_to_ct`` puts it on
    the whole grid voxel for voxel, as the child process does with a job's masks.
    A mask the size of the CT, zeroed and copied for each segment, was most of
    what remained of the wait when Predict is pressed (``bench_panel_predict.py``).
    A segment on no voxel of the volume gives one voxel of 0.
    """
    return _segmentCropAndIndex(segmentationNode, segmentId, volumeNode)[0]


def segmentSize(segmentationNode, segmentId: str, volumeNode) -> LesionSize:
    """The segment's RECIST size on the volume's grid: what the core measures on the whole grid, to the bit.

    Measured on ``segmentCrop`` placed by its first voxel's index (``measure_lesion``),
    so the lesion table, rebuilt on every edit, never makes a mask the CT's size.
    """
    crop, firstIndex = _segmentCropAndIndex(segmentationNode, segmentId, volumeNode)
    return measure_lesion(crop, first_index=firstIndex)


@dataclass(frozen=True)
class LesionInput:
    """One included segment, copied out of the scene: what a worker thread may use."""

    segmentId: str
    name: str
    site: str | None
    mask: sitk.Image


def lesionInputs(segmentationNode, volumeNode) -> list[LesionInput]:
    """Masks of the included segments on the CT grid, each cropped to it, in table order (main thread: reads the
    scene)."""
    segmentation = segmentationNode.GetSegmentation()
    inputs = []
    for segmentId in segmentIds(segmentationNode):
        segment = segmentation.GetSegment(segmentId)
        if isSegmentIncluded(segment):
            inputs.append(LesionInput(segmentId, segment.GetName(), segmentSite(segment).site,
                                      segmentCrop(segmentationNode, segmentId, volumeNode)))
    if not inputs:
        raise InputError(_("Segmentation '{name}': no target lesion is ticked in the lesion table; segment the target "
                           "lesions and tick them.").format(name=segmentationNode.GetName()))
    return inputs


def lesionFromInput(lesionInput: LesionInput, ct: sitk.Image) -> Lesion:
    """The core's lesion (mask checked on the CT grid, RECIST size measured) from a copied segment."""
    # Imported here: abcir.patient.lesions needs packages that are only checked when Predict is pressed.
    from abcir.patient.lesions import Lesion, align_to_ct

    aligned = align_to_ct(lesionInput.name, lesionInput.mask, ct)
    return Lesion(lesionInput.name, lesionInput.site, aligned, measure_lesion(aligned))


def centreSliceViewsOnSegment(scene, segmentationNode, segmentId: str) -> tuple[float, float, float]:
    """Centre every slice view on the segment (its centre in RAS, transforms applied); returns that point."""
    center = segmentationNode.GetSegmentCenterRAS(segmentId)
    if center is None:
        raise InputError(_("Segment '{segment}': it is empty; there is nothing to centre the views on.").format(
            segment=segmentId))
    slicer.vtkMRMLSliceNode.JumpAllSlices(scene, *center, slicer.vtkMRMLSliceNode.CenteredJumpSlice)
    return tuple(center)
