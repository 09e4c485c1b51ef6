"""``abcir batch``: outputs, failure isolation, resumption after a kill, and Dask equal to the local run."""

from __future__ import annotations

import html
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from abcir.batch import work
from abcir.batch.run import run_batch
from abcir.batch.store import (
    FAILURES_CSV,
    FEATURES_CSV,
    FEATURES_PARQUET,
    MANIFEST,
    PATIENTS_FOLDER,
    PREDICTIONS_CSV,
    BatchManifest,
)
from abcir.cli import main
from abcir.cohort.generator import make_cohort
from abcir.cohort.table import read_cohort
from abcir.errors import InputError
from abcir.evaluation.table import read_predictions
from abcir.features.extract import extract_patient
from abcir.features.catalogue import feature_names
from abcir.models.bundle import bundled_bundle
from abcir.progress import TerminalProgress
from abcir.records import from_json_dict

N_PATIENTS = 4


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cohort")
    make_cohort(folder, N_PATIENTS, seed=22)  # two responders, two non-responders
    return folder / "cohort.csv"


@pytest.fixture(scope="module")
def reference(cohort, tmp_path_factory) -> Path:
    """A clean local run, one process."""
    out = tmp_path_factory.mktemp("reference") / "batch"
    summary = run_batch(cohort, out, jobs=1)
    assert summary.n_finished == N_PATIENTS and not summary.failures
    return out


