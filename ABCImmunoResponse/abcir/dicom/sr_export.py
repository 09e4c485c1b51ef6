"""The prediction as a DICOM Comprehensive 3D SR (TID 1500 Measurement Report), and read back.

The SR, built with highdicom, joins the CT's study. It holds one volumetric
measurement group (TID 1411) per lesion referencing its SEG segment and CT images,
with volume, RECIST long axis and short axis; and one measurement group (TID 1501)
for the prediction: probability, log-odds score, cut-off, risk group, the clinical
validation status, and the model, weights SHA-256 and provenance as algorithm
identification (TID 4019). Concepts without a standard code use the private coding
scheme ``99ABCIR``, declared in the SR.

When the prediction carries an outline-sensitivity analysis (issue #17), the
prediction group also holds the lowest and highest probability under the
outline changes, a qualitative evaluation of whether the risk group held
(stable, or depends on the outline), and the one-line summary, the warning and
the perturbation set and seed among the algorithm parameters.

Numbers are stored as FloatingPointValue next to the 16-character decimal string,
so reading the SR back gives the prediction's numbers bit for bit. RECIST findings
and warnings of the prediction stay in its result JSON: TID 1500 has no place for
free text.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from ..errors import InputError
from ..patient.lesions import Lesion
from ..prediction.result import Prediction
from ..patient.sites import SITES, site_from_code
from .seg_export import MANUFACTURER, series_description
from .series import DicomCT

# High series numbers sort the derived objects after the scanner's series in a PACS viewer.
SR_SERIES_NUMBER = 9802
# The device that made the observations: a stable UID derived from the software's name.
DEVICE_UID = generate_uid(entropy_srcs=["ABCImmunoResponse abcir device"])

PRIVATE_SCHEME = "99ABCIR"
CODING_SCHEME = hd.coding_schemes.CodingSchemeIdentificationItem(
    designator=PRIVATE_SCHEME, name="ABCImmunoResponse concepts",
    responsible_organization="ABCImmunoResponse project")
PROBABILITY = hd.sr.CodedConcept("R001", PRIVATE_SCHEME, "Probability of objective response (CR/PR)")
SCORE = hd.sr.CodedConcept("R002", PRIVATE_SCHEME, "Response log-odds score")
CUTOFF = hd.sr.CodedConcept("R003", PRIVATE_SCHEME, "Risk group cut-off (log-odds)")
RISK_GROUP = hd.sr.CodedConcept("R004", PRIVATE_SCHEME, "Progression risk group")
VALIDATION_STATUS = hd.sr.CodedConcept("R005", PRIVATE_SCHEME, "Clinical validation status")
NOT_VALIDATED = hd.sr.CodedConcept("R006", PRIVATE_SCHEME, "Not clinically validated")
VALIDATED = hd.sr.CodedConcept("R007", PRIVATE_SCHEME, "Clinically validated")
PROBABILITY_LOW = hd.sr.CodedConcept("R008", PRIVATE_SCHEME, "Lowest probability under outline changes")
PROBABILITY_HIGH = hd.sr.CodedConcept("R009", PRIVATE_SCHEME, "Highest probability under outline changes")
OUTLINE_STABILITY = hd.sr.CodedConcept("R010", PRIVATE_SCHEME, "Risk group under outline changes")
STABLE = hd.sr.CodedConcept("R011", PRIVATE_SCHEME, "Stable under outline changes")
UNSTABLE = hd.sr.CodedConcept("R012", PRIVATE_SCHEME, "Depends on the outline")
PREDICTION_TRACKING_ID = "response prediction"
RISK_GROUPS = {"high": codes.SCT.HighRisk, "low": codes.SCT.LowRisk}


@dataclass(frozen=True)
class ReportedLesion:
    """One target lesion's measurements as the SR carries them (mm, mm^3)."""

    lesion_id: str
    site: str | None
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float


@dataclass(frozen=True)
class ReportedSensitivity:
    """What the SR carries of an outline-sensitivity analysis (its text goes with the algorithm parameters).

    ``probability_low``/``high`` span the unperturbed and every perturbed
    probability; ``stable`` is whether the risk group flipped in at most the
    flip limit's share of the changes, None without a risk group.
    """

    probability_low: float
    probability_high: float
    stable: bool | None


