"""The response prediction under reader A, under reader B and under the consensus.

What matters to the chair is not only how the outlines differ but whether the
difference changes the patient's predicted risk group. Features are extracted
once per distinct mask (a consensus segment taken from reader A has A's
features). When no weight bundle is available, or the model needs clinical
facts that were not given, the predictions are left out and ``note`` says why;
a reading that cannot be predicted (for example a RECIST error in one reader's
set) is left out with its reason and the others are still given.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Sequence

import SimpleITK as sitk

from ..errors import BundleError, InputError
from ..features.catalogue import LesionFeatures
from ..features.extract import ProgressCallback, extract_lesions
from ..imaging.ct import voxel_hash
from ..patient.clinical_facts import clinical_usage, parse_clinical
from ..patient.lesions import Lesion
from ..prediction.predict import predict_features, resolve_bundle
from ..prediction.result import CTIdentity, Prediction
from ..sensitivity.analysis import analyse_sensitivity
from ..sensitivity.perturbations import PerturbationSet

if TYPE_CHECKING:
    from ..features.cache import FeatureCache

SIDES = ("a", "b", "consensus")


@dataclass
class ReaderPredictions:
    """Predictions per reading ("a", "b", "consensus"); None where not computed, with why in ``note``."""

    a: Prediction | None = None
    b: Prediction | None = None
    consensus: Prediction | None = None
    note: str = "predictions not computed"

    def computed(self) -> list[tuple[str, Prediction]]:
        """The (reading, prediction) pairs that were computed, in the order A, B, consensus."""
        return [(side, getattr(self, side)) for side in SIDES if getattr(self, side) is not None]

    def risk_group_changes(self) -> dict[str, bool]:
        """For each pair of computed predictions ("a_vs_b", ...), whether the risk group differs."""
        computed = self.computed()
        return {f"{first}_vs_{second}": p.risk_group != q.risk_group
                for index, (first, p) in enumerate(computed) for second, q in computed[index + 1:]}

    def to_dict(self) -> dict:
        """The predictions as JSON-ready data: one entry per reading, the risk group changes and the note."""
        content: dict = {side: (None if getattr(self, side) is None else getattr(self, side).to_dict())
                         for side in SIDES}
        content["risk_group_changes"] = self.risk_group_changes()
        content["note"] = self.note
        return content

    @classmethod
    def from_dict(cls, data: dict, where: str = "Reader predictions") -> ReaderPredictions:
        """Read ``to_dict``'s output back (the risk group changes are recomputed, not trusted)."""
        if not isinstance(data, dict):
            raise InputError(f"{where}: must be an object, not {type(data).__name__}.")
        missing = [key for key in (*SIDES, "note") if key not in data]
        if missing:
            raise InputError(f"{where}: field '{missing[0]}' is missing.")
        if not isinstance(data["note"], str):
            raise InputError(f"{where}: field 'note' must be str, not {type(data['note']).__name__}.")
        sides = {side: None if data[side] is None else Prediction.from_dict(data[side], f"{where}, field '{side}'")
                 for side in SIDES}
        return cls(**sides, note=data["note"])

    def b_inside_a_range(self) -> bool | None:
        """Whether reader B's probability lies in reader A's range under outline changes (bounds included).

        A check that the perturbations are realistic: a second reader's outline is
        a real outline change. None without both predictions or without A's
        outline sensitivity (``predict_readers(..., sensitivity=...)``).
        """
        if self.a is None or self.b is None or self.a.sensitivity is None:
            return None
        return self.a.sensitivity.probability_low <= self.b.probability <= self.a.sensitivity.probability_high

    def summary_lines(self) -> list[str]:
        """Lines for ``agreement.txt``: probability, score (log-odds) and risk group per reading, and changes."""
        computed = self.computed()
        if not computed:
            return [f"Predictions: {self.note}"]
        lines = ["Predictions:"]
        lines.extend(f"  under {side}: probability {p.probability:.3f}, score {p.score:+.3f}, "
                     f"risk group {p.risk_group or 'none (no cut-off)'}" for side, p in computed)
        changes = [pair for pair, changed in self.risk_group_changes().items() if changed]
        lines.append(f"  risk group changes: {', '.join(changes)}" if changes else "  risk group: the same throughout")
        inside = self.b_inside_a_range()
        if inside is not None:
            outline = self.a.sensitivity
            lines.append(f"  reader B's probability {self.b.probability:.3f} is {'inside' if inside else 'OUTSIDE'} "
                         f"reader A's range under outline changes ({outline.probability_low:.3f}-"
                         f"{outline.probability_high:.3f}, {outline.n_perturbations} changes)")
        lines.append(f"  {computed[0][1].provenance}")
        if self.note:
            lines.append(f"  note: {self.note}")
        return lines


