"""Our .seg.nrrd and Slicer's are the same format: each side reads what the other writes.

Segments, names, colours, the site tags and every voxel must survive in both
directions, including the 4D layout the core writes when segments overlap.
Slicer's side is its own storage node (vtkMRMLSegmentationStorageNode) on a
real scene; the core's side is abcir.segfile.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import (LESION_LABELS, SLICER_CORE_MISSING, label_mask, load_segmentation, load_volume,
                        whole_grid_mask)

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402

from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd  # noqa: E402
from abcir.patient.sites import SITES  # noqa: E402
from ABCImmunoResponseLib.segments import (segmentIds, segmentSite, segmentTag,  # noqa: E402
                                           setSegmentSite)


def test_slicer_reads_the_core_file_with_the_same_segments_tags_and_voxels(case_scene, real_ct):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    ids = segmentIds(segmentation)
    assert ids == [f"Segment_{value}" for value in LESION_LABELS]
    for segmentId, (value, (name, site)) in zip(ids, LESION_LABELS.items(), strict=True):
        segment = segmentation.GetSegmentation().GetSegment(segmentId)
        assert segment.GetName() == name
        assert segmentTag(segment, SITE_TAG) == site
        assert segment.GetColor() == pytest.approx(SITES[site].color, abs=1e-5)
        mask = sitk.GetArrayFromImage(whole_grid_mask(segmentation, segmentId, volume)).astype(bool)
        expected = label_mask(real_ct["labels"], value)
        assert mask.sum() == expected.sum() > 1000
        assert np.array_equal(mask, expected)


def test_overlapping_segments_travel_as_layers_and_slicer_keeps_both(standalone, real_ct, tmp_path):
    pancreas = sitk.Cast(real_ct["labels"] == 7, sitk.sitkUInt8)
    grown = sitk.BinaryDilate(pancreas, [3, 3, 1])  # overlaps the pancreas: needs a second layer
    path = write_seg_nrrd(tmp_path / "overlap.seg.nrrd", [
        Segment("a", "pancreas_1", pancreas, (1, 0, 0), {SITE_TAG: "other"}),
        Segment("b", "pancreas_grown", grown, (0, 1, 0), {SITE_TAG: "other"})])
    volume = load_volume(standalone.scene, real_ct["path"])
    segmentation = load_segmentation(standalone.scene, path)
    assert segmentation.GetSegmentation().GetNumberOfLayers() == 2
    for segmentId, original in (("a", pancreas), ("b", grown)):
        mask = sitk.GetArrayFromImage(whole_grid_mask(segmentation, segmentId, volume))
        assert np.array_equal(mask, sitk.GetArrayFromImage(original))


def test_core_reads_a_file_slicer_wrote_with_the_same_segments_tags_and_voxels(standalone, real_ct, tmp_path):
    scene = standalone.scene
    # A segmentation built on Slicer's side only: a label map read by Slicer, imported by its logic.
    labels = sitk.Mask(real_ct["labels"], sitk.Or(real_ct["labels"] == 7, real_ct["labels"] == 8))
    sitk.WriteImage(sitk.Cast(labels, sitk.sitkUInt8), str(tmp_path / "labels.nrrd"))
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "labels")
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(tmp_path / "labels.nrrd"))
    assert storage.ReadData(labelmap)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "FromSlicer")
    assert standalone.segmentationsLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    ids = segmentIds(segmentation)
    assert len(ids) == 2
    segmentation.GetSegmentation().GetSegment(ids[0]).SetName("pancreas_1")
    segmentation.GetSegmentation().GetSegment(ids[1]).SetName("adrenal_1")
    setSegmentSite(segmentation, ids[0], "other")
    setSegmentSite(segmentation, ids[1], "adrenal")
    written = slicer.vtkMRMLSegmentationStorageNode()
    written.SetFileName(str(tmp_path / "slicer.seg.nrrd"))
    assert written.WriteData(segmentation)

    segments = read_seg_nrrd(tmp_path / "slicer.seg.nrrd")
    assert [s.segment_id for s in segments] == ids
    assert [s.name for s in segments] == ["pancreas_1", "adrenal_1"]
    assert [s.tags[SITE_TAG] for s in segments] == ["other", "adrenal"]
    assert segments[1].color == pytest.approx(SITES["adrenal"].color, abs=1e-5)
    terminology = segments[1].tags["TerminologyEntry"]
    assert "SCT^23451007^Adrenal gland" in terminology and "SCT^14799000^Neoplasm, Secondary" in terminology
    for segment, value in zip(segments, (7, 8), strict=True):
        # Slicer writes the segments cropped to their extent; on the CT grid they are the original voxels.
        on_ct = sitk.Resample(segment.mask, real_ct["image"], sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        assert np.array_equal(sitk.GetArrayFromImage(on_ct).astype(bool), label_mask(real_ct["labels"], value))


def test_site_tag_survives_a_slicer_write_and_read(case_scene, tmp_path):
    segmentation = case_scene["segmentation"]
    first = segmentIds(segmentation)[0]
    setSegmentSite(segmentation, first, "liver")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(tmp_path / "again.seg.nrrd"))
    assert storage.WriteData(segmentation)
    again = load_segmentation(case_scene["scene"], tmp_path / "again.seg.nrrd", "Again")
    site = segmentSite(again.GetSegmentation().GetSegment(first))
    assert site.site == "liver" and not site.fromName
