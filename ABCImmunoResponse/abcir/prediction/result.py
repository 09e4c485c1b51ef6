"""What a prediction says and what it rests on: the result types and their JSON.

``Prediction`` carries the probability, score and risk group with the weights' provenance
(and that they are not clinically validated), the lesions and RECIST findings used, the
CT's identity, the feature-distribution check and, when asked for, the outline sensitivity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import SimpleITK as sitk

from .. import __version__
from ..errors import InputError
from ..imaging.ct import voxel_hash
from ..models.bundle import WeightBundle
from ..patient.clinical_facts import ClinicalFacts
from ..patient.recist import Finding
from ..records import from_json_dict, to_json_dict
from ..sensitivity.result import SensitivityResult

if TYPE_CHECKING:  # a type only: reading a prediction (the panel applies one on Slicer's main thread) needs no SciPy
    from ..patient.lesions import Lesion

PREDICTION_SCHEMA = "abcir.prediction"
PREDICTION_SCHEMA_VERSION = 1
#: What the provenance line says when ``Prediction.values_verified``.
VALUES_VERIFIED = "feature values verified identical to the engine the weights were trained with"


@dataclass(frozen=True)
class WeightsInfo:
    """The weights behind a prediction; ``sha256`` is that of ``weights.safetensors``."""

    name: str
    kind: str
    sha256: str
    manifest_sha256: str
    path: str
    trained_on: str
    source: str
    n_train: int
    n_responders: int
    clinically_validated: bool
    cutoff_method: str
    created: str

    @classmethod
    def from_bundle(cls, bundle: WeightBundle) -> WeightsInfo:
        """What a prediction records of a verified bundle: name, kind, hashes, path, training data, cut-off."""
        manifest = bundle.manifest
        return cls(name=manifest.name, kind=manifest.model, sha256=bundle.weights_sha256,
                   manifest_sha256=bundle.manifest_sha256, path=str(bundle.path),
                   trained_on=manifest.training_data.describe(), source=manifest.training_data.source,
                   n_train=manifest.training_data.n, n_responders=manifest.training_data.responders,
                   clinically_validated=manifest.clinically_validated, cutoff_method=manifest.cutoff.method,
                   created=manifest.created)

    def provenance(self, verified: str = "") -> str:
        """The line shown with every probability of these weights: whose, trained on what, validated or not.

        Parameters
        ----------
        verified : str, default ""
            What a prediction adds after the training data (that its feature values were verified).

        Returns
        -------
        str
            One sentence.
        """
        status = ("clinically validated" if self.clinically_validated
                  else "NOT clinically validated: research use only, not for treatment decisions")
        return (f"Weights '{self.name}' ({self.kind}, sha256 {self.sha256[:12]}), trained on "
                f"{self.trained_on}{verified}; {status}.")


@dataclass(frozen=True)
class LesionSummary:
    """A lesion the prediction used: its site and RECIST size (mm, mm^3 on the CT grid)."""

    lesion_id: str
    site: str | None
    visceral: bool | None
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float

    @classmethod
    def from_lesion(cls, lesion: Lesion) -> LesionSummary:
        """The id, site and sizes (mm^3, mm) of a loaded lesion."""
        return cls(lesion.lesion_id, lesion.site, lesion.visceral, lesion.size.volume_mm3,
                   lesion.longest_axial_diameter_mm, lesion.short_axis_mm)


@dataclass(frozen=True)
class CTIdentity:
    """Which CT was measured: its voxel hash, and its DICOM UIDs when read from DICOM."""

    sha256: str
    study_instance_uid: str = ""
    series_instance_uid: str = ""

    @classmethod
    def from_image(cls, image: sitk.Image) -> CTIdentity:
        """Hash and UIDs of a CT; ``read_dicom_ct`` leaves the UIDs in the image's metadata (0020|000d, 0020|000e)."""
        def tag(key: str) -> str:
            return image.GetMetaData(key).strip() if image.HasMetaDataKey(key) else ""

        return cls(voxel_hash(image), tag("0020|000d"), tag("0020|000e"))


@dataclass(frozen=True)
class FeatureDeviation:
    """A model input beyond ``OOD_Z_LIMIT``: its feature and its distance from the training mean (SDs, signed)."""

    feature: str
    z: float


@dataclass(frozen=True)
class DistributionCheck:
    """How far the patient's model inputs lie from the training data, in training SDs.

    ``beyond`` lists every input further than ``z_limit``, the furthest first.
    """

    n_features: int
    n_beyond: int
    z_limit: float
    max_abs_z: float
    most_extreme_feature: str
    beyond: tuple[FeatureDeviation, ...] = ()


@dataclass(frozen=True)
class Prediction:
    """Result for one patient. ``score`` is log-odds of response; ``risk_group`` "high" when score <= cutoff.

    ``values_verified`` is True when the features were computed by this
    process' engine, which reproduced the engine reference, and the weights
    were trained on features of pyradiomics whose values the reference holds
    (``abcir.features.engine_check``); ``values_relative_difference`` is then 0 when the
    reference came out bit for bit, else its largest relative difference, at
    most ``engine_check.ROUNDING_LIMIT`` (floating-point rounding of another CPU's BLAS).
    Results written before these fields existed read as not verified.
    ``sensitivity`` is the outline-sensitivity analysis when one was asked for
    (``abcir predict --sensitivity``), else None.
    """

    model: str
    probability: float
    score: float
    risk_group: str | None
    cutoff: float | None
    weights: WeightsInfo
    clinical: ClinicalFacts | None
    lesions: tuple[LesionSummary, ...]
    recist: tuple[Finding, ...]
    warnings: tuple[str, ...]
    ct: CTIdentity | None
    distribution: DistributionCheck | None
    aggregation: str | None
    abcir_version: str = __version__
    values_verified: bool = False
    values_relative_difference: float = 0.0
    sensitivity: SensitivityResult | None = None

    @property
    def provenance(self) -> str:
        """The line shown with every probability: whose weights, trained on what, verified values, validated or not."""
        verified = ""
        if self.values_verified:
            rounding = self.values_relative_difference
            verified = f"; {VALUES_VERIFIED}" + (f" up to floating-point rounding ({rounding:.1e} relative)"
                                                  if rounding else "")
        return self.weights.provenance(verified)

    def to_dict(self) -> dict:
        """The result JSON: the fields, plus schema and the provenance line (and the sensitivity's own form)."""
        data = {"schema": PREDICTION_SCHEMA, "schema_version": PREDICTION_SCHEMA_VERSION,
                **to_json_dict(self), "provenance": self.provenance}
        if self.sensitivity is not None:
            data["sensitivity"] = self.sensitivity.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "Prediction") -> Prediction:
        """Read a result JSON back (the provenance line is recomputed, not trusted)."""
        if not isinstance(data, dict) or data.get("schema") != PREDICTION_SCHEMA:
            raise InputError(f"{where}: not an abcir prediction (field 'schema' is not '{PREDICTION_SCHEMA}').")
        if data.get("schema_version") != PREDICTION_SCHEMA_VERSION:
            raise InputError(f"{where}: field 'schema_version' is {data.get('schema_version')!r}; this abcir "
                             f"{__version__} reads version {PREDICTION_SCHEMA_VERSION}.")
        fields = {key: value for key, value in data.items() if key not in ("schema", "schema_version", "provenance")}
        sensitivity = fields.pop("sensitivity", None)
        prediction = from_json_dict(cls, fields, where, InputError)
        if sensitivity is None:
            return prediction
        return replace(prediction, sensitivity=SensitivityResult.from_dict(sensitivity, f"{where}, 'sensitivity'"))