def _features(ct: sitk.Image, readings: dict[str, Sequence[Lesion]], progress: ProgressCallback | None,
              jobs: int, cache: FeatureCache | None) -> dict[str, list[LesionFeatures]]:
    """Feature rows per reading, extracting each distinct mask once."""
    unique: dict[str, Lesion] = {}
    for lesions in readings.values():
        for lesion in lesions:
            unique.setdefault(voxel_hash(lesion.mask), lesion)
    hashes = list(unique)
    extracted = extract_lesions(ct, [unique[h] for h in hashes], "patient", jobs=jobs, progress=progress,
                               cache=cache)
    by_hash = dict(zip(hashes, extracted))
    rows: dict[str, list[LesionFeatures]] = {}
    for side, lesions in readings.items():
        rows[side] = []
        for lesion in lesions:
            row = by_hash[voxel_hash(lesion.mask)]
            rows[side].append(LesionFeatures(row.patient_id, lesion, row.values, row.provenance))
    return rows


def predict_readers(ct: sitk.Image, lesions_a: Sequence[Lesion], lesions_b: Sequence[Lesion],
                    consensus: Sequence[Lesion] | None, clinical_tokens: Sequence[str] | None,
                    model: str | None = None, weights: str | os.PathLike | None = None, jobs: int = 1,
                    progress: ProgressCallback | None = None, cache: FeatureCache | None = None,
                    sensitivity: PerturbationSet | None = None) -> ReaderPredictions:
    """Predict under each reading (``consensus`` None when there is none yet).

    ``model`` None takes the kind of ``weights`` (combined when none are given).
    Explicitly given weights that fail their checks are an error; the absence
    of bundled weights is not (the agreement is useful without them). ``cache``
    as for ``extract_lesions`` (None: $ABCIR_FEATURE_CACHE when set).

    Parameters
    ----------
    ct : sitk.Image
        The patient's CT (HU).
    lesions_a, lesions_b : sequence of Lesion
        Reader A's and reader B's lesions, masks on the CT grid.
    consensus : sequence of Lesion or None
        The consensus lesions; None: no consensus yet (noted).
    clinical_tokens : sequence of str or None
        The clinical facts as ``KEY=VALUE`` tokens; None: not given (only the radiomics model can then predict).
    model : str or None
        The model kind; None: the kind of ``weights``, else combined.
    weights : str or os.PathLike or None
        A weight bundle folder; None: the bundled weights of ``model``.
    jobs : int
        Lesions extracted in parallel.
    progress : callable or None
        Called as ``progress(done, total, lesion_id)`` during extraction; None: silent.
    cache : FeatureCache or None
        The feature cache, as for ``extract_lesions``.
    sensitivity : PerturbationSet or None
        When given (and the model reads outlines), reader A's prediction carries its
        outline sensitivity under these changes (seed 0), so that the summary can say
        whether reader B's probability falls inside that range.

    Returns
    -------
    ReaderPredictions
        A prediction per reading that could be predicted; ``note`` says why any is missing.

    Raises
    ------
    InputError
        When the clinical tokens are invalid, or (``BundleError``) when explicitly given ``weights`` fail their
        checks.
    """
    clinical = parse_clinical(clinical_tokens) if clinical_tokens else None
    try:
        bundle = resolve_bundle(model, weights)
    except BundleError as error:
        if weights is not None:
            raise
        return ReaderPredictions(note=f"predictions not computed: {error}")
    if bundle.kind != "radiomics" and clinical is None:
        return ReaderPredictions(note=f"predictions not computed: the {bundle.kind} model needs the clinical facts "
                                      f"(--clinical {clinical_usage()})")
    readings: dict[str, Sequence[Lesion]] = {"a": lesions_a, "b": lesions_b}
    if consensus is not None:
        readings["consensus"] = consensus
    if bundle.kind == "clinical":
        rows: dict[str, list[LesionFeatures]] = {side: [] for side in readings}
    else:
        rows = _features(ct, readings, progress, jobs, cache)
    identity = CTIdentity(voxel_hash(ct))
    result = ReaderPredictions(note="" if consensus is not None else "no consensus yet (give --chair to build one)")
    problems = []
    for side in readings:
        try:
            setattr(result, side, predict_features(rows[side], clinical, bundle.kind, bundle, identity))
        except InputError as error:  # e.g. a RECIST error in one reader's set: the others still count
            problems.append(f"not computed under {side}: {error}")
    if sensitivity is not None and bundle.kind != "clinical" and result.a is not None:
        outline = analyse_sensitivity(ct, lesions_a, clinical, bundle.kind, bundle, rows["a"], sensitivity,
                                      jobs=jobs)
        result.a = replace(result.a, sensitivity=outline)
    result.note = "; ".join(filter(None, [result.note, *problems]))
    return result
