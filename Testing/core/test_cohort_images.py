"""A small generated cohort in the default run: files Slicer and abcir read, CT-like HU, RECIST targets,
the same bytes from the same seed, completion of an interrupted run, and refusals."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from abcir.cli import main
from abcir.patient.clinical_facts import CLINICAL_ENCODING
from abcir.cohort import anatomy, patients, phantom_plan, rendering
from abcir.cohort.generator import (
    MANIFEST_NAME,
    SYNTHETIC_FIELD,
    TABLE_COLUMNS,
    make_cohort,
    make_example_patient,
    patient_rng,
)
from abcir.cohort.scanner import SCANNERS
from abcir.cohort.table import cohort_text, read_cohort
from abcir.errors import InputError
from abcir.imaging.ct import file_sha256, read_ct
from abcir.patient.lesions import load_lesions
from abcir.patient.recist import MAX_TARGETS_PER_SITE, validate_targets
from abcir.imaging.segfile import SITE_TAG, read_seg_nrrd
from abcir.patient.sites import SITES

N, SEED = 6, 11


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cohort") / "generated"
    make_cohort(folder, N, SEED)
    return folder


def _rows(folder: Path) -> list[dict]:
    with open(folder / "cohort.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_table_matches_the_clinical_draw(cohort):
    rows = _rows(cohort)
    assert list(rows[0]) == list(TABLE_COLUMNS)
    for row, patient in zip(rows, patients.draw_clinical_cohort(N, SEED), strict=True):
        assert row["patient_id"] == patient.patient_id and row["center"] == patient.center
        assert [int(row[name]) for name in CLINICAL_ENCODING] == list(patient.clinical.vector().astype(int))
        assert int(row["response"]) == patient.response and int(row["pfs_event"]) == patient.pfs_event
        assert float(row["pfs_months"]) == pytest.approx(patient.pfs_months, abs=0.006)
        assert (cohort / row["ct"]).is_file() and (cohort / row["lesions"]).is_file()


def test_the_table_round_trips_through_the_cohort_reader(cohort):
    """What make-cohort writes, batch and train read back as the drawn patients, and write back unchanged."""
    table = read_cohort(cohort / "cohort.csv")
    for row, patient in zip(table.rows, patients.draw_clinical_cohort(N, SEED), strict=True):
        assert row.patient_id == patient.patient_id and row.clinical == patient.clinical
        assert (row.response, row.pfs_event) == (patient.response, patient.pfs_event)
        assert row.pfs_months == round(patient.pfs_months, 2) and (row.center, row.split) == (patient.center,
                                                                                               patient.split)
        assert row.ct == cohort / "ct" / f"{patient.patient_id}.nrrd"
        assert row.lesions == (cohort / "lesions" / f"{patient.patient_id}.seg.nrrd",)
        assert row.variables["best_response"] == patient.best_response
    assert cohort_text(table.rows, cohort) == (cohort / "cohort.csv").read_text(encoding="utf-8")


def test_every_patient_loads_with_valid_recist_targets(cohort):
    for row in _rows(cohort):
        ct = read_ct(cohort / row["ct"])  # checks 3D, HU range
        lesions = load_lesions([cohort / row["lesions"]], ct)
        assert validate_targets(lesions) == []  # no errors, no warnings: sites known, all measurable
        assert 1 <= len(lesions) <= 5 and len(lesions) == int(row["n_lesions"])
        sites = [lesion.site for lesion in lesions]
        assert max(sites.count(site) for site in sites) <= MAX_TARGETS_PER_SITE
        assert set(sites) <= set(row["metastatic_sites"].split(";"))
        # Visceral target lesions exactly when the patient has visceral metastases (they are chosen first).
        assert any(lesion.visceral for lesion in lesions) == bool(int(row["visceral"]))
        for lesion in lesions:
            assert lesion.lesion_id.rstrip("0123456789").rstrip("_") == lesion.site
            assert 10.0 <= lesion.longest_axial_diameter_mm <= 80.0


def test_segments_carry_the_site_tag_and_the_ct_is_marked_synthetic(cohort):
    row = _rows(cohort)[0]
    for segment in read_seg_nrrd(cohort / row["lesions"]):
        assert segment.tags[SITE_TAG] in SITES and segment.name.startswith(segment.tags[SITE_TAG])
    import SimpleITK as sitk

    image = sitk.ReadImage(str(cohort / row["ct"]))
    assert image.GetPixelID() == sitk.sitkInt16
    assert "not patient data" in image.GetMetaData(SYNTHETIC_FIELD)
    assert np.allclose(image.GetDirection(), np.eye(3).ravel())


def test_spacing_follows_the_centres_scanner(cohort):
    for row in _rows(cohort):
        ct = read_ct(cohort / row["ct"])
        scanner = SCANNERS[row["center"]]
        sx, sy, sz = ct.GetSpacing()
        assert sx == sy and scanner.in_plane_mm[0] <= sx <= scanner.in_plane_mm[1]
        assert 0.6 <= sx <= 0.98 and sz in scanner.slice_mm
        assert all(size <= limit for size, limit in zip(ct.GetSize(), phantom_plan.FOV_MAX_VOXELS))


@pytest.fixture(scope="module")
def rendered() -> rendering.PhantomCT:
    patient = patients.draw_clinical_cohort(N, SEED)[0]
    rng = patient_rng(SEED, 0)
    return rendering.render(phantom_plan.plan_phantom(patient, rng), rng)


@pytest.mark.parametrize("tissue, expected, tolerance", [
    ("fat", anatomy.HU_FAT, 15.0), ("muscle", anatomy.HU_MUSCLE, 15.0), ("lung", anatomy.HU_LUNG, 25.0),
    ("liver", anatomy.HU_LIVER, 15.0),
])
def test_tissues_have_ct_numbers(rendered, tissue, expected, tolerance):
    inside = ndimage.binary_erosion(rendered.tissue == anatomy.TISSUE_LABELS[tissue], iterations=3)
    if inside.sum() < 200:
        pytest.skip(f"this patient's field of view shows little {tissue}")
    assert abs(float(rendered.hu[inside].mean()) - expected) < tolerance


def test_noise_is_as_drawn_for_the_scan(rendered):
    inside = ndimage.binary_erosion(rendered.tissue == anatomy.TISSUE_LABELS["fat"], iterations=3)
    measured = float(rendered.hu[inside].std())
    noise = rendered.plan.acquisition.noise_hu
    assert noise * 0.9 < measured < np.hypot(noise, 8.0) * 1.3  # noise plus fat's own texture (8 HU)


def test_same_seed_gives_the_same_files(cohort, tmp_path):
    again = tmp_path / "again"
    make_cohort(again, N, SEED, jobs=2)
    for row in _rows(cohort):
        assert file_sha256(again / row["ct"]) == file_sha256(cohort / row["ct"])
        assert file_sha256(again / row["lesions"]) == file_sha256(cohort / row["lesions"])
    assert (again / "cohort.csv").read_bytes() == (cohort / "cohort.csv").read_bytes()
    assert (again / "hidden_phenotype.csv").read_bytes() == (cohort / "hidden_phenotype.csv").read_bytes()


def test_an_interrupted_cohort_is_completed(cohort, tmp_path):
    folder = tmp_path / "interrupted"
    shutil.copytree(cohort, folder)
    row = _rows(cohort)[2]
    (folder / row["ct"]).unlink()
    (folder / "cohort.csv").unlink()
    summary = make_cohort(folder, N, SEED)
    assert summary.n_generated == 1
    assert file_sha256(folder / row["ct"]) == file_sha256(cohort / row["ct"])
    assert (folder / "cohort.csv").read_bytes() == (cohort / "cohort.csv").read_bytes()


def test_refuses_a_folder_that_is_not_this_cohort(cohort, tmp_path):
    with pytest.raises(InputError, match="another generated cohort"):
        make_cohort(cohort, N, SEED + 1)
    with pytest.raises(InputError, match="another generated cohort"):
        make_cohort(cohort, N + 1, SEED)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=f"no {MANIFEST_NAME}"):
        make_cohort(foreign, 2, SEED)
    assert sorted(path.name for path in foreign.iterdir()) == ["notes.txt"]
    with pytest.raises(InputError, match="at least one patient"):
        make_cohort(tmp_path / "empty", 0, SEED)


def test_example_patient_has_three_targets_and_is_never_overwritten(tmp_path):
    example = make_example_patient(tmp_path)
    ct = read_ct(example.ct)
    lesions = load_lesions([example.lesions], ct)
    assert [lesion.lesion_id for lesion in lesions] == ["liver_1", "lung_1", "lymph_node_1"]
    assert validate_targets(lesions) == []
    assert example.clinical.visceral and example.clinical.metastatic_sites_ge3
    with pytest.raises(InputError, match="already exists"):
        make_example_patient(tmp_path)


def test_command_line(tmp_path, capsys):
    assert main(["make-cohort", "--n", "1", "--out", str(tmp_path / "one"), "--seed", "3"]) == 0
    assert "not patient data" in capsys.readouterr().out
    assert len(_rows(tmp_path / "one")) == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    assert main(["make-cohort", "--n", "1", "--out", str(tmp_path / "busy")]) == 2
    assert "not a generated cohort" in capsys.readouterr().err
