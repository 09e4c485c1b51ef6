"""Write a prediction back to PACS: the target lesions as DICOM SEG, the prediction as DICOM SR.

Both objects are built with highdicom and join the CT's study:

- a **Segmentation** (binary, one segment per target lesion, in the prediction's
  lesion order) on the CT's grid, each segment labelled with the lesion id, the
  property "Neoplasm" (SNOMED CT 108369006, Slicer's "Tumor") and the site as its
  anatomic region (SNOMED CT codes from ``sites.SITES``), referencing the CT series;
- a **Comprehensive 3D SR** holding a TID 1500 Measurement Report: one volumetric
  measurement group (TID 1411) per lesion referencing its SEG segment and CT
  images, with volume, RECIST long axis and short axis; and one measurement group
  (TID 1501) for the prediction: probability, log-odds score, cut-off, risk group,
  the clinical validation status, and the model, weights SHA-256 and provenance
  as algorithm identification (TID 4019). Concepts without a standard code use
  the private coding scheme ``99ABCIR``, declared in the SR.

Numbers are stored as FloatingPointValue next to the 16-character decimal string,
so reading the SR back gives the prediction's numbers bit for bit.

Safety checks: the CT's voxel hash must equal the one recorded in the prediction
(it is never attached to another patient's CT); every lesion of the prediction
must be given, with the volume the prediction reports; a series without
StudyInstanceUID/SeriesInstanceUID cannot be referenced and is refused. Missing
patient identifiers are written empty (type 2 attributes, PS3.3 C.7.1.1) with a
warning, never invented. RECIST findings and warnings of the prediction stay in
its result JSON: TID 1500 has no place for free text.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk
from highdicom.sr.utils import find_content_items
from pydicom.charset import python_encoding
from pydicom.multival import MultiValue
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from . import __version__
from .dicom_series import DicomCT
from .errors import InputError
from .imaging import voxel_hash
from .lesions import Lesion
from .prediction import Prediction
from .sites import SITES, site_from_code

log = logging.getLogger(__name__)

MANUFACTURER = "ABCImmunoResponse"
SEG_FILE_NAME = "lesions_seg.dcm"
SR_FILE_NAME = "prediction_sr.dcm"
# High series numbers sort the derived objects after the scanner's series in a PACS viewer.
SEG_SERIES_NUMBER = 9801
SR_SERIES_NUMBER = 9802
# The device that made the observations: a stable UID derived from the software's name.
DEVICE_UID = generate_uid(entropy_srcs=["ABCImmunoResponse abcir device"])
# A lesion whose volume differs from the result's by more than this fraction is another lesion.
VOLUME_TOLERANCE = 1e-6

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
PREDICTION_TRACKING_ID = "response prediction"
RISK_GROUPS = {"high": codes.SCT.HighRisk, "low": codes.SCT.LowRisk}
# Patient and study attributes of type 2: present, possibly empty (PS3.3 C.7.1.1, C.7.2.1).
PATIENT_IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Unicode in UTF-8 (PS3.3 C.12.1.1.2): declared when the CT's character set cannot encode a name, lesion id or site.
UTF8_CHARACTER_SET = "ISO_IR 192"
# The value representations that hold text in a Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})


@dataclass(frozen=True)
class ReportedLesion:
    """One target lesion's measurements as the SR carries them (mm, mm^3)."""

    lesion_id: str
    site: str | None
    volume_mm3: float
    longest_axial_diameter_mm: float
    short_axis_mm: float


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

    @classmethod
    def from_prediction(cls, prediction: Prediction) -> ReportedPrediction:
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
        lesions = tuple(ReportedLesion(lesion.lesion_id, lesion.site, lesion.volume_mm3,
                                       lesion.longest_axial_diameter_mm, lesion.short_axis_mm)
                        for lesion in prediction.lesions)
        return cls(prediction.model, prediction.abcir_version, prediction.probability, prediction.score,
                   prediction.risk_group, prediction.cutoff, weights.clinically_validated, tuple(parameters), lesions)

    @property
    def weights_sha256(self) -> str:
        return dict(self.parameters)["weights sha256"]


@dataclass(frozen=True)
class SegmentMask:
    """One segment of a DICOM SEG read back onto a CT grid."""

    segment_number: int
    lesion_id: str
    site: str | None
    mask: sitk.Image  # uint8 0/1 on the CT grid


