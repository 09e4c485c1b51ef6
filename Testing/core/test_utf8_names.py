"""Reader, chair, lesion and site names that are not ASCII survive every file abcir writes.

The consensus runs in a child process whose locale is plain ASCII (``LC_ALL=C``,
UTF-8 mode off, an ASCII console): any text written without an explicit UTF-8
encoding, or printed without a fallback, fails there as it does on such machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_cases import synthetic_series
from test_dicom_export import make_prediction

from abcir.dicom.export import export_dicom
from abcir.dicom.seg_export import read_lesion_seg
from abcir.dicom.series import read_dicom_ct
from abcir.dicom.sr_export import ReportedPrediction, read_prediction_sr
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd

CHAIR = "Dr Müller-Łukasiewicz"
READER_A = "Dr Ødegård"
READER_B = "王医生"
TAG = "ABCImmunoResponse.Consensus."
ASCII_LOCALE = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "ascii"}


def _abcir(*args: str) -> subprocess.CompletedProcess:
    """``abcir ARGS`` in a child process with an ASCII locale and console."""
    env = {**os.environ, **ASCII_LOCALE}
    return subprocess.run([sys.executable, "-m", "abcir.cli", *args], env=env, capture_output=True, timeout=300)


def _readers(folder: Path) -> tuple[Path, Path, Path]:
    rng = np.random.default_rng(5)
    ct = sitk.GetImageFromArray(rng.integers(-100, 200, size=(16, 40, 40)).astype(np.int16))
    ct.SetSpacing((1.0, 1.0, 2.0))
    sitk.WriteImage(ct, str(folder / "ct.nrrd"))
    z, y, x = np.indices((16, 40, 40))

    def ball(cx: float) -> sitk.Image:
        mask = sitk.GetImageFromArray(((x - cx) ** 2 + (y - 20) ** 2 + (2 * z - 16) ** 2 <= 36).astype(np.uint8))
        mask.CopyInformation(ct)
        return mask

    a = write_seg_nrrd(folder / "lecteur_A.seg.nrrd", [Segment("s1", "liver_1", ball(20), tags={SITE_TAG: "liver"})])
    b = write_seg_nrrd(folder / "lecteur_B.seg.nrrd", [Segment("s1", "liver_1", ball(21), tags={SITE_TAG: "liver"})])
    return folder / "ct.nrrd", a, b


def test_consensus_with_non_ascii_names_in_an_ascii_locale(tmp_path):
    ct, path_a, path_b = _readers(tmp_path)
    out = tmp_path / "consensus"
    run = _abcir("consensus", "--ct", str(ct), "--reader-a", str(path_a), "--reader-b", str(path_b),
                 "--reader-a-name", READER_A, "--reader-b-name", READER_B, "--out", str(out), "--chair", CHAIR,
                 "--method", "union", "--reason", "liver_1=B a vu la lésion entière")
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    assert b"\\xd8deg\\xe5rd" in run.stdout  # the ASCII console shows the name escaped instead of failing
    agreement = json.loads((out / "agreement.json").read_text(encoding="utf-8"))
    assert agreement["readers"] == {"a": READER_A, "b": READER_B}
    assert READER_B in (out / "agreement.txt").read_text(encoding="utf-8")
    log_bytes = (out / "consensus.session.json").read_bytes()
    assert CHAIR.encode("utf-8") in log_bytes  # readable UTF-8, not \u escapes
    log = json.loads(log_bytes.decode("utf-8"))
    assert (log["chair"], log["reader_a"], log["reader_b"]) == (CHAIR, READER_A, READER_B)
    assert log["decisions"][0]["reason"] == "B a vu la lésion entière"
    [segment] = read_seg_nrrd(out / "consensus.seg.nrrd")
    assert segment.tags[TAG + "DecidedBy"] == CHAIR
    assert segment.tags[TAG + "ReaderB"] == f"{READER_B}: liver_1"

    again = _abcir("consensus", "--session", str(out / "consensus.session.json"), "--out", str(tmp_path / "again"),
                   "--chair", "Dr Ñúñez", "--choose", "liver_1=a")
    assert again.returncode == 0, again.stderr.decode("utf-8", "replace")
    reopened = json.loads((tmp_path / "again" / "consensus.session.json").read_text(encoding="utf-8"))
    assert reopened["chair"] == "Dr Ñúñez" and reopened["reader_b"] == READER_B


def test_files_with_non_ascii_names_in_an_ascii_locale(tmp_path):
    """SimpleITK aborted the process (std::logic_error) on such a name; the CT's name is the patient id."""
    folder = tmp_path / "Müller Ø"
    folder.mkdir()
    ct, path_a, _ = _readers(folder)
    (folder / "Tomographie ø.nrrd").write_bytes(ct.read_bytes())
    mask = sitk.GetImageFromArray((sitk.GetArrayFromImage(read_seg_nrrd(path_a)[0].mask) > 0).astype(np.uint8))
    mask.CopyInformation(sitk.ReadImage(str(ct)))
    sitk.WriteImage(mask, str(folder / "leber_1.nrrd"))
    out = folder / "merkmale ü.csv"
    run = _abcir("extract", "--ct", str(folder / "Tomographie ø.nrrd"), "--lesions", str(folder / "leber_1.nrrd"),
                 "--out", str(out))
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("Tomographie ø,leber_1,")

    cohort = _abcir("make-cohort", "--n", "1", "--out", str(folder / "Kohorte ä"))
    assert cohort.returncode == 0, cohort.stderr.decode("utf-8", "replace")
    assert (folder / "Kohorte ä" / "ct" / "SYN0001.nrrd").is_file()


