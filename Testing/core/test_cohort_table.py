"""One cohort table for ``abcir batch`` and ``abcir train``: the same rows from both readers, the same refusals,
several lesion files per patient in both, and make-cohort's writer read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from abcir.batch.run import run_batch
from abcir.batch.store import FEATURES_PARQUET, PREDICTIONS_CSV
from abcir.cli import main
from abcir.patient.clinical_facts import ClinicalFacts
from abcir.cohort.table import CohortRow, cohort_text, read_cohort, write_cohort
from abcir.errors import InputError
from abcir.evaluation.table import read_predictions
from abcir.features.catalogue import feature_names

HEADER = "patient_id,ct,lesions,prior_lines_ge2,metastatic_sites_ge3,visceral,tnbc,response,pfs_months,pfs_event"


def _train_reader():
    """``abcir train``'s reader (torch comes with the training package)."""
    pytest.importorskip("torch", reason="abcir train needs torch (pip install 'abcir[train]')")
    from abcir.training.pipeline import read_training_cohort

    return lambda path: read_training_cohort(path, need_images=True)


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "cohort.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_batch_and_train_read_the_same_rows(tmp_path):
    elsewhere = tmp_path / "elsewhere" / "P2.nrrd"
    text = ("\ufeff" + HEADER + ", center ,split,sites,best_response,stage\n"
            # several lesion files with spaces around ';', every yes/no spelling in any case
            "P1,ct/P1.nrrd, lesions/liver_1.nrrd ; lesions/lung_1.nrrd ,YES,no,True,false,1,12.5,0,A,train,,PR,IV\n"
            f" P2 ,{elsewhere},lesions/P2.seg.nrrd,0,1,1,0,No,3.25,TRUE,B,validation,sites.csv,PD,III\n")
    path = _write(tmp_path, text)
    batch = read_cohort(path).rows  # what run_batch reads
    train = _train_reader()(path).rows
    assert batch == train
    first, second = batch
    assert first == CohortRow(
        "P1", tmp_path / "ct/P1.nrrd", (tmp_path / "lesions/liver_1.nrrd", tmp_path / "lesions/lung_1.nrrd"), None,
        ClinicalFacts(prior_lines_ge2=True, metastatic_sites_ge3=False, visceral=True, tnbc=False), True, 12.5,
        False, "A", "train", {"best_response": "PR", "stage": "IV"})
    assert second.patient_id == "P2" and second.ct == elsewhere and second.sites == tmp_path / "sites.csv"
    assert (second.response, second.pfs_months, second.pfs_event) == (False, 3.25, True)
    # Written back (1/0, relative paths, ';'), the table reads as the same rows.
    again = write_cohort(tmp_path / "again.csv", batch)
    assert read_cohort(again).rows == batch
    assert again.read_text(encoding="utf-8").splitlines()[1] == (
        "P1,A,train,ct/P1.nrrd,lesions/liver_1.nrrd;lesions/lung_1.nrrd,,1,0,1,0,1,12.5,0,PR,IV")


GOOD_ROW = "P1,ct/1.nrrd,l/1.nrrd,1,0,1,0,1,10.5,1"