@dataclass(frozen=True)
class DicomExport:
    """Where the SEG and SR were written, and what the user should know about them."""

    seg_path: Path
    sr_path: Path
    warnings: tuple[str, ...]


def check_prediction_matches_ct(prediction: Prediction, ct: DicomCT, name: str = "result") -> None:
    """Refuse a prediction that was not computed on this CT (voxel hash and, when recorded, UIDs)."""
    if prediction.ct is None or not prediction.ct.sha256:
        raise InputError(f"Result '{name}': it records no CT (a clinical-model prediction, or an old file), so it "
                         "cannot be checked against the DICOM series; predict again with --ct on this series.")
    expected = prediction.ct.sha256
    actual = voxel_hash(ct.image)
    if actual != expected:
        raise InputError(f"Result '{name}': computed on another CT (voxel hash {expected[:12]}...) than the DICOM "
                         f"series {ct.series_instance_uid or ct.series_description!r} (hash {actual[:12]}...). "
                         "Exporting it would attach the prediction to the wrong images or patient; give the "
                         "series the prediction was made on (--series-uid if the folder holds several).")
    for what, recorded, value in (("StudyInstanceUID", prediction.ct.study_instance_uid, ct.study_instance_uid),
                                  ("SeriesInstanceUID", prediction.ct.series_instance_uid, ct.series_instance_uid)):
        if recorded and recorded != value:
            raise InputError(f"Result '{name}': its {what} {recorded} differs from the DICOM series' {value}; "
                             "give the series the prediction was made on.")


def _source_datasets(ct: DicomCT) -> tuple[list[pydicom.Dataset], list[str]]:
    """The CT slices' headers, ready to be referenced, and warnings about what is missing."""
    if not ct.study_instance_uid or not ct.series_instance_uid:
        raise InputError("CT series: it has no StudyInstanceUID/SeriesInstanceUID (an anonymiser removed them), "
                         "so a SEG or SR cannot join its study. Export the series from PACS with its UIDs (or "
                         "anonymise by replacing UIDs rather than deleting them).")
    if not ct.frame_of_reference_uid:
        raise InputError("CT series: it has no FrameOfReferenceUID, which a DICOM Segmentation must share with "
                         "its CT. Export the series from PACS unmodified.")
    datasets = []
    for path, uid in zip(ct.files, ct.sop_instance_uids, strict=True):
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        if not uid:
            raise InputError(f"CT file '{path}': no SOPInstanceUID, so it cannot be referenced.")
        dataset.SOPInstanceUID = uid  # the file meta copy when an anonymiser blanked the dataset's one
        if not dataset.get("SOPClassUID"):
            dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID
        datasets.append(dataset)
    warnings = []
    first = datasets[0]
    missing = [keyword for keyword in PATIENT_IDENTIFIERS if not str(first.get(keyword, "") or "").strip()]
    if missing:
        warnings.append(f"the CT has no {', '.join(missing)}; the SEG and SR carry them empty (DICOM type 2), "
                        "so PACS may not file them with the patient's images. Check before sending.")
    for dataset in datasets:
        for keyword in PATIENT_IDENTIFIERS + STUDY_TYPE2:
            if keyword not in dataset:
                setattr(dataset, keyword, "")
    return datasets, warnings


def _lesion_volume(lesions: Sequence[Lesion], ct: sitk.Image, frame_of_reference_uid: str) -> hd.Volume:
    """The lesion masks as a highdicom Volume (slices x rows x columns x segments), cropped to the slices in use."""
    stacked = np.stack([sitk.GetArrayViewFromImage(lesion.mask) != 0 for lesion in lesions], axis=-1)
    used = np.flatnonzero(stacked.any(axis=(1, 2, 3)))
    slices = slice(int(used[0]), int(used[-1]) + 1)
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    spacing = np.array(ct.GetSpacing())
    affine = np.eye(4)
    # highdicom indexes (slice, row, column); SimpleITK's axes are (column x, row y, slice z).
    affine[:3, :3] = np.stack([direction[:, 2] * spacing[2], direction[:, 1] * spacing[1],
                               direction[:, 0] * spacing[0]], axis=1)
    affine[:3, 3] = ct.TransformIndexToPhysicalPoint((0, 0, slices.start))
    return hd.Volume(stacked[slices].astype(np.uint8), affine, "PATIENT", frame_of_reference_uid=frame_of_reference_uid,
                     channels={"SegmentNumber": list(range(1, len(lesions) + 1))})


