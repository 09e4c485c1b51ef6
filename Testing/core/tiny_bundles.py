"""Tiny generated training sets and the weight bundles trained on them, for the model tests.

Not a cohort simulator: just enough signal (a few features shifted in
responders, lines of therapy tied to response) for the fitting code to have
something to find, generated in milliseconds.

Training needs torch, which Slicer's Python 3.12 (and CI's venv that stands in
for it) does not have. With torch, ``tiny_fit`` trains. Without it, ``tiny_fit``
reads the fit from the committed cache in ``Testing/fixtures/tiny_bundles/``
(written by ``make_tiny_bundles.py`` there; its README says how to regenerate
it), where each fit is a weight bundle in a folder named by the hash of
everything that determines the fit (``fit_inputs``), and ``tiny_bundle`` writes
from it what ``save_bundle`` would. A fit missing from the cache skips its test
with the command that adds it. ``test_tiny_bundle_cache.py`` retrains every
cached fit with torch and compares the bytes, so the cache cannot drift from the
code. The tests of training itself (``test_models.py``,
``test_training_pipeline.py``) need torch and skip without it.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import abcir
import numpy as np
import pytest
from abcir.models.bundle import (
    Cutoff,
    FeatureSet,
    TrainingData,
    ValidationRecord,
    WeightBundle,
    load_bundle,
    write_bundle,
)
from abcir.errors import BundleError
from abcir.features.catalogue import feature_names, feature_names_sha256, pyradiomics_version
from abcir.imaging.ct import file_sha256
from abcir.models import LogisticArchitecture, MLPArchitecture, RadiomicsPreprocessing
from abcir.resources import parameter_file
from safetensors.numpy import load_file, save_file

if TYPE_CHECKING:
    from abcir.training import MLPSettings
    from abcir.training.export import ModelFit

NO_TORCH = "training a bundle needs torch (pip install 'abcir[train]'); not installed here, as in Slicer's Python"
HAVE_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason=NO_TORCH)  # for tests of training itself

CACHE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_bundles"
GENERATOR = "Testing/fixtures/tiny_bundles/make_tiny_bundles.py"
CACHE_EPOCH = "1764028800"  # SOURCE_DATE_EPOCH of the cached bundles, the README's training example's
RECORD = "ABCIR_TINY_BUNDLES_RECORD"  # set by the generator: the folder where every trained fit is stored
FIT_INPUTS, CENTER, BUNDLE = "fit.json", "center.safetensors", "bundle"  # the files of a cache entry

FAST_SETTINGS = {"max_epochs": 200, "patience": 20}  # the tests check mechanics, not model quality
INFORMATIVE = (3, 40, 400, 900)  # columns shifted in responders
FIXED_CUTOFF = Cutoff(0.0, "fixed at 0 for the test")


def training() -> ModuleType:
    """``abcir.training``, or skip the calling test when torch is not installed."""
    pytest.importorskip("torch", reason=NO_TORCH)
    import abcir.training

    return abcir.training


def fast_settings() -> MLPSettings:
    """Fewer epochs than the defaults (``FAST_SETTINGS``)."""
    return training().MLPSettings(**FAST_SETTINGS)


def tiny_cohort(n: int = 90, seed: int = 0, center: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(radiomics n x 1130, clinical n x 4, labels n) with signal in ``INFORMATIVE`` and in lines of therapy.

    With ``center`` (a real patient's vector) each feature varies by 20% around
    it, so that patient lies inside the training distribution; without, the
    features are standard normal.
    """
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.4).astype(int)
    labels[:2], labels[2:4] = 1, 0
    noise = rng.normal(size=(n, len(feature_names())))
    if center is None:
        radiomics = noise
        radiomics[:, INFORMATIVE] += 1.5 * labels[:, None]
    else:
        scale = 0.2 * np.abs(center) + 1e-3
        radiomics = center + scale * noise
        radiomics[:, INFORMATIVE] += 1.5 * scale[list(INFORMATIVE)] * labels[:, None]
    clinical = (rng.random((n, 4)) < 0.5).astype(float)
    flip = rng.random(n) < 0.75
    clinical[flip, 0] = 1 - labels[flip]  # responders mostly had one prior line (paper: OR 0.35 for >= 2)
    return radiomics, clinical, labels


@cache
def tiny_preprocessing() -> RadiomicsPreprocessing:
    """Preprocessing selecting 20 features, for networks with hand-made weights."""
    radiomics, _, labels = tiny_cohort()
    return training().fit_preprocessing(radiomics, labels, feature_names(), "volume_weighted_mean")


@dataclass(frozen=True)
class CachedFit:
    """A fit read from the cache: the fields of ``ModelFit`` that tests read, and the bundle they come from."""

    kind: str
    architecture: MLPArchitecture | LogisticArchitecture
    preprocessing: RadiomicsPreprocessing | None
    tensors: dict[str, np.ndarray]
    bundle: WeightBundle


