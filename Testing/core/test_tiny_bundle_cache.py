"""The committed cache of tiny fits (Testing/fixtures/tiny_bundles) against the code that made it.

Without torch the model, prediction and bridge tests read their fits from the
cache (``tiny_bundles``). Here every entry must be what its key says (with or
without torch), and with torch every cached fit is trained afresh and must give
the same bytes: the weights exactly, the manifest exactly but for the versions
of the software that wrote it, which name an installation rather than the code.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np
import pytest
import tiny_bundles
from abcir.models.bundle import MANIFEST, WEIGHTS, Cutoff, FeatureSet, ValidationRecord
from abcir.features.catalogue import feature_names, feature_names_sha256
from tiny_bundles import (
    CACHE_EPOCH,
    GENERATOR,
    cache_entries,
    cached_fit,
    entry_problems,
    fit_key,
    tiny_bundle,
    training,
    training_defaults,
)

REGENERATE = (f"if the change is intended, regenerate the cache: git rm -r -q {Path(GENERATOR).parent}/*/ && "
              f"python {GENERATOR}")


def bundle_differences(fresh: Path, committed: Path) -> list[str]:
    """How bundle ``fresh`` differs from ``committed``: weights byte for byte, the manifest byte for byte unless
    the recorded software versions differ, and then field by field with those versions left out."""
    differences = []
    if (fresh / WEIGHTS).read_bytes() != (committed / WEIGHTS).read_bytes():
        differences.append(f"{WEIGHTS} differs")
    new, old = (json.loads((path / MANIFEST).read_text(encoding="utf-8")) for path in (fresh, committed))
    if new["software"] == old["software"]:
        if (fresh / MANIFEST).read_bytes() != (committed / MANIFEST).read_bytes():
            changed = sorted(key for key in new.keys() | old.keys() if new.get(key) != old.get(key))
            differences.append(f"{MANIFEST} differs (fields {changed})")
    else:
        changed = sorted(key for key in new.keys() | old.keys() - {"software"} if new.get(key) != old.get(key))
        if changed:
            differences.append(f"{MANIFEST} fields {changed} differ")
    return differences


def test_every_cache_entry_is_the_bundle_its_key_names():
    entries = cache_entries()
    assert {entry.inputs["kind"] for entry in entries} == {"clinical", "radiomics", "combined"}
    assert any(entry.center is not None for entry in entries)
    assert [problem for entry in entries for problem in entry_problems(entry)] == []


def test_a_fit_missing_from_the_cache_skips_naming_the_generator(monkeypatch, tmp_path):
    monkeypatch.setattr(tiny_bundles, "CACHE", tmp_path)
    with pytest.raises(pytest.skip.Exception, match=r"tiny radiomics fit \(seed 0, on standard normal.*not in "
                                                    rf"{re.escape(str(tmp_path))}.*run 'python {GENERATOR}'"):
        cached_fit("radiomics")
    monkeypatch.setattr(tiny_bundles, "HAVE_TORCH", False)
    with pytest.raises(pytest.skip.Exception, match=r"tiny combined fit \(seed 0, around a patient's vector"):
        tiny_bundle(tmp_path / "combined", "combined", center=np.ones(len(feature_names())))
    assert not (tmp_path / "combined").exists()


def test_damaged_and_stale_entries_are_named(tmp_path):
    entry = next(entry for entry in cache_entries() if entry.center is None)
    renamed = Path(shutil.copytree(entry.path, tmp_path / "renamed" / ("0" * 16)))
    (renamed / "notes.txt").write_text("x")
    problems = entry_problems(cache_entries(renamed.parent)[0])
    assert any(f"hashes to {entry.path.name}" in problem for problem in problems)
    assert any("unexpected files ['notes.txt']" in problem for problem in problems)
    inputs = {**entry.inputs, "seed": 1}  # as if tiny_cohort had changed: the key no longer matches the code
    stale = Path(shutil.copytree(entry.path, tmp_path / "stale" / fit_key(inputs)))
    (stale / "fit.json").write_text(json.dumps(inputs))
    assert [problem for problem in entry_problems(cache_entries(stale.parent)[0]) if "stale" in problem and GENERATOR
            in problem] != []


def test_cached_fits_retrain_to_the_same_bytes(monkeypatch, tmp_path):
    training()  # skips without torch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", CACHE_EPOCH)
    drifted = {}
    for entry in cache_entries():
        fresh = tiny_bundle(tmp_path / entry.path.name, entry.inputs["kind"], entry.inputs["seed"], entry.center)
        if differences := bundle_differences(fresh, entry.bundle):
            drifted[entry.path.name] = differences
    assert not drifted, f"cached fits no longer match what the code trains: {drifted}; {REGENERATE}"


def test_a_cached_fit_is_saved_as_save_bundle_saves_the_trained_one(monkeypatch, tmp_path):
    training()  # skips without torch
    monkeypatch.setenv("SOURCE_DATE_EPOCH", CACHE_EPOCH)
    external = ValidationRecord("site B", "external cohort", 40, 15, 0.7, (0.55, 0.85), {"sensitivity": 0.6})
    features = FeatureSet(feature_names(), feature_names_sha256(), "2.2.0", "0" * 64)
    calls = {"cutoff": {"cutoff": Cutoff(-0.5, "fixed for the test")},
             "provenance": {"cutoff": Cutoff(None, "unset", "no PFS"), "validation": [external], "features": features}}
    for kind in ("clinical", "combined"):
        for name, kwargs in calls.items():
            trained = tiny_bundle(tmp_path / f"trained-{kind}-{name}", kind, **kwargs)
            cached = tiny_bundle(tmp_path / f"cached-{kind}-{name}", kind, fit=cached_fit(kind), **kwargs)
            assert bundle_differences(cached, trained) == [], (kind, name)


def test_the_key_reads_the_training_defaults_abcir_uses():
    module = training()  # skips without torch
    for settings, source in ((module.MLPSettings, "mlp"), (module.SelectionSettings, "selection")):
        defaults = training_defaults(source, settings.__name__)
        assert list(defaults) == [field.name for field in fields(settings)]
        for field in fields(settings):
            if field.default is not MISSING:
                assert ast.literal_eval(defaults[field.name]) == field.default, field.name
