"""Default patient ids: a DICOM series' PatientID, a file's name without its image extension; no id twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from dicom_cases import synthetic_series

from abcir.cli import main
from abcir.cohort.table import BATCH_COLUMNS, TRAIN_COLUMNS, TRAIN_COLUMNS_IF_PRESENT, read_cohort
from abcir.errors import InputError
from abcir.imaging.ct import file_stem, read_ct
from abcir.patient.ids import default_patient_id

TCIA_FOLDER = "1.000000-P4P113S303I10349 Gated 40.0B-29543"  # a TCIA series folder: digits and a dot first


def _lesion_on(ct_path: Path, out: Path) -> Path:
    ct = read_ct(ct_path)
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    array[2:7, 8:18, 6:16] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    sitk.WriteImage(mask, str(out))
    return out


def test_a_tcia_series_folder_gives_the_series_patient_id(tmp_path):
    folder = tmp_path / "P4P113" / TCIA_FOLDER
    synthetic_series(folder, slices=10, rows=24, columns=24, patient_id="P4P113S303")
    lesion = _lesion_on(folder, tmp_path / "liver_1.nrrd")
    assert main(["extract", "--ct", str(folder), "--lesions", str(lesion), "--out", str(tmp_path / "f.csv")]) == 0
    features = pd.read_csv(tmp_path / "f.csv", dtype={"patient_id": str})
    assert list(features.patient_id) == ["P4P113S303"]  # not "1", the folder name cut at its first dot


def test_series_of_two_patients_in_lookalike_folders_get_two_ids(tmp_path):
    first, second = tmp_path / "1.000000-A Gated 40.0B-1", tmp_path / "1.000000-B Gated 40.0B-2"
    synthetic_series(first, slices=4, patient_id="TCGA-01")
    synthetic_series(second, slices=4, patient_id="")  # PatientID removed by an anonymiser
    assert default_patient_id(first, read_ct(first)) == "TCGA-01"
    assert default_patient_id(second, read_ct(second)) == "1.000000-B Gated 40.0B-2"  # the whole folder name


@pytest.mark.parametrize("name, stem", [
    ("1.000000-P4P113 Gated 40.0B.nii.gz", "1.000000-P4P113 Gated 40.0B"),
    ("patient.2.NII", "patient.2"),
    ("P7.seg.nrrd", "P7"),
    ("P7.nrrd", "P7"),
    ("case.01.mha", "case.01"),
    ("case.01.mhd", "case.01"),
])
def test_files_lose_only_their_image_extension(tmp_path, name, stem):
    assert file_stem(tmp_path / name) == stem


def test_a_name_read_under_an_ascii_locale_is_decoded_as_utf8():
    """Python keeps the bytes of 'Müller.nrrd' as lone surrogates there, which no UTF-8 table can hold."""
    assert file_stem("/data/M\udcc3\udcbcller.nii.gz") == "Müller"


@pytest.mark.parametrize("given", ["", "   "])
def test_a_blank_patient_id_is_refused(tmp_path, capsys, given):
    """An empty one fell back to the file name without a word; spaces became the id of every row."""
    out = tmp_path / "f.csv"
    assert main(["extract", "--ct", str(tmp_path / "ct.nrrd"), "--lesions", str(tmp_path / "l.nrrd"),
                 "--out", str(out), "--patient-id", given]) == 2
    assert f"--patient-id '{given}' is blank; give the patient's id" in capsys.readouterr().err
    assert not out.exists()


def test_an_image_file_is_named_by_its_file_stem(tmp_path):
    folder = tmp_path / TCIA_FOLDER
    synthetic_series(folder, slices=4)
    path = tmp_path / "1.000000-P4P113 Gated 40.0B.nii.gz"
    sitk.WriteImage(read_ct(folder), str(path))
    assert default_patient_id(path, read_ct(path)) == "1.000000-P4P113 Gated 40.0B"


def _cohort(tmp_path: Path, ids: list[str]) -> Path:
    rows = [{"patient_id": pid, "ct": f"ct{i}.nrrd", "lesions": f"l{i}.seg.nrrd", "response": i % 2,
             "prior_lines_ge2": 0, "metastatic_sites_ge3": 1, "visceral": 1, "tnbc": 0} for i, pid in enumerate(ids)]
    path = tmp_path / "cohort.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("reader", [
    lambda path: read_cohort(path, BATCH_COLUMNS),
    lambda path: read_cohort(path, (*TRAIN_COLUMNS, "ct", "lesions"), TRAIN_COLUMNS_IF_PRESENT),
], ids=["batch", "train"])
def test_batch_and_train_refuse_one_id_on_two_rows(tmp_path, reader):
    path = _cohort(tmp_path, ["1", "P2", "P3", " P2", "1"])  # ' P2' is P2 once the cell is trimmed
    with pytest.raises(InputError, match=r"patient ids occur more than once: '1' on rows 2 and 6; 'P2' on rows 3 "
                                         r"and 5; give each patient one row"):
        reader(path)
    reader(_cohort(tmp_path, ["1", "P2", "P3"]))  # distinct ids pass