def tiny_fit(kind: str, seed: int = 0, center: np.ndarray | None = None) -> ModelFit | CachedFit:
    """A fit of ``kind`` on ``tiny_cohort``: trained with torch, read from the cache without.

    Kept in memory when there is no ``center`` (tests only read fits).
    """
    if center is None:
        return _fit_on_standard_normal(kind, seed)
    return _fit(kind, seed, center)


@cache
def _fit_on_standard_normal(kind: str, seed: int) -> ModelFit | CachedFit:
    return _fit(kind, seed, None)


def _fit(kind: str, seed: int, center: np.ndarray | None) -> ModelFit | CachedFit:
    if not HAVE_TORCH:
        return cached_fit(kind, seed, center)
    radiomics, clinical, labels = tiny_cohort(seed=seed, center=center)
    if kind == "clinical":
        fit = training().fit_clinical(clinical, labels)
    else:
        fit = training().fit_mlp(kind, radiomics, labels, clinical=clinical if kind == "combined" else None,
                                 settings=fast_settings())
    if RECORD in os.environ:
        record_fit(Path(os.environ[RECORD]), fit, seed, center)
    return fit


def tiny_training_data(seed: int = 0) -> TrainingData:
    labels = tiny_cohort(seed=seed)[2]
    return TrainingData(source="synthetic", site="tiny test set", n=labels.size, responders=int(labels.sum()))


def tiny_bundle(path: Path, kind: str, seed: int = 0, center: np.ndarray | None = None,
                cutoff: Cutoff = FIXED_CUTOFF, fit: ModelFit | CachedFit | None = None, **kwargs) -> Path:
    """Train (unless ``fit`` is given) and save a bundle of ``kind`` at ``path``; ``kwargs`` go to ``save_bundle``."""
    fit = fit or tiny_fit(kind, seed, center)
    save = save_cached_fit if isinstance(fit, CachedFit) else training().save_bundle
    return save(path, fit, name=f"tiny-{kind}", training_data=tiny_training_data(seed), cutoff=cutoff, **kwargs)


def save_cached_fit(path: Path, fit: CachedFit, *, name: str, training_data: TrainingData, cutoff: Cutoff,
                    validation: tuple[ValidationRecord, ...] = (), features: FeatureSet | None = None) -> Path:
    """``save_bundle`` for a cached fit: its bundle with this call's name, training data, cut-off, added
    validation and feature provenance; ``created`` and ``software`` stay those of the run that trained it."""
    manifest = fit.bundle.manifest
    if manifest.features is not None and features is None:  # save_bundle's default: this installation's extractor
        names = feature_names()
        features = FeatureSet(names, feature_names_sha256(names), pyradiomics_version(), file_sha256(parameter_file()))
    manifest = replace(manifest, name=name, training_data=training_data, cutoff=cutoff,
                       validation=(*manifest.validation, *validation),
                       features=None if manifest.features is None else features)
    return write_bundle(path, manifest, fit.tensors)


# The cache: one folder per fit, named by fit_key(fit_inputs(...)), holding FIT_INPUTS (what the key
# hashes), CENTER (the patient vector, for a fit around one) and BUNDLE (what tiny_bundle writes by default).

def fit_inputs(kind: str, seed: int = 0, center: np.ndarray | None = None) -> dict[str, Any]:
    """Everything that determines ``tiny_fit(kind, seed, center)``, as JSON data; the cache key hashes it.

    The function and its arguments, ``center`` as its float64 bytes, the training
    set as generated (so that a change to ``tiny_cohort`` changes the key), the
    feature list and the training settings. What cannot be seen without torch
    (the training code, the versions of torch and numpy) is checked by retraining
    in ``test_tiny_bundle_cache.py``.
    """
    radiomics, clinical, labels = tiny_cohort(seed=seed, center=center)
    return {"function": "tiny_fit", "kind": kind, "seed": seed,
            "center_sha256": None if center is None else _sha256(center),
            "cohort_sha256": _sha256(radiomics, clinical, labels),
            "feature_names_sha256": feature_names_sha256(),
            "settings": training_settings(kind)}


def fit_key(inputs: dict[str, Any]) -> str:
    """The cache folder name of a fit: the first 16 hex digits of the SHA-256 of its canonical inputs."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _sha256(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(repr(array.shape).encode())
        digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
    return digest.hexdigest()


@cache
def training_settings(kind: str) -> dict[str, Any]:
    """The settings ``tiny_fit`` trains ``kind`` with: none for the logistic regression; for the MLPs
    abcir's ``MLPSettings`` and ``SelectionSettings`` defaults (source text) with ``FAST_SETTINGS`` changed."""
    if kind == "clinical":
        return {"fit_clinical": {}}
    return {"fit_mlp": {"MLPSettings": training_defaults("mlp", "MLPSettings"),
                        "SelectionSettings": training_defaults("selection", "SelectionSettings"),
                        "changed": FAST_SETTINGS}}


