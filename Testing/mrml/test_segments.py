"""Scene nodes to core inputs: CT voxels and geometry, segment masks on the CT grid, sites and ticks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import LESION_LABELS, SLICER_CORE_MISSING, label_mask, load_volume, whole_grid_mask

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402
import vtk  # noqa: E402

from abcir.errors import InputError  # noqa: E402
from abcir.patient.lesions import align_to_ct  # noqa: E402
from ABCImmunoResponseLib.case import dicomIdentity  # noqa: E402
from ABCImmunoResponseLib.segments import (isSegmentIncluded, lesionInputs, segmentIds,  # noqa: E402
                                           segmentSite, setSegmentIncluded)
from ABCImmunoResponseLib.volumes import imageFromVolumeNode  # noqa: E402


def assert_same_image(actual: sitk.Image, expected: sitk.Image) -> None:
    assert actual.GetSize() == expected.GetSize()
    assert actual.GetSpacing() == pytest.approx(expected.GetSpacing(), abs=1e-6)
    assert actual.GetOrigin() == pytest.approx(expected.GetOrigin(), abs=1e-4)
    assert actual.GetDirection() == pytest.approx(expected.GetDirection(), abs=1e-6)
    assert np.array_equal(sitk.GetArrayViewFromImage(actual), sitk.GetArrayViewFromImage(expected))


def test_ct_volume_node_becomes_the_same_image_the_core_reads(case_scene, real_ct):
    image = imageFromVolumeNode(case_scene["volume"])
    assert_same_image(image, real_ct["image"])
    assert image.GetPixelID() == real_ct["image"].GetPixelID()


def test_flipped_axes_keep_every_voxel_at_its_lps_position(standalone, real_ct):
    # The label map file has its y axis flipped (a left-handed grid). Slicer reads it into RAS and makes the
    # grid right-handed by reversing the slice axis; every voxel must still be where the file puts it.
    volume = load_volume(standalone.scene, real_ct["labels_file"], "labels")
    expected = sitk.ReadImage(str(real_ct["labels_file"]))
    assert expected.GetDirection()[4] == -1
    image = imageFromVolumeNode(volume)
    assert image.GetDirection() != pytest.approx(expected.GetDirection())  # another grid ...
    # ... holding the same voxels at the same physical points (-1 would mark a point outside our image).
    on_file_grid = sitk.Resample(image, expected, sitk.Transform(), sitk.sitkNearestNeighbor, -1)
    assert np.array_equal(sitk.GetArrayViewFromImage(on_file_grid), sitk.GetArrayViewFromImage(expected))


def test_a_volume_without_voxels_is_refused_by_name(standalone):
    node = standalone.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Empty CT")
    with pytest.raises(InputError, match="CT volume 'Empty CT': no voxel data"):
        imageFromVolumeNode(node)


def test_segment_masks_follow_a_transform_between_segmentation_and_ct(case_scene, real_ct):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    transform = case_scene["scene"].AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(2, 3, 2.0)  # 2 mm superior: one CT slice
    transform.SetMatrixTransformToParent(matrix)
    segmentation.SetAndObserveTransformNodeID(transform.GetID())
    moved = sitk.GetArrayFromImage(whole_grid_mask(segmentation, "Segment_8", volume)).astype(bool)
    original = label_mask(real_ct["labels"], 8)
    # The CT's slice axis runs superior (direction +z), so the lesion moves up by one slice index.
    assert np.array_equal(moved[1:], original[:-1])
    assert moved.sum() == original[:-1].sum()


def test_site_comes_from_the_tag_else_from_the_name(case_scene):
    segmentation = case_scene["segmentation"].GetSegmentation()
    tagged = segmentSite(segmentation.GetSegment("Segment_8"))
    assert (tagged.site, tagged.fromName) == ("adrenal", False)
    segment = segmentation.GetSegment("Segment_20")
    segment.RemoveTag("ABCImmunoResponse.Site")
    segment.SetName("Liver 2")
    assert (segmentSite(segment).site, segmentSite(segment).fromName) == ("liver", True)
    segment.SetName("blob")
    assert segmentSite(segment).site is None


def test_only_ticked_segments_become_lesion_inputs_in_table_order(case_scene, real_ct):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    assert all(isSegmentIncluded(segmentation.GetSegmentation().GetSegment(i)) for i in segmentIds(segmentation))
    setSegmentIncluded(segmentation, "Segment_20", False)
    inputs = lesionInputs(segmentation, volume)
    assert [(i.name, i.site) for i in inputs] == [LESION_LABELS[7], LESION_LABELS[8]]
    on_ct = align_to_ct(inputs[1].name, inputs[1].mask, real_ct["image"])  # each leaves the scene cropped to it
    assert np.array_equal(sitk.GetArrayFromImage(on_ct).astype(bool), label_mask(real_ct["labels"], 8))
    for segmentId in segmentIds(segmentation):
        setSegmentIncluded(segmentation, segmentId, False)
    with pytest.raises(InputError, match="no target lesion is ticked"):
        lesionInputs(segmentation, volume)


def test_dicom_uids_come_from_the_subject_hierarchy(case_scene):
    scene, volume = case_scene["scene"], case_scene["volume"]
    logic = slicer.vtkSlicerSubjectHierarchyModuleLogic()
    logic.SetMRMLScene(scene)
    hierarchy = scene.GetSubjectHierarchyNode()
    assert dicomIdentity(volume) == ("", "")
    study = hierarchy.CreateStudyItem(hierarchy.GetSceneItemID(), "Study")
    hierarchy.SetItemUID(study, "DICOM", "1.2.3.4")
    series = hierarchy.GetItemByDataNode(volume) or hierarchy.CreateItem(study, volume)
    hierarchy.SetItemParent(series, study)
    hierarchy.SetItemUID(series, "DICOM", "1.2.3.4.5")
    assert dicomIdentity(volume) == ("1.2.3.4", "1.2.3.4.5")


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (-1, 0, 0, 0, -1, 0, 0, 0, 1), (0, 1, 0, 1, 0, 0, 0, 0, -1)])
def test_a_job_s_lesion_files_are_crops_the_child_puts_back_voxel_for_voxel(tmp_path, direction):
    """Masks on the CT grid go to the child cropped to the lesion; the child's ``align_to_ct`` restores them."""
    from ABCImmunoResponseLib.case import jobLesions

    ct = sitk.Image(120, 100, 40, sitk.sitkInt16)
    ct.SetSpacing((0.7, 0.8, 1.25))
    ct.SetOrigin((-41.3, 17.9, -302.6))
    ct.SetDirection(direction)
    masks = []
    for box in ((slice(3, 9), slice(40, 61), slice(7, 30)), (slice(0, 40), slice(0, 1), slice(119, 120))):
        array = np.zeros((40, 100, 120), dtype=np.uint8)
        array[box] = 1
        array[box[0].start, box[1].start, box[2].start] = 0  # not a plain box
        mask = sitk.GetImageFromArray(array)
        mask.CopyInformation(ct)
        masks.append(mask)
    masks.append(sitk.Image(120, 100, 40, sitk.sitkUInt8))  # empty: written whole, the child names it
    masks[-1].CopyInformation(ct)
    lesions = jobLesions(tmp_path, "lesion", [(f"lésion {index}", "liver", mask) for index, mask in enumerate(masks)])
    written = [sitk.ReadImage(str(tmp_path / lesion.mask)) for lesion in lesions]
    assert [image.GetSize() for image in written] == [(23, 21, 6), (1, 1, 39), (120, 100, 40)]
    for image, mask in zip(written[:2], masks):
        restored = align_to_ct("lesion", image, ct)
        assert_same_image(restored, mask)
