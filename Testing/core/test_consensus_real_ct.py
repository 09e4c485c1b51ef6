"""``abcir consensus`` and ``abcir agreement`` on the real CT, reader B made from reader A by known changes.

Reader A's lesions are organs of lesion size from the TotalSegmentator label
map; reader B differs by a one-voxel dilation (adrenal_1), a 2 mm shift along
the slice axis (liver_1: one 2 mm slice), a missing lesion (lymph_node_1) and a
different site (peritoneum_1). Dice and Hausdorff distances must equal
SimpleITK's and a brute-force computation; the readers' files must be
byte-identical after a consensus is written.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from test_consensus_metrics import reference_distances
from tiny_bundles import tiny_bundle

from abcir.cli import main
from abcir.imaging.ct import file_sha256, read_ct
from abcir.consensus.feature_icc import read_feature_icc_csv, reproducible_features
from abcir.stats.agreement import icc_2_1
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd

TAG = "ABCImmunoResponse.Consensus."


@pytest.fixture(scope="module")
def ct_path(shared_data) -> Path:
    return shared_data / "ct_dicom_example" / "dicom"


@pytest.fixture(scope="module")
def organ(ct_path, shared_data):
    """The mask (uint8, on the CT grid) of one label of the TotalSegmentator map."""
    ct = read_ct(ct_path)
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    labels = sitk.Resample(labels, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return lambda label: sitk.Cast(labels == label, sitk.sitkUInt8)


@pytest.fixture(scope="module")
def readers(tmp_path_factory, organ):
    folder = tmp_path_factory.mktemp("readers")
    # Content one slice (2.0 mm) further along z; the pancreas (label 7) lies in slices 0-3 of 20, nothing is cut.
    shifted = sitk.Resample(organ(7), organ(7), sitk.TranslationTransform(3, (0.0, 0.0, -2.0)),
                            sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    a = [Segment("s1", "adrenal_1", organ(8), tags={SITE_TAG: "adrenal"}),
         Segment("s2", "liver_1", organ(7), tags={SITE_TAG: "liver"}),
         Segment("s3", "peritoneum_1", organ(64), tags={SITE_TAG: "peritoneum"}),
         Segment("s4", "lymph_node_1", organ(63), tags={SITE_TAG: "lymph_node"})]
    b = [Segment("s1", "adrenal_1", sitk.BinaryDilate(organ(8), (1, 1, 1), sitk.sitkCross), tags={SITE_TAG: "adrenal"}),
         Segment("s2", "liver_1", shifted, tags={SITE_TAG: "liver"}),
         Segment("s3", "peritoneum_1", organ(64), tags={SITE_TAG: "lymph_node"})]
    paths = write_seg_nrrd(folder / "A.seg.nrrd", a), write_seg_nrrd(folder / "B.seg.nrrd", b)
    return paths, {s.name: s.mask for s in a}, {s.name: s.mask for s in b}


@pytest.fixture(scope="module")
def radiomics_bundle(tmp_path_factory) -> Path:
    return tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny-radiomics", "radiomics")


def _consensus(ct_path, readers, out, *extra) -> int:
    (path_a, path_b), _, _ = readers
    return main(["consensus", "--ct", str(ct_path), "--reader-a", str(path_a), "--reader-b", str(path_b),
                 "--out", str(out), "--reader-a-name", "Dr A", "--reader-b-name", "Dr B", *extra])


def test_agreement_equals_independent_computations(ct_path, readers, tmp_path):
    assert _consensus(ct_path, readers, tmp_path) == 0
    report = json.loads((tmp_path / "agreement.json").read_text())
    _, masks_a, masks_b = readers
    rows = {(row["a"], row["b"]): row for row in report["lesions"]}
    assert report["readers"] == {"a": "Dr A", "b": "Dr B"}
    assert set(rows) == {("adrenal_1", "adrenal_1"), ("liver_1", "liver_1"), ("peritoneum_1", "peritoneum_1"),
                         ("lymph_node_1", None)}
    for name in ("adrenal_1", "liver_1", "peritoneum_1"):
        row = rows[(name, name)]
        overlap = sitk.LabelOverlapMeasuresImageFilter()
        overlap.Execute(masks_a[name], masks_b[name])
        hd95, hausdorff_tree, hausdorff_sitk = reference_distances(masks_a[name], masks_b[name])
        assert row["match"] == "overlap"
        assert row["dice"] == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)
        assert row["hd95_mm"] == pytest.approx(hd95, abs=1e-9)
        assert row["hausdorff_mm"] == pytest.approx(hausdorff_tree, abs=1e-9)
        assert row["hausdorff_mm"] == pytest.approx(hausdorff_sitk, abs=1e-6)
    shifted = rows[("liver_1", "liver_1")]
    assert shifted["centroid_distance_mm"] == pytest.approx(2.0, abs=1e-9)
    assert shifted["volume_diff_percent"] == pytest.approx(0.0) and shifted["diameter_diff_mm"] == pytest.approx(0.0)
    assert shifted["dice"] < 0.9
    dilated = rows[("adrenal_1", "adrenal_1")]
    assert dilated["volume_diff_percent"] > 0 and dilated["hausdorff_mm"] >= 2.0  # at least one 2 mm slice
    assert rows[("peritoneum_1", "peritoneum_1")]["dice"] == 1.0
    assert report["unmatched"] == {"a": ["lymph_node_1"], "b": []}
    assert report["site_disagreements"] == [{"a": "peritoneum_1", "b": "peritoneum_1", "site_a": "peritoneum",
                                             "site_b": "lymph_node"}]
    assert report["predictions"]["a"] is None and "not computed" in report["predictions"]["note"]
    summary = (tmp_path / "agreement.txt").read_text()
    assert "only in A: lymph_node_1" in summary and "SITE DIFFERS: A peritoneum, B lymph_node" in summary


def test_consensus_is_written_traceably_and_readers_are_untouched(ct_path, readers, tmp_path, organ, capsys):
    (path_a, path_b), masks_a, masks_b = readers
    before = file_sha256(path_a), file_sha256(path_b)
    edited = sitk.BinaryErode(organ(8), (1, 1, 0), sitk.sitkCross)
    edited_path = tmp_path / "adrenal_edit.nrrd"
    sitk.WriteImage(edited, str(edited_path))
    out = tmp_path / "first"
    assert _consensus(ct_path, readers, out, "--chair", "Dr C", "--method", "staple", "--unmatched", "exclude",
                      "--choose", "liver_1=union", "--reason", "liver_1=B is one slice lower",
                      "--site", "peritoneum_1=peritoneum", "--edited", f"adrenal_1={edited_path}") == 0
    assert (file_sha256(path_a), file_sha256(path_b)) == before
    segments = {s.name: s for s in read_seg_nrrd(out / "consensus.seg.nrrd")}
    assert set(segments) == {"adrenal_1", "liver_1", "peritoneum_1"}  # lymph_node_1 excluded
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segments["liver_1"].mask),
                                  sitk.GetArrayFromImage(sitk.Or(masks_a["liver_1"], masks_b["liver_1"])))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segments["adrenal_1"].mask), sitk.GetArrayFromImage(edited))
    tags = segments["liver_1"].tags
    assert tags[TAG + "Method"] == "union" and tags[TAG + "DecidedBy"] == "Dr C"
    assert tags[TAG + "ReaderA"] == "Dr A: liver_1" and tags[TAG + "ReaderB"] == "Dr B: liver_1"
    assert tags[TAG + "Session"] == "consensus.session.json" and tags[SITE_TAG] == "liver"
    assert segments["peritoneum_1"].tags[SITE_TAG] == "peritoneum"
    assert segments["peritoneum_1"].tags[TAG + "Method"] == "staple"
    log = json.loads((out / "consensus.session.json").read_text())
    decisions = {d["a"]: d for d in log["decisions"]}
    assert decisions["liver_1"]["reason"] == "B is one slice lower"
    assert decisions["adrenal_1"]["method"] == "edited" and str(edited_path) in decisions["adrenal_1"]["edited_source"]
    assert decisions["lymph_node_1"]["method"] == "exclude"
    assert log["inputs"]["reader_a"]["sha256"] == before[0]
    assert log["output"]["sha256"] == file_sha256(out / "consensus.seg.nrrd")

    # Nothing is overwritten: the same --out is refused.
    capsys.readouterr()
    assert _consensus(ct_path, readers, out, "--chair", "Dr C", "--method", "union", "--unmatched", "keep") == 2
    assert "already holds" in capsys.readouterr().err

    # Reopen: earlier decisions (the edited outline too) carry over, a new one supersedes, a new folder is written.
    first_consensus = file_sha256(out / "consensus.seg.nrrd")
    second = tmp_path / "second"
    assert main(["consensus", "--session", str(out / "consensus.session.json"), "--out", str(second),
                 "--chair", "Dr D", "--choose", "liver_1=a", "--reason", "liver_1=A is right after all"]) == 0
    assert file_sha256(out / "consensus.seg.nrrd") == first_consensus
    log2 = json.loads((second / "consensus.session.json").read_text())
    decisions2 = {d["a"]: d for d in log2["decisions"]}
    assert decisions2["liver_1"]["method"] == "a" and decisions2["liver_1"]["decided_by"] == "Dr D"
    assert decisions2["adrenal_1"]["decided_by"] == "Dr C"
    assert [d["method"] for d in log2["superseded"]] == ["union"]
    assert log2["previous_session"]["sha256"] == file_sha256(out / "consensus.session.json")
    segments2 = {s.name: s for s in read_seg_nrrd(second / "consensus.seg.nrrd")}
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segments2["adrenal_1"].mask), sitk.GetArrayFromImage(edited))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segments2["liver_1"].mask),
                                  sitk.GetArrayFromImage(masks_a["liver_1"]))
    assert (file_sha256(path_a), file_sha256(path_b)) == before


def test_consensus_needs_every_lesion_decided(ct_path, readers, tmp_path, capsys):
    assert _consensus(ct_path, readers, tmp_path, "--chair", "Dr C", "--method", "union") == 2
    error = capsys.readouterr().err
    assert "no decision yet for A lymph_node_1 (only A)" in error
    assert not (tmp_path / "agreement.json").exists()  # nothing written when the consensus cannot be built


def test_predictions_under_each_reading(ct_path, readers, tmp_path, radiomics_bundle):
    assert _consensus(ct_path, readers, tmp_path, "--weights", str(radiomics_bundle), "--chair", "Dr C",
                      "--method", "a", "--unmatched", "keep") == 0
    predictions = json.loads((tmp_path / "agreement.json").read_text())["predictions"]
    for side in ("a", "b", "consensus"):
        assert 0.0 <= predictions[side]["probability"] <= 1.0
        assert predictions[side]["risk_group"] in ("high", "low")
        assert predictions[side]["model"] == "radiomics"
    assert [lesion["lesion_id"] for lesion in predictions["b"]["lesions"]] == ["adrenal_1", "liver_1", "peritoneum_1"]
    # The consensus took every lesion from reader A: the same features, the same prediction.
    assert predictions["consensus"]["score"] == predictions["a"]["score"]
    assert predictions["risk_group_changes"]["a_vs_consensus"] is False
    assert set(predictions["risk_group_changes"]) == {"a_vs_b", "a_vs_consensus", "b_vs_consensus"}
    assert predictions["risk_group_changes"]["a_vs_b"] == (predictions["a"]["risk_group"]
                                                           != predictions["b"]["risk_group"])


def test_reader_b_against_reader_a_s_outline_changes(ct_path, readers, tmp_path, radiomics_bundle):
    """With --sensitivity, reader A's prediction carries its outline range and the summary places reader B in it."""
    assert _consensus(ct_path, readers, tmp_path, "--weights", str(radiomics_bundle), "--sensitivity") == 0
    predictions = json.loads((tmp_path / "agreement.json").read_text())["predictions"]
    outline = predictions["a"]["sensitivity"]
    assert outline["n_perturbations"] + len(outline["skipped"]) == 4 * 10  # four lesions, the default set
    assert outline["probability_low"] <= predictions["a"]["probability"] <= outline["probability_high"]
    assert predictions["b"].get("sensitivity") is None
    probability_b = predictions["b"]["probability"]
    inside = outline["probability_low"] <= probability_b <= outline["probability_high"]
    summary = (tmp_path / "agreement.txt").read_text()
    assert (f"reader B's probability {probability_b:.3f} is {'inside' if inside else 'OUTSIDE'} reader A's range "
            f"under outline changes ({outline['probability_low']:.3f}-{outline['probability_high']:.3f}") in summary