def training_defaults(module: str, name: str) -> dict[str, str]:
    """The field defaults of dataclass ``name`` in ``abcir/training/<module>.py`` as source text: read, not
    imported, because importing ``abcir.training`` needs torch."""
    source = Path(abcir.__file__).parent / "training" / f"{module}.py"
    classes = {node.name: node for node in ast.parse(source.read_text(encoding="utf-8")).body
               if isinstance(node, ast.ClassDef)}
    if name not in classes:
        raise LookupError(f"{source} defines no class {name}; update tiny_bundles.training_settings.")
    return {node.target.id: ast.unparse(node.value) for node in classes[name].body if isinstance(node, ast.AnnAssign)}


def cached_fit(kind: str, seed: int = 0, center: np.ndarray | None = None) -> CachedFit:
    """The fit ``tiny_fit(kind, seed, center)`` from the cache, or skip the calling test (naming the generator)."""
    key = fit_key(fit_inputs(kind, seed, center))
    path = CACHE / key / BUNDLE
    if not path.is_dir():
        around = "on standard normal features" if center is None else "around a patient's vector"
        pytest.skip(f"the tiny {kind} fit (seed {seed}, {around}; key {key}) is not in {CACHE}, and training it "
                    f"needs torch, not installed here: with torch, run 'python {GENERATOR}' (its docstring says "
                    "how to regenerate the cache)")
    bundle = load_bundle(path)
    return CachedFit(bundle.kind, bundle.manifest.architecture, bundle.manifest.preprocessing, bundle.tensors, bundle)


def record_fit(folder: Path, fit: ModelFit, seed: int, center: np.ndarray | None) -> Path:
    """Store ``fit`` as a cache entry in ``folder`` (the generator's step); an entry already there is kept."""
    inputs = fit_inputs(fit.kind, seed, center)
    entry = folder / fit_key(inputs)
    if not entry.exists():
        entry.mkdir(parents=True)
        (entry / FIT_INPUTS).write_text(json.dumps(inputs, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        if center is not None:
            save_file({"center": np.ascontiguousarray(center, dtype=np.float64)}, str(entry / CENTER))
        tiny_bundle(entry / BUNDLE, fit.kind, seed, fit=fit)
    return entry


@dataclass(frozen=True)
class CacheEntry:
    """One cached fit: its folder (named by its key), the inputs the key hashes, and the patient vector it was
    fitted around (``None`` for standard normal features)."""

    path: Path
    inputs: dict[str, Any]
    center: np.ndarray | None

    @property
    def bundle(self) -> Path:
        return self.path / BUNDLE


def cache_entries(folder: Path | None = None) -> list[CacheEntry]:
    """The entries of the cache (default ``CACHE``), by key."""
    entries = []
    for path in sorted((folder or CACHE).iterdir()):
        if path.is_dir() and not path.name.startswith((".", "__")):
            center = load_file(str(path / CENTER))["center"] if (path / CENTER).exists() else None
            entries.append(CacheEntry(path, json.loads((path / FIT_INPUTS).read_text(encoding="utf-8")), center))
    return entries


def entry_problems(entry: CacheEntry) -> list[str]:
    """What is wrong with a cache entry, if anything: each problem in a sentence that says the fix."""
    name, inputs = entry.path.name, entry.inputs
    problems = []
    if fit_key(inputs) != name:
        problems.append(f"{name}: its {FIT_INPUTS} hashes to {fit_key(inputs)}; the entry was edited or renamed.")
    if inputs["center_sha256"] != (None if entry.center is None else _sha256(entry.center)):
        problems.append(f"{name}: {CENTER} does not match center_sha256 in {FIT_INPUTS}.")
    elif fit_inputs(inputs["kind"], inputs["seed"], entry.center) != inputs:
        problems.append(f"{name}: stale, the current tiny_bundles/abcir settings give this fit other inputs; "
                        f"regenerate the cache ('python {GENERATOR}', see its docstring).")
    extra = sorted({path.name for path in entry.path.iterdir()} - {FIT_INPUTS, CENTER, BUNDLE})
    if extra:
        problems.append(f"{name}: unexpected files {extra}.")
    try:
        manifest = load_bundle(entry.bundle).manifest
    except BundleError as error:
        return [*problems, f"{name}: {error}"]
    created = datetime.fromtimestamp(int(CACHE_EPOCH), timezone.utc).isoformat(timespec="seconds")
    if (manifest.model, manifest.created) != (inputs["kind"], created):
        problems.append(f"{name}: the bundle holds a {manifest.model} model created {manifest.created}, not a "
                        f"{inputs['kind']} model created {created} (SOURCE_DATE_EPOCH={CACHE_EPOCH}).")
    return problems
