"""A CT too thin for the LoG filters is refused before extraction, naming the lesion and what is needed.

Stock pyradiomics 3.0.1 is the reference: on the refused CT it silently drops
the LoG features (851 instead of 1130), and on the thinnest CT that is accepted
it computes all 1130. The check must agree with it on both sides of the limit.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from abcir.batch.store import FAILURES_CSV
from abcir.cli import main
from abcir.errors import InputError
from abcir.paper import N_FEATURES
from abcir.features.extract import extract_lesions
from abcir.patient.lesions import load_lesions
from abcir.resources import parameter_file

MESSAGE = (r"Lesion 'liver_1': the CT covers too few slices around it for the paper's LoG filters "
           r"\(sigma up to 3 mm\): "
           r"it has 3 slices of 1 mm \(3 mm\).* is 3 voxels along z.* at least 4: the CT must extend more than 3 mm "
           r"along z around the lesion")


def _slab(folder: Path, slice_spacing_mm: float) -> tuple[Path, Path]:
    """A 3-slice CT (0.8 mm pixels) with one lesion through all three slices, as NRRD files."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    ct = sitk.GetImageFromArray(rng.integers(-120, 180, size=(3, 40, 40)).astype(np.int16))
    ct.SetSpacing((0.8, 0.8, slice_spacing_mm))
    ct.SetOrigin((-16.0, -16.0, 40.0))
    array = np.zeros((3, 40, 40), dtype=np.uint8)
    array[:, 14:27, 12:26] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    sitk.WriteImage(ct, str(folder / "ct.nrrd"))
    sitk.WriteImage(mask, str(folder / "liver_1.nrrd"))
    return folder / "ct.nrrd", folder / "liver_1.nrrd"


def _stock_count(ct_path: Path, mask_path: Path) -> int:
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    result = RadiomicsFeatureExtractor(str(parameter_file())).execute(str(ct_path), str(mask_path))
    return sum(1 for name in result if not name.startswith("diagnostics_"))


def test_the_limit_agrees_with_stock_pyradiomics(tmp_path):
    thin = _slab(tmp_path / "thin", 1.0)  # 3 mm: LoG needs more than 3 one-millimetre voxels
    just_enough = _slab(tmp_path / "enough", 1.25)  # 3.75 mm: resampled to 4 voxels
    assert _stock_count(*thin) == N_FEATURES - 3 * 93  # stock drops the three LoG images without an error
    assert _stock_count(*just_enough) == N_FEATURES
    ct = sitk.ReadImage(str(thin[0]))
    with pytest.raises(InputError, match=MESSAGE):
        extract_lesions(ct, load_lesions([thin[1]], ct), "slab")
    ct = sitk.ReadImage(str(just_enough[0]))
    [row] = extract_lesions(ct, load_lesions([just_enough[1]], ct), "slab")
    assert row.values.shape == (N_FEATURES,) and np.isfinite(row.values).all()


def test_command_line_says_it_in_one_line_and_batch_writes_the_same(tmp_path, capsys):
    ct, lesion = _slab(tmp_path / "p1", 1.0)
    assert main(["extract", "--ct", str(ct), "--lesions", str(lesion), "--out", str(tmp_path / "f.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error and "Install pyradiomics" not in error
    assert error.startswith("abcir extract: error: Lesion 'liver_1': the CT covers too few slices")
    assert not (tmp_path / "f.csv").exists()
    (tmp_path / "cohort.csv").write_text("patient_id,ct,lesions\nP1,p1/ct.nrrd,p1/liver_1.nrrd\n", encoding="utf-8")
    assert main(["batch", "--cohort", str(tmp_path / "cohort.csv"), "--out", str(tmp_path / "batch")]) == 1
    failures = pd.read_csv(tmp_path / "batch" / FAILURES_CSV)
    assert list(failures.patient_id) == ["P1"] and list(failures.error) == ["InputError"]
    assert failures.reason[0] == error.removeprefix("abcir extract: error: ")
