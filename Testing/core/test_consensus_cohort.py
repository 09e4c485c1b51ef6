"""The cohort agreement without extraction: readers.csv, the ICC tables, the summary and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from abcir.consensus.cohort import (
    CohortAgreement,
    matched_feature_matrices,
    reader_b_inside_a_range,
    run_cohort_agreement,
)
from abcir.consensus.readers_file import read_readers_csv
from abcir.consensus.cohort_report import REPORT_FILE, feature_group_table, write_report
from abcir.errors import InputError
from abcir.features.catalogue import feature_names
from abcir.stats.agreement import bland_altman, cohen_kappa, feature_icc_frame


def _write(path, text):
    path.write_text(text)
    return path


def test_readers_csv_paths_and_clinical_facts(tmp_path):
    for name in ("ct", "a.seg.nrrd", "b.seg.nrrd"):
        (tmp_path / name).touch()
    path = _write(tmp_path / "readers.csv", "patient_id,ct,reader_a,reader_b,lines,sites,visceral,tnbc\n"
                                            "p1,ct,a.seg.nrrd,b.seg.nrrd,2+,1-2,yes,no\n")
    [patient] = read_readers_csv(path)
    assert patient.reader_a == tmp_path / "a.seg.nrrd"
    assert patient.clinical.prior_lines_ge2 and patient.clinical.visceral and not patient.clinical.tnbc


@pytest.mark.parametrize("text, message", [
    ("patient_id,ct,reader_a\np1,ct,a.seg.nrrd\n", "reader_b missing"),
    ("patient_id,ct,reader_a,reader_b,lines\np1,ct,a.seg.nrrd,b.seg.nrrd,1\n", "give all four or none"),
    ("patient_id,ct,reader_a,reader_b\np1,ct,a.seg.nrrd,missing.seg.nrrd\n", "does not exist"),
    ("patient_id,ct,reader_a,reader_b\np1,ct,a.seg.nrrd,b.seg.nrrd\np1,ct,a.seg.nrrd,b.seg.nrrd\n", "repeated"),
    ("patient_id,ct,reader_a,reader_b,lines,sites,visceral,tnbc\np1,ct,a.seg.nrrd,b.seg.nrrd,3,1-2,yes,no\n",
     "line 2"),
])
def test_readers_csv_errors_name_the_problem(tmp_path, text, message):
    for name in ("ct", "a.seg.nrrd", "b.seg.nrrd"):
        (tmp_path / name).touch()
    with pytest.raises(InputError, match=message):
        read_readers_csv(_write(tmp_path / "readers.csv", text))


@pytest.mark.parametrize("content, message", [
    (b"patient_id,ct,reader_a,reader_b\nM\xfcller,ct,a.seg.nrrd,b.seg.nrrd\n",
     "not UTF-8 text .*; save it as UTF-8"),
    (b"patient_id,ct\np1,ct\n", "columns reader_a, reader_b missing; it needs patient_id, ct, reader_a, reader_b"),
    (b"patient_id,ct,reader_a,reader_b\n", "no patients; give a header row and one row per patient"),
])
def test_readers_csv_errors_are_one_line_and_no_traceback(tmp_path, content, message):
    """A Latin-1 file was a traceback; a missing column or no row printed the whole format, eight lines."""
    for name in ("ct", "a.seg.nrrd", "b.seg.nrrd"):
        (tmp_path / name).touch()
    path = tmp_path / "readers.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=f"Readers file '{path}': {message}") as error:
        read_readers_csv(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("min_icc", [1.5, -0.1, float("nan")])
def test_agreement_refuses_an_icc_threshold_outside_0_1_before_reading_anything(tmp_path, min_icc):
    with pytest.raises(InputError, match=f"--min-icc {min_icc}: an ICC threshold lies between 0 and 1"):
        run_cohort_agreement(tmp_path / "not_read.csv", min_icc=min_icc)


def _features(rows: list[tuple[str, str]], values: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(values, columns=list(feature_names()))
    frame.insert(0, "lesion_id", [lesion for _, lesion in rows])
    frame.insert(0, "patient_id", [patient for patient, _ in rows])
    return frame


def _agreement() -> CohortAgreement:
    rng = np.random.default_rng(3)
    n = 12
    truth = rng.normal(size=(n, len(feature_names())))
    noise = rng.normal(size=truth.shape) * np.linspace(0.0, 2.0, truth.shape[1])  # later features noisier
    keys_a = [(f"p{i}", f"liver_{i}") for i in range(n)]
    keys_b = [(f"p{i}", f"liver_b{i}") for i in reversed(range(n))]  # other ids, other order
    features_a = _features(keys_a, truth)
    features_b = _features(keys_b, (truth + noise)[::-1])
    pairs = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)] + ["p0"],
                          "a": [f"liver_{i}" for i in range(n)] + [None],
                          "b": [f"liver_b{i}" for i in range(n)] + ["node_1"],
                          "site_a": "liver", "site_b": "liver", "site_agrees": True,
                          "dice": np.r_[rng.uniform(0.5, 0.9, n), np.nan], "hd95_mm": 1.0,
                          "volume_diff_percent": 0.0})
    values_a, values_b = matched_feature_matrices(features_a, features_b, pairs)
    np.testing.assert_array_equal(values_a, truth)
    np.testing.assert_allclose(values_b, truth + noise)
    groups_a = ["high", "low"] * 6
    groups_b = ["high", "low", "low", "low"] * 3
    probability_a = rng.uniform(size=n)
    probability_b = np.clip(probability_a + rng.normal(0, 0.05, n), 0, 1)
    predictions = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "probability_a": probability_a,
                                "probability_b": probability_b, "risk_group_a": groups_a, "risk_group_b": groups_b})
    return CohortAgreement("Dr A", "Dr B", n, pairs, feature_icc_frame(feature_names(), values_a, values_b),
                           predictions, cohen_kappa(groups_a, groups_b, ("high", "low")),
                           bland_altman(probability_a, probability_b), notes=["a note"])


def test_summary_counts_and_reproducible_share():
    result = _agreement()
    summary = result.summary()
    icc = result.feature_icc["icc"]
    assert icc.iloc[0] == pytest.approx(1.0) and icc.iloc[-1] < 0.5  # noise grows along the feature list
    assert summary["n_matched_lesion_pairs"] == 12 and summary["n_only_b"] == 1
    assert summary["icc"]["n_reproducible"] == int((icc >= 0.75).sum())
    assert result.share_reproducible() == pytest.approx((icc >= 0.75).mean())
    assert sum(summary["icc"]["koo_li_classes"].values()) == 1130


def test_group_table_and_report(tmp_path):
    result = _agreement()
    table = feature_group_table(result.feature_icc, 0.75)
    assert table.shape == (1 + 3 + 8, 7)  # original, LoG sigma 1/2/3, 8 wavelets x 7 feature classes
    original_shape = [n for n in feature_names() if n.startswith("original_shape_")]
    reproducible = result.feature_icc.set_index("feature").loc[original_shape, "icc"] >= 0.75
    assert table.loc["original", "shape"] == pytest.approx(reproducible.mean())
    path = write_report(tmp_path, result)
    assert path.name == REPORT_FILE
    page = path.read_text()
    assert page.count("<img") == 2 and "Cohen&#x27;s kappa" in page and "a note" in page
    assert (tmp_path / "icc_histogram.png").stat().st_size > 1000


def test_reader_b_inside_reader_a_perturbation_range(tmp_path):
    """Per patient and as a share: B's probability against A's outline-perturbation range, bounds included."""
    result = _agreement()
    frame = result.predictions
    frame["probability_a_low"] = frame["probability_a"] - 0.02
    frame["probability_a_high"] = frame["probability_a"] + 0.02
    frame.loc[0, "probability_b"] = frame.loc[0, "probability_a_high"]  # on the bound: inside
    frame.loc[1, "probability_a_low"] = np.nan  # no range: not counted
    frame["b_inside_a_range"] = reader_b_inside_a_range(frame)
    difference = (frame["probability_b"] - frame["probability_a"]).abs()
    expected = (difference <= 0.02 + 1e-12).astype(float).where(frame.index != 1)
    assert frame.loc[0, "b_inside_a_range"] == 1.0 and np.isnan(frame.loc[1, "b_inside_a_range"])
    np.testing.assert_array_equal(frame["b_inside_a_range"].to_numpy(), expected.to_numpy())
    inside = result.summary()["reader_b_inside_a_perturbation_range"]
    assert inside == {"n": 11, "n_inside": int(expected.sum()), "share": pytest.approx(expected.sum() / 11)}
    page = write_report(tmp_path, result).read_text()
    assert f"in {int(expected.sum())} of 11 patients" in page
