"""abcir's extraction engine returns stock pyradiomics' 1130 values bit for bit, where margins are tightest.

The reference is a fresh ``RadiomicsFeatureExtractor(parameter_file).execute(ct, mask)``
with the mask on the CT grid. Cases: real CT organs touching the volume's
border (the crop meets the border) or close to it; synthetic lesions in corners,
on faces, one voxel thick, in a float CT and in an oblique CT (the general,
non-separable resampling path); in-process and in worker processes.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import radiomics
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from abcir.features import extract, parallel
from abcir.errors import InputError
from abcir.features.extract import extract_lesions
from abcir.features.preparation import fast_path_blocker
from abcir.features.catalogue import feature_names
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.features.parallel import single_threaded_blas
from abcir.resources import parameter_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic_ct import FULL_SIZE, add_lesion, radius_for_voxels, synthetic_ct  # noqa: E402

# Organs of the real CT (20 slices): pancreas touches the bottom slice, humerus lies 14 voxels from x = 0
# (inside the resampling margin), a rib touches the top slice, another rib has only 123 voxels.
REAL_ORGANS = (7, 70, 97, 103)
MEDIUM_SIZE = (150, 140, 56)
SPACING = (0.7, 0.7, 1.25)


@pytest.fixture(scope="module")
def stock() -> RadiomicsFeatureExtractor:
    radiomics.setVerbosity(logging.ERROR)
    return RadiomicsFeatureExtractor(str(parameter_file()))


def stock_values(extractor: RadiomicsFeatureExtractor, ct: sitk.Image, mask: sitk.Image) -> np.ndarray:
    """Stock values, with BLAS on one thread as the engine runs it. On some CPUs threaded BLAS changes the last
    bit of eigenvalue-based features (wavelet-LLL_glcm_MCC of organ 70 on an AMD EPYC); on a busy two-core
    machine it also makes pyradiomics' eigenvalues many times slower."""
    with single_threaded_blas():
        result = extractor.execute(ct, mask)
    return np.array([float(result[name]) for name in feature_names()])


def lesion(name: str, mask: sitk.Image) -> Lesion:
    return Lesion(name, None, mask, measure_lesion(mask))


def assert_same_as_stock(extractor: RadiomicsFeatureExtractor, ct: sitk.Image, lesions: list[Lesion],
                         jobs: int = 1) -> None:
    rows = extract_lesions(ct, lesions, "P", jobs=jobs)
    for row in rows:
        expected = stock_values(extractor, ct, row.lesion.mask)
        different = [feature_names()[i] for i in np.flatnonzero(
            ~((row.values == expected) | (np.isnan(row.values) & np.isnan(expected))))]
        assert not different, f"lesion {row.lesion.lesion_id}: {len(different)} values differ, e.g. {different[:3]}"


@pytest.fixture(scope="module")
def real_ct(shared_data):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(shared_data / "ct_dicom_example" / "dicom")))
    ct = reader.Execute()
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    masks = [lesion(str(label), sitk.Resample(sitk.Cast(labels == label, sitk.sitkUInt8), ct, sitk.Transform(),
                                              sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8))
             for label in REAL_ORGANS]
    return ct, masks


def test_real_ct_organs_at_the_border(stock, real_ct):
    ct, masks = real_ct
    assert_same_as_stock(stock, ct, masks)


def test_real_ct_in_worker_processes(stock, real_ct):
    ct, masks = real_ct
    assert_same_as_stock(stock, ct, masks[:2], jobs=2)


