"""Old-Slicer ``.seg.nrrd`` layouts and UTF-8 names: the core reads what Slicer's own reader reads.

The reference is Slicer's ``vtkMRMLSegmentationStorageNode`` (slicer-core) on files built
from the format in ``Testing/core/seg_nrrd_files.py``: for every segment the ID, name and
tags, and every voxel, compared as the set of voxel centres in patient coordinates (RAS,
mm), so a wrong component, label, crop or offset shows as different voxels. Then the other
way: names and terminology that Slicer itself writes reach the core, and the bridge says
where each segment's site came from.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, load_segmentation, load_volume
from seg_nrrd_files import overlapping_masks, slicer_45_file, slicer_410_file

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402
import vtk  # noqa: E402

from abcir.patient.lesions import load_lesions  # noqa: E402
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd  # noqa: E402
from abcir.patient.sites import SITES, TERMINOLOGY_TAG  # noqa: E402
from ABCImmunoResponseLib.lesion_table import lesionRows  # noqa: E402
from ABCImmunoResponseLib.segments import (ANATOMIC_CONTEXT, TERMINOLOGY_CONTEXT, segmentIds,  # noqa: E402
                                           segmentSite, segmentTag, setSegmentSite)
from ABCImmunoResponseLib.volumes import voxelArray  # noqa: E402

NAMES = ["foie (lésion 1)", "liver_2", "Lunge rechts"]


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])


def _sorted(points: np.ndarray) -> np.ndarray:
    points = np.round(points, 6)
    return points[np.lexsort(points.T[::-1])]


def slicer_voxels_ras(segmentation_node, segment_id: str) -> np.ndarray:
    """Centres (RAS, mm) of the voxels Slicer's segment holds."""
    labelmap = slicer.vtkOrientedImageData()
    assert segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    extent = labelmap.GetExtent()
    if any(extent[2 * axis] > extent[2 * axis + 1] for axis in range(3)):
        return np.empty((0, 3))
    ijk = np.argwhere(voxelArray(labelmap) != 0)[:, ::-1] + np.array(extent[::2])
    matrix = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(matrix)
    to_world = np.array([[matrix.GetElement(row, column) for column in range(4)] for row in range(4)])
    return _sorted((np.c_[ijk, np.ones(len(ijk))] @ to_world.T)[:, :3])


def core_voxels_ras(mask: sitk.Image) -> np.ndarray:
    """Centres (RAS, mm) of the voxels of a core mask (LPS image)."""
    ijk = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1]
    direction = np.array(mask.GetDirection()).reshape(3, 3)
    lps = np.array(mask.GetOrigin()) + (ijk * np.array(mask.GetSpacing())) @ direction.T
    return _sorted(lps * np.array([-1.0, -1.0, 1.0]))


def assert_same_as_slicer(standalone, path) -> None:
    node = load_segmentation(standalone.scene, path)
    ours = read_seg_nrrd(path)
    ids = segmentIds(node)
    assert [segment.segment_id for segment in ours] == ids
    for segment in ours:
        theirs = node.GetSegmentation().GetSegment(segment.segment_id)
        assert segment.name == theirs.GetName()
        for key, value in segment.tags.items():
            assert segmentTag(theirs, key) == value
        expected = slicer_voxels_ras(node, segment.segment_id)
        assert len(expected) > 0
        np.testing.assert_allclose(core_voxels_ras(segment.mask), expected, atol=1e-6, rtol=0)


def test_slicer_410_layout_matches_slicer(standalone, tmp_path):
    masks = overlapping_masks()
    path = slicer_410_file(tmp_path / "old.seg.nrrd", masks, NAMES, (10.0, -20.0, 5.0),
                           _rotation_z(-20) @ np.diag([0.8, 0.9, 2.5]), tags=[{SITE_TAG: "liver"}, {}, {}])
    assert_same_as_slicer(standalone, path)


def test_slicer_410_layout_in_ras_with_a_voxel_outside_the_extent_matches_slicer(standalone, tmp_path):
    masks = overlapping_masks()
    clean = slicer_410_file(tmp_path / "clean.seg.nrrd", masks, NAMES, (10.0, -20.0, 5.0),
                            np.diag([0.8, 0.9, 2.5]), space="right-anterior-superior")
    stray = [mask.copy() for mask in masks]
    stray[1][0, 11, 6] = True  # outside Segment1_Extent, which describes the clean mask
    voxels = slicer_410_file(tmp_path / "voxels.seg.nrrd", stray, NAMES, (10.0, -20.0, 5.0),
                             np.diag([0.8, 0.9, 2.5]), space="right-anterior-superior")
    path = tmp_path / "cropped.seg.nrrd"
    path.write_bytes(clean.read_bytes().split(b"\n\n", 1)[0] + b"\n\n" + voxels.read_bytes().split(b"\n\n", 1)[1])
    assert_same_as_slicer(standalone, path)


def test_slicer_45_layout_matches_slicer(standalone, tmp_path):
    masks = overlapping_masks()
    masks[2][13, 11, 6] = True  # Segment2_Extent covers it: Slicer keeps it
    path = slicer_45_file(tmp_path / "rt.seg.nrrd", masks, NAMES, (30.0, -12.0, 40.0),
                          _rotation_z(30) @ np.diag([0.8, 0.9, 2.5]), (3, -2, 4), tags=[{}, {SITE_TAG: "liver"}, {}])
    assert_same_as_slicer(standalone, path)