def _segment_description(number: int, lesion: Lesion) -> hd.seg.SegmentDescription:
    site = SITES.get(lesion.site or "")
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=lesion.lesion_id,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        # The paper's readers delineated every lesion by hand in 3D Slicer (Methods).
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        tracking_uid=hd.UID(),
        tracking_id=lesion.lesion_id,
        anatomic_regions=[hd.sr.CodedConcept(site.snomed_code, "SCT", site.snomed_meaning)] if site else None,
        display_color=hd.color.CIELabColor.from_rgb(*(int(round(255 * c)) for c in site.color)) if site else None,
    )


def build_lesion_seg(ct: DicomCT, lesions: Sequence[Lesion], sources: Sequence[pydicom.Dataset],
                     clinically_validated: bool) -> hd.seg.Segmentation:
    """A binary DICOM Segmentation of ``lesions`` (one segment each, in order) referencing the CT series."""
    return hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=_lesion_volume(lesions, ct.image, ct.frame_of_reference_uid),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(i + 1, lesion) for i, lesion in enumerate(lesions)],
        series_instance_uid=hd.UID(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name="abcir",
        software_versions=__version__,
        device_serial_number=__version__,  # software has no serial number; its version identifies the build
        content_label="TARGETS",
        content_description="RECIST target lesions",
        series_description=_series_description("ABCIR target lesions", clinically_validated),
    )


def _series_description(text: str, clinically_validated: bool) -> str:
    return text if clinically_validated else f"{text} (research, not clinically validated)"


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

    ``lesions`` are the masks of ``reported.lesions``, in the same order (segment 1, 2, ...).
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
        series_description=_series_description(f"ABCIR {reported.model} prediction",
                                               reported.clinically_validated),
    )


def _matching_lesions(reported: ReportedPrediction, lesions: Sequence[Lesion], name: str) -> list[Lesion]:
    """The lesions of the result, in its order, each checked against the volume the result reports."""
    if not reported.lesions:
        raise InputError(f"Result '{name}': no target lesions (a clinical-model prediction); there is nothing to "
                         "export as a segmentation.")
    by_id = {lesion.lesion_id: lesion for lesion in lesions}
    missing = [lesion.lesion_id for lesion in reported.lesions if lesion.lesion_id not in by_id]
    if missing:
        raise InputError(f"Lesions: {', '.join(missing)} of result '{name}' are not in the lesions given "
                         f"({', '.join(by_id) or 'none'}); give the segmentation the prediction was made from.")
    chosen = []
    for target in reported.lesions:
        lesion = by_id[target.lesion_id]
        if abs(lesion.size.volume_mm3 - target.volume_mm3) > VOLUME_TOLERANCE * max(target.volume_mm3, 1.0):
            raise InputError(f"Lesion '{target.lesion_id}': {lesion.size.volume_mm3:.1f} mm^3 here, "
                             f"{target.volume_mm3:.1f} mm^3 in result '{name}'; the segment was edited after the "
                             "prediction. Predict again, or give the segmentation it was made from.")
        chosen.append(lesion)
    return chosen


def _texts(dataset: pydicom.Dataset) -> list[str]:
    """Every text value of ``dataset`` and its sequences (names, labels, descriptions, SR text)."""
    texts = []
    for element in dataset.iterall():
        if element.VR in TEXT_VRS and element.value is not None:
            values = element.value if isinstance(element.value, MultiValue) else [element.value]
            texts += [str(value) for value in values]
    return texts


def declare_character_set(dataset: pydicom.Dataset) -> None:
    """Declare a Specific Character Set that encodes every text of ``dataset``: the CT's if it does, else UTF-8.

    highdicom copies the CT's Specific Character Set: none (ASCII) or e.g. Latin-1
    (ISO_IR 100). A non-ASCII lesion id, site or person name that it cannot encode
    would be written as invalid bytes or as '?'. Keeping the CT's set when it can
    encode everything keeps the patient and study attributes byte for byte those of
    the CT (what PACS and dicom3tools' dcentvfy compare); otherwise the object is
    declared ISO_IR 192 (UTF-8, which encodes every character) and pydicom
    re-encodes the names copied from the CT.
    """
    texts = _texts(dataset)
    if all(text.isascii() for text in texts):
        return
    declared = dataset.get("SpecificCharacterSet")
    codec = python_encoding.get(declared) if isinstance(declared, str) else None
    if codec is not None and declared not in ("", "ISO_IR 6", "ISO 2022 IR 6"):  # not the default repertoire
        try:
            for text in texts:
                text.encode(codec)
            return
        except UnicodeEncodeError:
            pass
    dataset.SpecificCharacterSet = UTF8_CHARACTER_SET