def medium_case(pixel_type: int = sitk.sitkInt16, direction: tuple[float, ...] | None = None):
    ct = synthetic_ct(MEDIUM_SIZE, SPACING, seed=5, direction=direction, pixel_type=pixel_type)
    nx, ny, nz = MEDIUM_SIZE
    placed = []
    for name, center, radius in (("corner", (3, 2, 1), 7.0), ("far_corner", (nx - 2, ny - 3, nz - 2), 6.0),
                                 ("x_face", (nx - 1, ny // 2, nz // 2), 5.0), ("middle", (nx // 2, ny // 2, 30), 9.0)):
        ct, item = add_lesion(ct, name, center, radius, seed=len(placed))
        placed.append(lesion(name, item.mask))
    # One slice thick: pyradiomics keeps the z spacing for this lesion (no resampling along z).
    slab = np.zeros(MEDIUM_SIZE[::-1], dtype=np.uint8)
    slab[20, 30:45, 90:110] = 1
    slab_mask = sitk.GetImageFromArray(slab)
    slab_mask.CopyInformation(ct)
    placed.append(lesion("one_slice", slab_mask))
    return ct, placed


def test_synthetic_lesions_in_corners_faces_and_one_slice(stock):
    ct, lesions = medium_case()
    assert_same_as_stock(stock, ct, lesions)


def test_float_ct_and_oblique_ct(stock):
    ct, lesions = medium_case(pixel_type=sitk.sitkFloat32)
    assert_same_as_stock(stock, ct, lesions[:2])
    angle = np.radians(17.0)
    oblique = (np.cos(angle), -np.sin(angle), 0.0, np.sin(angle), np.cos(angle), 0.0, 0.0, 0.0, 1.0)
    ct, lesions = medium_case(direction=oblique)
    assert_same_as_stock(stock, ct, [lesions[0], lesions[3]])


def test_threads_give_the_same_values(stock):
    ct, lesions = medium_case()
    rows = extract_lesions(ct, lesions[3:], "P", jobs=2, backend="thread")
    for row in rows:
        np.testing.assert_array_equal(row.values, stock_values(stock, ct, row.lesion.mask))


def test_workers_start_from_a_launcher_like_slicers(tmp_path, monkeypatch):
    """In Slicer sys.executable is the PythonSlicer launcher; workers must start python-real beside it."""
    launcher = tmp_path / "bin" / "PythonSlicer"
    launcher.parent.mkdir()
    launcher.write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "python-real").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "executable", str(launcher))
    assert parallel.python_executable() == str(tmp_path / "bin" / "python-real")
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3.11")
    assert parallel.python_executable() == "/usr/bin/python3.11"


def test_refusal_is_stocks_refusal(stock):
    ct, _ = medium_case()
    line = np.zeros(MEDIUM_SIZE[::-1], dtype=np.uint8)
    line[30, 70, 40:60] = 1  # a row of voxels: one dimension, pyradiomics needs two
    mask = sitk.GetImageFromArray(line)
    mask.CopyInformation(ct)
    with pytest.raises(ValueError, match="too few dimensions"):
        stock.execute(ct, mask)
    with pytest.raises(InputError, match="pyradiomics refused it"):
        extract_lesions(ct, [lesion("line", mask)], "P")


def test_unsupported_settings_fall_back_to_stock(stock, monkeypatch):
    extractor = RadiomicsFeatureExtractor(str(parameter_file()))
    assert fast_path_blocker(extractor) is None
    extractor.settings["normalize"] = True
    extractor.enableImageTypeByName("Square")
    reason = fast_path_blocker(extractor)
    assert "normalize" in reason and "Square" in reason
    ct, lesions = medium_case()
    calls = []
    monkeypatch.setattr(extract, "fast_path_blocker", lambda extractor=None: "a test setting")
    monkeypatch.setattr(extract, "prepare_lesion", lambda *args: calls.append(args))
    rows = extract_lesions(ct, lesions[:1], "P")
    assert calls == []
    np.testing.assert_array_equal(rows[0].values, stock_values(stock, ct, lesions[0].mask))


@pytest.mark.slow
def test_full_size_ct_lesions_near_borders(stock):
    ct = synthetic_ct(FULL_SIZE, SPACING, seed=11)
    nx, ny, nz = FULL_SIZE
    lesions = []
    for index, (center, voxels) in enumerate((((4, ny // 2, nz // 2), 4000), ((nx // 2, ny - 3, 2), 30000),
                                              ((nx - 60, 80, nz - 1), 2000), ((nx // 2, ny // 2, nz // 2), 180000))):
        ct, item = add_lesion(ct, f"L{index}", center, radius_for_voxels(voxels, SPACING), seed=index)
        lesions.append(lesion(item.name, item.mask))
    assert_same_as_stock(stock, ct, lesions, jobs=2)
