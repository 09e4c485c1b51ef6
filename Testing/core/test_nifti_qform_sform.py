"""A NIfTI whose qform and sform disagree is read with a warning naming the form used and the distance.

The files are written by SimpleITK (qform and sform equal) and then patched to
the NIfTI-1 layout (nifti1.h: sform_code at byte 254, srow_x/y/z at 280/296/312,
float32): a shifted sform, and a rotated sform labelled "aligned anatomical".
Which form ITK read is checked on the image's origin, independently of the
warning's own comparison.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.imaging.ct import read_ct_with_warnings
from abcir.imaging.nifti import qform_sform_warning, read_nifti_geometry

SPACING = (0.8, 0.9, 2.5)
ORIGIN_LPS = (-40.0, 25.0, 100.0)


def _write_ct(path: Path) -> sitk.Image:
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.integers(-1000, 400, size=(12, 30, 40)).astype(np.int16))
    image.SetSpacing(SPACING)
    image.SetOrigin(ORIGIN_LPS)
    sitk.WriteImage(image, str(path))
    return image


def _patch(path: Path, srow: np.ndarray | None = None, sform_code: int | None = None) -> None:
    """Rewrite the sform rows (3 x 4, RAS) and/or its code in a little-endian NIfTI-1 file."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = bytearray(handle.read())
    assert struct.unpack("<i", data[:4])[0] == 348
    if srow is not None:
        data[280:328] = struct.pack("<12f", *np.asarray(srow, dtype=np.float32).ravel())
    if sform_code is not None:
        data[254:256] = struct.pack("<h", sform_code)
    with opener(path, "wb") as handle:
        handle.write(bytes(data))


def _srow(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return np.array(struct.unpack("<12f", handle.read(348)[280:328]), dtype=np.float64).reshape(3, 4)


def test_consistent_file_reads_without_warning(tmp_path):
    path = tmp_path / "ct.nii.gz"
    _write_ct(path)
    geometry = read_nifti_geometry(path)
    assert (geometry.qform_code, geometry.sform_code) == (1, 1)
    np.testing.assert_allclose(geometry.qform[:3], geometry.sform[:3], atol=1e-4)
    assert read_ct_with_warnings(path)[1] == ()


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_shifted_sform_is_read_and_named(tmp_path, suffix):
    path = tmp_path / f"ct{suffix}"
    _write_ct(path)
    srow = _srow(path)
    srow[0, 3] += 3.0  # 3 mm further right (RAS x) in the sform only
    _patch(path, srow)
    image, warnings = read_ct_with_warnings(path)
    # ITK took the sform (scanner-anatomical, a rotation with the pixel spacing): the origin moved 3 mm (LPS x -3).
    assert image.GetOrigin() == pytest.approx((ORIGIN_LPS[0] - 3.0, ORIGIN_LPS[1], ORIGIN_LPS[2]), abs=1e-4)
    [warning] = warnings
    assert warning.startswith(f"NIfTI 'ct{suffix}': its qform and sform disagree, placing voxels up to 3.0 mm apart "
                              "(their axes differ by 0.00 degrees); it was read with the sform (ITK's rule).")


def test_rotated_aligned_sform_leaves_the_qform_in_use(tmp_path):
    path = tmp_path / "ct.nii"
    original = _write_ct(path)
    srow = _srow(path)
    angle = np.radians(2.0)
    turn = np.array([[np.cos(angle), -np.sin(angle), 0.0], [np.sin(angle), np.cos(angle), 0.0], [0.0, 0.0, 1.0]])
    rotated = srow.copy()
    rotated[:, :3] = turn @ srow[:, :3]
    _patch(path, rotated, sform_code=2)  # NIFTI_XFORM_ALIGNED_ANAT: ITK keeps the qform unless both agree
    image, [warning] = read_ct_with_warnings(path)
    assert image.GetOrigin() == pytest.approx(original.GetOrigin(), abs=1e-4)
    assert image.GetDirection() == pytest.approx(original.GetDirection(), abs=1e-6)
    # Independent distance: the voxel furthest from the offset point moves by |(turn - I) A p| (float32 rows).
    index = np.array([[i, j, k] for i in (0, 39) for j in (0, 29) for k in (0, 11)], dtype=np.float64).T
    expected = np.linalg.norm((np.asarray(rotated[:, :3], np.float32) - np.asarray(srow[:, :3], np.float32))
                              @ index, axis=0).max()
    assert f"up to {expected:.1f} mm apart (their axes differ by 2.00 degrees); it was read with the qform" in warning


def test_other_formats_and_single_forms_are_not_checked(tmp_path):
    image = _write_ct(tmp_path / "ct.nrrd")
    assert qform_sform_warning(tmp_path / "ct.nrrd", image) is None
    path = tmp_path / "sform_unset.nii"
    _write_ct(path)
    srow = _srow(path)
    srow[0, 3] += 3.0
    _patch(path, srow, sform_code=0)  # only the qform counts: nothing to disagree with
    assert qform_sform_warning(path, sitk.ReadImage(str(path))) is None


def test_a_lesion_mask_with_a_shifted_sform_is_warned_about_too(tmp_path, caplog):
    import logging

    from abcir.patient.lesions import load_lesions

    ct = _write_ct(tmp_path / "ct.nrrd")
    mask = sitk.GetImageFromArray(np.zeros((12, 30, 40), dtype=np.uint8))
    mask.CopyInformation(ct)
    mask[15:25, 10:20, 4:8] = 1
    path = tmp_path / "liver_1.nii"
    sitk.WriteImage(mask, str(path))
    srow = _srow(path)
    srow[0, 3] += 3.0
    _patch(path, srow)
    with caplog.at_level(logging.WARNING, logger="abcir.patient.lesions"):
        load_lesions([path], ct)
    assert any("'liver_1.nii': its qform and sform disagree" in record.getMessage() for record in caplog.records)
