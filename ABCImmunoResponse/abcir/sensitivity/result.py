"""What the outline-sensitivity analysis reports, as explicit types with a JSON form.

The range and interval describe how the probability moves when the outlines
move by plausible amounts; they are not a confidence interval of the response
probability (the model's own uncertainty, and the patient's, are not in them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .. import __version__
from ..errors import InputError
from ..records import from_json_dict, to_json_dict

SENSITIVITY_SCHEMA = "abcir.sensitivity"
SENSITIVITY_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PerturbedPrediction:
    """The prediction with one lesion's outline changed (``perturbation``, a ``PerturbationSet`` name)."""

    lesion_id: str
    perturbation: str
    volume_mm3: float
    probability: float
    score: float
    risk_group: str | None


@dataclass(frozen=True)
class SkippedPerturbation:
    """A changed outline that is no outline of the lesion (e.g. erosion of a lesion thinner than 2 mm)."""

    lesion_id: str
    perturbation: str
    reason: str


@dataclass(frozen=True)
class LesionInfluence:
    """How much one lesion's outline moves the prediction: its changes' probabilities and risk-group flips.

    ``largest_change`` is the largest |probability - unperturbed probability|.
    """

    lesion_id: str
    n_perturbations: int
    probability_low: float
    probability_high: float
    largest_change: float
    flips: int


@dataclass(frozen=True)
class SensitivityResult:
    """The prediction's sensitivity to the outlines of its target lesions (one lesion changed at a time).

    ``probability_low``/``high`` span the unperturbed probability and every
    perturbed one; ``interval_90`` holds the 5th and 95th percentiles of the
    perturbed probabilities when there are at least ``min_for_interval`` of them,
    else None. ``n_same_risk_group`` and ``flip_share`` are None without a risk
    cut-off. ``unstable`` is True when the risk group flips in more than
    ``flip_limit`` of the perturbations; ``deciding_lesion`` is then the lesion
    with the most flips (else the one with the largest change).
    """

    model: str
    perturbation_set: str
    perturbations_described: str
    seed: int
    probability: float
    score: float
    risk_group: str | None
    cutoff: float | None
    probability_low: float
    probability_high: float
    interval_90: tuple[float, float] | None
    min_for_interval: int
    n_perturbations: int
    n_same_risk_group: int | None
    flip_share: float | None
    flip_limit: float
    unstable: bool
    deciding_lesion: str | None
    lesions: tuple[LesionInfluence, ...]
    perturbations: tuple[PerturbedPrediction, ...]
    skipped: tuple[SkippedPerturbation, ...] = ()
    abcir_version: str = __version__

    @property
    def summary(self) -> str:
        """One line for beside the probability, e.g. "probability 0.60 (0.52-0.67 under ...); risk group low in
        10 of 10 outline changes"."""
        spread = f"{self.probability_low:.2f}-{self.probability_high:.2f}"
        if self.interval_90 is not None:
            spread += f", 90 % of them {self.interval_90[0]:.2f}-{self.interval_90[1]:.2f}"
        line = (f"probability {self.probability:.2f} ({spread} under {self.n_perturbations} outline changes: "
                f"{self.perturbations_described})")
        if self.n_same_risk_group is not None:
            line += f"; risk group {self.risk_group} in {self.n_same_risk_group} of {self.n_perturbations}"
        return line

    @property
    def warning(self) -> str | None:
        """The warning shown beside the probability when the risk group depends on the outline, else None."""
        if not self.unstable:
            return None
        other = "low" if self.risk_group == "high" else "high"
        flips = self.n_perturbations - (self.n_same_risk_group or 0)
        lesion = next(item for item in self.lesions if item.lesion_id == self.deciding_lesion)
        return (f"The risk group depends on the outlines: {self.risk_group} as segmented, but {other} under "
                f"{flips} of {self.n_perturbations} plausible outline changes ({self.flip_share:.0%}, more than "
                f"{self.flip_limit:.0%}). The outline of lesion '{lesion.lesion_id}' decides it most ({lesion.flips} "
                f"of its {lesion.n_perturbations} changes flip it; probability {lesion.probability_low:.2f}-"
                f"{lesion.probability_high:.2f}); check its segmentation before relying on the risk group.")

    def to_dict(self) -> dict:
        """The JSON form: the fields, the schema, and the summary and warning lines."""
        return {"schema": SENSITIVITY_SCHEMA, "schema_version": SENSITIVITY_SCHEMA_VERSION,
                **to_json_dict(self), "summary": self.summary, "warning": self.warning}

    @classmethod
    def from_dict(cls, data: dict, where: str = "Sensitivity") -> SensitivityResult:
        """Read ``to_dict``'s form back (a result JSON's ``sensitivity`` block).

        Parameters
        ----------
        data : dict
            The parsed JSON object; its summary and warning lines are recomputed, not trusted.
        where : str
            How messages name it (the file and field).

        Returns
        -------
        SensitivityResult
            The result, every field checked against its type.

        Raises
        ------
        InputError
            Another schema or version, or a field that is missing, unknown or of the wrong type.
        """
        if not isinstance(data, dict) or data.get("schema") != SENSITIVITY_SCHEMA:
            raise InputError(f"{where}: not an abcir outline sensitivity (field 'schema' is not "
                             f"'{SENSITIVITY_SCHEMA}').")
        if data.get("schema_version") != SENSITIVITY_SCHEMA_VERSION:
            raise InputError(f"{where}: field 'schema_version' is {data.get('schema_version')!r}; this abcir "
                             f"{__version__} reads version {SENSITIVITY_SCHEMA_VERSION}.")
        fields = {key: value for key, value in data.items()
                  if key not in ("schema", "schema_version", "summary", "warning")}
        return from_json_dict(cls, fields, where, InputError)

    def to_json(self) -> str:
        """``to_dict`` as strict JSON text (no NaN)."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False)
