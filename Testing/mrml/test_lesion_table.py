"""The lesion table: sizes as the core measures them, RECIST findings per row, clinical pre-fill."""

from __future__ import annotations

from dataclasses import astuple

import pytest
import SimpleITK as sitk
from mrml_scene import LESION_LABELS, SLICER_CORE_MISSING

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.patient.measurements import measure_lesion  # noqa: E402
from ABCImmunoResponseLib.lesion_table import clinicalPrefill, lesionRows  # noqa: E402
from ABCImmunoResponseLib.segments import setSegmentIncluded, setSegmentSite  # noqa: E402


def test_rows_measure_each_segment_on_the_ct_grid_as_the_core_does(case_scene, real_ct):
    rows = lesionRows(case_scene["segmentation"], case_scene["volume"])
    assert [(row.name, row.site) for row in rows] == list(LESION_LABELS.values())
    for row, value in zip(rows, LESION_LABELS, strict=True):
        expected = measure_lesion(sitk.Cast(real_ct["labels"] == value, sitk.sitkUInt8))
        assert row.size.voxel_count == expected.voxel_count
        # Same grid up to the last bit of the spacing (DICOM -> NRRD -> Slicer carries it in decimal text).
        assert astuple(row.size) == pytest.approx(astuple(expected), rel=1e-12)
        assert row.volumeMl == pytest.approx(expected.volume_mm3 / 1000)
    assert [row.visceral for row in rows] == [False, True, True]  # other, adrenal, peritoneum
    assert not any(row.blocking for row in rows)


def test_third_lesion_in_one_organ_is_flagged_on_its_own_row_and_unticking_clears_it(case_scene):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    for segmentId in ("Segment_7", "Segment_8", "Segment_20"):
        setSegmentSite(segmentation, segmentId, "liver")
    rows = lesionRows(segmentation, volume)
    assert [row.blocking for row in rows] == [False, False, True]
    (finding,) = [f for f in rows[2].findings if f.severity == "error"]
    assert finding.rule == "max_per_site"
    assert "3rd target lesion in site 'liver'" in finding.message and "at most 2 per organ" in finding.message
    setSegmentIncluded(segmentation, "Segment_7", False)
    rows = lesionRows(segmentation, volume)
    assert not any(row.blocking for row in rows)
    assert not rows[0].included and rows[0].findings == ()


def test_empty_and_duplicate_segments_block_predict(case_scene):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    segmentation.GetSegmentation().AddEmptySegment("Segment_new", "liver_9")
    segmentation.GetSegmentation().GetSegment("Segment_20").SetName("adrenal_1")
    rows = {row.segmentId: row for row in lesionRows(segmentation, volume)}
    assert rows["Segment_new"].blocking and rows["Segment_new"].findings[0].rule == "empty"
    assert rows["Segment_20"].blocking and rows["Segment_8"].blocking
    assert "2 ticked segments have this name" in rows["Segment_20"].findings[0].message
    assert not rows["Segment_7"].blocking


def test_clinical_prefill_from_the_ticked_lesions(case_scene):
    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    assert astuple(clinicalPrefill(lesionRows(segmentation, volume))) == ("yes", "3+")
    setSegmentIncluded(segmentation, "Segment_8", False)
    setSegmentIncluded(segmentation, "Segment_20", False)
    only_pancreas = lesionRows(segmentation, volume)
    assert astuple(clinicalPrefill(only_pancreas)) == ("no", "1-2")
    setSegmentIncluded(segmentation, "Segment_7", False)
    assert astuple(clinicalPrefill(lesionRows(segmentation, volume))) == (None, None)


def test_sizes_are_measured_again_only_when_a_segment_s_voxels_change(case_scene, monkeypatch):
    import ABCImmunoResponseLib.lesion_table as lesion_table
    from ABCImmunoResponseLib.lesion_table import SizeCache

    measured = []
    original = lesion_table.segmentSize
    monkeypatch.setattr(lesion_table, "segmentSize", lambda *segment: measured.append(1) or original(*segment))
    segmentation, volume, cache = case_scene["segmentation"], case_scene["volume"], SizeCache()
    first = lesionRows(segmentation, volume, cache)
    assert len(measured) == 3
    setSegmentSite(segmentation, "Segment_7", "liver")  # a tag: same voxels
    assert [row.size for row in lesionRows(segmentation, volume, cache)] == [row.size for row in first]
    assert len(measured) == 3
    segment = segmentation.GetSegmentation().GetSegment("Segment_8")
    segment.GetRepresentation("Binary labelmap").Modified()  # what an edit in the Segment Editor does
    lesionRows(segmentation, volume, cache)
    assert len(measured) == 6  # the three segments share one labelmap layer: all are measured again


def test_clicking_a_row_centres_the_slice_views_on_the_lesion(case_scene):
    from ABCImmunoResponseLib.segments import centreSliceViewsOnSegment

    scene, segmentation = case_scene["scene"], case_scene["segmentation"]
    slice_node = scene.AddNewNodeByClass("vtkMRMLSliceNode")
    slice_node.SetLayoutName("Red")
    slice_node.SetOrientationToAxial()
    center = centreSliceViewsOnSegment(scene, segmentation, "Segment_8")
    assert center == pytest.approx(segmentation.GetSegmentCenterRAS("Segment_8"))
    slice_to_ras = slice_node.GetSliceToRAS()
    assert [slice_to_ras.GetElement(i, 3) for i in range(3)] == pytest.approx(center)


def test_painting_fires_an_event_the_table_refreshes_on(case_scene):
    """The Segment Editor's paint changes only the source labelmap: the table must listen to that too."""
    import numpy as np

    import slicer
    from ABCImmunoResponseLib.volumes import orientedLabelmap
    from ABCImmunoResponseLib.lesion_table import segmentationChangeEvents
    from mrml_scene import whole_grid_mask

    segmentation, volume = case_scene["segmentation"], case_scene["volume"]
    mask = whole_grid_mask(segmentation, "Segment_8", volume)
    painted = sitk.BinaryDilate(mask, (1, 1, 0))  # one stroke around the adrenal
    heard = []
    # VTK names custom events 'NoEvent' in Python callbacks: each observer records its own event id.
    tags = [segmentation.AddObserver(event, lambda caller, name, event=event: heard.append(event))
            for event in segmentationChangeEvents()]
    try:
        assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
            orientedLabelmap(sitk.GetArrayViewFromImage(painted), volume), segmentation, "Segment_8",
            slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    finally:
        for tag in tags:
            segmentation.RemoveObserver(tag)
    assert slicer.vtkSegmentation.SourceRepresentationModified in heard
    rows = {row.segmentId: row for row in lesionRows(segmentation, volume)}
    assert rows["Segment_8"].size.voxel_count == int(np.count_nonzero(sitk.GetArrayViewFromImage(painted)))
