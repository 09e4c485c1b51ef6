"""``abcir train`` on a small generated cohort, end to end: bundles that load, a model card, reproducibility."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from abcir.models.bundle import load_bundle
from abcir.prediction.result import WeightsInfo
from abcir.cli import main
from abcir.patient.clinical_facts import CLINICAL_ENCODING
from abcir.cohort.generator import make_cohort
from abcir.errors import InputError

pytest.importorskip("torch", reason="abcir train needs torch (pip install 'abcir[train]'); not installed here")

from abcir.training.pipeline import extract_cohort, read_training_cohort, train_cohort, training_frame  # noqa: E402
from abcir.training.settings import TrainingSettings  # noqa: E402
from abcir.training.split import training_mask  # noqa: E402

N_PATIENTS = 24


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """A generated cohort with a balanced split column, and its features (extracted once, cached)."""
    folder = tmp_path_factory.mktemp("cohort")
    # Seed 1: a draw whose 16 training patients do not separate the clinical facts perfectly.
    make_cohort(folder / "images", n=N_PATIENTS, seed=1, jobs=2)
    table = pd.read_csv(folder / "images" / "cohort.csv", dtype={"patient_id": str})
    # Alternate each class between the parts so both have responders and non-responders.
    order = table.groupby("response").cumcount()
    table["split"] = np.where(order % 3 == 2, "validation", "train")
    table.to_csv(folder / "images" / "cohort.csv", index=False)
    cohort = read_training_cohort(folder / "images" / "cohort.csv", need_images=True)
    frame = training_frame(cohort)
    features = extract_cohort(cohort.rows, folder / "cache", jobs=2)
    return folder, frame, features


def _hashes(folder):
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def test_train_writes_three_verified_bundles_and_a_model_card(cohort, tmp_path, monkeypatch, capsys):
    folder, frame, _ = cohort
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764028800")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "bundles"
    assert main(["train", "--cohort", str(folder / "images" / "cohort.csv"), "--out", "bundles", "--synthetic",
                 "--site", "tiny", "--cache", str(folder / "cache")]) == 0
    printed = capsys.readouterr().out
    for kind in ("clinical", "radiomics", "combined"):
        bundle = load_bundle(out / kind)
        manifest = bundle.manifest
        assert manifest.model == kind and manifest.clinically_validated is False
        assert manifest.training_data.source == "synthetic"
        assert manifest.training_data.n == int((frame["split"] == "train").sum())
        assert "abcir train --cohort" in manifest.training_data.description
        assert manifest.validation[-1].n == int((frame["split"] == "validation").sum())
        assert f"{kind:>9}: validation AUC" in printed
        if "pfs_months" in frame:
            assert manifest.cutoff.method.startswith("maxstat")
    predictions = pd.read_csv(out / "predictions.csv", dtype={"patient_id": str})
    assert list(predictions["patient_id"]) == list(frame["patient_id"])
    model = load_bundle(out / "clinical").model()
    expected = model.score(None, frame[list(CLINICAL_ENCODING)].to_numpy(float))
    np.testing.assert_allclose(predictions["clinical_score"], expected, rtol=0, atol=1e-12)
    card = (out / "MODEL_CARD.md").read_text()
    assert "Trained on generated data" in card and "Not clinically validated" in card
    # Same inputs, seed and machine (and the same command, run in another folder): the same bytes in every file.
    (tmp_path / "again").mkdir()
    monkeypatch.chdir(tmp_path / "again")
    assert main(["train", "--cohort", str(folder / "images" / "cohort.csv"), "--out", "bundles", "--synthetic",
                 "--site", "tiny", "--cache", str(folder / "cache")]) == 0
    assert _hashes(tmp_path / "again" / "bundles") == _hashes(out)
    # abcir evaluate on the predictions says they come from these bundles, with each bundle's provenance line.
    assert main(["evaluate", str(out / "predictions.csv"), "--out", str(tmp_path / "report")]) == 0
    weights = json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))["weights"]
    assert weights == [f"{kind}: {WeightsInfo.from_bundle(load_bundle(out / kind)).provenance()}"
                       for kind in ("clinical", "radiomics", "combined") if f"{kind}_score" in predictions]
    assert all("NOT clinically validated" in line for line in weights) and len(weights) == 3


def test_features_and_labels_give_the_same_models(cohort, tmp_path, monkeypatch):
    folder, frame, features = cohort
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1764028800")
    features.to_csv(tmp_path / "features.csv", index=False, float_format="%.17g")
    frame.to_csv(tmp_path / "labels.csv", index=False)
    assert main(["train", "--features", str(tmp_path / "features.csv"), "--labels", str(tmp_path / "labels.csv"),
                 "--out", str(tmp_path / "from_table"), "--synthetic", "--site", "tiny"]) == 0
    direct = train_cohort(frame, features, tmp_path / "direct",
                          TrainingSettings(source="synthetic", site="tiny"))
    for kind in ("radiomics", "combined"):
        assert (load_bundle(tmp_path / "from_table" / kind).weights_sha256
                == load_bundle(direct.bundles[kind]).weights_sha256)


def test_bad_cohorts_are_refused_with_reasons(cohort, tmp_path):
    _, frame, features = cohort
    one_class = frame.assign(response=1)
    with pytest.raises(InputError, match="the training part has .* responders and 0 non-responders"):
        train_cohort(one_class, features, tmp_path / "a")
    with pytest.raises(InputError, match="it needs at least . of each"):
        train_cohort(frame.head(8), features, tmp_path / "b")
    bad = frame.copy()
    bad.loc[3, "response"] = 2
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"column 'response' must be 1 or 0 .*; not so in row 5 \(patient_id"):
        read_training_cohort(path, need_images=False)
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_without_pfs_the_cutoff_is_unset_with_a_note(cohort, tmp_path):
    _, frame, features = cohort
    result = train_cohort(frame.drop(columns=["pfs_months", "pfs_event"]), features, tmp_path / "nopfs",
                          TrainingSettings(source="synthetic", site="tiny"))
    cutoff = load_bundle(result.bundles["combined"]).manifest.cutoff
    assert cutoff.value is None and cutoff.method == "unset" and "no PFS" in cutoff.note


def test_paper_split_by_centres():
    frame = pd.DataFrame({"patient_id": [str(i) for i in range(20)],
                          "center": ["big"] * 10 + ["mid"] * 6 + ["small"] * 4,
                          "response": [0, 1] * 10})
    train = training_mask(frame, seed=0)
    assert train[10:16].all() and not train[16:].any()  # next centre trains, the smallest validates
    assert 4 <= train[:10].sum() <= 6 and 2 <= frame["response"][:10][train[:10]].sum() <= 3  # halved, stratified
