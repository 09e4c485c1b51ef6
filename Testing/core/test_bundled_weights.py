"""The weights shipped in Resources/Weights load, verify, and say what they are."""

from __future__ import annotations

import pytest

from abcir.models.bundle import bundled_bundle
from abcir.features.catalogue import feature_names_sha256
from abcir.models import MODEL_KINDS
from abcir.resources import weights_dir


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_bundled_weights_are_synthetic_verified_and_not_validated(kind):
    bundle = bundled_bundle(kind)  # checks the schema, every SHA-256 and the feature list
    manifest = bundle.manifest
    assert manifest.model == kind
    assert manifest.clinically_validated is False
    assert manifest.training_data.source == "synthetic"
    assert manifest.training_data.n == 171
    assert "abcir make-cohort --n 240" in manifest.training_data.description
    assert "abcir train --cohort" in manifest.training_data.description
    assert manifest.validation[-1].n == 69 and manifest.validation[-1].auc is not None
    if kind != "clinical":
        assert manifest.features.sha256 == feature_names_sha256()
        assert manifest.cutoff.value is not None and manifest.cutoff.method.startswith("maxstat")


def test_model_card_reports_the_validation_aucs_of_the_bundles():
    card = (weights_dir() / "MODEL_CARD.md").read_text()
    for kind in MODEL_KINDS:
        auc = bundled_bundle(kind).manifest.validation[-1].auc
        assert f"| {kind} | {auc:.3f} (" in card
    assert "Trained on generated data" in card
