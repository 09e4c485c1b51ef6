"""Weight bundles: round trip, what the manifest records, and every refusal with its message."""

from __future__ import annotations

import json
import pickle
import shutil
from dataclasses import replace
from pathlib import Path

import abcir.models.bundle
import numpy as np
import pytest
from abcir import __version__
from abcir.models.bundle import (
    LABEL_DEFINITION,
    MANIFEST,
    SCHEMA_VERSION,
    WEIGHTS,
    Cutoff,
    FeatureSet,
    TrainingData,
    ValidationRecord,
    bundled_bundle,
    load_bundle,
)
from abcir.patient.clinical_facts import CLINICAL_ENCODING
from abcir.errors import BundleError, InputError
from abcir.features.catalogue import feature_names, feature_names_sha256, pyradiomics_version
from abcir.imaging.ct import file_sha256
from abcir.records import to_json_dict
from abcir.resources import parameter_file
from tiny_bundles import needs_torch, tiny_bundle, tiny_cohort, tiny_fit


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bundles")
    return {kind: tiny_bundle(folder / kind, kind) for kind in ("combined", "radiomics", "clinical")}


@pytest.fixture
def copy(bundles, tmp_path):
    """A fresh copy of a bundle to damage."""
    def make(kind: str = "combined") -> Path:
        return Path(shutil.copytree(bundles[kind], tmp_path / f"copy-{kind}"))
    return make


def edit_manifest(path: Path, change) -> None:
    data = json.loads((path / MANIFEST).read_text())
    change(data)
    (path / MANIFEST).write_text(json.dumps(data))


@pytest.mark.parametrize("kind", ["combined", "radiomics", "clinical"])
def test_round_trip_keeps_weights_preprocessing_and_scores(bundles, kind):
    fit = tiny_fit(kind)
    bundle = load_bundle(bundles[kind])
    assert bundle.kind == kind and sorted(bundle.tensors) == sorted(fit.tensors)
    for name, tensor in fit.tensors.items():
        np.testing.assert_array_equal(bundle.tensors[name], tensor)
        assert bundle.tensors[name].dtype == np.float64
    assert bundle.manifest.architecture == fit.architecture
    assert bundle.manifest.preprocessing == fit.preprocessing
    radiomics, clinical, _ = tiny_cohort(n=5, seed=3)
    scores = bundle.model().score(radiomics, clinical)
    assert scores.shape == (5,) and np.all(np.isfinite(scores))
    if kind == "clinical":
        np.testing.assert_allclose(scores, fit.tensors["intercept"][0] + clinical @ fit.tensors["coef"])


def test_manifest_records_what_the_weights_depend_on(bundles):
    path = bundles["combined"]
    data = json.loads((path / MANIFEST).read_text())
    assert data["schema"] == "abcir.weights" and data["schema_version"] == SCHEMA_VERSION
    assert data["model"] == "combined"
    assert data["architecture"] == {"n_inputs": 20, "hidden_sizes": [32, 16, 8], "activation": "relu",
                                    "dropout": 0.2, "n_clinical": 4, "fusion_size": 8}
    assert data["features"]["names"] == list(feature_names())
    assert data["features"]["sha256"] == feature_names_sha256()
    assert data["features"]["pyradiomics_version"] == pyradiomics_version()
    assert data["features"]["parameter_file_sha256"] == file_sha256(parameter_file())
    preprocessing = data["preprocessing"]
    assert preprocessing["aggregation"] == "volume_weighted_mean"
    assert len(preprocessing["selected"]) == len(preprocessing["means"]) == len(preprocessing["sds"]) == 20
    assert preprocessing["selection"]["top_k"] == 20
    assert list(data["clinical_encoding"]) == list(CLINICAL_ENCODING)
    assert data["cutoff"] == {"value": 0.0, "method": "fixed at 0 for the test", "note": ""}
    labels = tiny_cohort()[2]
    assert data["training_data"]["source"] == "synthetic"
    assert (data["training_data"]["n"], data["training_data"]["responders"]) == (labels.size, labels.sum())
    assert data["training_data"]["label_definition"] == LABEL_DEFINITION
    assert "RECIST 1.1" in LABEL_DEFINITION and "CR or PR" in LABEL_DEFINITION
    assert data["validation"][0]["cohort"] == "inner validation split"
    assert 0 <= data["validation"][0]["auc"] <= 1
    assert data["training"]["settings"]["seed"] == 0
    assert set(data["software"]) >= {"abcir", "python", "numpy", "torch", "pyradiomics", "safetensors"}
    assert data["clinically_validated"] is False
    assert data["files"] == {WEIGHTS: file_sha256(path / WEIGHTS)}