@pytest.mark.parametrize(("row", "message"), [
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,maybe,0,0,4,1",
     (r"column 'visceral' must be 1 or 0 \(or yes/no, true/false\); not so in row 3 \(patient_id P2; values "
      r"'maybe'\)\. Write 1 = visceral metastasis present, 0 = absent\.")),
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,y,4,1", r"column 'response' must be 1 or 0 .*row 3 .*values 'y'.*CR/PR"),
    ("P2,ct/2.nrrd,l/2.nrrd,1.0,0,1,0,0,4,1", r"column 'prior_lines_ge2' must be 1 or 0 .*values '1\.0'"),
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,,0,4,1",
     (r"column 'tnbc' is empty in row 3 \(patient_id P2\), which fill other columns of prior_lines_ge2, "
      r"metastatic_sites_ge3, visceral, tnbc; give all four clinical facts or none\.")),
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,0,-4,1", r"column 'pfs_months' must be > 0 months; not so in row 3"),
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,0,four,1",
     r"column 'pfs_months' must hold progression-free survival in months; not a finite number in row 3"),
    ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,0,4,", r"column 'pfs_event' is empty in row 3 \(patient_id P2\).*give both"),
    ("P1,ct/2.nrrd,l/2.nrrd,1,0,1,0,0,4,1", r"patient ids occur more than once: 'P1' on rows 2 and 3; give each"),
    ("P2,ct/2.nrrd, ; ,1,0,1,0,0,4,1", r"column 'lesions' is empty in row 3 \(patient_id P2\); .*separated by ';'"),
    (",ct/2.nrrd,l/2.nrrd,1,0,1,0,0,4,1", r"column 'patient_id' is empty in row 3 \(patient_id \)"),
])
def test_a_bad_cell_is_refused_alike_by_both_in_one_line(tmp_path, row, message):
    path = _write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n{row}\n")
    refusals = []
    for reader in (read_cohort, _train_reader()):
        with pytest.raises(InputError, match=message) as error:
            reader(path)
        refusals.append(str(error.value))
    assert refusals[0] == refusals[1] and "\n" not in refusals[0]
    assert refusals[0].startswith(f"Cohort '{path}': ")


