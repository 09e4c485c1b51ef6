"""DICOM out: the target lesions as SEG and the prediction as SR, valid, in the CT's study, and read back unchanged."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom import config
from pydicom.valuerep import validate_value

from abcir.cli import main
from abcir.patient.clinical_facts import ClinicalFacts
from abcir.dicom.export import export_dicom
from abcir.dicom.seg_export import read_lesion_seg
from abcir.dicom.series import read_dicom_ct
from abcir.dicom.sr_export import (
    NOT_VALIDATED,
    OUTLINE_STABILITY,
    UNSTABLE,
    ReportedPrediction,
    ReportedSensitivity,
    read_prediction_sr,
)
from abcir.errors import InputError
from abcir.imaging.ct import voxel_hash
from abcir.patient.lesions import load_lesions
from abcir.prediction.result import CTIdentity, LesionSummary, Prediction, WeightsInfo
from dicom_cases import copy_series, synthetic_series

ORGANS = {7: "other", 8: "adrenal"}  # pancreas and right adrenal stand in for target lesions
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"


def make_prediction(dicom, lesions, **changes) -> Prediction:
    weights = WeightsInfo(name="tiny-synthetic", kind="combined", sha256="5" * 64, manifest_sha256="6" * 64,
                          path="/somewhere/weights", trained_on="90 synthetic patients (tiny test set)",
                          source="synthetic", n_train=90, n_responders=36, clinically_validated=False,
                          cutoff_method="maximally selected log-rank statistic", created="2026-01-01T00:00:00Z")
    prediction = Prediction(
        model="combined", probability=0.3141592653589793, score=-0.6264, risk_group="high", cutoff=-0.086,
        weights=weights, clinical=ClinicalFacts(True, False, True, True),
        lesions=tuple(LesionSummary.from_lesion(lesion) for lesion in lesions), recist=(), warnings=(),
        ct=CTIdentity(voxel_hash(dicom.image), dicom.study_instance_uid, dicom.series_instance_uid),
        distribution=None, aggregation="volume_weighted_mean")
    return dataclasses.replace(prediction, **changes)


@pytest.fixture(scope="module")
def real_case(shared_data, tmp_path_factory):
    """A copy of the real series with the UIDs the anonymiser removed, and two organs as target lesions."""
    folder = tmp_path_factory.mktemp("real")
    copy_series(shared_data / "ct_dicom_example" / "dicom", folder / "ct", restore_uids=True)
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    label_map = folder / "organs.nrrd"
    sitk.WriteImage(sitk.Mask(labels, sitk.Or(labels == 7, labels == 8)), str(label_map))
    sites = folder / "sites.csv"
    sites.write_text("label,site\n" + "".join(f"{label},{site}\n" for label, site in ORGANS.items()))
    ct = read_dicom_ct(folder / "ct")
    lesions = load_lesions([label_map], ct.image, sites)
    return folder, ct, lesions, label_map, sites


@pytest.fixture(scope="module")
def real_export(real_case, tmp_path_factory):
    folder, ct, lesions, _, _ = real_case
    prediction = make_prediction(ct, lesions)
    written = export_dicom(prediction, ct, lesions, tmp_path_factory.mktemp("out"))
    return prediction, written


def test_seg_gives_back_the_lesions_voxel_for_voxel(real_case, real_export):
    _, ct, lesions, _, _ = real_case
    segments = read_lesion_seg(real_export[1].seg_path, ct.image)
    assert [(s.segment_number, s.lesion_id, s.site) for s in segments] == [(1, "7", "other"), (2, "8", "adrenal")]
    for segment, lesion in zip(segments, lesions, strict=True):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(segment.mask), sitk.GetArrayViewFromImage(lesion.mask))
        assert segment.mask.GetOrigin() == ct.image.GetOrigin()


def test_seg_is_in_the_ct_study_and_labels_sites_with_snomed(real_case, real_export):
    _, ct, _, _, _ = real_case
    seg = pydicom.dcmread(real_export[1].seg_path)
    assert seg.SOPClassUID == SEG_STORAGE and seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct.study_instance_uid and seg.FrameOfReferenceUID == ct.frame_of_reference_uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.series_instance_uid
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced <= set(ct.sop_instance_uids)
    adrenal = seg.SegmentSequence[1]
    assert adrenal.SegmentLabel == "8"
    assert adrenal.AnatomicRegionSequence[0].CodeValue == "23451007"  # SNOMED CT: adrenal gland
    assert adrenal.SegmentedPropertyTypeCodeSequence[0].CodeValue == "108369006"  # neoplasm
    assert "not clinically validated" in seg.SeriesDescription
    assert seg.PatientID == "" and seg.PatientName == ""  # the CT has none: empty, never invented


def test_sr_gives_back_the_numbers_and_references_seg_and_ct(real_case, real_export):
    _, ct, _, _, _ = real_case
    prediction, written = real_export
    expected = ReportedPrediction.from_prediction(prediction)
    assert read_prediction_sr(written.sr_path) == expected  # floats bit for bit
    assert dict(expected.parameters)["CT voxel sha256"] == voxel_hash(ct.image)
    assert dict(expected.parameters)["weights sha256"] == "5" * 64
    assert dict(expected.parameters)["clinical facts"].startswith("lines=")
    sr = pydicom.dcmread(written.sr_path)
    seg = pydicom.dcmread(written.seg_path)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR and sr.StudyInstanceUID == ct.study_instance_uid
    assert sr.VerificationFlag == "UNVERIFIED" and "not clinically validated" in sr.SeriesDescription
    evidence = {item.SeriesInstanceUID: {ref.ReferencedSOPInstanceUID for ref in item.ReferencedSOPSequence}
                for study in sr.CurrentRequestedProcedureEvidenceSequence
                for item in study.ReferencedSeriesSequence}
    assert evidence[seg.SeriesInstanceUID] == {seg.SOPInstanceUID}
    assert evidence[ct.series_instance_uid] == set(ct.sop_instance_uids)
    report = hd.sr.srread(written.sr_path).content
    groups = report.get_volumetric_roi_measurement_groups()
    assert [g.referenced_segment.referenced_segment_numbers for g in groups] == [[1], [2]]
    assert {g.referenced_segment.referenced_sop_instance_uid for g in groups} == {seg.SOPInstanceUID}
    [status] = [e for g in report.get_image_measurement_groups() for e in g.get_qualitative_evaluations()
                if e.name.meaning == "Clinical validation status"]
    assert status.value == NOT_VALIDATED


def _strict_check(path) -> pydicom.Dataset:
    """Re-read with pydicom's strict value checks and validate every element's value against its VR."""
    with config.strict_reading():
        dataset = pydicom.dcmread(path)
        for element in dataset.iterall():
            if element.VR not in ("SQ", "OB", "OW", "UN"):
                values = element.value if element.VM > 1 else [element.value]
                for value in values:  # numbers and names as the strings that were written
                    validate_value(element.VR, getattr(value, "original_string", value), config.RAISE)
    return dataset


def test_files_pass_pydicom_and_highdicom_checks(real_export):
    written = real_export[1]
    seg = _strict_check(written.seg_path)
    sr = _strict_check(written.sr_path)
    for dataset in (seg, sr):
        for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
                        "SeriesNumber", "InstanceNumber", "ContentDate", "ContentTime"):
            assert str(dataset.get(keyword, "")).strip(), keyword
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                        "ReferringPhysicianName", "StudyID", "AccessionNumber"):
            assert keyword in dataset, keyword  # type 2: present even when empty
        assert dataset.file_meta.MediaStorageSOPInstanceUID == dataset.SOPInstanceUID
    assert hd.seg.segread(written.seg_path).number_of_segments == 2
    assert len(hd.sr.srread(written.sr_path).content.get_image_measurement_groups()) == 1


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy not installed (Debian/Ubuntu: apt-get install dicom3tools)")
def test_dciodvfy_finds_no_errors(real_case, real_export):
    written = real_export[1]
    for path in (written.seg_path, written.sr_path):
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
        output = run.stdout + run.stderr
        assert ("Segmentation" if path == written.seg_path else "Comprehensive3DSR") in output  # IOD recognised
        assert not [line for line in output.splitlines() if line.startswith("Error")], output
    # Patient and study attributes agree across the CT, SEG and SR (dicom3tools' entity check).
    ct_files = [str(p) for p in real_case[1].files]
    run = subprocess.run(["dcentvfy", *ct_files, str(written.seg_path), str(written.sr_path)],
                         capture_output=True, text=True, timeout=120)
    assert not [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def test_missing_patient_identifiers_are_warned_about(real_export):
    assert any("no PatientName, PatientID, PatientBirthDate, PatientSex" in w for w in real_export[1].warnings)


def test_a_prediction_of_another_ct_is_refused(real_case, tmp_path):
    _, ct, lesions, _, _ = real_case
    other = make_prediction(ct, lesions, ct=CTIdentity("0" * 64))
    with pytest.raises(InputError, match=r"computed on another CT .* wrong images or patient"):
        export_dicom(other, ct, lesions, tmp_path / "out")
    wrong_series = make_prediction(ct, lesions, ct=CTIdentity(voxel_hash(ct.image), ct.study_instance_uid, "1.2.3"))
    with pytest.raises(InputError, match="SeriesInstanceUID 1.2.3 differs"):
        export_dicom(wrong_series, ct, lesions, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lesions_that_are_not_the_predictions_are_refused(real_case, tmp_path):
    _, ct, lesions, _, _ = real_case
    prediction = make_prediction(ct, lesions)
    with pytest.raises(InputError, match=r"Lesions: 8 of result 'result' are not in the lesions given \(7\)"):
        export_dicom(prediction, ct, lesions[:1], tmp_path / "out")
    edited = dataclasses.replace(prediction, lesions=(
        dataclasses.replace(prediction.lesions[0], volume_mm3=prediction.lesions[0].volume_mm3 + 50),
        prediction.lesions[1]))
    with pytest.raises(InputError, match="Lesion '7': .* the segment was edited after the prediction"):
        export_dicom(edited, ct, lesions, tmp_path / "out")


def test_series_without_uids_is_refused(shared_data, real_case, tmp_path):
    _, _, lesions, _, _ = real_case
    anonymised = read_dicom_ct(shared_data / "ct_dicom_example" / "dicom")  # the UIDs removed
    prediction = make_prediction(anonymised, lesions)
    with pytest.raises(InputError, match="no StudyInstanceUID/SeriesInstanceUID .* cannot join its study"):
        export_dicom(prediction, anonymised, lesions, tmp_path / "out")


def test_command_line_writes_once_and_never_overwrites(shared_data, real_case, tmp_path, capsys):
    folder, ct, lesions, label_map, sites = real_case
    result = tmp_path / "result.json"
    result.write_text(json.dumps(make_prediction(ct, lesions).to_dict()))
    args = ["export-dicom", "--result", str(result), "--ct", str(folder / "ct"), "--lesions", str(label_map),
            "--sites", str(sites), "--out", str(tmp_path / "dicom")]
    assert main(args) == 0
    assert "2 segments) written to" in capsys.readouterr().out
    seg_bytes = (tmp_path / "dicom" / "lesions_seg.dcm").read_bytes()
    assert main(args) == 2
    assert "already exist" in capsys.readouterr().err
    assert (tmp_path / "dicom" / "lesions_seg.dcm").read_bytes() == seg_bytes
    elsewhere = args[:4] + [str(shared_data / "ct_dicom_example" / "dicom")] + args[5:-1] + [str(tmp_path / "d2")]
    assert main(elsewhere) == 2
    assert "made on series" in capsys.readouterr().err and not (tmp_path / "d2").exists()


def test_tilted_series_round_trip_and_no_risk_group(tmp_path):
    synthetic_series(tmp_path / "ct", in_plane_shift_mm=(0.0, 0.35, 0.0), slices=10, rows=32, columns=32)
    ct = read_dicom_ct(tmp_path / "ct")
    assert ct.gantry_tilt_degrees > 0
    array = np.zeros(sitk.GetArrayViewFromImage(ct.image).shape, dtype=np.uint8)
    array[2:6, 10:20, 8:15] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct.image)
    path = tmp_path / "lesion.nrrd"
    sitk.WriteImage(mask, str(path))
    (tmp_path / "sites.csv").write_text("label,site\n1,liver\n")
    lesions = load_lesions([path], ct.image, tmp_path / "sites.csv")
    prediction = make_prediction(ct, lesions, risk_group=None, cutoff=None)
    written = export_dicom(prediction, ct, lesions, tmp_path / "out")
    [segment] = read_lesion_seg(written.seg_path, ct.image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(segment.mask), array)
    assert (segment.lesion_id, segment.site) == ("lesion", "liver")  # one mask file: named after it
    back = read_prediction_sr(written.sr_path)
    assert back == ReportedPrediction.from_prediction(prediction) and back.risk_group is None
    seg = pydicom.dcmread(written.seg_path)
    assert seg.PatientID == "ABC-001"  # identifiers are copied from the CT when it has them
    assert not any("PatientID" in w for w in written.warnings)
    if shutil.which("dciodvfy"):
        for path in (written.seg_path, written.sr_path):
            output = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True).stderr
            assert not [line for line in output.splitlines() if line.startswith("Error")], output


def test_export_logs_warnings(real_case, tmp_path, caplog):
    _, ct, lesions, _, _ = real_case
    with caplog.at_level(logging.WARNING):
        export_dicom(make_prediction(ct, lesions), ct, lesions, tmp_path / "out")
    assert "not clinically validated" in caplog.text


@pytest.fixture(scope="module")
def sensitivity_export(real_case, tmp_path_factory):
    """The prediction with an outline-sensitivity analysis whose risk group flips (1 of 4 changes, 25 %)."""
    from abcir.sensitivity.analysis import summarise
    from abcir.sensitivity.perturbations import PerturbationSet
    from abcir.sensitivity.result import PerturbedPrediction

    folder, ct, lesions, _, _ = real_case
    base = make_prediction(ct, lesions)
    perturbed = []
    for lesion_id, name, probability in (("7", "erode_1mm", 0.29), ("7", "dilate_1mm", 0.52),
                                         ("8", "erode_1mm", 0.30), ("8", "dilate_1mm", 0.31)):
        score = float(np.log(probability / (1 - probability)))
        perturbed.append(PerturbedPrediction(lesion_id, name, 1000.0, probability, score,
                                             "high" if score <= base.cutoff else "low"))
    result = summarise(base, perturbed, ["7", "8"], PerturbationSet("erode-dilate", randomisations=0), seed=5)
    prediction = dataclasses.replace(base, sensitivity=result)
    return prediction, export_dicom(prediction, ct, lesions, tmp_path_factory.mktemp("sensitivity"))


def test_sr_carries_the_outline_sensitivity_and_reads_it_back(sensitivity_export):
    prediction, written = sensitivity_export
    reported = read_prediction_sr(written.sr_path)
    assert reported == ReportedPrediction.from_prediction(prediction)
    assert reported.sensitivity == ReportedSensitivity(0.29, 0.52, stable=False)
    parameters = dict(reported.parameters)
    assert parameters["outline sensitivity"] == prediction.sensitivity.summary
    assert parameters["outline perturbations"] == "erode-dilate, seed 5"
    assert "lesion '7'" in parameters["outline sensitivity warning"]
    [evaluation] = [e for g in hd.sr.srread(written.sr_path).content.get_image_measurement_groups()
                    for e in g.get_qualitative_evaluations() if e.name == OUTLINE_STABILITY]
    assert evaluation.value == UNSTABLE and evaluation.value.scheme_designator == "99ABCIR"
    assert any("The risk group depends on the outlines" in warning for warning in written.warnings)
    _strict_check(written.sr_path)


def test_sr_without_sensitivity_has_no_sensitivity_items(real_export):
    reported = read_prediction_sr(real_export[1].sr_path)
    assert reported.sensitivity is None and "outline sensitivity" not in dict(reported.parameters)


@pytest.mark.skipif(shutil.which("dciodvfy") is None,
                    reason="dciodvfy not installed (Debian/Ubuntu: apt-get install dicom3tools)")
def test_dciodvfy_finds_no_errors_in_the_sr_with_sensitivity(sensitivity_export):
    path = sensitivity_export[1].sr_path
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    output = run.stdout + run.stderr
    assert "Comprehensive3DSR" in output
    assert not [line for line in output.splitlines() if line.startswith("Error")], output


def test_command_line_carries_the_sensitivity_from_the_result_json_to_the_sr(real_case, sensitivity_export,
                                                                            tmp_path, capsys):
    folder, _, _, label_map, sites = real_case
    prediction = sensitivity_export[0]
    result = tmp_path / "result.json"
    result.write_text(json.dumps(prediction.to_dict()))
    assert main(["export-dicom", "--result", str(result), "--ct", str(folder / "ct"), "--lesions", str(label_map),
                 "--sites", str(sites), "--out", str(tmp_path / "dicom")]) == 0
    capsys.readouterr()
    assert read_prediction_sr(tmp_path / "dicom" / "prediction_sr.dcm") == ReportedPrediction.from_prediction(prediction)