def test_clinical_bundle_has_no_radiomics_fields(bundles):
    data = json.loads((bundles["clinical"] / MANIFEST).read_text())
    assert data["features"] is None and data["preprocessing"] is None
    assert data["architecture"] == {"inputs": list(CLINICAL_ENCODING)}
    assert data["training"]["odds_ratios"].keys() == CLINICAL_ENCODING.keys()
    assert set(data["software"]) >= {"statsmodels"}


def test_changed_weight_bytes_are_refused_by_hash(copy):
    path = copy()
    data = bytearray((path / WEIGHTS).read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    (path / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"weights\.safetensors'.*SHA-256 is [0-9a-f]{64}, but manifest\.json "
                                          r"records [0-9a-f]{64}: the file was changed"):
        load_bundle(path)


@pytest.mark.parametrize("name", ["model.pt", "weights.pkl", "state.pth"])
def test_pickle_files_are_refused_with_the_reason(tmp_path, copy, name):
    single = tmp_path / name
    single.write_bytes(pickle.dumps({"weights": [1.0]}))
    with pytest.raises(BundleError, match=rf"'{single}'.*pickle.*run any code"):
        load_bundle(single)
    inside = copy()
    (inside / name).write_bytes(b"not really a pickle")
    with pytest.raises(BundleError, match=rf"{name}'.*pickle"):
        load_bundle(inside)


def test_manifest_of_a_newer_schema_is_refused_with_the_version_it_needs(copy):
    path = copy()
    edit_manifest(path, lambda data: data.update(schema_version=SCHEMA_VERSION + 1,
                                                 software={**data["software"], "abcir": "9.1.0"}))
    with pytest.raises(BundleError, match=rf"manifest\.json'.*'schema_version' is {SCHEMA_VERSION + 1}, newer than "
                                          rf"the version {SCHEMA_VERSION} that abcir {__version__} reads\. "
                                          r"It needs abcir 9\.1\.0 or later"):
        load_bundle(path)


def test_feature_list_other_than_the_extractors_is_refused(bundles):
    names = list(feature_names())
    names[5], names[6] = names[6], names[5]
    with pytest.raises(BundleError, match=rf"'features\.names' \(1130 features.*at position 5 the bundle has "
                                          rf"'{feature_names()[5]}', the extractor '{feature_names()[6]}'"):
        load_bundle(bundles["radiomics"], expected_features=names)
    with pytest.raises(BundleError, match=r"differs from the 1129 features"):
        load_bundle(bundles["radiomics"], expected_features=feature_names()[:-1])


def test_edited_feature_names_are_caught_by_their_hash(copy):
    path = copy("radiomics")
    edit_manifest(path, lambda data: data["features"]["names"].reverse())
    with pytest.raises(BundleError, match=r"'features\.sha256' is not the hash of 'features\.names'"):
        load_bundle(path)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("cutoff"), r"field 'cutoff' is missing"),
    (lambda d: d["training_data"].update(n="ninety"), r"field 'training_data\.n' must be int, not str"),
    (lambda d: d["preprocessing"]["means"].__setitem__(3, None), r"field 'preprocessing\.means\[3\]' must be float"),
    (lambda d: d.update(extra_field=1), r"field 'extra_field' is not part of this format"),
    (lambda d: d.update(schema="something.else"), r"field 'schema' is 'something\.else'"),
    (lambda d: d.update(model="radiomics"), r"does not describe a radiomics MLP"),
    (lambda d: d["architecture"].update(hidden_sizes=[31, 16, 8]),
     r"weights\.safetensors'.*tensor 'hidden1\.weight' has shape \(32, 20\); the architecture needs \(31, 20\)"),
    (lambda d: d["architecture"].update(activation="swish"), r"manifest\.json'.*Activation 'swish' is unknown"),
    (lambda d: d["cutoff"].update(value=None), r"a cut-off value needs the method"),
    (lambda d: d["clinical_encoding"].pop("tnbc"), r"field 'clinical_encoding'"),
    (lambda d: d["preprocessing"].update(aggregation="max"), r"'preprocessing\.aggregation' is 'max'"),
    (lambda d: d["files"].update({"../weights.safetensors": "0" * 64}), r"only plain file names"),
])
def test_damaged_manifest_is_refused_naming_the_field(copy, change, message):
    path = copy()
    edit_manifest(path, change)
    with pytest.raises(BundleError, match=message):
        load_bundle(path)