@pytest.mark.parametrize(("text", "message"), [
    ("patient_id,ct,lesions,visceral,tnbc\nP1,a,b,1,1\n",
     r"has column\(s\) visceral, tnbc but not prior_lines_ge2, metastatic_sites_ge3; give all four"),
    ("patient_id,ct,lesions,pfs_months\nP1,a,b,3\n", r"has column\(s\) pfs_months but not pfs_event; give both"),
    ("patient_id,ct,lesions,split\nP1,a,b,test\n", r"column 'split' must be 'train' or 'validation'; not so in row 2"),
])
def test_columns_that_belong_together_are_refused_by_the_contract(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        read_cohort(_write(tmp_path, text))


def test_a_table_not_in_utf8_is_refused_with_the_fix(tmp_path):
    path = _write(tmp_path, "patient_id,ct,lesions\nJosé,a,b\n", encoding="latin-1")
    with pytest.raises(InputError, match=r"not UTF-8 text .*save it as UTF-8 \(Excel: 'CSV UTF-8'\)"):
        read_cohort(path)


def test_a_table_with_a_header_but_no_patients_is_refused_by_both(tmp_path, capsys):
    """Batch wrote empty tables and said '0 of 0 patients finished'; train stopped in a pandas traceback."""
    path = _write(tmp_path, HEADER + "\n")
    for read in (read_cohort, _train_reader()):
        with pytest.raises(InputError, match=f"Cohort '{path}': a header but no patients; add one row per patient"):
            read(path)
    assert main(["batch", "--cohort", str(path), "--out", str(tmp_path / "batch")]) == 2
    assert "a header but no patients" in capsys.readouterr().err
    assert not (tmp_path / "batch").exists()


def test_train_needs_more_of_the_same_table_than_batch(tmp_path):
    """Train needs outcomes and facts in every row (and PFS and split where given); batch does not."""
    train = _train_reader()
    no_outcome = _write(tmp_path, "patient_id,ct,lesions\nP1,a,b\n")
    assert len(read_cohort(no_outcome).rows) == 1
    with pytest.raises(InputError, match=r"column\(s\) response, prior_lines_ge2, metastatic_sites_ge3, visceral, "
                                         r"tnbc missing; this command needs patient_id, response"):
        train(no_outcome)
    for row, column in (("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,,4,1", "response"),
                        ("P2,ct/2.nrrd,l/2.nrrd,,,,,0,4,1", "prior_lines_ge2"),
                        ("P2,ct/2.nrrd,l/2.nrrd,1,0,1,0,0,,", "pfs_months")):
        path = _write(tmp_path, f"{HEADER}\n{GOOD_ROW}\n{row}\n")
        assert read_cohort(path).rows[1].patient_id == "P2"
        with pytest.raises(InputError, match=rf"column '{column}' is empty in row 3 \(patient_id P2\); this "
                                             "command needs a value in every row"):
            train(path)


def _patient(folder: Path, name: str, seed: int) -> tuple[str, str]:
    """A small CT in HU and two binary mask files (lesions liver_1 and lung_1); paths relative to ``folder``."""
    rng = np.random.default_rng(seed)
    voxels = rng.normal(40, 20, (16, 40, 40))
    voxels[:, :, :3] = -1000  # air beside the body
    ct = sitk.GetImageFromArray(voxels.astype(np.int16))
    ct.SetSpacing((0.8, 0.8, 2.5))
    (folder / name).mkdir(parents=True)
    sitk.WriteImage(ct, str(folder / name / "ct.nrrd"))
    for lesion, (z, y, x) in {"liver_1": (3, 6, 6), "lung_1": (8, 22, 20)}.items():
        mask = np.zeros((16, 40, 40), np.uint8)
        mask[z:z + 5, y:y + 14, x:x + 14] = 1
        image = sitk.GetImageFromArray(mask)
        image.CopyInformation(ct)
        sitk.WriteImage(image, str(folder / name / f"{lesion}.nrrd"))
    return f"{name}/ct.nrrd", f"{name}/liver_1.nrrd; {name}/lung_1.nrrd"


def test_batch_and_train_extract_every_lesion_file_of_a_row(tmp_path):
    """Before the shared reader, train took 'a;b' as one file name; now both extract the same two lesions."""
    pytest.importorskip("torch", reason="abcir train needs torch (pip install 'abcir[train]')")
    from abcir.training.pipeline import extract_cohort, read_training_cohort, training_frame

    (ct1, lesions1), (ct2, lesions2) = _patient(tmp_path, "P1", 1), _patient(tmp_path, "P2", 2)
    path = _write(tmp_path, f"{HEADER}\nP1,{ct1},{lesions1},yes,no,yes,no,Yes,7.5,1\n"
                            f"P2,{ct2},{lesions2},no,no,yes,yes,no,2.25,0\n")
    out = tmp_path / "batch"
    run_batch(path, out)
    batch = pd.read_parquet(out / FEATURES_PARQUET)
    cohort = read_training_cohort(path, need_images=True)
    train = extract_cohort(cohort.rows, tmp_path / "train-cache")  # its own cache: computed again
    keys = ["patient_id", "lesion_id", "site"]
    assert batch[keys].values.tolist() == [["P1", "liver_1", "liver"], ["P1", "lung_1", "lung"],
                                           ["P2", "liver_1", "liver"], ["P2", "lung_1", "lung"]]
    assert train[keys].values.tolist() == batch[keys].values.tolist()
    np.testing.assert_array_equal(train[list(feature_names())].to_numpy(float),
                                  batch[list(feature_names())].to_numpy(float))
    frame = training_frame(cohort)
    assert frame[["response", "prior_lines_ge2", "tnbc", "pfs_event"]].values.tolist() == [[1, 1, 0, 1], [0, 0, 1, 0]]
    # batch writes the outcomes and facts as 1/0, whatever the cohort's spelling, so evaluate reads them
    predictions = read_predictions(out / PREDICTIONS_CSV)
    assert predictions.frame["response"].tolist() == [1.0, 0.0]
    assert predictions.frame["pfs_months"].tolist() == [7.5, 2.25]
    assert predictions.frame["visceral"].tolist() == ["1", "1"]


def test_written_rows_read_back_equal(tmp_path):
    rows = [CohortRow("P 1", tmp_path / "a b" / "ct.nrrd", (tmp_path / "l1.nrrd", tmp_path / "sub" / "l2.nrrd"),
                      pfs_months=1 / 3, pfs_event=True, variables={"note": "two, words"}),
            CohortRow("P2", tmp_path / "ct2.nrrd", (tmp_path / "l3.nrrd",), center="Zürich", variables={"note": ""})]
    path = write_cohort(tmp_path / "cohort.csv", rows)
    assert read_cohort(path).rows == tuple(rows)
    assert cohort_text(rows, tmp_path).splitlines()[0] == "patient_id,center,ct,lesions,pfs_months,pfs_event,note"
