"""``abcir train``: from a site's cohort to three verified weight bundles and a model card.

Steps, each fitted on the training part only: features per lesion (cached),
one vector per patient (the named aggregation), clinical logistic regression,
radiomics and combined MLPs (feature selection and standardisation inside
``fit_mlp``), the risk cut-off by the maximally selected log-rank statistic on
training PFS, then AUC with DeLong CI and Table 2 metrics on the validation part.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ..cohort.table import TRAIN_COLUMNS, TRAIN_COLUMNS_IF_PRESENT, CohortRow, CohortTable, read_cohort
from ..errors import InputError
from ..features.cache import FeatureCache
from ..features.catalogue import feature_names
from ..features.extract import extract_patient
from ..features.table import features_frame, read_features_csv
from ..models.aggregation import aggregate
from ..models.bundle import Cutoff, TrainingData
from ..paper import CUTOFF_METHOD
from ..patient.clinical_facts import CLINICAL_ENCODING
from ..stats.maxstat import maxstat_logrank
from .export import save_bundle
from .logistic import fit_clinical
from .mlp import fit_mlp
from .model_card import write_model_card
from .settings import TrainingSettings
from .split import check_split, training_mask
from .validation import validation_record

log = logging.getLogger(__name__)



@dataclass
class TrainingResult:
    """Where the bundles went and how they did."""

    bundles: dict[str, Path]
    predictions: Path
    model_card: Path
    validation_auc: dict[str, tuple[float, tuple[float, float] | None]]


def read_training_cohort(path: str | os.PathLike, need_images: bool) -> CohortTable:
    """A cohort table (``abcir.cohort.table``) with what training needs; ``ct`` and ``lesions`` too for images.

    Parameters
    ----------
    path : str or os.PathLike
        The cohort CSV.
    need_images : bool
        Whether the ``ct`` and ``lesions`` columns are required (features to be extracted from images).

    Returns
    -------
    CohortTable
        The cohort, one row per patient.

    Raises
    ------
    InputError
        As ``abcir.cohort.table.read_cohort``: the file cannot be read, or a required column or value is missing
        or invalid.
    """
    required = (*TRAIN_COLUMNS, "ct", "lesions") if need_images else TRAIN_COLUMNS
    return read_cohort(path, required=required, filled_if_present=TRAIN_COLUMNS_IF_PRESENT)


def training_frame(cohort: CohortTable) -> pd.DataFrame:
    """The cohort as training uses it, one row per patient in table order.

    ``patient_id``, ``response`` and the four facts as 0/1 integers; ``pfs_months``
    (float) and ``pfs_event`` (0/1), ``center`` and ``split`` where the table has them.

    Parameters
    ----------
    cohort : CohortTable
        A cohort read by ``read_training_cohort``.

    Returns
    -------
    pd.DataFrame
        The columns above; ``response`` 1 = CR/PR, 0 = SD/PD; PFS in months.
    """
    rows = cohort.rows
    data: dict[str, list] = {"patient_id": [row.patient_id for row in rows],
                             "response": [int(row.response) for row in rows]}
    for name in CLINICAL_ENCODING:
        data[name] = [int(getattr(row.clinical, name)) for row in rows]
    if cohort.has("pfs_months"):
        data["pfs_months"] = [row.pfs_months for row in rows]
        data["pfs_event"] = [int(row.pfs_event) for row in rows]
    for column in ("center", "split"):
        if cohort.has(column):
            data[column] = [getattr(row, column) for row in rows]
    return pd.DataFrame(data)


def extract_cohort(rows: Sequence[CohortRow], cache_dir: Path, jobs: int = 1,
                   progress: Callable[[int, int, str], None] | None = None) -> pd.DataFrame:
    """Per-lesion features of every patient (features table layout), reusing cached lesions.

    Parameters
    ----------
    rows : sequence of CohortRow
        The patients, each with ``ct``, ``lesions`` and optional ``sites``.
    cache_dir : Path
        The feature cache folder (created if needed).
    jobs : int
        Lesions extracted in parallel.
    progress : callable or None
        Called as ``progress(number, total, patient_id)`` before each patient; None: silent.

    Returns
    -------
    pd.DataFrame
        One row per lesion: ``patient_id``, ``lesion_id``, the lesion's measurements and the 1130 features.

    Raises
    ------
    InputError
        As ``abcir.features.extract.extract_patient``, when a CT or lesion file cannot be used.
    """
    cache = FeatureCache(cache_dir)
    frames = []
    for number, row in enumerate(rows, start=1):
        if progress:
            progress(number, len(rows), row.patient_id)
        lesions = extract_patient(row.ct, row.lesions, patient_id=row.patient_id, sites_csv=row.sites, jobs=jobs,
                                  cache=cache)
        frames.append(features_frame(lesions))
    return pd.concat(frames, ignore_index=True)


def patient_matrix(lesion_features: pd.DataFrame, patient_ids: Sequence[str], aggregation: str) -> np.ndarray:
    """One aggregated radiomics vector per patient, rows in ``patient_ids`` order.

    Parameters
    ----------
    lesion_features : pd.DataFrame
        One row per lesion: ``patient_id``, ``volume_mm3`` (mm3, for volume-weighted aggregations) and the 1130
        feature columns.
    patient_ids : sequence of str
        The patients, in the order of the rows wanted.
    aggregation : str
        How a patient's lesions become one vector (one of ``AGGREGATIONS``).

    Returns
    -------
    np.ndarray
        Patients x 1130 matrix, columns in ``feature_names()`` order.

    Raises
    ------
    InputError
        When a patient has no lesion rows, or as ``abcir.models.aggregation.aggregate``.
    """
    names = list(feature_names())
    groups = dict(tuple(lesion_features.groupby("patient_id", sort=False)))
    missing = [pid for pid in patient_ids if pid not in groups]
    if missing:
        raise InputError(f"Features: no lesions for patient(s) {', '.join(missing[:5])}; extract them first.")
    return np.vstack([aggregate(groups[pid][names].to_numpy(), groups[pid]["volume_mm3"].to_numpy(), aggregation)
                      for pid in patient_ids])


def choose_cutoff(scores: np.ndarray, table: pd.DataFrame) -> Cutoff:
    """The risk cut-off on training scores, or unset with the reason.

    Parameters
    ----------
    scores : np.ndarray
        The training patients' scores (log-odds).
    table : pd.DataFrame
        The same patients' rows, with ``pfs_months`` (months) and ``pfs_event`` (1 = progression or death) if
        known.

    Returns
    -------
    Cutoff
        The cut-off (high risk: score <= value) by the maximally selected log-rank statistic, with its statistic
        and p-value (Lausen & Schumacher 1994); unset, with the reason, when there is no PFS or maxstat cannot
        choose one.
    """
    if "pfs_months" not in table:
        return Cutoff(None, "unset", "the training cohort has no PFS columns")
    try:
        result = maxstat_logrank(scores, table["pfs_months"].to_numpy(float), table["pfs_event"].to_numpy(float))
    except InputError as error:
        return Cutoff(None, "unset", f"maxstat could not choose one: {error}")
    return Cutoff(float(result.cutoff), CUTOFF_METHOD,
                  f"statistic {result.statistic:.3f}, p = {result.p_value:.3g} (Lausen & Schumacher 1994)")


def train_cohort(table: pd.DataFrame, lesion_features: pd.DataFrame, out_dir: str | os.PathLike,
                 settings: TrainingSettings = TrainingSettings()) -> TrainingResult:
    """Fit the three models on the training part of ``table`` and write bundles, predictions and a model card.

    Parameters
    ----------
    table : pd.DataFrame
        The cohort, one row per patient, as ``training_frame`` gives it.
    lesion_features : pd.DataFrame
        Per-lesion features of those patients (features table layout).
    out_dir : str or os.PathLike
        A new or empty folder for the bundles (``clinical``, ``radiomics``, ``combined``), ``predictions.csv``
        and ``MODEL_CARD.md``.
    settings : TrainingSettings
        Seed, aggregation, MLP settings, optional feature subset, and what is recorded about the data.

    Returns
    -------
    TrainingResult
        The bundle folders, the predictions file (scores in log-odds for every patient, with the split), the
        model card, and each model's validation AUC with its DeLong 95% CI (None when not defined).

    Raises
    ------
    InputError
        When ``out_dir`` is not empty, the split cannot support a model (``check_split``), a patient has no
        lesions, or a fit fails (``fit_clinical``, ``fit_mlp``).
    ValueError
        When a name in ``settings.feature_subset`` is not one of the extractor's features.
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"Output '{out}' is not empty; choose a new folder (existing bundles are not overwritten).")
    train = training_mask(table, settings.seed)
    check_split(table, train)
    ids = table["patient_id"].astype(str).tolist()
    radiomics = patient_matrix(lesion_features, ids, settings.aggregation)
    clinical = table[list(CLINICAL_ENCODING)].to_numpy(float)
    labels = table["response"].to_numpy(int)
    names = list(feature_names())
    if settings.feature_subset is not None:
        keep = [names.index(name) for name in settings.feature_subset]
        radiomics_in, names_in = radiomics[:, keep], [names[i] for i in keep]
    else:
        radiomics_in, names_in = radiomics, names
    fits = {
        "clinical": fit_clinical(clinical[train], labels[train]),
        "radiomics": fit_mlp("radiomics", radiomics_in[train], labels[train], feature_names=names_in,
                             aggregation=settings.aggregation, settings=settings.mlp),
        "combined": fit_mlp("combined", radiomics_in[train], labels[train], clinical=clinical[train],
                            feature_names=names_in, aggregation=settings.aggregation, settings=settings.mlp),
    }
    training_data = TrainingData(
        source=settings.source, site=settings.site, n=int(train.sum()), responders=int(labels[train].sum()),
        date_from=settings.date_from, date_to=settings.date_to,
        description=(settings.description + f" Trained with: {settings.command}").strip())
    predictions = table[["patient_id", "response", *CLINICAL_ENCODING]].copy()
    for column in ("pfs_months", "pfs_event", "center"):
        if column in table:
            predictions[column] = table[column]
    predictions["split"] = np.where(train, "train", "validation")
    bundles, aucs = {}, {}
    out.mkdir(parents=True, exist_ok=True)
    for kind, fit in fits.items():
        scores = fit.model().score(None if kind == "clinical" else radiomics, None if kind == "radiomics" else clinical)
        cutoff = choose_cutoff(scores[train], table[train])
        held_out = validation_record(f"validation split of {settings.site}", "held-out patients (paper's split)",
                                     scores[~train], labels[~train])
        bundles[kind] = save_bundle(out / kind, fit, name=f"{settings.site}-{kind}", training_data=training_data,
                                    cutoff=cutoff, validation=[held_out])
        predictions[f"{kind}_score"] = scores
        aucs[kind] = (held_out.auc, held_out.auc_ci)
    predictions_path = out / "predictions.csv"
    predictions.to_csv(predictions_path, index=False, float_format="%.17g")
    card = write_model_card(out, table, train, bundles, settings)
    return TrainingResult(bundles, predictions_path, card, aucs)


