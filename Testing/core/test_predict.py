"""Prediction on the real CT with bundles trained here on tiny generated sets: values, provenance, warnings, CLI."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import abcir.models.bundle
import numpy as np
import pytest
import SimpleITK as sitk
from abcir.models.aggregation import aggregate
from abcir.models.bundle import WEIGHTS, Cutoff, FeatureSet, TrainingData, load_bundle
from abcir.cli import main
from abcir.patient.clinical_facts import parse_clinical
from abcir.commands.predict import format_prediction, format_probability
from abcir.dicom.series import read_dicom_ct
from abcir.errors import BundleError, InputError
from abcir.features.extract import extract_lesions
from abcir.features.catalogue import feature_names, feature_names_sha256
from abcir.imaging.ct import file_sha256, voxel_hash
from abcir.patient.lesions import load_lesions
from abcir.models import sigmoid
from abcir.prediction.predict import OOD_Z_LIMIT, predict_features, predict_lesions
from abcir.prediction.result import CTIdentity, Prediction
from tiny_bundles import tiny_bundle, tiny_fit, training

CLINICAL = ["lines=1", "sites=1-2", "visceral=yes", "tnbc=yes"]


@pytest.fixture(scope="module")
def patient(shared_data, tmp_path_factory):
    """The real CT with pancreas (label 7) and right adrenal (label 8) standing in for two target lesions."""
    folder = tmp_path_factory.mktemp("patient")
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    label_map = folder / "lesions.nrrd"
    sitk.WriteImage(sitk.Mask(labels, sitk.Or(labels == 7, labels == 8)), str(label_map))
    sites = folder / "sites.csv"
    sites.write_text("label,site\n7,other\n8,adrenal\n")
    dicom = read_dicom_ct(shared_data / "ct_dicom_example" / "dicom")
    lesions = load_lesions([label_map], dicom.image, sites)
    rows = extract_lesions(dicom.image, lesions, "P1")
    vector = aggregate(np.vstack([row.values for row in rows]), [l.size.volume_mm3 for l in lesions])
    return {"dicom": dicom, "lesions": lesions, "rows": rows, "vector": vector, "label_map": label_map,
            "sites": sites, "ct_folder": shared_data / "ct_dicom_example" / "dicom"}


@pytest.fixture(scope="module")
def bundles(patient, tmp_path_factory):
    """Bundles whose training data surround the patient (in distribution), and one on N(0, 1) data (far out)."""
    folder = tmp_path_factory.mktemp("weights")
    fit = tiny_fit("combined", center=patient["vector"])
    return {"fit": fit,
            "combined": tiny_bundle(folder / "combined", "combined", fit=fit),
            "radiomics": tiny_bundle(folder / "radiomics", "radiomics", center=patient["vector"]),
            "clinical": tiny_bundle(folder / "clinical", "clinical", cutoff=Cutoff(-0.5, "fixed for the test")),
            "far": tiny_bundle(folder / "far", "combined"),
            "unset": tiny_bundle(folder / "unset", "combined", fit=fit, cutoff=Cutoff(None, "unset", "no PFS")),
            "folder": folder}


def test_combined_prediction_on_the_real_ct(patient, bundles):
    facts = parse_clinical(CLINICAL)
    identity = CTIdentity.from_image(patient["dicom"].image)
    result = predict_features(patient["rows"], facts, "combined", bundles["combined"], identity)
    bundle = load_bundle(bundles["combined"])
    expected = bundle.model().score(patient["vector"][None, :], facts.vector()[None, :])[0]
    assert result.score == pytest.approx(expected, abs=1e-12)
    assert result.probability == pytest.approx(1 / (1 + np.exp(-expected)))
    assert 0 < result.probability < 1
    assert result.risk_group == ("high" if expected <= 0.0 else "low") and result.cutoff == 0.0
    assert result.model == "combined" and result.clinical == facts and result.aggregation == "volume_weighted_mean"
    weights = result.weights
    assert weights.name == "tiny-combined" and weights.sha256 == file_sha256(bundles["combined"] / WEIGHTS)
    assert weights.source == "synthetic" and "synthetic data 'tiny test set'" in weights.trained_on
    assert weights.n_train == 90 and weights.clinically_validated is False
    assert [(l.lesion_id, l.site) for l in result.lesions] == [("7", "other"), ("8", "adrenal")]
    assert result.lesions[1].volume_mm3 == pytest.approx(1254 * np.prod(patient["dicom"].image.GetSpacing()))
    assert result.lesions[0].longest_axial_diameter_mm > 10
    assert result.ct == identity
    assert result.distribution.n_beyond == 0 and result.distribution.n_features == 20
    assert not [w for w in result.warnings if w.startswith("Out of distribution")]
    assert any("trained on synthetic data" in w for w in result.warnings)
    assert "NOT clinically validated" in result.provenance and "tiny-combined" in result.provenance


def test_radiomics_model_needs_no_clinical_facts_and_ignores_them(patient, bundles):
    without = predict_features(patient["rows"], None, "radiomics", bundles["radiomics"])
    with_facts = predict_features(patient["rows"], parse_clinical(CLINICAL), "radiomics", bundles["radiomics"])
    assert without.clinical is None and with_facts.clinical is None
    assert without.score == with_facts.score
    assert without.model == "radiomics"


def test_changing_clinical_facts_changes_the_combined_score(patient, bundles):
    scores = {tuple(tokens): predict_features(patient["rows"], parse_clinical(tokens), "combined",
                                              bundles["combined"]).score
              for tokens in (CLINICAL, ["lines=2+", "sites=3+", "visceral=yes", "tnbc=no"])}
    assert len(set(scores.values())) == 2


@pytest.mark.parametrize("kind", ["combined", "clinical"])
def test_missing_clinical_facts_are_an_error(patient, bundles, kind):
    with pytest.raises(InputError, match=rf"The {kind} model needs the four clinical facts and does not guess.*"
                                         r"lines=1\|2\+"):
        predict_features(patient["rows"], None, kind, bundles[kind])


def test_printout_shows_provenance_and_warnings_under_the_probability(patient, bundles):
    result = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["far"])
    printed = format_prediction(result).splitlines()
    assert printed[1] == f"Probability of response (CR/PR): {format_probability(result.probability)}"
    assert printed[2] == f"  {result.provenance}"
    assert printed[3].startswith("  Warning: Out of distribution:")
    assert (format_probability(1e-9), format_probability(0.25), format_probability(1 - 1e-9)) == ("<0.001", "0.250", ">0.999")


def test_out_of_distribution_patient_is_flagged_next_to_the_probability(patient, bundles):
    result = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["far"])
    check = result.distribution
    bundle = load_bundle(bundles["far"])
    z = np.abs(bundle.model().standardise(patient["vector"][None, :])[0])
    assert check.n_beyond == int(np.sum(z > OOD_Z_LIMIT)) > 0.1 * check.n_features
    assert check.max_abs_z == pytest.approx(z.max())
    assert any(w.startswith(f"Out of distribution: {check.n_beyond} of 20 model inputs lie more than 5 SD")
               and "less trustworthy" in w for w in result.warnings)


def test_risk_group_is_high_at_or_below_the_cutoff(patient, bundles, tmp_path):
    facts = parse_clinical(CLINICAL)
    score = predict_features(patient["rows"], facts, "combined", bundles["combined"]).score
    groups = {}
    for name, cutoff in (("above", score + 0.01), ("equal", score), ("below", score - 0.01)):
        path = tiny_bundle(tmp_path / name, "combined", fit=bundles["fit"], cutoff=Cutoff(cutoff, "test"))
        result = predict_features(patient["rows"], facts, "combined", path)
        groups[name] = (result.risk_group, result.cutoff)
    assert groups == {"above": ("high", score + 0.01), "equal": ("high", score), "below": ("low", score - 0.01)}


def test_without_a_cutoff_there_is_no_risk_group_and_a_warning(patient, bundles):
    result = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["unset"])
    assert result.risk_group is None and result.cutoff is None
    assert "No risk group: the weights carry no risk cut-off (no PFS)." in result.warnings


def test_other_pyradiomics_version_in_the_bundle_is_warned_about(patient, bundles, tmp_path):
    features = FeatureSet(feature_names(), feature_names_sha256(), "2.2.0", "0" * 64)
    path = tiny_bundle(tmp_path / "old", "combined", fit=bundles["fit"], features=features)
    warnings = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", path).warnings
    assert any("weights trained on features of pyradiomics 2.2.0" in w for w in warnings)
    assert any("another pyradiomics parameter file" in w for w in warnings)
    current = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["combined"]).warnings
    assert not [w for w in current if "pyradiomics" in w]


def test_weights_trained_on_another_response_definition_are_warned_about(patient, bundles, tmp_path):
    data = TrainingData("site", "Hospital X", 90, 60, "2019-01", "2021-06", label_definition="CR/PR/SD vs PD")
    path = training().save_bundle(tmp_path / "dcr", bundles["fit"], name="dcr", training_data=data,
                                  cutoff=Cutoff(0.0, "test"))
    result = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", path)
    assert "trained on the labels 'CR/PR/SD vs PD', not 'responder = CR or PR" in " ".join(result.warnings)
    assert not [w for w in result.warnings if "synthetic" in w]
    assert result.weights.trained_on == "site 'Hospital X' (n=90, 60 responders, 2019-01 to 2021-06)"


def test_clinical_facts_contradicted_by_the_lesions_are_warned_about(patient, bundles):
    facts = parse_clinical(["lines=1", "sites=1-2", "visceral=no", "tnbc=yes"])
    warnings = predict_features(patient["rows"], facts, "combined", bundles["combined"]).warnings
    assert any(w.startswith("visceral=no, but target lesion(s) 8 lie in visceral sites") for w in warnings)


def test_model_kind_must_match_the_weights(patient, bundles):
    with pytest.raises(BundleError, match=r"a radiomics model, but the combined model was asked for.*--model radiomics"):
        predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["radiomics"])
    assert predict_features(patient["rows"], None, None, bundles["radiomics"]).model == "radiomics"


def test_recist_errors_block_prediction_before_extraction(patient, bundles):
    lesion = patient["lesions"][1]
    too_many = [replace(lesion, lesion_id=f"adrenal_{i}") for i in range(3)]
    with pytest.raises(InputError, match="RECIST 1.1: Lesion 'adrenal_2': 3rd target lesion in site 'adrenal'"):
        predict_lesions(patient["dicom"].image, too_many, None, "radiomics", bundles["radiomics"])


def test_predict_lesions_extracts_and_equals_predict_features(patient, bundles):
    facts = parse_clinical(CLINICAL)
    dicom = patient["dicom"]
    result = predict_lesions(dicom.image, patient["lesions"], facts, "combined", bundles["combined"])
    direct = predict_features(patient["rows"], facts, "combined", bundles["combined"])
    assert result.score == direct.score
    assert result.ct == CTIdentity(voxel_hash(dicom.image), dicom.study_instance_uid, dicom.series_instance_uid)


def test_ct_identity_carries_the_dicom_uids_the_reader_leaves_in_the_image(patient):
    image = sitk.Image(patient["dicom"].image)
    image.SetMetaData("0020|000d", "1.2.3")
    image.SetMetaData("0020|000e", "1.2.3.4 ")
    assert CTIdentity.from_image(image) == CTIdentity(voxel_hash(image), "1.2.3", "1.2.3.4")
    # The shared CT is anonymised: no UIDs, recorded as empty, as read_dicom_ct reports them.
    dicom = patient["dicom"]
    identity = CTIdentity.from_image(dicom.image)
    assert (identity.study_instance_uid, identity.series_instance_uid) == (dicom.study_instance_uid,
                                                                           dicom.series_instance_uid)


def test_prediction_json_round_trip(patient, bundles):
    result = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["far"],
                              CTIdentity("a" * 64, "1.2", "1.3"))
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["schema"] == "abcir.prediction" and data["provenance"] == result.provenance
    assert {"probability", "score", "risk_group", "cutoff", "model", "weights", "lesions", "recist", "warnings",
            "ct", "clinical", "distribution"} <= set(data)
    assert data["weights"]["clinically_validated"] is False
    assert data["ct"] == {"sha256": "a" * 64, "study_instance_uid": "1.2", "series_instance_uid": "1.3"}
    assert Prediction.from_dict(data) == result
    data["schema_version"] = 2
    with pytest.raises(InputError, match="'schema_version' is 2"):
        Prediction.from_dict(data)


def _snapshot(paths: list[Path]) -> dict[Path, tuple[str, int]]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {f: (file_sha256(f), os.stat(f).st_mtime_ns) for f in files if f.is_file()}


def test_cli_predict_prints_and_writes_the_result_and_only_reads_its_inputs(patient, bundles, tmp_path, capsys):
    inputs = [patient["ct_folder"], patient["label_map"], patient["sites"], bundles["combined"]]
    before = _snapshot(inputs)
    out = tmp_path / "result.json"
    argv = ["predict", "--ct", str(patient["ct_folder"]), "--lesions", str(patient["label_map"]),
            "--sites", str(patient["sites"]), "--clinical", *CLINICAL, "--weights", str(bundles["combined"]),
            "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    data = json.loads(out.read_text())
    probability_line = printed.index(f"Probability of response (CR/PR): {data['probability']:.3f}")
    assert "NOT clinically validated" in printed[probability_line + 1]
    assert printed[probability_line + 2:probability_line + 2 + len(data["warnings"])] == \
        [f"  Warning: {warning}" for warning in data["warnings"]]
    assert f"Score (log-odds): {data['score']:.3f}" in printed
    assert any(line.startswith(f"Risk group: {data['risk_group']} (score") for line in printed)
    assert any(line.startswith("  8: site adrenal, volume 2.39 cm3") for line in printed)
    assert data["model"] == "combined" and data["weights"]["sha256"] == file_sha256(bundles["combined"] / WEIGHTS)
    assert data["ct"]["sha256"] == voxel_hash(patient["dicom"].image)
    assert data["ct"]["series_instance_uid"] == patient["dicom"].series_instance_uid
    assert [lesion["lesion_id"] for lesion in data["lesions"]] == ["7", "8"]
    assert _snapshot(inputs) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]

    first = _snapshot([out])
    assert main(argv) == 2  # the result is never overwritten
    assert "result.json' already exists" in capsys.readouterr().err
    assert _snapshot([out]) == first


def test_cli_radiomics_model_runs_without_clinical_facts(patient, bundles, capsys):
    assert main(["predict", "--ct", str(patient["ct_folder"]), "--lesions", str(patient["label_map"]),
                 "--sites", str(patient["sites"]), "--model", "radiomics", "--weights", str(bundles["radiomics"])]) == 0
    printed = capsys.readouterr().out
    assert "Model: radiomics" in printed
    # What the DICOM reader noticed travels with the result (the shared series is anonymised).
    assert "Warning: CT: the series has no StudyInstanceUID/SeriesInstanceUID" in printed


@pytest.mark.parametrize("fact, allowed", [("lines=0", "1, 2+"), ("sites=7", "1-2, 3+"), ("visceral=maybe", "no, yes")])
def test_cli_rejects_invalid_clinical_facts_with_the_allowed_values(bundles, capsys, fact, allowed):
    tokens = [t for t in CLINICAL if not t.startswith(fact.split("=")[0])] + [fact]
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *tokens]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"abcir predict: error: Clinical fact '{fact}'") and f"allowed values are {allowed}" in error


def test_cli_clinical_model_needs_all_facts_and_no_ct(bundles, capsys):
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]),
                 "--clinical", "lines=1", "sites=3+"]) == 2
    assert "visceral, tnbc missing" in capsys.readouterr().err
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"])]) == 2
    assert "needs the four clinical facts" in capsys.readouterr().err
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *CLINICAL]) == 0
    printed = capsys.readouterr().out
    bundle = load_bundle(bundles["clinical"])
    score = bundle.model().score(None, parse_clinical(CLINICAL).vector()[None, :])[0]
    assert f"Probability of response (CR/PR): {float(sigmoid(score)):.3f}" in printed
    assert "Risk group: " + ("high" if score <= -0.5 else "low") in printed


def test_cli_refuses_pickled_weights_with_the_reason(bundles, tmp_path, capsys):
    pickled = tmp_path / "model.pt"
    pickled.write_bytes(b"\x80\x04K\x01.")
    assert main(["predict", "--model", "clinical", "--weights", str(pickled), "--clinical", *CLINICAL]) == 2
    error = capsys.readouterr().err
    assert "model.pt" in error and "pickle" in error and "never loads" in error


def test_cli_without_bundled_weights_says_what_to_do(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(abcir.models.bundle, "weights_dir", lambda: tmp_path)
    assert main(["predict", "--model", "clinical", "--clinical", *CLINICAL]) == 2
    assert "ships no 'clinical' weights" in capsys.readouterr().err


def test_cli_sensitivity_prints_the_range_beside_the_probability_and_writes_the_block(patient, bundles, tmp_path,
                                                                                       capsys):
    """``--sensitivity`` end to end with two jobs: the summary stands under the probability, the JSON carries the
    analysis (read back unchanged), and its numbers are those of ``analyse_sensitivity`` on one job."""
    from abcir.sensitivity.analysis import analyse_sensitivity
    from abcir.sensitivity.perturbations import perturbation_set_named
    from abcir.sensitivity.result import SENSITIVITY_SCHEMA

    out = tmp_path / "result.json"
    assert main(["predict", "--ct", str(patient["ct_folder"]), "--lesions", str(patient["label_map"]),
                 "--sites", str(patient["sites"]), "--clinical", *CLINICAL, "--weights", str(bundles["combined"]),
                 "--sensitivity", "--perturbations", "1", "--seed", "3", "--jobs", "2", "--json", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    data = json.loads(out.read_text())
    block = data["sensitivity"]
    assert block["schema"] == SENSITIVITY_SCHEMA and block["n_perturbations"] == 6  # 2 lesions x (erode, dilate, 1)
    assert block["perturbation_set"] == "outline-1mm-1" and block["seed"] == 3
    assert block["probability"] == data["probability"] and block["risk_group"] == data["risk_group"]
    probability_line = printed.index(f"Probability of response (CR/PR): {data['probability']:.3f}")
    assert printed[probability_line + 1] == f"  Under outline changes: {block['summary']}"
    assert block["summary"].startswith(f"probability {data['probability']:.2f} (")
    assert f"; risk group {data['risk_group']} in {block['n_same_risk_group']} of 6" in block["summary"]
    assert json.loads(json.dumps(Prediction.from_dict(data).sensitivity.to_dict())) == block  # read back
    direct = analyse_sensitivity(patient["dicom"].image, patient["lesions"], parse_clinical(CLINICAL), "combined",
                                 bundles["combined"], rows=patient["rows"], perturbation_set=perturbation_set_named("1"),
                                 seed=3, jobs=1)
    assert [p["probability"] for p in block["perturbations"]] == [p.probability for p in direct.perturbations]


def test_cli_sensitivity_refuses_what_it_cannot_do_in_one_line(bundles, capsys):
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *CLINICAL,
                 "--seed", "4"]) == 2
    assert "--seed set up the outline sensitivity; add --sensitivity" in capsys.readouterr().err
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *CLINICAL,
                 "--sensitivity", "--perturbations", "many"]) == 2
    error = capsys.readouterr().err
    assert "Perturbations 'many'" in error and "outline-1mm, morphology-1mm, extended" in error
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *CLINICAL,
                 "--sensitivity", "--flip-limit", "1.5"]) == 2
    assert "Flip limit 1.5: give a share between 0 and 1" in capsys.readouterr().err
    assert main(["predict", "--model", "clinical", "--weights", str(bundles["clinical"]), "--clinical", *CLINICAL,
                 "--sensitivity"]) == 2
    assert "clinical model reads no outline" in capsys.readouterr().err


def test_format_prediction_shows_the_warning_when_the_risk_group_depends_on_the_outline(patient, bundles):
    from abcir.sensitivity.analysis import summarise
    from abcir.sensitivity.perturbations import PerturbationSet
    from abcir.sensitivity.result import PerturbedPrediction

    base = predict_features(patient["rows"], parse_clinical(CLINICAL), "combined", bundles["combined"])
    other = "low" if base.risk_group == "high" else "high"
    perturbed = [PerturbedPrediction("8", name, 2000.0, base.probability, base.score, group)
                 for name, group in (("erode_1mm", other), ("dilate_1mm", other), ("random_1", base.risk_group))]
    result = summarise(base, perturbed, ["7", "8"], PerturbationSet("test", randomisations=1), seed=0)
    printed = format_prediction(replace(base, sensitivity=result)).splitlines()
    assert printed[2] == f"  Under outline changes: {result.summary}"
    assert printed[3].startswith("  Warning: The risk group depends on the outlines") and "lesion '8'" in printed[3]