def test_invalid_json_and_missing_files_are_refused(copy, tmp_path):
    path = copy()
    (path / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match=r"manifest\.json'.*not valid JSON"):
        load_bundle(path)
    with pytest.raises(BundleError, match=r"no manifest\.json"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError, match="no such folder"):
        load_bundle(tmp_path / "absent")


def test_weights_file_missing_or_unlisted_files_are_refused(copy, bundles, tmp_path):
    path = copy()
    (path / "notes.txt").write_text("added later")
    with pytest.raises(BundleError, match=r"notes\.txt'.*not listed in manifest\.json 'files'"):
        load_bundle(path)
    gone = Path(shutil.copytree(bundles["radiomics"], tmp_path / "gone"))
    (gone / WEIGHTS).unlink()
    with pytest.raises(BundleError, match=r"weights\.safetensors'.*missing from the bundle folder"):
        load_bundle(gone)


def test_loading_never_unpickles(bundles, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling attempted")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(np, "load", forbidden)
    bundle = load_bundle(bundles["combined"])
    radiomics, clinical, _ = tiny_cohort(n=2, seed=1)
    assert np.all(np.isfinite(bundle.model().score(radiomics, clinical)))


def test_bundles_are_never_overwritten(bundles):
    before = file_sha256(bundles["clinical"] / WEIGHTS)
    with pytest.raises(InputError, match="already exists"):
        tiny_bundle(bundles["clinical"], "clinical")
    assert file_sha256(bundles["clinical"] / WEIGHTS) == before


def test_bundled_weights_are_read_from_resources(bundles, tmp_path, monkeypatch):
    monkeypatch.setattr(abcir.models.bundle, "weights_dir", lambda: tmp_path)
    with pytest.raises(BundleError, match=rf"ships no 'radiomics' weights \(nothing at {tmp_path / 'radiomics'}\).*"
                                          "--weights"):
        bundled_bundle("radiomics")
    shutil.copytree(bundles["radiomics"], tmp_path / "radiomics")
    assert bundled_bundle("radiomics").kind == "radiomics"
    with pytest.raises(InputError, match="Model 'mixed' is unknown"):
        bundled_bundle("mixed")


@needs_torch  # abcir.training.save_bundle; without torch tiny_bundle writes from the cache
def test_save_bundle_records_external_validation_and_feature_provenance(tmp_path):
    external = ValidationRecord("site B", "external cohort", 40, 15, 0.7, (0.55, 0.85), {"sensitivity": 0.6})
    features = FeatureSet(feature_names(), feature_names_sha256(), "3.0.1", "f" * 64)
    path = tiny_bundle(tmp_path / "b", "radiomics", validation=[external], features=features,
                       cutoff=Cutoff(None, "unset", "no PFS in the tiny set"))
    manifest = load_bundle(path).manifest
    assert manifest.validation[-1] == external and len(manifest.validation) == 2
    assert manifest.features.parameter_file_sha256 == "f" * 64
    assert to_json_dict(manifest.cutoff) == {"value": None, "method": "unset", "note": "no PFS in the tiny set"}


def test_contract_values_are_checked_when_made():
    with pytest.raises(InputError, match="method 'unset' goes with no value"):
        Cutoff(1.0, "unset")
    with pytest.raises(InputError, match="needs the method"):
        Cutoff(None, "maxstat on training PFS")
    with pytest.raises(InputError, match="use 'synthetic' or 'site'"):
        TrainingData("simulated", "x", 10, 3)
    with pytest.raises(InputError, match="0 responders of 10"):
        replace(TrainingData("site", "x", 10, 3), responders=0)