def load_training_inputs(cohort: str | None, features: str | None, labels: str | None, cache_dir: Path,
                         jobs: int, progress: Callable[[int, int, str], None] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The cohort table and its per-lesion features, from images (extracted, cached) or from a features table.

    Parameters
    ----------
    cohort : str or None
        A cohort CSV with ``ct`` and ``lesions`` paths; None: use ``features`` and ``labels``.
    features : str or None
        A per-lesion features CSV (``abcir extract`` or ``abcir batch``), with ``labels``.
    labels : str or None
        A per-patient cohort CSV with the outcome and clinical columns, with ``features``.
    cache_dir : Path
        The feature cache folder, used with ``cohort``.
    jobs : int
        Lesions extracted in parallel, with ``cohort``.
    progress : callable or None
        Called as ``progress(number, total, patient_id)`` during extraction; None: silent.

    Returns
    -------
    tuple of pd.DataFrame
        The training table (``training_frame``) and the per-lesion features.

    Raises
    ------
    InputError
        When ``cohort`` is given with ``features`` or ``labels``, when neither ``cohort`` nor both of them are
        given, or as reading and extraction.
    """
    if cohort and (features or labels):
        raise InputError("Give either --cohort (images) or --features with --labels, not both.")
    if cohort:
        table = read_training_cohort(cohort, need_images=True)
        return training_frame(table), extract_cohort(table.rows, cache_dir, jobs, progress)
    if not (features and labels):
        raise InputError("Give --cohort cohort.csv, or --features features.csv with --labels labels.csv.")
    return training_frame(read_training_cohort(labels, need_images=False)), read_features_csv(features)
