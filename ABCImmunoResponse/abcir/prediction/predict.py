"""One patient's prediction: probability, score, risk group, and what it rests on.

A probability alone invites more trust than research weights deserve, so every
``Prediction`` carries where its weights came from (and that they are not
clinically validated), the lesions and RECIST findings it used, and warnings
when the patient lies outside the training data. Whether the feature values are
those the weights were trained on is checked on values (``abcir.features.engine_check``),
not on version strings. Inference needs numpy only: torch is never imported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import BundleError, InputError
from ..features.catalogue import LesionFeatures
from ..features.engine_check import check_engine
from ..features.extract import ProgressCallback, extract_lesions
from ..imaging.ct import read_ct_with_warnings
from ..models import MODEL_KINDS, MLPModel, sigmoid
from ..models.aggregation import aggregate
from ..models.bundle import LABEL_DEFINITION, WeightBundle, bundled_bundle, load_bundle
from ..patient.clinical_facts import ClinicalFacts, clinical_usage
from ..patient.ids import default_patient_id
from ..patient.lesions import Lesion, load_lesions
from ..patient.recist import Finding, validate_targets
from ..sensitivity.result import SensitivityResult
from .result import CTIdentity, DistributionCheck, FeatureDeviation, LesionSummary, Prediction, WeightsInfo

#: A model input this many training SDs from the training mean is outside what the model was fitted on:
#: whatever the distribution, at most 1/25 of the training patients lie that far (Chebyshev), and a new
#: patient's normally distributed input does with probability 6e-7 (1e-5 for any of 20 inputs). The bundle
#: records the training means and SDs of the model's inputs (not their minima and maxima), so distance is
#: measured in SDs. Every input beyond the limit is named in a warning, with its distance.
OOD_Z_LIMIT = 5.0
#: A second, aggregate warning when more than this share of the model's inputs are beyond ``OOD_Z_LIMIT``:
#: one odd feature may be one odd lesion, many mean another scanner, protocol or segmentation style.
OOD_MAX_FRACTION = 0.10
#: Inputs named one by one in the warning; the rest are counted.
OOD_NAMED_FEATURES = 3
#: An outline-sensitivity analysis of a prediction, run on its inputs once they are extracted: (CT, target
#: lesions, clinical facts, feature rows, weights) -> result. ``abcir.sensitivity.analysis.sensitivity_analysis``
#: makes one; it is passed in because that module imports this one.
SensitivityAnalysis = Callable[[sitk.Image, Sequence[Lesion], ClinicalFacts | None, Sequence[LesionFeatures],
                                WeightBundle], SensitivityResult]


def resolve_bundle(model: str | None, weights: WeightBundle | str | os.PathLike | None) -> WeightBundle:
    """The bundle to use: the given one (checked to be of ``model``) or the bundled one of ``model``.

    ``model`` None means "the kind of the given weights" (combined when none are given).

    Parameters
    ----------
    model : {"clinical", "radiomics", "combined"} or None
        The model kind asked for; None accepts the kind of ``weights``.
    weights : WeightBundle, str, os.PathLike or None
        A loaded bundle, or the folder of one (loaded and verified here); None
        means the bundle shipped with abcir for ``model`` (combined when None).

    Returns
    -------
    WeightBundle
        The verified bundle.

    Raises
    ------
    InputError
        ``model`` is not one of the three kinds.
    BundleError
        The folder fails verification (``load_bundle``), holds a model of another
        kind than ``model``, or this installation ships no bundle of that kind.
    """
    if model is not None and model not in MODEL_KINDS:
        raise InputError(f"Model '{model}' is unknown; use one of {', '.join(MODEL_KINDS)}.")
    if weights is None:
        bundle = bundled_bundle(model or "combined")
    else:
        bundle = weights if isinstance(weights, WeightBundle) else load_bundle(weights)
    if model is not None and bundle.kind != model:
        raise BundleError(f"Weights '{bundle.path}': a {bundle.kind} model, but the {model} model was asked for. "
                          f"Use --model {bundle.kind}, or weights of a {model} model.")
    return bundle


def _require_clinical(bundle: WeightBundle, clinical: ClinicalFacts | None) -> None:
    if bundle.kind != "radiomics" and clinical is None:
        raise InputError(f"The {bundle.kind} model needs the four clinical facts and does not guess missing ones: "
                         f"give {clinical_usage()}, or use --model radiomics.")


def _recist(lesions: Sequence[Lesion]) -> list[Finding]:
    findings = validate_targets(lesions)
    errors = [finding.message for finding in findings if finding.severity == "error"]
    if errors:
        raise InputError("RECIST 1.1: " + " ".join(errors))
    return findings


def _consistency_warnings(lesions: Sequence[Lesion], clinical: ClinicalFacts | None) -> list[str]:
    """Clinical facts that the segmented target lesions contradict (the user decides which is right)."""
    if clinical is None:
        return []
    warnings = []
    visceral = [lesion.lesion_id for lesion in lesions if lesion.visceral]
    if visceral and not clinical.visceral:
        warnings.append(f"visceral=no, but target lesion(s) {', '.join(visceral)} lie in visceral sites; "
                        "check the clinical facts or the lesion sites.")
    sites = {lesion.site for lesion in lesions if lesion.site}
    if len(sites) >= 3 and not clinical.metastatic_sites_ge3:
        warnings.append(f"sites=1-2, but the target lesions lie in {len(sites)} sites ({', '.join(sorted(sites))}); "
                        "check the clinical facts or the lesion sites.")
    return warnings


def _distribution(model: MLPModel, vector: np.ndarray) -> DistributionCheck:
    z = model.standardise(vector)[0]
    worst = int(np.argmax(np.abs(z)))
    beyond = sorted((index for index in range(z.size) if abs(z[index]) > OOD_Z_LIMIT), key=lambda i: -abs(z[i]))
    return DistributionCheck(n_features=int(z.size), n_beyond=len(beyond), z_limit=OOD_Z_LIMIT,
                             max_abs_z=float(abs(z[worst])), most_extreme_feature=model.preprocessing.selected[worst],
                             beyond=tuple(FeatureDeviation(model.preprocessing.selected[i], float(z[i]))
                                          for i in beyond))


def _distribution_warnings(check: DistributionCheck) -> list[str]:
    """The aggregate warning (many inputs far out), then one naming the inputs far out (any at all)."""
    warnings = []
    if check.n_beyond > OOD_MAX_FRACTION * check.n_features:
        warnings.append(f"Out of distribution: {check.n_beyond} of {check.n_features} model inputs "
                        f"lie more than {check.z_limit:g} SD from the training mean (largest |z| "
                        f"{check.max_abs_z:.1f}, {check.most_extreme_feature}); this CT or "
                        "segmentation differs from the training data and the probability is less trustworthy.")
    if check.beyond:
        named = ", ".join(f"{item.feature} {abs(item.z):.1f} SD {'above' if item.z > 0 else 'below'}"
                          for item in check.beyond[:OOD_NAMED_FEATURES])
        more = check.n_beyond - OOD_NAMED_FEATURES
        warnings.append(f"Far outside the training data: {named} the training mean"
                        f"{f' (and {more} more inputs beyond {check.z_limit:g} SD)' if more > 0 else ''}; the model "
                        "never saw such values, so the probability is an extrapolation. Check the segmentation of "
                        "the lesions and the CT (contrast phase, kernel, slice thickness).")
    return warnings


def _extractor_check(bundle: WeightBundle, rows: Sequence[LesionFeatures]) -> tuple[float | None, list[str]]:
    """How closely the rows' values are verified to be the training engine's, and warnings.

    The first item is ``Prediction.values_relative_difference`` when the values
    are verified (0.0: bit for bit), None when they are not.

    Rows computed here are verified by ``check_engine``, whatever the version
    string. The training engine is known only by the pyradiomics version its
    manifest records: verified when the reference holds that version's values,
    or when it is this installation's and this installation reproduces them.
    Rows computed by another pyradiomics than this one cannot be checked: for
    them the version strings are compared, as before. Values from another
    parameter file are never verified.
    """
    trained = bundle.manifest.features
    versions = sorted({row.provenance.pyradiomics_version for row in rows})
    same_parameters = {row.provenance.parameter_file_sha256 for row in rows} == {trained.parameter_file_sha256}
    check = check_engine()
    reference = check.reference_pyradiomics_version
    verified_versions = [reference]
    if check.reproduced and check.pyradiomics_version != reference:
        verified_versions.append(check.pyradiomics_version)
    rows_verified = check.reproduced and versions == [check.pyradiomics_version]
    trained_verified = trained.pyradiomics_version in verified_versions
    # Weights trained on this very pyradiomics (not the reference's) are as consistent with it as before.
    trained_here = trained.pyradiomics_version == check.pyradiomics_version != reference
    warnings = []
    if not check.reproduced and check.pyradiomics_version in versions and not trained_here:
        warnings.append(f"Features computed with pyradiomics {check.pyradiomics_version}, which does not reproduce "
                        f"abcir's engine reference (values of stock pyradiomics {reference}): "
                        f"largest relative difference {check.largest_relative_difference:.3g}, in "
                        f"{check.largest_difference_feature}. The weights were trained on features of pyradiomics "
                        f"{trained.pyradiomics_version}, so the probability may be off. Predict in an environment made "
                        f"by ./install.sh (pyradiomics=={reference}), or retrain the weights "
                        "on features extracted with this installation.")
    elif not (rows_verified and trained_verified) and versions != [trained.pyradiomics_version]:
        fixes = []
        if not rows_verified:
            fixes.append("recompute the features with this installation" if check.reproduced else
                         f"recompute the features with pyradiomics=={reference} (./install.sh)")
        if not trained_verified:
            fixes.append(f"use weights trained on features of pyradiomics {' or '.join(verified_versions)}")
        warnings.append(f"Features computed with pyradiomics {', '.join(versions)}, weights trained on features of "
                        f"pyradiomics {trained.pyradiomics_version}; values may differ (abcir's engine reference "
                        f"verifies pyradiomics {', '.join(verified_versions)} only). To be sure, "
                        f"{' and '.join(fixes)}.")
    if not same_parameters:
        warnings.append("Features computed with another pyradiomics parameter file than the training features; "
                        "values may differ. Use the parameter file shipped with the weights' abcir version.")
    verified = rows_verified and trained_verified and same_parameters
    return (check.largest_relative_difference or 0.0) if verified else None, warnings


def _predict(lesions: Sequence[Lesion], rows: Sequence[LesionFeatures], clinical: ClinicalFacts | None,
             bundle: WeightBundle, ct: CTIdentity | None) -> Prediction:
    """The prediction itself; warnings are ordered by how much they bear on the probability."""
    findings = _recist(lesions)
    model = bundle.model()
    clinical_vector = None if bundle.kind == "radiomics" else clinical.vector()[None, :]
    warnings: list[str] = []
    distribution = aggregation = vector = None
    verified_within = None
    if isinstance(model, MLPModel):
        if not rows:
            raise InputError(f"The {bundle.kind} model needs target lesions to extract radiomics features from.")
        aggregation = model.preprocessing.aggregation
        vector = aggregate(np.vstack([row.values for row in rows]),
                           np.array([row.lesion.size.volume_mm3 for row in rows]), aggregation)[None, :]
        distribution = _distribution(model, vector)
        warnings += _distribution_warnings(distribution)
        verified_within, extractor_warnings = _extractor_check(bundle, rows)
        warnings += extractor_warnings
    if bundle.manifest.training_data.label_definition != LABEL_DEFINITION:
        warnings.append(f"The weights were trained on the labels '{bundle.manifest.training_data.label_definition}', "
                        f"not '{LABEL_DEFINITION}'; the probability is of the former.")
    if bundle.manifest.training_data.source == "synthetic":
        warnings.append("These weights were trained on synthetic data: the probability demonstrates the software "
                        "and says nothing about this patient.")
    warnings += _consistency_warnings(lesions, clinical)
    score = float(model.score(vector, clinical_vector)[0])
    cutoff = bundle.manifest.cutoff
    if cutoff.value is None:
        risk_group = None
        warnings.append(f"No risk group: the weights carry no risk cut-off ({cutoff.note or cutoff.method}).")
    else:
        risk_group = "high" if score <= cutoff.value else "low"
    return Prediction(model=bundle.kind, probability=float(sigmoid(score)), score=score, risk_group=risk_group,
                      cutoff=cutoff.value, weights=WeightsInfo.from_bundle(bundle),
                      clinical=None if bundle.kind == "radiomics" else clinical,
                      lesions=tuple(LesionSummary.from_lesion(lesion) for lesion in lesions),
                      recist=tuple(findings), warnings=tuple(warnings), ct=ct, distribution=distribution,
                      aggregation=aggregation, values_verified=verified_within is not None,
                      values_relative_difference=verified_within or 0.0)


def predict_features(rows: Sequence[LesionFeatures], clinical: ClinicalFacts | None, model: str | None = "combined",
                     bundle: WeightBundle | str | os.PathLike | None = None,
                     ct: CTIdentity | None = None) -> Prediction:
    """Prediction from features already extracted (one row per target lesion of one patient).

    Lets a caller change the clinical facts or the model without extracting again.

    Parameters
    ----------
    rows : sequence of LesionFeatures
        One per target lesion of one patient (1130 values each, with its lesion
        and provenance); may be empty for the clinical model.
    clinical : ClinicalFacts or None
        The four clinical facts; None is allowed for the radiomics model only.
    model : {"clinical", "radiomics", "combined"} or None, default "combined"
        The model kind; None means the kind of ``bundle``.
    bundle : WeightBundle, str, os.PathLike or None
        Weights (a bundle or its folder); None means the bundled weights of ``model``.
    ct : CTIdentity, optional
        Which CT the features came from, recorded in the result; None records none.

    Returns
    -------
    Prediction
        Probability of response (CR/PR), score (log-odds), risk group against the
        bundle's cut-off (log-odds; None without one), and what they rest on.

    Raises
    ------
    InputError
        ``model`` is unknown, the model needs clinical facts and ``clinical`` is
        None, the target lesions break RECIST 1.1 (an error finding), or a
        radiomics/combined model has no lesion rows.
    BundleError
        The weights fail verification (``load_bundle``), are of another kind than
        ``model``, or this installation ships none of that kind.
    """
    bundle = resolve_bundle(model, bundle)
    _require_clinical(bundle, clinical)
    return _predict([row.lesion for row in rows], rows, clinical, bundle, ct)


def predict_lesions(ct: sitk.Image | None, lesions: Sequence[Lesion], clinical: ClinicalFacts | None,
                    model: str | None = "combined", bundle: WeightBundle | str | os.PathLike | None = None,
                    jobs: int = 1, progress: ProgressCallback | None = None, patient_id: str = "patient",
                    sensitivity: SensitivityAnalysis | None = None) -> Prediction:
    """Prediction for one patient from the CT and its target lesions (masks on the CT grid).

    The clinical model needs neither CT nor lesions; when given they are
    listed and checked against RECIST all the same.

    Parameters
    ----------
    ct : sitk.Image or None
        The CT (HU); None is allowed for the clinical model only.
    lesions : sequence of Lesion
        The target lesions, binary masks on the CT's grid; at least one unless
        the model is clinical.
    clinical : ClinicalFacts or None
        The four clinical facts; None is allowed for the radiomics model only.
    model : {"clinical", "radiomics", "combined"} or None, default "combined"
        The model kind; None means the kind of ``bundle``.
    bundle : WeightBundle, str, os.PathLike or None
        Weights (a bundle or its folder); None means the bundled weights of ``model``.
    jobs : int, default 1
        Processes for the feature extraction.
    progress : callable, optional
        Called as ``progress(lesions done, number of lesions, lesion id)`` during extraction.
    patient_id : str, default "patient"
        The id recorded with the extracted features.
    sensitivity : SensitivityAnalysis, optional
        Run on the CT, lesions, clinical facts, the rows just extracted and the
        weights; its result becomes ``Prediction.sensitivity``. None runs none.

    Returns
    -------
    Prediction
        Probability of response (CR/PR), score (log-odds), risk group and what they rest on.

    Raises
    ------
    InputError
        ``model`` is unknown, the model needs clinical facts and ``clinical`` is
        None, the target lesions break RECIST 1.1 (an error finding), a
        radiomics/combined model gets no CT or no lesions, or extraction refuses
        a lesion (``extract_lesions``).
    BundleError
        The weights fail verification (``load_bundle``), are of another kind than
        ``model``, or this installation ships none of that kind.
    RuntimeError
        pyradiomics did not return the 1130 features, or workers cannot be started.
    """
    bundle = resolve_bundle(model, bundle)
    _require_clinical(bundle, clinical)
    _recist(lesions)  # refuse before the slow extraction
    identity = None if ct is None else CTIdentity.from_image(ct)
    rows: list[LesionFeatures] = []
    if bundle.kind != "clinical":
        if ct is None or not lesions:
            raise InputError(f"The {bundle.kind} model needs the CT and its target lesions.")
        rows = extract_lesions(ct, lesions, patient_id, jobs=jobs, progress=progress)
    prediction = _predict(lesions, rows, clinical, bundle, identity)
    if sensitivity is None:
        return prediction
    return replace(prediction, sensitivity=sensitivity(ct, lesions, clinical, rows, bundle))


def predict_patient(ct_path: str | os.PathLike | None, lesion_paths: Sequence[str | os.PathLike],
                    clinical: ClinicalFacts | None, model: str | None = "combined",
                    weights: str | os.PathLike | None = None, sites_csv: str | os.PathLike | None = None,
                    jobs: int = 1, progress: ProgressCallback | None = None,
                    series_uid: str | None = None, sensitivity: SensitivityAnalysis | None = None) -> Prediction:
    """Prediction from files: a CT (DICOM folder or image file), lesion file(s), clinical facts, weights.

    The files are only read. Weights and clinical facts are checked before the
    CT is read, so a mistake there is reported at once.

    Parameters
    ----------
    ct_path : str, os.PathLike or None
        A DICOM folder or one image file holding the CT in HU; None is allowed
        for the clinical model only.
    lesion_paths : sequence of str or os.PathLike
        A ``.seg.nrrd``, a DICOM SEG, one label map, or several binary mask
        files; may be empty for the clinical model.
    clinical : ClinicalFacts or None
        The four clinical facts; None is allowed for the radiomics model only.
    model : {"clinical", "radiomics", "combined"} or None, default "combined"
        The model kind; None means the kind of ``weights``.
    weights : str, os.PathLike or None
        A bundle folder; None means the bundled weights of ``model``.
    sites_csv : str, os.PathLike or None
        A CSV naming each lesion's site; None means sites come from the lesion files.
    jobs : int, default 1
        Processes for the feature extraction.
    progress : callable, optional
        Called as ``progress(lesions done, number of lesions, lesion id)`` during extraction.
    series_uid : str, optional
        Which series of a DICOM folder holding several; None when there is one.
    sensitivity : SensitivityAnalysis, optional
        The outline-sensitivity analysis to run after extraction (``predict_lesions``).

    Returns
    -------
    Prediction
        As ``predict_lesions``, with the CT reader's warnings appended (prefixed "CT: ").
        The patient id is the series' PatientID, else the folder's or file's name.

    Raises
    ------
    InputError
        ``model`` is unknown, the model needs clinical facts and ``clinical`` is
        None, a radiomics/combined model gets no CT or no lesion files, the CT is
        not a readable 3D CT in HU, a lesion file is missing or invalid, the
        target lesions break RECIST 1.1, or extraction refuses a lesion.
    BundleError
        The weights fail verification (``load_bundle``), are of another kind than
        ``model``, or this installation ships none of that kind.
    RuntimeError
        pyradiomics did not return the 1130 features, or workers cannot be started.
    """
    bundle = resolve_bundle(model, weights)
    _require_clinical(bundle, clinical)
    if ct_path is None:
        if bundle.kind != "clinical":
            raise InputError(f"The {bundle.kind} model needs the CT (--ct) and its target lesions (--lesions).")
        return predict_lesions(None, [], clinical, bundle.kind, bundle, sensitivity=sensitivity)
    path = Path(ct_path)
    image, reading_warnings = read_ct_with_warnings(path, series_uid)
    if not lesion_paths and bundle.kind != "clinical":
        raise InputError(f"The {bundle.kind} model needs the target lesions (--lesions).")
    lesions = load_lesions(lesion_paths, image, sites_csv) if lesion_paths else []
    prediction = predict_lesions(image, lesions, clinical, bundle.kind, bundle, jobs, progress,
                                 patient_id=default_patient_id(path, image), sensitivity=sensitivity)
    return replace(prediction, warnings=(*prediction.warnings, *(f"CT: {w}" for w in reading_warnings)))