@dataclass(frozen=True)
class ReportedPrediction:
    """What the SR carries of a prediction; the same whether made from a ``Prediction`` or read from the SR.

    ``parameters`` are the provenance lines (weights, training data, clinical facts, CT hash)
    stored as TID 4019 "Algorithm Parameters", each as "key: value".
    """

    model: str
    abcir_version: str
    probability: float
    score: float
    risk_group: str | None
    cutoff: float | None
    clinically_validated: bool
    parameters: tuple[tuple[str, str], ...]
    lesions: tuple[ReportedLesion, ...]
    sensitivity: ReportedSensitivity | None = None

    @classmethod
    def from_prediction(cls, prediction: Prediction) -> ReportedPrediction:
        """What the SR will carry of ``prediction``: its numbers, target lesions and provenance.

        Parameters
        ----------
        prediction : Prediction
            A prediction of ``abcir predict``; probability and score unitless (log-odds for the
            score and cut-off), lesion volumes in mm^3 and axes in mm.

        Returns
        -------
        ReportedPrediction
            The same numbers, lesions in the prediction's order, and the provenance lines.
        """
        weights = prediction.weights
        parameters = [("weights name", weights.name), ("weights sha256", weights.sha256),
                      ("weights manifest sha256", weights.manifest_sha256), ("trained on", weights.trained_on),
                      ("training data source", weights.source), ("training patients", str(weights.n_train)),
                      ("training responders", str(weights.n_responders)),
                      ("cut-off method", weights.cutoff_method), ("weights created", weights.created)]
        if prediction.clinical is not None:
            parameters.append(("clinical facts", " ".join(prediction.clinical.to_tokens())))
        if prediction.aggregation:
            parameters.append(("lesion aggregation", prediction.aggregation))
        if prediction.ct is not None:
            parameters.append(("CT voxel sha256", prediction.ct.sha256))
        sensitivity = None
        if prediction.sensitivity is not None:
            result = prediction.sensitivity
            parameters += [("outline sensitivity", result.summary),
                           ("outline perturbations", f"{result.perturbation_set}, seed {result.seed}")]
            if result.warning:
                parameters.append(("outline sensitivity warning", result.warning))
            sensitivity = ReportedSensitivity(result.probability_low, result.probability_high,
                                              None if result.n_same_risk_group is None else not result.unstable)
        lesions = tuple(ReportedLesion(lesion.lesion_id, lesion.site, lesion.volume_mm3,
                                       lesion.longest_axial_diameter_mm, lesion.short_axis_mm)
                        for lesion in prediction.lesions)
        return cls(prediction.model, prediction.abcir_version, prediction.probability, prediction.score,
                   prediction.risk_group, prediction.cutoff, weights.clinically_validated, tuple(parameters), lesions,
                   sensitivity)

    @property
    def weights_sha256(self) -> str:
        """The SHA-256 (hex) of the weights file the prediction was made with."""
        return dict(self.parameters)["weights sha256"]


def _algorithm(reported: ReportedPrediction) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=f"ABCImmunoResponse {reported.model} model",
                                         version=reported.abcir_version,
                                         parameters=[f"{key}: {value}" for key, value in reported.parameters])


def _referenced_segment(seg: hd.seg.Segmentation, number: int, mask: sitk.Image, ct: DicomCT,
                        sources: Sequence[pydicom.Dataset]) -> hd.sr.ReferencedSegment:
    """A segment with the CT images it was drawn on: its slices, or the series when a tilt was resampled."""
    if ct.gantry_tilt_degrees:  # the SEG's frames lie on the regular grid, not on the acquired slices
        return hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, number,
                                       source_series=hd.sr.SourceSeriesForSegmentation(ct.series_instance_uid))
    used = np.flatnonzero(sitk.GetArrayViewFromImage(mask).any(axis=(1, 2)))
    images = [hd.sr.SourceImageForSegmentation(sources[k].SOPClassUID, sources[k].SOPInstanceUID) for k in used]
    return hd.sr.ReferencedSegment(seg.SOPClassUID, seg.SOPInstanceUID, number, source_images=images)