def test_utf8_names_written_by_the_core_are_read_by_slicer(standalone, tmp_path):
    masks = overlapping_masks()
    segments = []
    for index, (mask, name) in enumerate(zip(masks, NAMES, strict=True)):
        image = sitk.GetImageFromArray(np.transpose(mask, (2, 1, 0)).astype(np.uint8))
        image.SetSpacing((0.8, 0.9, 2.5))
        segments.append(Segment(f"s{index}", name, image, tags={SITE_TAG: "liver", "Note": "lésion à droite"}))
    path = write_seg_nrrd(tmp_path / "utf8.seg.nrrd", segments)  # overlapping: two layers
    assert_same_as_slicer(standalone, path)
    node = load_segmentation(standalone.scene, path, "UTF8")
    assert [node.GetSegmentation().GetSegment(i).GetName() for i in segmentIds(node)] == NAMES


@pytest.fixture
def small_case(standalone, tmp_path):
    """A small CT read by Slicer and a segmentation read by Slicer from a core file on the CT's grid."""
    rng = np.random.default_rng(1)
    ct = sitk.GetImageFromArray((40 + rng.normal(0, 10, (7, 12, 14))).astype(np.int16))
    ct.SetSpacing((0.8, 0.9, 2.5))
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    segments = []
    for index, mask in enumerate(overlapping_masks()):
        image = sitk.GetImageFromArray(np.transpose(mask, (2, 1, 0)).astype(np.uint8))
        image.CopyInformation(ct)
        segments.append(Segment(f"Segment_{index + 1}", f"Segment {index + 1}", image))
    path = write_seg_nrrd(tmp_path / "plain.seg.nrrd", segments)
    return {"ct": ct, "volume": load_volume(standalone.scene, tmp_path / "ct.nrrd"),
            "segmentation": load_segmentation(standalone.scene, path), "scene": standalone.scene}


def _set_terminology(segment, type_code: tuple[str, str, str], region: tuple[str, str, str] = ("", "", "")) -> None:
    """Slicer's own serialiser: (value, scheme, meaning) triples, as setSegmentSite passes them."""
    entry = slicer.vtkSlicerTerminologiesModuleLogic.SerializeTerminologyEntry(
        TERMINOLOGY_CONTEXT, "123037004", "SCT", "Anatomical Structure", *type_code, "24028007", "SCT", "Right",
        ANATOMIC_CONTEXT, *region, "", "", "")
    segment.SetTag(segment.GetTerminologyEntryTagName(), entry)


def test_the_bridge_and_the_core_take_the_site_from_slicer_terminology(small_case, tmp_path):
    segmentation = small_case["segmentation"]
    segments = segmentation.GetSegmentation()
    ids = segmentIds(segmentation)
    lung = segments.GetSegment(ids[0])
    lung.SetName("poumon droit (lésion)")
    _set_terminology(lung, ("39607008", "SCT", "Lung"))  # SNOMED CT, as Slicer 5 lists it
    liver = segments.GetSegment(ids[1])
    liver.SetName("Herd 2")
    _set_terminology(liver, ("4147007", "SCT", "Mass"), ("T-62000", "SRT", "Liver"))  # SNOMED RT, as Slicer 4.10
    segments.GetSegment(ids[2]).SetName("lymph node 3")
    rows = lesionRows(segmentation, small_case["volume"])
    assert [(row.name, row.site, row.siteSource, row.siteFromName) for row in rows] == [
        ("poumon droit (lésion)", "lung", "terminology", False), ("Herd 2", "liver", "terminology", False),
        ("lymph node 3", "lymph_node", "name", True)]
    # Slicer writes the names and entries; the core reads them and decides the same sites.
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(tmp_path / "slicer.seg.nrrd"))
    assert storage.WriteData(segmentation)
    ours = read_seg_nrrd(tmp_path / "slicer.seg.nrrd")
    assert [segment.name for segment in ours] == ["poumon droit (lésion)", "Herd 2", "lymph node 3"]
    assert ours[0].tags[TERMINOLOGY_TAG] == segmentTag(lung, lung.GetTerminologyEntryTagName())
    lesions = load_lesions([tmp_path / "slicer.seg.nrrd"], small_case["ct"])
    assert [(row.name, row.site, row.siteSource) for row in rows] == [
        (lesion.lesion_id, lesion.site, lesion.site_source) for lesion in lesions]


def test_the_terminology_set_segment_site_writes_gives_back_the_same_site(small_case):
    segmentation = small_case["segmentation"]
    segmentId = segmentIds(segmentation)[0]
    segment = segmentation.GetSegmentation().GetSegment(segmentId)
    segment.SetName("lesion")
    for key in SITES:
        setSegmentSite(segmentation, segmentId, key)
        assert (segmentSite(segment).site, segmentSite(segment).source) == (key, "tag")
        segment.RemoveTag(SITE_TAG)
        assert (segmentSite(segment).site, segmentSite(segment).source) == (key, "terminology")
