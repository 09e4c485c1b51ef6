"""Save case: four kinds of files under one base name, never overwriting, readable by the core."""

from __future__ import annotations

import csv
import json

import pytest
from mrml_scene import SLICER_CORE_MISSING

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

from abcir.errors import InputError  # noqa: E402
from abcir.features.table import provenance_path, read_features_csv  # noqa: E402
from abcir.prediction.result import Prediction  # noqa: E402
from abcir.imaging.segfile import SITE_TAG, read_seg_nrrd  # noqa: E402
from ABCImmunoResponseLib.case_files import FEATURES_PROVENANCE_SUFFIX, FEATURES_SUFFIX, saveCase  # noqa: E402
from ABCImmunoResponseLib.lesion_table import lesionRows  # noqa: E402
from ABCImmunoResponseLib.segments import setSegmentIncluded  # noqa: E402


def test_save_case_writes_every_file_and_a_second_save_gets_a_new_name(predicted, tmp_path):
    segmentation, volume = predicted["segmentation"], predicted["volume"]
    result = predicted["applied"]
    rows = lesionRows(segmentation, volume)
    saved = saveCase(tmp_path, "CT: patient/1", segmentation, result.prediction, result.featuresFile, rows)
    assert saved.baseName == "CT_ patient_1" and not saved.renamed
    names = sorted(path.name for path in saved.files)
    assert names == sorted(f"CT_ patient_1{suffix}" for suffix in
                           (".seg.nrrd", ".result.json", ".features.csv", ".features.provenance.json", ".lesions.csv"))

    segments = read_seg_nrrd(tmp_path / "CT_ patient_1.seg.nrrd")
    assert [(s.name, s.tags[SITE_TAG]) for s in segments] == [("pancreas_1", "other"), ("adrenal_1", "adrenal"),
                                                              ("colon_1", "peritoneum")]
    stored = json.loads((tmp_path / "CT_ patient_1.result.json").read_text())
    assert Prediction.from_dict(stored) == result.prediction
    features = read_features_csv(tmp_path / "CT_ patient_1.features.csv")
    assert list(features["lesion_id"]) == ["pancreas_1", "adrenal_1"]
    # the child's table and its provenance, copied byte for byte
    assert (tmp_path / "CT_ patient_1.features.csv").read_bytes() == result.featuresFile.read_bytes()
    assert (tmp_path / "CT_ patient_1.features.provenance.json").read_bytes() == \
        provenance_path(result.featuresFile).read_bytes()
    with open(tmp_path / "CT_ patient_1.lesions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["lesion"], row["included"]) for row in table] == [("pancreas_1", "1"), ("adrenal_1", "1"),
                                                                   ("colon_1", "0")]

    before = {path: path.read_bytes() for path in saved.files}
    again = saveCase(tmp_path, "CT: patient/1", segmentation, result.prediction, result.featuresFile, rows)
    assert again.baseName == "CT_ patient_1_2" and again.renamed
    assert all(path.read_bytes() == content for path, content in before.items())  # nothing overwritten


def test_a_file_of_the_case_already_there_moves_the_whole_set_to_a_new_name(predicted, tmp_path):
    (tmp_path / "case.lesions.csv").write_text("someone else's file")
    saved = saveCase(tmp_path, "case", None, predicted["applied"].prediction, None, [])
    assert saved.baseName == "case_2" and [path.name for path in saved.files] == ["case_2.result.json"]
    assert (tmp_path / "case.lesions.csv").read_text() == "someone else's file"


def test_features_sidecar_name_is_the_core_s(tmp_path):
    assert provenance_path(tmp_path / f"x{FEATURES_SUFFIX}").name == f"x{FEATURES_PROVENANCE_SUFFIX}"


def test_nothing_to_save_is_said(tmp_path):
    with pytest.raises(InputError, match="nothing to save yet"):
        saveCase(tmp_path, "case", None, None, None, [])


def test_unticked_lesions_are_in_the_lesion_table_but_not_in_the_features(predicted, tmp_path):
    segmentation, volume = predicted["segmentation"], predicted["volume"]
    setSegmentIncluded(segmentation, "Segment_8", False)
    try:
        rows = lesionRows(segmentation, volume)
        saveCase(tmp_path, "case", None, None, None, rows)
        with open(tmp_path / "case.lesions.csv", newline="") as handle:
            included = [row["included"] for row in csv.DictReader(handle)]
        assert included == ["1", "0", "0"]
    finally:
        setSegmentIncluded(segmentation, "Segment_8", True)
