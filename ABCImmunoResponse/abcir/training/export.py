"""From a fitted model to a weight bundle: the fit's record plus where its data came from."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import safetensors

from .. import __version__
from ..features.catalogue import feature_names, feature_names_sha256, pyradiomics_version
from ..imaging.ct import file_sha256
from ..models import LogisticArchitecture, MLPArchitecture, RadiomicsPreprocessing, ResponseModel, build_model
from ..models.bundle import (
    SCHEMA,
    SCHEMA_VERSION,
    Cutoff,
    FeatureSet,
    TrainingData,
    ValidationRecord,
    WeightsManifest,
    write_bundle,
)
from ..patient.clinical_facts import CLINICAL_ENCODING
from ..resources import parameter_file


@dataclass(frozen=True)
class ModelFit:
    """What ``fit_clinical``/``fit_mlp`` produce and ``save_bundle`` writes.

    ``training`` records the method, settings and outcome of the fit (it goes
    into the manifest as it is); ``validation`` holds the fit's own held-out
    records (the MLP's inner validation split); ``software`` the versions of
    the fitting libraries.
    """

    kind: str
    architecture: MLPArchitecture | LogisticArchitecture
    preprocessing: RadiomicsPreprocessing | None
    tensors: dict[str, np.ndarray]
    training: dict[str, Any]
    validation: tuple[ValidationRecord, ...]
    software: dict[str, str]

    def model(self) -> ResponseModel:
        """The numpy model of this fit, as its bundle will give it."""
        return build_model(self.architecture, self.preprocessing, self.tensors, feature_names())


def _creation_time() -> str:
    """Now, or $SOURCE_DATE_EPOCH when set (the reproducible-builds convention), so that the same
    training run can give byte-identical bundles."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch else datetime.now(timezone.utc)
    return moment.isoformat(timespec="seconds")


def save_bundle(path: str | os.PathLike, fit: ModelFit, *, name: str, training_data: TrainingData, cutoff: Cutoff,
                validation: Sequence[ValidationRecord] = (), features: FeatureSet | None = None) -> Path:
    """Write ``fit`` as a new bundle folder at ``path`` (never replaces one).

    ``cutoff`` is chosen by the caller (e.g. maxstat on training PFS, or
    ``Cutoff(None, "unset", why)``); ``validation`` adds records beyond the
    fit's own, such as an external cohort; ``features`` defaults to this
    installation's extractor (feature list, pyradiomics version, parameter
    file) and should be the provenance of the training features when they were
    extracted elsewhere.

    Parameters
    ----------
    path : str or os.PathLike
        The bundle folder to create; it must not exist.
    fit : ModelFit
        The fitted model (``fit_clinical`` or ``fit_mlp``).
    name : str
        The bundle's name in its manifest.
    training_data : TrainingData
        Where the training patients came from, recorded in the manifest.
    cutoff : Cutoff
        The risk cut-off on the score (log-odds; high risk: score <= value), or an unset one.
    validation : sequence of ValidationRecord
        Validation records added after the fit's own.
    features : FeatureSet or None
        The provenance of the radiomics features; None: this installation's extractor. Ignored for the clinical
        model.

    Returns
    -------
    Path
        The bundle folder written (``weights.safetensors`` and its manifest).

    Raises
    ------
    InputError
        When ``path`` exists, or the tensors do not fit the architecture.
    """
    if fit.kind != "clinical" and features is None:
        names = feature_names()
        features = FeatureSet(names, feature_names_sha256(names), pyradiomics_version(), file_sha256(parameter_file()))
    manifest = WeightsManifest(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        name=name,
        created=_creation_time(),
        model=fit.kind,
        architecture=fit.architecture,
        features=None if fit.kind == "clinical" else features,
        preprocessing=fit.preprocessing,
        clinical_encoding=None if fit.kind == "radiomics" else dict(CLINICAL_ENCODING),
        cutoff=cutoff,
        training_data=training_data,
        validation=(*fit.validation, *validation),
        training=fit.training,
        software={"abcir": __version__, "python": platform.python_version(), "numpy": np.__version__,
                  "safetensors": safetensors.__version__, "pyradiomics": pyradiomics_version(), **fit.software},
        clinically_validated=False,
        files={},
    )
    return write_bundle(path, manifest, fit.tensors)