def tables(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(out / FEATURES_PARQUET), pd.read_csv(out / PREDICTIONS_CSV)


def assert_same_results(out: Path, reference: Path) -> None:
    features, predictions = tables(out)
    expected_features, expected_predictions = tables(reference)
    pd.testing.assert_frame_equal(features, expected_features, check_exact=True)
    pd.testing.assert_frame_equal(predictions, expected_predictions, check_exact=True)


def test_outputs(cohort, reference):
    features = pd.read_parquet(reference / FEATURES_PARQUET)
    assert list(features.columns[-len(feature_names()):]) == list(feature_names())
    spec = read_cohort(cohort).rows[0]
    expected = extract_patient(spec.ct, spec.lesions, patient_id=spec.patient_id)
    rows = features[features.patient_id == spec.patient_id]
    assert list(rows.lesion_id) == [row.lesion.lesion_id for row in expected]
    np.testing.assert_array_equal(rows[list(feature_names())].to_numpy(), np.vstack([r.values for r in expected]))
    from_csv = pd.read_csv(reference / FEATURES_CSV, dtype={"patient_id": str, "lesion_id": str, "site": str},
                           keep_default_na=False, float_precision="round_trip")
    np.testing.assert_array_equal(from_csv[list(feature_names())].to_numpy(float),
                                  features[list(feature_names())].to_numpy())
    table = read_predictions(reference / PREDICTIONS_CSV)  # the abcir evaluate input format
    assert set(table.models) == {"combined", "radiomics", "clinical"} and len(table.frame) == N_PATIENTS
    assert table.has_survival and "center" in table.clinical_columns
    assert (reference / FAILURES_CSV).read_text().strip() == "patient_id,stage,error,reason"


def test_the_manifest_reads_back_as_its_record(cohort, reference):
    manifest = from_json_dict(BatchManifest, json.loads((reference / MANIFEST).read_text(encoding="utf-8")),
                              MANIFEST, ValueError)
    assert manifest.cohort == str(cohort.resolve()) and manifest.jobs == 1 and manifest.scheduler is None
    assert (manifest.patients, manifest.finished, manifest.computed_this_run) == (N_PATIENTS,) * 3
    assert manifest.failed == 0
    assert {model.kind for model in manifest.models} == {"clinical", "radiomics", "combined"}


def test_the_manifest_and_the_printout_say_where_the_weights_came_from(cohort, reference, tmp_path, capsys):
    manifest = json.loads((reference / MANIFEST).read_text(encoding="utf-8"))
    record = json.loads(next((reference / PATIENTS_FOLDER).glob("*.json")).read_text(encoding="utf-8"))
    for model in manifest["models"]:
        # the prediction's own provenance line: the weights, their synthetic training data, not validated
        assert model["provenance"] == record["predictions"][model["kind"]]["provenance"]
        assert "trained on synthetic data" in model["provenance"]
        assert "NOT clinically validated" in model["provenance"]
    out = tmp_path / "batch"
    shutil.copytree(reference, out)
    assert main(["batch", "--cohort", str(cohort), "--out", str(out)]) == 0  # nothing left to compute
    printed = capsys.readouterr().out
    for model in manifest["models"]:
        assert f"  {model['kind']}: {model['provenance']}" in printed


def test_evaluate_says_where_the_weights_of_a_batch_s_predictions_came_from(reference, tmp_path, capsys):
    """``abcir evaluate`` reads the batch.json beside predictions.csv: each model's provenance line goes into
    metrics.json, the report and the printout."""
    manifest = json.loads((reference / MANIFEST).read_text(encoding="utf-8"))
    assert main(["evaluate", str(reference / PREDICTIONS_CSV), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))
    report = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    for model in manifest["models"]:
        line = f"{model['kind']}: {model['provenance']}"
        assert line in metrics["weights"]
        assert f"Weights of {line}" in printed
        assert html.escape(line) in report


def test_rerun_computes_nothing(cohort, reference, tmp_path, monkeypatch):
    out = tmp_path / "batch"
    shutil.copytree(reference, out)
    shutil.rmtree(out / PATIENTS_FOLDER)  # lost records: every lesion comes from the cache
    calls = []
    monkeypatch.setattr(work, "compute_lesion", lambda prepared: calls.append(prepared))
    summary = run_batch(cohort, out)
    assert summary.n_computed == N_PATIENTS and calls == []
    assert_same_results(out, reference)
    summary = run_batch(cohort, out)
    assert summary.n_computed == 0


def test_a_failing_patient_does_not_stop_the_others(cohort, reference, tmp_path, capsys):
    folder = tmp_path / "cohort"
    shutil.copytree(cohort.parent, folder)
    table = pd.read_csv(folder / "cohort.csv", dtype=str, keep_default_na=False)
    broken, missing = table.patient_id[1], table.patient_id[2]
    (folder / table.ct[1]).write_bytes(b"NRRD0004\nnot an image")
    table.loc[2, "lesions"] = "lesions/nowhere.seg.nrrd"
    table.to_csv(folder / "cohort.csv", index=False)
    out = tmp_path / "batch"
    assert main(["batch", "--cohort", str(folder / "cohort.csv"), "--out", str(out)]) == 1
    failures = pd.read_csv(out / FAILURES_CSV)
    assert list(failures.patient_id) == [broken, missing]
    assert set(failures.stage) == {"extract"} and set(failures.error) == {"InputError"}
    assert "cannot be read" in failures.reason[0] and "no such file" in failures.reason[1]
    features, predictions = tables(out)
    assert set(features.patient_id) == set(table.patient_id) - {broken, missing}
    expected = tables(reference)[0]
    kept = expected[~expected.patient_id.isin([broken, missing])].reset_index(drop=True)
    pd.testing.assert_frame_equal(features, kept, check_exact=True)
    assert "2 failures" in capsys.readouterr().err


def test_resumes_after_a_kill(cohort, reference, tmp_path):
    out = tmp_path / "batch"
    command = [sys.executable, "-c", "import sys; from abcir.cli import main; sys.exit(main(sys.argv[1:]))",
               "batch", "--cohort", str(cohort), "--out", str(out)]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = out / PATIENTS_FOLDER
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (records.is_dir() and any(records.glob("*.json"))):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished_before = sorted(path.name for path in records.glob("*.json"))
    assert 1 <= len(finished_before) < N_PATIENTS, "the kill should land between the first and the last patient"
    assert not (out / FEATURES_PARQUET).exists()
    # A record cut short (as a copy or a full disk might leave it) is recomputed, not trusted.
    first = records / finished_before[0]
    first.write_text(first.read_text()[:100])
    summary = run_batch(cohort, out)
    assert summary.n_computed == N_PATIENTS - len(finished_before) + 1
    assert_same_results(out, reference)
    assert not [path for path in out.rglob(".tmp-*")]


def test_parallel_jobs_give_the_same_results(cohort, reference, tmp_path):
    out = tmp_path / "batch"
    run_batch(cohort, out, jobs=2)
    assert_same_results(out, reference)


def test_dask_cluster_gives_the_same_results(cohort, reference, tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "batch"
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None) as cluster:
        summary = run_batch(cohort, out, scheduler=cluster.scheduler_address)
    assert summary.n_finished == N_PATIENTS and not summary.failures
    assert_same_results(out, reference)
    record = json.loads(next((out / PATIENTS_FOLDER).glob("*.json")).read_text())
    assert record["schema"] == "abcir.batch_patient"
    # the lesions computed on the cluster are cached for later runs
    n_lesions = len(pd.read_parquet(out / FEATURES_PARQUET))
    assert len(list((out / "cache").rglob("*.json"))) == n_lesions


@pytest.mark.parametrize("address", ["nonsense", "foo://host:8786"])
def test_a_scheduler_address_that_is_not_one_is_refused_in_one_line(cohort, tmp_path, address):
    pytest.importorskip("distributed")
    with pytest.raises(InputError, match=f"Dask scheduler '{address}': not a scheduler address .*tcp://HOST:PORT"):
        run_batch(cohort, tmp_path / "batch", scheduler=address)


def test_two_bundles_of_one_kind_are_refused(cohort, tmp_path):
    """The predictions table has one column per kind: one bundle's predictions were dropped without a word."""
    bundled = bundled_bundle("combined").path
    copy = shutil.copytree(bundled, tmp_path / "combined_copy")
    with pytest.raises(InputError, match=f"--weights '{bundled}' and '{copy}' are both combined models"):
        run_batch(cohort, tmp_path / "batch", weights=[bundled, copy])
    assert not (tmp_path / "batch" / "predictions.csv").exists()


def test_progress_shows_eta():
    stream = io.StringIO()
    progress = TerminalProgress(stream)
    progress(1, 4, "SYN0001", "done")
    progress(2, 4, "SYN0002", "failed")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("[######") and "1/4 patients" in lines[0] and "ETA" in lines[0]
    assert "1 failed" in lines[1] and "SYN0002" in lines[1]
