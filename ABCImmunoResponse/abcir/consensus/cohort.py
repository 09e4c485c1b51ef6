"""Reader agreement over a cohort: feature reproducibility (ICC), risk-group kappa, probability Bland-Altman.

Input is a ``readers.csv`` with one row per patient (``READERS_CSV_HELP``).
For every patient both readers' lesions are matched (``matching``) and every
lesion's 1130 features extracted with the paper's settings. A feature's
reproducibility is its ICC(2,1) over the matched lesion pairs of the whole
cohort (each pair is one subject, the two readers the raters): that is how
much of the feature's between-lesion variation survives a change of reader.
Unmatched lesions cannot enter an ICC and are listed instead. Koo & Li (2016)
ask for at least 30 subjects; fewer are reported with a warning.

With weights (and the clinical facts when the model needs them), each patient
is predicted under each reader from the same extracted features: Cohen's kappa
of the risk groups and Bland-Altman limits of the probability.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import BundleError, InputError
from ..features.catalogue import LesionFeatures, feature_names, feature_names_sha256
from ..features.extract import ProgressCallback, extract_lesions
from ..features.table import features_frame, write_features_csv
from ..files import check_writable_folder
from ..imaging.ct import read_ct, voxel_hash
from ..options import DEFAULT_MAX_CENTROID_DISTANCE_MM, DEFAULT_MIN_ICC, FEATURE_ICC_FILE
from ..patient.lesions import load_lesions
from ..prediction.result import CTIdentity
from ..prediction.predict import predict_features, resolve_bundle
from ..sensitivity.analysis import analyse_sensitivity
from ..sensitivity.perturbations import PerturbationSet
from ..stats.agreement import BlandAltman, KappaResult, bland_altman, cohen_kappa, feature_icc_frame
from .comparison import ReaderComparison, compare_readers, json_ready
from .feature_icc import check_min_icc, write_feature_icc_csv
from .readers_file import CLINICAL_COLUMNS, read_readers_csv

#: Koo & Li (2016): "at least 30 heterogeneous samples" for a reliability study.
MIN_RECOMMENDED_SUBJECTS = 30
RISK_GROUPS = ("high", "low")
SUMMARY_FILE = "agreement_summary.json"
PAIRS_FILE = "lesion_pairs.csv"
PREDICTIONS_FILE = "predictions.csv"
FEATURES_FILES = ("features_reader_a.csv", "features_reader_b.csv")


@dataclass
class CohortAgreement:
    """The cohort's agreement tables and statistics, as written by ``write_cohort_agreement``."""

    reader_a: str
    reader_b: str
    n_patients: int
    pairs: pd.DataFrame  # one row per lesion row of each patient's agreement table
    feature_icc: pd.DataFrame  # reproducibility.FEATURE_ICC_COLUMNS
    predictions: pd.DataFrame | None = None  # patient_id, probability/score/risk_group _a and _b
    kappa: KappaResult | None = None
    probability_agreement: BlandAltman | None = None
    min_icc: float = DEFAULT_MIN_ICC
    notes: list[str] = field(default_factory=list)
    # Whose weights made the probabilities, trained on what, and whether they are clinically validated
    # (``Prediction.provenance`` of the first one); None without predictions.
    weights_provenance: str | None = None

    def share_reproducible(self) -> float:
        """Share of features (with a defined ICC) whose ICC(2,1) is at least ``min_icc``."""
        defined = self.feature_icc["icc"].dropna()
        return float((defined >= self.min_icc).mean()) if len(defined) else math.nan

    def _inside_range(self) -> dict | None:
        """How many patients' reader-B probability lies in reader A's outline-perturbation range, or None."""
        if self.predictions is None or "b_inside_a_range" not in self.predictions.columns:
            return None
        known = self.predictions["b_inside_a_range"].dropna()
        return {"n": int(len(known)), "n_inside": int(known.sum()),
                "share": float(known.mean()) if len(known) else None}

    def summary(self) -> dict:
        """The agreement in numbers (pair counts, median Dice, ICC shares, kappa, Bland-Altman), JSON-ready."""
        defined = self.feature_icc["icc"].dropna()
        matched = self.pairs[self.pairs["a"].notna() & self.pairs["b"].notna()]
        return {
            "readers": {"a": self.reader_a, "b": self.reader_b},
            "n_patients": self.n_patients,
            "n_matched_lesion_pairs": int(len(matched)),
            "n_only_a": int(self.pairs["b"].isna().sum()),
            "n_only_b": int(self.pairs["a"].isna().sum()),
            "n_site_disagreements": int((~matched["site_agrees"]).sum()),
            "dice_median": None if matched.empty else float(matched["dice"].median()),
            "icc": {"definition": "ICC(2,1): two-way random effects, absolute agreement, single rater "
                                  "(Shrout & Fleiss 1979; McGraw & Wong ICC(A,1)); 95% CI of McGraw & Wong 1996",
                    "unit": "matched lesion pairs over the cohort",
                    "min_icc": self.min_icc,
                    "n_features": int(len(self.feature_icc)),
                    "n_features_defined": int(len(defined)),
                    "n_reproducible": int((defined >= self.min_icc).sum()),
                    "share_reproducible": self.share_reproducible(),
                    "koo_li_classes": {label: int((self.feature_icc["koo_li_class"] == label).sum())
                                       for label in ("poor", "moderate", "good", "excellent")},
                    "feature_names_sha256": feature_names_sha256()},
            "reader_b_inside_a_perturbation_range": self._inside_range(),
            "risk_group_kappa": None if self.kappa is None else asdict(self.kappa),
            "probability_bland_altman": None if self.probability_agreement is None else asdict(
                self.probability_agreement),
            "weights_provenance": self.weights_provenance,
            "notes": self.notes,
            "abcir_version": __version__,
        }


