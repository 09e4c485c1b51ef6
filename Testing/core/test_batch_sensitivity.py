"""``abcir batch --sensitivity`` on a small generated cohort: per-patient results, the cohort's stable share,
the per-feature ICC under outline changes, and what ``abcir evaluate`` and ``abcir train`` read from them."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.batch.run import run_batch
from abcir.batch.sensitivity import SensitivitySettings
from abcir.batch.store import MANIFEST, PATIENTS_FOLDER, PREDICTIONS_CSV, read_record
from abcir.cli import main
from abcir.cohort.generator import make_cohort
from abcir.cohort.table import read_cohort
from abcir.consensus.feature_icc import icc_feature_subset, read_feature_icc_table
from abcir.errors import InputError
from abcir.features.catalogue import feature_names
from abcir.features.extract import extract_lesions, extract_patient
from abcir.imaging.ct import read_ct
from abcir.options import PERTURBATION_ICC_FILE
from abcir.patient.lesions import load_lesions
from abcir.patient.measurements import measure_lesion
from abcir.sensitivity.analysis import analyse_sensitivity
from abcir.sensitivity.feature_icc import PerturbedOutlineValues, outline_ratings
from abcir.sensitivity.morphology import dilate_mm
from abcir.sensitivity.perturbations import PerturbationSet
from abcir.stats.agreement import FEATURE_ICC_COLUMNS, icc_2_1

# Erosion and dilation only: the cohort-level outputs do not depend on how many outlines there are.
SETTINGS = SensitivitySettings(PerturbationSet("erode-dilate", randomisations=0), seed=0)
MODEL = "radiomics"


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cohort")
    make_cohort(folder, 4, seed=22)  # two responders, two non-responders, 1 to 4 lesions each
    out = tmp_path_factory.mktemp("batch") / "out"
    summary = run_batch(folder / "cohort.csv", out, models=[MODEL], sensitivity=SETTINGS)
    assert summary.n_finished == 4 and not summary.failures
    return folder / "cohort.csv", out


def _records(out: Path) -> list:
    return [read_record(path) for path in sorted((out / PATIENTS_FOLDER).glob("*.json"))]


def test_each_patient_carries_the_analysis_of_abcir_predict(batch):
    cohort, out = batch
    spec = read_cohort(cohort).rows[1]
    record = read_record(out / PATIENTS_FOLDER / f"{spec.patient_id}.json")
    ct = read_ct(spec.ct)
    lesions = load_lesions(spec.lesions, ct, spec.sites)
    rows = extract_patient(spec.ct, spec.lesions, patient_id=spec.patient_id)
    expected = analyse_sensitivity(ct, lesions, spec.clinical, model=MODEL, rows=rows,
                                   perturbation_set=SETTINGS.perturbation_set, seed=SETTINGS.seed).to_dict()
    stored = record.sensitivity[MODEL]
    for key in ("probability", "probability_low", "probability_high", "n_perturbations", "n_same_risk_group",
                "unstable", "deciding_lesion"):
        assert stored[key] == expected[key], key
    assert stored["n_perturbations"] == 2 * len(lesions)


def test_predictions_table_and_the_cohort_share_of_stable_patients(batch):
    _, out = batch
    table = pd.read_csv(out / PREDICTIONS_CSV, dtype={"patient_id": str}, float_precision="round_trip")
    records = {record.patient_id: record for record in _records(out)}
    for row in table.itertuples():
        result = records[row.patient_id].sensitivity[MODEL]
        assert getattr(row, f"{MODEL}_stable") == int(not result["unstable"])
        assert getattr(row, f"{MODEL}_probability_low") == result["probability_low"]
        assert getattr(row, f"{MODEL}_probability_low") <= getattr(row, f"{MODEL}_probability") \
            <= getattr(row, f"{MODEL}_probability_high")
    manifest = json.loads((out / MANIFEST).read_text())["sensitivity"]
    share, = manifest["stable"]
    assert share["model"] == MODEL and share["n_patients"] == 4
    assert share["n_stable"] == int(table[f"{MODEL}_stable"].sum())
    assert manifest["perturbation_set"] == "erode-dilate" and manifest["perturbation_icc"].endswith(
        PERTURBATION_ICC_FILE)


def test_perturbation_icc_table(batch):
    cohort, out = batch
    table = read_feature_icc_table(out / PERTURBATION_ICC_FILE, "'abcir batch --sensitivity'")
    assert list(table.columns) == list(FEATURE_ICC_COLUMNS) and list(table.feature) == list(feature_names())
    records = _records(out)
    n_lesions = sum(len(record.lesions) for record in records)
    volume = table.set_index("feature").loc["original_shape_VoxelVolume"]
    assert volume.n_readers == 3 and volume.n_lesions == n_lesions  # segmented, eroded, dilated
    assert 0.5 < volume.icc < 1.0  # 1 mm changes move volumes, but far less than lesions differ
    # The dilated outline's stored values are those abcir extract gives for that outline (independent path).
    spec = read_cohort(cohort).rows[0]
    ct = read_ct(spec.ct)
    lesion = load_lesions(spec.lesions, ct, spec.sites)[0]
    mask = dilate_mm(lesion.mask, 1.0)
    expected, = extract_lesions(ct, [replace(lesion, mask=mask, size=measure_lesion(mask))], spec.patient_id)
    stored = next(item for item in records[0].perturbed
                  if item.lesion_id == lesion.lesion_id and item.perturbation == "dilate_1mm")
    np.testing.assert_array_equal(stored.values, expected.values)
    # The table is the ICC of (lesions x outlines) built from the records.
    ratings = np.concatenate([outline_ratings([l.lesion_id for l in r.lesions], np.vstack([l.values for l in r.lesions]),
                                              r.perturbed, SETTINGS.perturbation_set.names) for r in records])
    column = list(feature_names()).index("original_firstorder_Mean")
    assert table.icc[column] == pytest.approx(icc_2_1(ratings[:, :, column]).icc, rel=1e-12)


def test_resumed_run_reuses_every_patient(batch):
    cohort, out = batch
    before = (out / PERTURBATION_ICC_FILE).read_bytes()
    summary = run_batch(cohort, out, models=[MODEL], sensitivity=SETTINGS)
    assert summary.n_computed == 0 and summary.sensitivity.stable[0].n_patients == 4
    assert (out / PERTURBATION_ICC_FILE).read_bytes() == before


def test_evaluate_reports_the_stable_share_by_outcome(batch, tmp_path):
    _, out = batch
    assert main(["evaluate", str(out / PREDICTIONS_CSV), "--out", str(tmp_path / "ev")]) == 0
    stability = json.loads((tmp_path / "ev" / "metrics.json").read_text())["models"][MODEL]["outline_stability"]
    table = pd.read_csv(out / PREDICTIONS_CSV)
    responders = table[table.response == 1]
    assert stability["n"] == 4 and stability["n_stable"] == int(table[f"{MODEL}_stable"].sum())
    assert stability["responders"]["n_stable"] == int(responders[f"{MODEL}_stable"].sum())
    assert "Patients whose risk group is stable" in (tmp_path / "ev" / "report.html").read_text()


def test_train_keeps_features_reaching_both_icc_thresholds(batch, tmp_path):
    _, out = batch
    table = read_feature_icc_table(out / PERTURBATION_ICC_FILE, "batch")
    subset = icc_feature_subset(None, None, 0.9, out / PERTURBATION_ICC_FILE)
    assert list(subset) == list(table.loc[table.icc.fillna(-1) >= 0.9, "feature"])
    assert "original_shape_VoxelVolume" not in icc_feature_subset(None, None, 0.99, out / PERTURBATION_ICC_FILE)
    readers = tmp_path / "agreement"
    readers.mkdir()
    chosen = table.assign(icc=np.where(table.feature.str.startswith("original_"), 1.0, 0.0))
    chosen.to_csv(readers / "feature_icc.csv", index=False)
    both = icc_feature_subset(0.75, readers, 0.9, out / PERTURBATION_ICC_FILE)
    assert both and all(name.startswith("original_") and name in subset for name in both)
    assert icc_feature_subset(None, None, None, None) is None
    with pytest.raises(InputError, match="--min-perturbation-icc and --perturbation-icc go together"):
        icc_feature_subset(None, None, 0.9, None)
    with pytest.raises(InputError, match="--min-perturbation-icc 1.5"):
        icc_feature_subset(None, None, 1.5, out / PERTURBATION_ICC_FILE)


def test_outline_ratings_leave_missing_outlines_missing():
    values = np.arange(6.0).reshape(2, 3)
    changed = [PerturbedOutlineValues("b", "dilate_1mm", np.full(3, 9.0))]
    ratings = outline_ratings(["a", "b"], values, changed, ("erode_1mm", "dilate_1mm"))
    assert ratings.shape == (2, 3, 3)
    np.testing.assert_array_equal(ratings[:, 0], values)
    assert np.isnan(ratings[0, 1:]).all() and np.isnan(ratings[1, 1]).all() and (ratings[1, 2] == 9).all()
