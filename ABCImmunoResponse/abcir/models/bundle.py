"""Weight bundles: a folder with ``weights.safetensors`` and ``manifest.json``, checked before use.

A model is only meaningful together with how it was made: the features it
reads in their exact order, the preprocessing fitted on its training data, the
risk cut-off and where the training data came from. The manifest records all
of it (schema ``SCHEMA_VERSION``) with the SHA-256 of every other file.

Loading verifies, in this order, and refuses with a message naming the file or
field: no pickle-based file anywhere (unpickling runs code from the file, so
abcir never does it), a readable manifest of a schema this version knows,
every field's type, every file's hash (and no unhashed file), fields that agree
with each other, tensors of the shapes the architecture needs, and a feature
list identical to the one the extractor produces.
Tensors are read with ``safetensors.numpy``: plain arrays, no code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from .. import __version__
from ..errors import BundleError, InputError
from ..features.catalogue import feature_names, feature_names_sha256
from ..imaging.ct import file_sha256
from ..patient.clinical_facts import CLINICAL_ENCODING
from ..records import from_json_dict, to_json_dict
from ..resources import weights_dir
from . import MODEL_KINDS, LogisticArchitecture, MLPArchitecture, ResponseModel, build_model
from .aggregation import AGGREGATIONS
from .preprocessing import RadiomicsPreprocessing

SCHEMA = "abcir.weights"
SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
#: Paper, Methods "Study design": CR/PR "responsive", SD/PD "non-responsive" by RECIST 1.1.
LABEL_DEFINITION = "responder = CR or PR, non-responder = SD or PD, by RECIST 1.1"
#: File types that hold Python pickles (or may: numpy with allow_pickle); loading one would run its code.
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib", ".npy", ".npz")


@dataclass(frozen=True)
class FeatureSet:
    """The extractor's feature list the model was trained on, and what produced it."""

    names: tuple[str, ...]
    sha256: str
    pyradiomics_version: str
    parameter_file_sha256: str


@dataclass(frozen=True)
class Cutoff:
    """The risk cut-off on the score (log-odds) scale: score <= value is the high-risk group.

    ``value`` is None with ``method`` "unset" when the training data had no
    survival times to choose one (the ``note`` says why).
    """

    value: float | None
    method: str
    note: str = ""

    def __post_init__(self) -> None:
        if (self.value is None) != (self.method == "unset"):
            raise InputError(f"Cut-off {self.value} with method '{self.method}': a cut-off value needs the method "
                             "that chose it, and method 'unset' goes with no value.")


@dataclass(frozen=True)
class TrainingData:
    """Where the training patients came from; ``source`` is "synthetic" or "site"."""

    source: str
    site: str
    n: int
    responders: int
    date_from: str | None = None
    date_to: str | None = None
    label_definition: str = LABEL_DEFINITION
    description: str = ""

    def __post_init__(self) -> None:
        if self.source not in ("synthetic", "site"):
            raise InputError(f"Training data source '{self.source}': use 'synthetic' or 'site'.")
        if not 0 < self.responders < self.n:
            raise InputError(f"Training data: {self.responders} responders of {self.n} patients; "
                             "a model needs responders and non-responders.")

    def describe(self) -> str:
        """One line for the user: what, how many, when."""
        what = f"synthetic data '{self.site}'" if self.source == "synthetic" else f"site '{self.site}'"
        dates = f", {self.date_from or '?'} to {self.date_to or '?'}" if self.date_from or self.date_to else ""
        return f"{what} (n={self.n}, {self.responders} responders{dates})"


@dataclass(frozen=True)
class ValidationRecord:
    """Performance on patients the weights were not fitted to (an inner split or another cohort)."""

    cohort: str
    method: str
    n: int
    responders: int
    auc: float | None
    auc_ci: tuple[float, float] | None
    metrics: dict[str, float]


@dataclass(frozen=True)
class WeightsManifest:
    """Everything a bundle says about its weights; ``files`` maps file names to SHA-256."""

    schema: str
    schema_version: int
    name: str
    created: str
    model: str
    architecture: MLPArchitecture | LogisticArchitecture
    features: FeatureSet | None
    preprocessing: RadiomicsPreprocessing | None
    clinical_encoding: dict[str, str] | None
    cutoff: Cutoff
    training_data: TrainingData
    validation: tuple[ValidationRecord, ...]
    training: dict[str, Any]
    software: dict[str, str]
    clinically_validated: bool
    files: dict[str, str]


