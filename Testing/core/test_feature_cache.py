"""The lesion feature cache: exact round trips, keys that change with every input, nothing stale or corrupt used."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from abcir import files
from abcir.features import cache as feature_cache
from abcir.features import catalogue, engine, extract
from abcir.features.cache import CACHE_ENVIRONMENT_VARIABLE, FeatureCache, cache_key
from abcir.paper import N_FEATURES
from abcir.features.catalogue import Provenance
from abcir.features.extract import extract_lesions
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic_ct import add_lesion, synthetic_ct  # noqa: E402

PROVENANCE = Provenance("3.0.1", "p" * 64, "c" * 64, "m" * 64, (0.7, 0.7, 1.25), (1.0, 1.0, 1.0))


def sample_values() -> np.ndarray:
    values = np.random.default_rng(0).normal(size=N_FEATURES) * 10.0 ** np.arange(-8, 8, 16 / N_FEATURES)
    values[[3, 17]] = np.nan  # pyradiomics returns NaN for a feature that fails
    values[5] = -0.0
    return values


def test_round_trip_is_exact(tmp_path):
    cache = FeatureCache(tmp_path)
    values = sample_values()
    path = cache.put(PROVENANCE, values)
    assert path.parent.parent == tmp_path and path.name == f"{cache_key(PROVENANCE)}.json"
    got = cache.get(PROVENANCE)
    assert got.tobytes() == values.tobytes()  # bit for bit, NaN and -0.0 included
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("change", [
    {"ct_sha256": "d" * 64}, {"mask_sha256": "n" * 64}, {"parameter_file_sha256": "q" * 64},
    {"spacing_original_mm": (0.8, 0.8, 1.25)}])
def test_key_changes_with_every_input(tmp_path, change):
    cache = FeatureCache(tmp_path)
    cache.put(PROVENANCE, sample_values())
    changed = replace(PROVENANCE, **change)
    assert cache_key(changed) != cache_key(PROVENANCE)
    assert cache.get(changed) is None


def test_key_changes_with_software(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)
    cache.put(PROVENANCE, sample_values())
    versions = catalogue.software_versions()
    monkeypatch.setattr(feature_cache, "software_versions", lambda: {**versions, "pyradiomics": "3.1.0"})
    assert cache.get(PROVENANCE) is None


def corrupt(path: Path, how: str) -> None:
    entry = json.loads(path.read_text())
    if how == "truncated":
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    elif how == "edited_value":
        entry["values"][10] = float.fromhex(entry["values"][10]).__add__(1.0).hex()
        path.write_text(json.dumps(entry))
    elif how == "stale_inputs":  # an entry from other software, stored under this key
        entry["inputs"]["software"]["SimpleITK"] = "1.0"
        path.write_text(json.dumps(entry))
    elif how == "other_key":
        entry["key"] = "0" * 64
        path.write_text(json.dumps(entry))
    elif how == "short":
        entry["values"] = entry["values"][:-1]
        path.write_text(json.dumps(entry))


@pytest.mark.parametrize("how", ["truncated", "edited_value", "stale_inputs", "other_key", "short"])
def test_stale_or_corrupt_entries_are_never_used(tmp_path, how, caplog):
    cache = FeatureCache(tmp_path)
    path = cache.put(PROVENANCE, sample_values())
    corrupt(path, how)
    with caplog.at_level(logging.WARNING, logger="abcir.features.cache"):
        assert cache.get(PROVENANCE) is None
    assert "recomputing" in caplog.text
    assert not path.exists()  # removed, so the next put replaces it


def test_an_interrupted_write_leaves_no_entry(tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def fail(*args, **kwargs):
        raise KeyboardInterrupt  # the process is stopped while writing, before the entry is renamed into place

    monkeypatch.setattr(files.os, "fsync", fail)
    with pytest.raises(KeyboardInterrupt):
        cache.put(PROVENANCE, sample_values())
    assert cache.get(PROVENANCE) is None
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


@pytest.fixture(scope="module")
def patient():
    ct = synthetic_ct((90, 80, 36), (0.7, 0.7, 1.25), seed=3)
    lesions = []
    for index, center in enumerate(((30, 30, 15), (62, 50, 20))):
        ct, placed = add_lesion(ct, f"L{index}", center, 5.0, seed=index)
        lesions.append(Lesion(placed.name, "liver", placed.mask, measure_lesion(placed.mask)))
    return ct, lesions


def count_extractions(monkeypatch) -> list[str]:
    computed: list[str] = []
    prepare = extract.prepare_lesion

    def counting(ct, mask, lesion_id):
        computed.append(lesion_id)
        return prepare(ct, mask, lesion_id)

    # One job goes through engine_values, several through extract_lesions' own pieces: count both.
    monkeypatch.setattr(extract, "prepare_lesion", counting)
    monkeypatch.setattr(engine, "prepare_lesion", counting)
    return computed


def test_editing_one_lesion_recomputes_only_that_lesion(tmp_path, patient, monkeypatch):
    ct, lesions = patient
    cache = FeatureCache(tmp_path)
    computed = count_extractions(monkeypatch)
    first = extract_lesions(ct, lesions, "P", cache=cache)
    assert computed == ["L0", "L1"]
    again = extract_lesions(ct, lesions, "P", cache=cache)
    assert computed == ["L0", "L1"]  # nothing recomputed
    for a, b in zip(first, again):
        assert a.values.tobytes() == b.values.tobytes() and a.provenance == b.provenance
    edited_mask = sitk.BinaryDilate(lesions[1].mask, [1, 1, 1])
    edited = [lesions[0], Lesion("L1", "liver", edited_mask, measure_lesion(edited_mask))]
    rows = extract_lesions(ct, edited, "P", cache=cache)
    assert computed == ["L0", "L1", "L1"]
    assert rows[0].values.tobytes() == first[0].values.tobytes()
    assert not np.array_equal(rows[1].values, first[1].values)


def test_a_corrupt_entry_is_recomputed_to_the_same_values(tmp_path, patient, monkeypatch):
    ct, lesions = patient
    cache = FeatureCache(tmp_path)
    first = extract_lesions(ct, lesions[:1], "P", cache=cache)
    corrupt(cache.path(cache_key(first[0].provenance)), "edited_value")
    computed = count_extractions(monkeypatch)
    again = extract_lesions(ct, lesions[:1], "P", cache=cache)
    assert computed == ["L0"]
    assert again[0].values.tobytes() == first[0].values.tobytes()


def test_the_environment_names_the_default_cache(tmp_path, patient, monkeypatch):
    ct, lesions = patient
    monkeypatch.setenv(CACHE_ENVIRONMENT_VARIABLE, str(tmp_path))
    extract_lesions(ct, lesions[:1], "P")
    assert len(list(tmp_path.rglob("*.json"))) == 1
    monkeypatch.delenv(CACHE_ENVIRONMENT_VARIABLE)
    assert FeatureCache.from_environment() is None