def _write_new(dataset: pydicom.Dataset, path: Path) -> None:
    """Write ``dataset`` to a file that must not exist yet, atomically (no half-written file on failure)."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "xb") as handle:
            dataset.save_as(handle, enforce_file_format=True)
        os.link(temporary, path)  # fails if the file appeared meanwhile: never overwrite
    finally:
        temporary.unlink(missing_ok=True)


def export_dicom(prediction: Prediction, ct: DicomCT, lesions: Sequence[Lesion], out_dir: str | os.PathLike,
                 result_name: str = "result") -> DicomExport:
    """Write the prediction's target lesions as DICOM SEG and the prediction as DICOM SR into ``out_dir``.

    ``lesions`` must include every lesion the prediction lists, on ``ct``'s grid. Refuses a
    prediction computed on another CT, and files that exist already.
    """
    out_dir = Path(out_dir)
    reported = ReportedPrediction.from_prediction(prediction)
    check_prediction_matches_ct(prediction, ct, result_name)
    targets = _matching_lesions(reported, lesions, result_name)
    seg_path, sr_path = out_dir / SEG_FILE_NAME, out_dir / SR_FILE_NAME
    existing = [str(p) for p in (seg_path, sr_path) if p.exists()]
    if existing:
        raise InputError(f"Output '{out_dir}': {', '.join(existing)} already exist(s); choose another folder "
                         "(files are never overwritten).")
    sources, warnings = _source_datasets(ct)
    warnings += [f"CT: {message}" for message in ct.warnings]
    if not reported.clinically_validated:
        warnings.append("the weights are not clinically validated; the SEG and SR say so and are marked "
                        "unverified. Do not use them for treatment decisions.")
    unknown_site = [lesion.lesion_id for lesion in targets if lesion.site not in SITES]
    if unknown_site:
        warnings.append(f"lesion(s) {', '.join(unknown_site)} have no site; their segments carry no anatomic region.")
    seg = build_lesion_seg(ct, targets, sources, reported.clinically_validated)
    sr = build_prediction_sr(reported, seg, ct, targets, sources)
    for dataset in (seg, sr):
        declare_character_set(dataset)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_new(seg, seg_path)
    try:
        _write_new(sr, sr_path)
    except BaseException:
        seg_path.unlink()
        raise
    for message in warnings:
        log.warning("DICOM export: %s", message)
    return DicomExport(seg_path, sr_path, tuple(warnings))


def _site_from_code(code: hd.sr.CodedConcept | None) -> str | None:
    return None if code is None else site_from_code(code.scheme_designator, code.value)


def read_lesion_seg(path: str | os.PathLike, ct: sitk.Image) -> list[SegmentMask]:
    """The segments of a DICOM SEG as binary masks on ``ct``'s grid (nearest neighbour; exact on the same grid).

    Read as ``--lesions`` reads a SEG (``dicom_lesions.read_seg``: checked against the CT's UIDs).
    """
    from .dicom_lesions import read_seg

    return [SegmentMask(segment.segment_number, segment.label, segment.site,
                        sitk.Resample(segment.mask, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
            for segment in read_seg(path, ct)]


def read_prediction_sr(path: str | os.PathLike) -> ReportedPrediction:
    """The prediction and lesion measurements of an SR written by ``export_dicom``."""
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
    return ReportedPrediction(
        model=model, abcir_version=text(codes.DCM.AlgorithmVersion)[0],
        probability=number(PROBABILITY), score=number(SCORE), risk_group=risk_group, cutoff=number(CUTOFF),
        clinically_validated=evaluations.get(VALIDATION_STATUS) == VALIDATED,
        parameters=parameters,  # type: ignore[arg-type]
        lesions=lesions,
    )