@dataclass
class WeightBundle:
    """A verified bundle: its manifest and tensors, and the numpy model they make."""

    path: Path
    manifest: WeightsManifest
    tensors: dict[str, np.ndarray]
    manifest_sha256: str

    @property
    def kind(self) -> str:
        """The model kind: "clinical", "radiomics" or "combined"."""
        return self.manifest.model

    @property
    def weights_sha256(self) -> str:
        """SHA-256 of ``weights.safetensors``, as the manifest records it (verified on loading)."""
        return self.manifest.files[WEIGHTS]

    def model(self) -> ResponseModel:
        """The numpy model of this bundle."""
        manifest = self.manifest
        names = None if manifest.features is None else manifest.features.names
        return build_model(manifest.architecture, manifest.preprocessing, self.tensors, names)


def _fail(where: Path | str, problem: str) -> BundleError:
    return BundleError(f"Weights '{where}': {problem}")


def _refuse_pickles(path: Path) -> None:
    candidates = [path] if path.is_file() else sorted(path.iterdir())
    for candidate in candidates:
        if candidate.suffix.lower() in PICKLE_SUFFIXES:
            raise _fail(candidate, f"a {candidate.suffix} file is a Python pickle (or may hold one), and loading it "
                        "would run any code inside it, so abcir never loads one. Use a bundle folder with "
                        f"{WEIGHTS} and {MANIFEST} (written by abcir.training.save_bundle).")


def _read_manifest_json(path: Path) -> tuple[dict, bytes]:
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise _fail(path, f"no {MANIFEST}; a weight bundle is a folder with {MANIFEST} and {WEIGHTS}.")
    raw = manifest_path.read_bytes()
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _fail(manifest_path, f"not valid JSON ({error}).") from error
    if not isinstance(data, dict):
        raise _fail(manifest_path, "must hold a JSON object.")
    if data.get("schema") != SCHEMA:
        raise _fail(manifest_path, f"field 'schema' is {data.get('schema')!r}, not '{SCHEMA}'; this is not an "
                    "abcir weight manifest.")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _fail(manifest_path, f"field 'schema_version' is {version!r}; a positive integer is needed.")
    if version > SCHEMA_VERSION:
        software = data.get("software")
        writer = software.get("abcir") if isinstance(software, dict) else None
        needs = f"abcir {writer} or later" if writer else f"an abcir that reads schema version {version}"
        raise _fail(manifest_path, f"field 'schema_version' is {version}, newer than the version "
                    f"{SCHEMA_VERSION} that abcir {__version__} reads. It needs {needs}; update abcir.")
    return data, raw


def _check_files(path: Path, files: dict[str, str]) -> None:
    if WEIGHTS not in files:
        raise _fail(path / MANIFEST, f"field 'files' does not list {WEIGHTS}.")
    for name, expected in files.items():
        if Path(name).name != name or name in (".", "..", MANIFEST):
            raise _fail(path / MANIFEST, f"field 'files' lists '{name}'; only plain file names of the bundle "
                        "folder are allowed.")
        target = path / name
        if not target.is_file():
            raise _fail(target, f"listed in {MANIFEST} but missing from the bundle folder.")
        actual = file_sha256(target)
        if actual != expected:
            raise _fail(target, f"SHA-256 is {actual}, but {MANIFEST} records {expected}: the file was changed "
                        "after the bundle was written. Use an unaltered copy of the bundle.")
    for extra in sorted(path.iterdir()):
        if extra.name not in files and extra.name != MANIFEST and not extra.name.startswith("."):
            raise _fail(extra, f"not listed in {MANIFEST} 'files', so its content is not covered by a hash. "
                        "Remove it from the bundle folder.")


