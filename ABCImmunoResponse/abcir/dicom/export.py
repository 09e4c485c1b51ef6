"""Write a prediction back to PACS: the target lesions as DICOM SEG, the prediction as DICOM SR.

``seg_export`` and ``sr_export`` build the two objects; this module checks that
they may be written and writes them, never over an existing file.

Safety checks: the CT's voxel hash must equal the one recorded in the prediction
(it is never attached to another patient's CT); every lesion of the prediction
must be given, with the volume the prediction reports; a series without
StudyInstanceUID/SeriesInstanceUID cannot be referenced and is refused. Missing
patient identifiers are written empty (type 2 attributes, PS3.3 C.7.1.1) with a
warning, never invented.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pydicom
from pydicom.charset import python_encoding
from pydicom.multival import MultiValue

from ..errors import InputError
from ..imaging.ct import voxel_hash
from ..patient.lesions import Lesion
from ..prediction.result import Prediction
from ..patient.sites import SITES
from .seg_export import build_lesion_seg
from .series import DicomCT
from .sr_export import ReportedPrediction, build_prediction_sr

log = logging.getLogger(__name__)

SEG_FILE_NAME = "lesions_seg.dcm"
SR_FILE_NAME = "prediction_sr.dcm"
# A lesion whose volume differs from the result's by more than this fraction is another lesion.
VOLUME_TOLERANCE = 1e-6
# Patient and study attributes of type 2: present, possibly empty (PS3.3 C.7.1.1, C.7.2.1).
PATIENT_IDENTIFIERS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
# Unicode in UTF-8 (PS3.3 C.12.1.1.2): declared when the CT's character set cannot encode a name, lesion id or site.
UTF8_CHARACTER_SET = "ISO_IR 192"
# The value representations that hold text in a Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UC", "UT", "PN"})


@dataclass(frozen=True)
class DicomExport:
    """Where the SEG and SR were written, and what the user should know about them."""

    seg_path: Path
    sr_path: Path
    warnings: tuple[str, ...]


def check_prediction_matches_ct(prediction: Prediction, ct: DicomCT, name: str = "result") -> None:
    """Refuse a prediction that was not computed on this CT (voxel hash and, when recorded, UIDs).

    Parameters
    ----------
    prediction : Prediction
        The prediction to export; it records the SHA-256 of the CT's voxels and the CT's UIDs.
    ct : DicomCT
        The CT series read from DICOM.
    name : str
        How messages name the prediction (its result file).

    Raises
    ------
    InputError
        The prediction records no CT, its voxel hash differs from ``ct``'s, or its recorded
        StudyInstanceUID or SeriesInstanceUID differs from ``ct``'s.
    """
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

    Parameters
    ----------
    dataset : pydicom.Dataset
        The SEG or SR, changed in place: its SpecificCharacterSet is set to ISO_IR 192 when needed.
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

    Parameters
    ----------
    prediction : Prediction
        The prediction to export, made on ``ct``.
    ct : DicomCT
        The CT series the prediction was made on, read from DICOM with its UIDs.
    lesions : sequence of Lesion
        Masks on ``ct``'s grid that include every lesion the prediction lists, with the volume
        (mm^3) it reports; others are ignored.
    out_dir : str or os.PathLike
        The folder to write ``SEG_FILE_NAME`` and ``SR_FILE_NAME`` into; created if absent.
    result_name : str
        How messages name the prediction (its result file).

    Returns
    -------
    DicomExport
        The paths written and the warnings (also logged): missing patient identifiers, the CT's
        warnings, weights not clinically validated, a risk group that depends on the outline
        (``Prediction.sensitivity``), lesions without a site.

    Raises
    ------
    InputError
        The prediction was computed on another CT or has no target lesions; a lesion it lists is
        missing or was edited since; the CT lacks the UIDs a SEG must reference; or one of the
        files exists already (never overwritten).
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
    if prediction.sensitivity is not None and prediction.sensitivity.warning:
        warnings.append(f"{prediction.sensitivity.warning} The SR records the risk group as depending on the outline.")
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