def build_prediction_sr(reported: ReportedPrediction, seg: hd.seg.Segmentation, ct: DicomCT,
                        lesions: Sequence[Lesion], sources: Sequence[pydicom.Dataset]) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 Measurement Report of the prediction and the lesions, referencing the SEG and the CT.

    Parameters
    ----------
    reported : ReportedPrediction
        The prediction and lesion measurements (mm, mm^3) to report.
    seg : highdicom.seg.Segmentation
        The SEG of the lesions (``seg_export.build_lesion_seg``); each lesion's group references its segment.
    ct : DicomCT
        The CT series the prediction was made on.
    lesions : sequence of Lesion
        The masks of ``reported.lesions``, in the same order (segment 1, 2, ...), on ``ct``'s grid.
    sources : sequence of pydicom.Dataset
        The CT slices' headers, in the order of ``ct.files``; the SR references them as evidence.

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        The SR, not yet written; complete, not final and not verified (no physician has verified it).
    """
    unit = codes.UCUM.NoUnits
    groups: list = []
    for number, (lesion, mask) in enumerate(zip(reported.lesions, lesions, strict=True), start=1):
        site = SITES.get(lesion.site or "")
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=lesion.lesion_id),
            referenced_segment=_referenced_segment(seg, number, mask.mask, ct, sources),
            finding_type=codes.SCT.Neoplasm,
            finding_sites=[hd.sr.FindingSite(hd.sr.CodedConcept(site.snomed_code, "SCT", site.snomed_meaning))]
            if site else None,
            measurements=[
                hd.sr.Measurement(codes.SCT.Volume, lesion.volume_mm3, codes.UCUM.CubicMillimeter),
                hd.sr.Measurement(codes.SCT.LongAxis, lesion.longest_axial_diameter_mm, codes.UCUM.Millimeter),
                hd.sr.Measurement(codes.SCT.ShortAxis, lesion.short_axis_mm, codes.UCUM.Millimeter),
            ],
        ))
    measurements = [hd.sr.Measurement(PROBABILITY, reported.probability, unit),
                    hd.sr.Measurement(SCORE, reported.score, unit)]
    evaluations = [hd.sr.QualitativeEvaluation(VALIDATION_STATUS,
                                               VALIDATED if reported.clinically_validated else NOT_VALIDATED)]
    if reported.risk_group is not None and reported.cutoff is not None:
        measurements.append(hd.sr.Measurement(CUTOFF, reported.cutoff, unit))
        evaluations.insert(0, hd.sr.QualitativeEvaluation(RISK_GROUP, RISK_GROUPS[reported.risk_group]))
    if reported.sensitivity is not None:
        measurements += [hd.sr.Measurement(PROBABILITY_LOW, reported.sensitivity.probability_low, unit),
                         hd.sr.Measurement(PROBABILITY_HIGH, reported.sensitivity.probability_high, unit)]
        if reported.sensitivity.stable is not None:
            evaluations.append(hd.sr.QualitativeEvaluation(
                OUTLINE_STABILITY, STABLE if reported.sensitivity.stable else UNSTABLE))
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=PREDICTION_TRACKING_ID),
        algorithm_id=_algorithm(reported), measurements=measurements, qualitative_evaluations=evaluations))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=DEVICE_UID, name="abcir", manufacturer_name=MANUFACTURER, model_name=f"{reported.model} model"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
        referenced_images=list(sources),
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*sources, seg],
        content=report[0],
        series_instance_uid=hd.UID(),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
        is_verified=False,  # no physician has verified it
        coding_schemes=[CODING_SCHEME],
        series_description=series_description(f"ABCIR {reported.model} prediction",
                                               reported.clinically_validated),
    )


def _site_from_code(code: hd.sr.CodedConcept | None) -> str | None:
    return None if code is None else site_from_code(code.scheme_designator, code.value)


def read_prediction_sr(path: str | os.PathLike) -> ReportedPrediction:
    """The prediction and lesion measurements of an SR written by ``export.export_dicom``.

    Parameters
    ----------
    path : str or os.PathLike
        The DICOM SR file.

    Returns
    -------
    ReportedPrediction
        The numbers as stored (FloatingPointValue: bit for bit those of the prediction), lesion
        volumes in mm^3 and axes in mm, and the provenance lines.

    Raises
    ------
    InputError
        The file is not a TID 1500 SR, or it does not hold exactly one prediction group.
    """
    try:
        report = hd.sr.srread(str(path)).content
        groups = [group for group in report.get_image_measurement_groups()
                  if group.tracking_identifier == PREDICTION_TRACKING_ID]
        volumetric = report.get_volumetric_roi_measurement_groups()
    except Exception as error:  # pydicom and highdicom raise many types for a file that is not such an SR
        raise InputError(f"Report '{path}': not a TID 1500 DICOM SR ({error}).") from error
    if len(groups) != 1:
        raise InputError(f"Report '{path}': {len(groups)} '{PREDICTION_TRACKING_ID}' measurement groups; an SR "
                         "written by abcir has one.")
    group = groups[0]

    def number(concept: hd.sr.CodedConcept, where: Any = group) -> float | None:
        found = where.get_measurements(name=concept)
        return float(found[0].value) if found else None

    def text(concept: hd.sr.CodedConcept) -> list[str]:
        return [str(item.value) for item in find_content_items(group[0], name=concept)]

    evaluations = {item.name: item.value for item in group.get_qualitative_evaluations()}
    risk_code = evaluations.get(RISK_GROUP)
    risk_group = None if risk_code is None else next((key for key, code in RISK_GROUPS.items() if risk_code == code),
                                                     str(risk_code.meaning))
    parameters = tuple(tuple(line.split(": ", 1)) for line in text(codes.DCM.AlgorithmParameters))
    lesions = tuple(
        ReportedLesion(str(roi.tracking_identifier),
                       _site_from_code(roi.finding_sites[0].value if roi.finding_sites else None),
                       number(codes.SCT.Volume, roi), number(codes.SCT.LongAxis, roi), number(codes.SCT.ShortAxis, roi))
        for roi in volumetric)
    model = text(codes.DCM.AlgorithmName)[0].removeprefix("ABCImmunoResponse ").removesuffix(" model")
    sensitivity = None
    if number(PROBABILITY_LOW) is not None:
        stability = evaluations.get(OUTLINE_STABILITY)
        sensitivity = ReportedSensitivity(number(PROBABILITY_LOW), number(PROBABILITY_HIGH),
                                          None if stability is None else stability == STABLE)
    return ReportedPrediction(
        model=model, abcir_version=text(codes.DCM.AlgorithmVersion)[0],
        probability=number(PROBABILITY), score=number(SCORE), risk_group=risk_group, cutoff=number(CUTOFF),
        clinically_validated=evaluations.get(VALIDATION_STATUS) == VALIDATED,
        parameters=parameters,  # type: ignore[arg-type]
        lesions=lesions,
        sensitivity=sensitivity,
    )