def _check_consistency(manifest: WeightsManifest, where: Path) -> None:
    """Fields that are each well-typed but must also agree with each other and with this abcir."""
    architecture = manifest.architecture
    if manifest.model not in MODEL_KINDS:
        raise _fail(where, f"field 'model' is '{manifest.model}'; use one of {', '.join(MODEL_KINDS)}.")
    clinical_names = tuple(CLINICAL_ENCODING)
    if manifest.model == "clinical":
        if not isinstance(architecture, LogisticArchitecture):
            raise _fail(where, "field 'architecture' describes an MLP, but field 'model' is 'clinical'.")
        if architecture.inputs != clinical_names:
            raise _fail(where, f"field 'architecture.inputs' is {list(architecture.inputs)}; this abcir encodes "
                        f"the clinical facts as {list(clinical_names)}.")
    else:
        wanted = 0 if manifest.model == "radiomics" else len(clinical_names)
        if not isinstance(architecture, MLPArchitecture) or architecture.n_clinical != wanted:
            raise _fail(where, f"field 'architecture' does not describe a {manifest.model} MLP "
                        f"(needs n_clinical = {wanted}).")
        if manifest.features is None or manifest.preprocessing is None:
            raise _fail(where, f"fields 'features' and 'preprocessing' are required for a {manifest.model} model.")
        preprocessing = manifest.preprocessing
        if preprocessing.aggregation not in AGGREGATIONS:
            raise _fail(where, f"field 'preprocessing.aggregation' is '{preprocessing.aggregation}'; this abcir "
                        f"knows {', '.join(AGGREGATIONS)}.")
        k = architecture.n_inputs
        if not len(preprocessing.selected) == len(preprocessing.means) == len(preprocessing.sds) == k:
            raise _fail(where, f"fields 'preprocessing.selected', '.means', '.sds' must each have "
                        f"architecture.n_inputs = {k} entries.")
        if min(preprocessing.sds) <= 0:
            raise _fail(where, "field 'preprocessing.sds' holds a value <= 0; standard deviations are positive.")
        unknown = sorted(set(preprocessing.selected) - set(manifest.features.names))
        if unknown:
            raise _fail(where, f"field 'preprocessing.selected' names features not in 'features.names': {unknown[:3]}.")
    uses_clinical = manifest.model != "radiomics"
    if uses_clinical and (manifest.clinical_encoding is None or tuple(manifest.clinical_encoding) != clinical_names):
        listed = None if manifest.clinical_encoding is None else list(manifest.clinical_encoding)
        raise _fail(where, f"field 'clinical_encoding' is {listed}; this abcir encodes the clinical facts as "
                    f"{list(clinical_names)}.")


def _check_features(manifest: WeightsManifest, where: Path, expected: Sequence[str]) -> None:
    features = manifest.features
    if features is None:
        return
    if feature_names_sha256(features.names) != features.sha256:
        raise _fail(where, "field 'features.sha256' is not the hash of 'features.names'; the list was edited.")
    expected = tuple(expected)
    if features.names != expected:
        first = next((i for i, (a, b) in enumerate(zip(features.names, expected)) if a != b),
                     min(len(features.names), len(expected)))
        bundle_name = features.names[first] if first < len(features.names) else "(end of list)"
        extractor_name = expected[first] if first < len(expected) else "(end of list)"
        raise _fail(where, f"field 'features.names' ({len(features.names)} features, sha256 {features.sha256[:12]}) "
                    f"differs from the {len(expected)} features this extractor produces (sha256 "
                    f"{feature_names_sha256(expected)[:12]}): at position {first} the bundle has '{bundle_name}', "
                    f"the extractor '{extractor_name}'. Use weights trained on this abcir's feature list.")


def _check_tensors(tensors: dict[str, np.ndarray], architecture: MLPArchitecture | LogisticArchitecture,
                   where: Path | str) -> None:
    shapes = architecture.tensor_shapes()
    missing = sorted(set(shapes) - set(tensors))
    extra = sorted(set(tensors) - set(shapes))
    if missing or extra:
        raise _fail(where, f"tensors do not match the architecture (missing {missing}, unexpected {extra}).")
    for name, shape in shapes.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape:
            raise _fail(where, f"tensor '{name}' has shape {tuple(tensor.shape)}; the architecture needs {shape}.")
        if not np.issubdtype(tensor.dtype, np.floating) or not np.all(np.isfinite(tensor)):
            raise _fail(where, f"tensor '{name}' must hold finite floating-point values.")


