"""Export to DICOM from the scene: the result's lesions taken from the segmentation node, the real DICOM series.

The prediction is the bridge's real one (``predicted``: pancreas_1 and
adrenal_1 ticked, colon_1 unticked) on the real CT, whose DICOM files are in
``ct_dicom_example/dicom`` (copied with Study/Series UIDs restored, as the
core's DICOM tests do). The exporter must get exactly the result's lesions
in its order, and the SEG and SR it writes must carry them and the prediction.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, whole_grid_mask

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.dicom.seg_export import read_lesion_seg  # noqa: E402
from abcir.dicom.series import read_dicom_ct  # noqa: E402
from abcir.dicom.sr_export import read_prediction_sr  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from ABCImmunoResponseLib.dicom_export import (INSTANCE_UIDS_ATTRIBUTE, exportResultToDicom,  # noqa: E402
                                               resultLesions, seriesFolder, sourceInstanceUids)


@pytest.fixture(scope="module")
def dicom_files(shared_data, tmp_path_factory):
    """The real series with the UIDs its anonymiser removed (as a UID-remapping anonymiser keeps them)."""
    from dicom_cases import copy_series

    folder = tmp_path_factory.mktemp("dicom") / "ct"
    return sorted(str(path) for path in copy_series(shared_data / "ct_dicom_example" / "dicom", folder,
                                                     restore_uids=True))


def test_the_exporter_gets_exactly_the_results_lesions(predicted, dicom_files, tmp_path):
    prediction = predicted["applied"].prediction
    ct = read_dicom_ct(seriesFolder(dicom_files, tmp_path))
    lesions = resultLesions(prediction, predicted["segmentation"], predicted["volume"], ct.image)
    assert [lesion.lesion_id for lesion in lesions] == ["pancreas_1", "adrenal_1"]  # colon_1 is not in the result
    assert [lesion.site for lesion in lesions] == ["other", "adrenal"]
    for lesion, reported in zip(lesions, prediction.lesions, strict=True):
        assert lesion.size.volume_mm3 == pytest.approx(reported.volume_mm3, rel=1e-9)
        segmentId = next(sid for sid in ("Segment_7", "Segment_8")
                         if predicted["segmentation"].GetSegmentation().GetSegment(sid).GetName() == lesion.lesion_id)
        expected = whole_grid_mask(predicted["segmentation"], segmentId, predicted["volume"])
        assert np.array_equal(sitk.GetArrayViewFromImage(lesion.mask), sitk.GetArrayViewFromImage(expected))

    renamed = dataclasses.replace(prediction, lesions=[dataclasses.replace(prediction.lesions[0], lesion_id="liver_9"),
                                                       *prediction.lesions[1:]])
    with pytest.raises(InputError, match="no segment called 'liver_9'"):
        resultLesions(renamed, predicted["segmentation"], predicted["volume"], ct.image)


def test_export_writes_seg_and_sr_of_the_result_and_never_overwrites(predicted, dicom_files, tmp_path):
    prediction = predicted["applied"].prediction
    mtime = predicted["segmentation"].GetMTime()
    written = exportResultToDicom(prediction, predicted["segmentation"], predicted["volume"], dicom_files,
                                  tmp_path / "out", tmp_path, "CT response prediction")
    assert written.seg_path.is_file() and written.sr_path.is_file()
    assert any("not clinically validated" in warning for warning in written.warnings)
    reported = read_prediction_sr(written.sr_path)
    assert reported.probability == prediction.probability and reported.risk_group == prediction.risk_group
    assert [lesion.lesion_id for lesion in reported.lesions] == ["pancreas_1", "adrenal_1"]
    ct = read_dicom_ct(os.path.dirname(dicom_files[0]))
    assert [segment.lesion_id for segment in read_lesion_seg(written.seg_path, ct.image)] == ["pancreas_1",
                                                                                              "adrenal_1"]
    assert predicted["segmentation"].GetMTime() == mtime
    with pytest.raises(InputError, match="already exist"):
        exportResultToDicom(prediction, predicted["segmentation"], predicted["volume"], dicom_files,
                            tmp_path / "out", tmp_path, "CT response prediction")


def test_series_files_in_several_folders_are_gathered_by_links(dicom_files, tmp_path):
    for index, path in enumerate(dicom_files):
        target = tmp_path / ("first" if index % 2 else "second") / os.path.basename(path)
        target.parent.mkdir(exist_ok=True)
        os.symlink(path, target)
    spread = sorted(str(path) for path in tmp_path.glob("*/*"))
    folder = seriesFolder(spread, tmp_path)
    assert folder.parent == tmp_path and len(list(folder.iterdir())) == len(dicom_files)
    assert str(seriesFolder(dicom_files, tmp_path)) == os.path.dirname(dicom_files[0])  # one folder: used as it is
    with pytest.raises(InputError, match="none of its DICOM files"):
        seriesFolder([], tmp_path)


def test_source_instance_uids_come_from_slicers_attribute(standalone):
    node = standalone.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    assert sourceInstanceUids(node) == []
    node.SetAttribute(INSTANCE_UIDS_ATTRIBUTE, "1.2.3 1.2.4")
    assert sourceInstanceUids(node) == ["1.2.3", "1.2.4"]