def _pair_rows(patient_id: str, comparison: ReaderComparison) -> list[dict]:
    rows = []
    for row in comparison.lesions:
        record = row.to_dict()
        for side in ("a", "b"):
            status = record.pop(f"recist_{side}")
            record[f"measurable_{side}"] = None if status is None else status["measurable"]
            record[f"recist_findings_{side}"] = "" if status is None else " ".join(status["findings"])
        rows.append({"patient_id": patient_id, **record})
    return rows


def matched_feature_matrices(features_a: pd.DataFrame, features_b: pd.DataFrame,
                             pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(pairs x 1130) matrices of reader A's and B's features for the matched pairs, in the same order.

    Parameters
    ----------
    features_a, features_b : pd.DataFrame
        Each reader's per-lesion features (``features_frame``): ``patient_id``, ``lesion_id`` and the 1130
        feature columns.
    pairs : pd.DataFrame
        The lesion pair rows: ``patient_id``, ``a`` and ``b`` (the readers' lesion ids, missing where a reader
        has no lesion); only rows with both are used.

    Returns
    -------
    tuple of np.ndarray
        Reader A's and reader B's values (float, in the features' own units), one row per matched pair, columns in
        ``feature_names()`` order.
    """
    names = list(feature_names())
    matched = pairs[pairs["a"].notna() & pairs["b"].notna()]
    index_a = features_a.set_index(["patient_id", "lesion_id"])
    index_b = features_b.set_index(["patient_id", "lesion_id"])
    keys_a = list(zip(matched["patient_id"], matched["a"]))
    keys_b = list(zip(matched["patient_id"], matched["b"]))
    return index_a.loc[keys_a, names].to_numpy(float), index_b.loc[keys_b, names].to_numpy(float)


def run_cohort_agreement(readers_csv: str | os.PathLike, reader_a: str = "A", reader_b: str = "B",
                         model: str | None = None, weights: str | os.PathLike | None = None,
                         min_icc: float = DEFAULT_MIN_ICC,
                         max_centroid_distance_mm: float = DEFAULT_MAX_CENTROID_DISTANCE_MM, jobs: int = 1,
                         progress: ProgressCallback | None = None, sensitivity: PerturbationSet | None = None
                         ) -> tuple[CohortAgreement, list[LesionFeatures], list[LesionFeatures]]:
    """Match, extract and predict every patient of ``readers.csv``; the agreement and both readers' feature rows.

    Parameters
    ----------
    readers_csv : str or os.PathLike
        The readers file (``read_readers_csv``).
    reader_a, reader_b : str
        The readers' names in the tables and report.
    model : str or None
        The model kind to predict with; None: the kind of ``weights``, else the default.
    weights : str or os.PathLike or None
        A weight bundle folder. With ``model`` and ``weights`` both None the bundled weights are used if they
        load; if not, no predictions are made (noted).
    min_icc : float
        The ICC(2,1) at which a feature counts as reproducible.
    max_centroid_distance_mm : float
        Lesions that do not overlap are matched when their centroids are at most this far apart (mm).
    jobs : int
        Lesions extracted in parallel.
    progress : callable or None
        Called as ``progress(number, total, patient_id)`` before each patient; None: silent.
    sensitivity : PerturbationSet or None
        With a model that reads outlines, also recompute reader A's prediction under these outline changes
        (seed 0): ``probability_a_low``/``_high`` and ``b_inside_a_range`` (``reader_b_inside_a_range``)
        in the predictions table. None: not computed.

    Returns
    -------
    tuple of (CohortAgreement, list of LesionFeatures, list of LesionFeatures)
        The agreement (with predictions, kappa and Bland-Altman when a model could be used), and reader A's and
        reader B's feature rows.

    Raises
    ------
    InputError
        When ``min_icc`` is outside [0, 1] (checked first); as ``read_readers_csv`` and the reading of CTs and
        lesions; when no lesion pair, or only one, is matched over the cohort; or (``BundleError``) when the given
        ``model``/``weights`` cannot be used.
    """
    check_min_icc(min_icc)
    patients = read_readers_csv(readers_csv)
    notes: list[str] = []
    bundle = None
    if weights is not None or model is not None:
        bundle = resolve_bundle(model, weights)
    else:
        try:
            bundle = resolve_bundle(None, None)
        except BundleError as error:
            notes.append(f"no predictions: {error}")
    if bundle is not None and bundle.kind != "radiomics" and any(p.clinical is None for p in patients):
        notes.append(f"no predictions: the {bundle.kind} model needs the clinical columns "
                     f"{', '.join(CLINICAL_COLUMNS)} in the readers file")
        bundle = None
    pair_rows: list[dict] = []
    rows_a: list[LesionFeatures] = []
    rows_b: list[LesionFeatures] = []
    predictions, provenance = [], None
    for number, patient in enumerate(patients, start=1):
        if progress:
            progress(number, len(patients), patient.patient_id)
        ct = read_ct(patient.ct)
        lesions_a = load_lesions([patient.reader_a], ct)
        lesions_b = load_lesions([patient.reader_b], ct)
        comparison = compare_readers(lesions_a, lesions_b, reader_a, reader_b, max_centroid_distance_mm)
        pair_rows.extend(_pair_rows(patient.patient_id, comparison))
        extracted_a = extract_lesions(ct, lesions_a, patient.patient_id, jobs=jobs) if lesions_a else []
        extracted_b = extract_lesions(ct, lesions_b, patient.patient_id, jobs=jobs) if lesions_b else []
        rows_a.extend(extracted_a)
        rows_b.extend(extracted_b)
        if bundle is not None:
            record: dict = {"patient_id": patient.patient_id}
            identity = CTIdentity(voxel_hash(ct))
            for side, extracted in (("a", extracted_a), ("b", extracted_b)):
                try:
                    result = predict_features(extracted, patient.clinical, bundle.kind, bundle, identity)
                    record.update({f"probability_{side}": result.probability, f"score_{side}": result.score,
                                   f"risk_group_{side}": result.risk_group})
                    provenance = provenance or result.provenance
                except InputError as error:
                    notes.append(f"patient {patient.patient_id}: no prediction under reader {side.upper()} ({error})")
                    record.update({f"probability_{side}": math.nan, f"score_{side}": math.nan,
                                   f"risk_group_{side}": None})
            if sensitivity is not None and bundle.kind != "clinical" and extracted_a:
                # Reader A's outlines changed as plausibly as a second reader might change them (issue 17).
                try:
                    outline = analyse_sensitivity(ct, lesions_a, patient.clinical, bundle.kind, bundle, extracted_a,
                                                  sensitivity, jobs=jobs, patient_id=patient.patient_id)
                    record.update({"probability_a_low": outline.probability_low,
                                   "probability_a_high": outline.probability_high})
                except InputError as error:
                    notes.append(f"patient {patient.patient_id}: no outline sensitivity under reader A ({error})")
            predictions.append(record)
    pairs = pd.DataFrame(pair_rows)
    if pairs.empty or not (pairs["a"].notna() & pairs["b"].notna()).any():
        raise InputError(f"Readers file '{readers_csv}': no lesion of reader A matches one of reader B; an ICC "
                         "needs lesions both readers segmented.")
    values_a, values_b = matched_feature_matrices(features_frame(rows_a), features_frame(rows_b), pairs)
    if values_a.shape[0] < 2:
        raise InputError(f"Readers file '{readers_csv}': {values_a.shape[0]} matched lesion pair; an ICC needs at "
                         f"least 2 (Koo & Li recommend {MIN_RECOMMENDED_SUBJECTS}).")
    if values_a.shape[0] < MIN_RECOMMENDED_SUBJECTS:
        notes.append(f"only {values_a.shape[0]} matched lesion pairs; Koo & Li (2016) recommend at least "
                     f"{MIN_RECOMMENDED_SUBJECTS} for a reliability study, so the ICC confidence intervals are wide")
    result = CohortAgreement(reader_a, reader_b, len(patients), pairs,
                             feature_icc_frame(feature_names(), values_a, values_b), min_icc=min_icc, notes=notes,
                             weights_provenance=provenance)
    if predictions:
        frame = pd.DataFrame(predictions)
        if "probability_a_low" in frame.columns:
            frame["b_inside_a_range"] = reader_b_inside_a_range(frame)
        result.predictions = frame
        usable = frame.dropna(subset=["probability_a", "probability_b"])
        if len(usable) >= 2:
            result.probability_agreement = bland_altman(usable["probability_a"].to_numpy(),
                                                        usable["probability_b"].to_numpy())
        grouped = frame[frame["risk_group_a"].notna() & frame["risk_group_b"].notna()]
        if len(grouped):
            result.kappa = cohen_kappa(grouped["risk_group_a"], grouped["risk_group_b"], RISK_GROUPS)
        else:
            notes.append("no risk-group kappa: the weights carry no risk cut-off")
    return result, rows_a, rows_b


def reader_b_inside_a_range(predictions: pd.DataFrame) -> pd.Series:
    """Per patient, whether reader B's probability lies within reader A's outline-perturbation range.

    A check that the perturbations are realistic: if a second reader's outline
    moves the probability about as far as the simulated outline changes of the
    first, most patients' reader-B probability falls inside reader A's range.

    Parameters
    ----------
    predictions : pandas.DataFrame
        ``probability_b``, ``probability_a_low`` and ``probability_a_high`` (0 to 1) per patient.

    Returns
    -------
    pandas.Series
        1.0 inside (bounds included), 0.0 outside, NaN where a probability or the range is missing.
    """
    low, high, b = predictions["probability_a_low"], predictions["probability_a_high"], predictions["probability_b"]
    inside = ((b >= low) & (b <= high)).astype(float)
    return inside.where(low.notna() & high.notna() & b.notna())


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Refuse a folder that already holds an agreement (results are never overwritten).

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder; it need not exist yet.

    Returns
    -------
    Path
        ``folder``.

    Raises
    ------
    InputError
        When it holds any of the files ``write_cohort_agreement`` writes, is a file, or cannot be written.
    """
    folder = check_writable_folder(folder, "--out")
    names = (FEATURE_ICC_FILE, SUMMARY_FILE, PAIRS_FILE, PREDICTIONS_FILE, *FEATURES_FILES)
    existing = [name for name in names if (folder / name).exists()]
    if existing:
        raise InputError(f"--out '{folder}' already holds {', '.join(existing)}; choose a new folder (results are "
                         "never overwritten).")
    return folder


def write_cohort_agreement(folder: str | os.PathLike, result: CohortAgreement,
                           rows_a: Sequence[LesionFeatures], rows_b: Sequence[LesionFeatures]) -> Path:
    """Write the tables, the summary and the feature tables of both readers into ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder; created if needed.
    result : CohortAgreement
        The agreement, as ``run_cohort_agreement`` returns it.
    rows_a, rows_b : sequence of LesionFeatures
        Reader A's and reader B's feature rows.

    Returns
    -------
    Path
        The summary JSON written (``agreement_summary.json``).

    Raises
    ------
    InputError
        When ``folder`` already holds an agreement (``check_output_folder``).
    """
    folder = check_output_folder(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_features_csv(folder / FEATURES_FILES[0], rows_a)
    write_features_csv(folder / FEATURES_FILES[1], rows_b)
    result.pairs.to_csv(folder / PAIRS_FILE, index=False, float_format="%.10g")
    if result.predictions is not None:
        result.predictions.to_csv(folder / PREDICTIONS_FILE, index=False, float_format="%.10g")
    write_feature_icc_csv(folder, result.feature_icc)
    path = folder / SUMMARY_FILE
    path.write_text(json.dumps(json_ready(result.summary()), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