def load_bundle(path: str | os.PathLike, expected_features: Sequence[str] | None = None) -> WeightBundle:
    """Read and verify a bundle folder; ``expected_features`` defaults to the extractor's list.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle folder, holding ``manifest.json`` and ``weights.safetensors``.
    expected_features : sequence of str, optional
        The feature list the bundle's must equal, in order; None means the
        extractor's 1130 names (``feature_names()``).

    Returns
    -------
    WeightBundle
        The verified manifest, its tensors, and the SHA-256 of the manifest's bytes.

    Raises
    ------
    BundleError
        The folder is missing or is a file, holds a pickle-type file, its manifest
        is unreadable, of an unknown or newer schema, mistyped or inconsistent,
        a file's hash differs or a file is not listed, the tensors are unreadable
        or do not fit the architecture, or the feature list differs.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "no such folder.")
    _refuse_pickles(path)
    if path.is_file():
        raise _fail(path, f"a file; give the bundle folder that holds {MANIFEST} and {WEIGHTS}.")
    data, raw = _read_manifest_json(path)
    manifest_path = path / MANIFEST
    try:
        manifest = from_json_dict(WeightsManifest, data, f"Weights '{manifest_path}'", BundleError)
    except BundleError:
        raise
    except InputError as error:  # a dataclass refusing its values
        raise _fail(manifest_path, str(error)) from error
    _check_files(path, manifest.files)
    _check_consistency(manifest, manifest_path)
    try:
        tensors = load_file(str(path / WEIGHTS))
    except (SafetensorError, OSError, ValueError) as error:
        raise _fail(path / WEIGHTS, f"not a readable safetensors file ({error}).") from error
    _check_tensors(tensors, manifest.architecture, path / WEIGHTS)
    _check_features(manifest, manifest_path, feature_names() if expected_features is None else expected_features)
    return WeightBundle(path, manifest, tensors, hashlib.sha256(raw).hexdigest())


def bundled_bundle(kind: str) -> WeightBundle:
    """The weights shipped with abcir for model ``kind``, from ``Resources/Weights/<kind>/``.

    Parameters
    ----------
    kind : {"clinical", "radiomics", "combined"}
        The model kind.

    Returns
    -------
    WeightBundle
        The shipped bundle, verified as ``load_bundle`` verifies any.

    Raises
    ------
    InputError
        ``kind`` is not one of the three.
    BundleError
        This installation ships no bundle of that kind, or it fails verification.
    """
    if kind not in MODEL_KINDS:
        raise InputError(f"Model '{kind}' is unknown; use one of {', '.join(MODEL_KINDS)}.")
    folder = weights_dir() / kind
    if not (folder / MANIFEST).is_file():
        raise BundleError(f"Weights: this installation ships no '{kind}' weights (nothing at {folder}). "
                          "Pass a bundle trained on your site's cohort with --weights (see the README, "
                          "'Train on a site's cohort').")
    return load_bundle(folder)


def write_bundle(path: str | os.PathLike, manifest: WeightsManifest, tensors: dict[str, np.ndarray]) -> Path:
    """Write tensors and manifest (its ``files`` filled in here) to a new folder; never replaces one.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle folder to create (its parent is created when missing).
    manifest : WeightsManifest
        Everything but ``files``, which is replaced by the SHA-256 of the weights file.
    tensors : dict of str to np.ndarray
        The weights by name; written as float64.

    Returns
    -------
    Path
        The folder, complete: written under a temporary name and renamed, so it
        is never seen half-written.

    Raises
    ------
    InputError
        ``path`` already exists.
    BundleError
        The tensors do not match ``manifest.architecture`` (names, shapes) or are not finite.
    ValueError
        The manifest holds a value JSON cannot write (NaN or infinity).
    """
    path = Path(path)
    if path.exists():
        raise InputError(f"Output '{path}' already exists; choose another name (bundles are never overwritten).")
    arrays = {name: np.ascontiguousarray(value, dtype=np.float64) for name, value in tensors.items()}
    _check_tensors(arrays, manifest.architecture, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}-", dir=path.parent))
    try:
        # One metadata key only: safetensors writes a map in arbitrary order, and the bytes must not vary.
        save_file(arrays, str(staging / WEIGHTS), metadata={"format": f"{SCHEMA}:{manifest.model}"})
        final = replace(manifest, files={WEIGHTS: file_sha256(staging / WEIGHTS)})
        text = json.dumps(to_json_dict(final), indent=2, allow_nan=False)
        (staging / MANIFEST).write_text(text + "\n", encoding="utf-8")
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return path