@pytest.mark.parametrize("charset, lesion_id, declared", [
    (None, "foie_lésion_1", "ISO_IR 192"),  # the CT declares none (ASCII): UTF-8 is declared
    ("ISO_IR 100", "foie_lésion_1", "ISO_IR 100"),  # Latin-1 encodes it: the CT's set, names byte for byte
    ("ISO_IR 100", "肝_1", "ISO_IR 192"),  # Latin-1 cannot: UTF-8
])
def test_dicom_export_declares_a_character_set_for_non_ascii_names(tmp_path, charset, lesion_id, declared):
    synthetic_series(tmp_path / "ct", slices=10, rows=32, columns=32)
    patient = "Müller^Jürgen" if charset else "Test^Patient"
    for path in (tmp_path / "ct").iterdir():
        dataset = pydicom.dcmread(path)
        if charset:
            dataset.SpecificCharacterSet, dataset.PatientName = charset, patient
            dataset.ReferringPhysicianName = "Ødegård^Åse"
        dataset.save_as(path)
    ct = read_dicom_ct(tmp_path / "ct")
    mask = sitk.Image(ct.image.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(ct.image)
    mask[8:15, 10:20, 2:6] = 1
    lesion = Lesion(lesion_id, "liver", mask, measure_lesion(mask))
    prediction = make_prediction(ct, [lesion])
    prediction = dataclasses.replace(prediction, weights=dataclasses.replace(
        prediction.weights, trained_on="Hôpital Saint-Éloi, 90 patients"))
    written = export_dicom(prediction, ct, [lesion], tmp_path / "out")
    for path in (written.seg_path, written.sr_path):
        dataset = pydicom.dcmread(path)
        assert dataset.SpecificCharacterSet == declared
        assert str(dataset.PatientName) == patient
        if charset:
            assert str(dataset.ReferringPhysicianName) == "Ødegård^Åse"
    assert pydicom.dcmread(written.seg_path).SegmentSequence[0].SegmentLabel == lesion_id
    [segment] = read_lesion_seg(written.seg_path, ct.image)
    assert (segment.lesion_id, segment.site) == (lesion_id, "liver")
    back = read_prediction_sr(written.sr_path)
    assert back == ReportedPrediction.from_prediction(prediction)
    assert dict(back.parameters)["trained on"] == "Hôpital Saint-Éloi, 90 patients"
    if shutil.which("dciodvfy"):
        for path in (written.seg_path, written.sr_path):
            output = subprocess.run(["dciodvfy", str(path)], capture_output=True).stderr.decode("latin-1")
            assert not [line for line in output.splitlines() if line.startswith("Error")], output


def test_a_dicom_folder_with_a_non_ascii_name_in_an_ascii_locale(tmp_path):
    """GDCM's slice reader got the name's raw bytes as lone surrogates and SimpleITK aborted the process."""
    folder = tmp_path / "Patiënt Ø" / "CT"
    folder.mkdir(parents=True)
    synthetic_series(folder)
    code = ("import sys, hashlib; from abcir.dicom.series import read_dicom_ct; import SimpleITK as sitk; "
            "print(hashlib.sha256(sitk.GetArrayFromImage(read_dicom_ct(sys.argv[1]).image).tobytes()).hexdigest())")
    run = subprocess.run([sys.executable, "-c", code, str(folder)], env={**os.environ, **ASCII_LOCALE},
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode("utf-8", "replace")
    here = sitk.GetArrayFromImage(read_dicom_ct(folder).image).tobytes()  # this process: a UTF-8 locale
    assert run.stdout.decode().split()[-1] == hashlib.sha256(here).hexdigest()