def test_cohort_agreement(ct_path, organ, tmp_path, radiomics_bundle):
    rows = []
    for index, (label, site) in enumerate(((8, "adrenal"), (7, "liver"), (64, "peritoneum"))):
        a = organ(label)
        b = (sitk.BinaryDilate if index % 2 == 0 else sitk.BinaryErode)(a, (1, 1, 0), sitk.sitkCross)
        write_seg_nrrd(tmp_path / f"p{index}_A.seg.nrrd", [Segment("s", f"{site}_1", a, tags={SITE_TAG: site})])
        write_seg_nrrd(tmp_path / f"p{index}_B.seg.nrrd", [Segment("s", f"{site}_1", b, tags={SITE_TAG: site})])
        rows.append({"patient_id": f"p{index}", "ct": str(ct_path), "reader_a": f"p{index}_A.seg.nrrd",
                     "reader_b": f"p{index}_B.seg.nrrd"})
    with open(tmp_path / "readers.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "agreement"
    assert main(["agreement", "--cohort", str(tmp_path / "readers.csv"), "--out", str(out),
                 "--weights", str(radiomics_bundle)]) == 0
    table = read_feature_icc_csv(out)
    assert len(table) == 1130 and (table["n_lesions"] == 3).all()
    features_a = pd.read_csv(out / "features_reader_a.csv")
    features_b = pd.read_csv(out / "features_reader_b.csv")
    volume = "original_shape_VoxelVolume"
    expected = icc_2_1(np.column_stack([features_a[volume], features_b[volume]])).icc
    assert table.set_index("feature").loc[volume, "icc"] == pytest.approx(expected, rel=1e-12)
    summary = json.loads((out / "agreement_summary.json").read_text())
    assert summary["n_matched_lesion_pairs"] == 3
    assert summary["icc"]["n_reproducible"] == len(reproducible_features(out, 0.75))
    assert summary["risk_group_kappa"]["n"] == 3
    assert any("recommend at least 30" in note for note in summary["notes"])
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions["patient_id"]) == ["p0", "p1", "p2"]
    report = (out / "report.html").read_text()
    assert report.count("<img") == 2 and "ICC" in report
    # Beside the probabilities, whose weights made them and that they are not clinically validated.
    assert "NOT clinically validated" in summary["weights_provenance"]
    assert html.escape(summary["weights_provenance"]) in report
