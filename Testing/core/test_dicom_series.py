"""Reading CT series as PACS sends them: series choice, slice order, HU, and every irregular series refused or fixed."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.cli import main
from abcir.dicom.series import list_series, read_dicom_ct
from abcir.errors import InputError
from abcir.imaging.ct import read_ct, voxel_hash
from dicom_cases import PET_IMAGE_STORAGE, copy_series, synthetic_series, uid


@pytest.fixture(scope="module")
def real_dicom(shared_data):
    return shared_data / "ct_dicom_example" / "dicom"


@pytest.fixture(scope="module")
def real_reference(real_dicom):
    """The real series as ITK's own DICOM series reader stacks it (a regular series needs nothing more)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(real_dicom)))
    return reader.Execute()


def _arrays_equal(a: sitk.Image, b: sitk.Image) -> bool:
    return np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))


# --- the real series ---------------------------------------------------------------------------------------------

def test_real_series_reads_as_itk_does_in_hu(real_dicom, real_reference):
    ct = read_dicom_ct(real_dicom)
    assert voxel_hash(ct.image) == voxel_hash(real_reference)  # voxels, type and geometry
    assert ct.image.GetPixelID() == sitk.sitkInt16
    array = sitk.GetArrayViewFromImage(ct.image)
    assert array.min() == -1024  # stored 0 + RescaleIntercept -1024: air in HU
    # Slices in the order of their position along the normal, first at the lowest z.
    assert ct.image.GetOrigin()[2] == -804.5 and ct.image.GetSpacing()[2] == 2.0
    assert [f[-5:] for f in ct.files] == [str(n) for n in range(16592, 16572, -1)]
    # The anonymiser removed the study and series UIDs: said, not invented.
    assert ct.study_instance_uid == "" and ct.series_instance_uid == ""
    assert any("no StudyInstanceUID/SeriesInstanceUID" in w for w in ct.warnings)
    assert ct.sop_instance_uids[0].endswith("16592")  # from the file meta header, where the anonymiser left it


def test_listing_the_real_folder(real_dicom, capsys):
    [series] = list_series(real_dicom)
    assert (series.modality, series.description, series.images, series.kernel) == ("CT", "CT Body 3.0", 20, "Br38f 3")
    assert series.pixel_spacing_mm == (0.9765625, 0.9765625) and series.slice_spacing_mm == 2.0
    assert series.slice_thickness_mm == 3.0 and series.usable
    assert main(["dicom-series", str(real_dicom)]) == 0
    out = capsys.readouterr().out
    assert "'CT Body 3.0', 20 images" in out and "kernel Br38f 3" in out and "used by default" in out


def test_shuffled_and_duplicate_instance_numbers_change_nothing(real_dicom, real_reference, tmp_path):
    rng = np.random.default_rng(1)
    numbers = rng.permutation(20) + 1
    copy_series(real_dicom, tmp_path / "shuffled", edit=lambda k, ds: setattr(ds, "InstanceNumber", int(numbers[k])))
    copy_series(real_dicom, tmp_path / "duplicated", edit=lambda k, ds: setattr(ds, "InstanceNumber", k // 2))
    for name, message in (("shuffled", "do not follow the slice positions"), ("duplicated", "occur more than once")):
        ct = read_dicom_ct(tmp_path / name)
        assert voxel_hash(ct.image) == voxel_hash(real_reference), name
        assert any(message in w for w in ct.warnings), name


def test_file_names_do_not_order_slices(tmp_path):
    expected = synthetic_series(tmp_path / "s", names=lambda k: f"{(7 - k) * 37 % 11:02d}-{k % 3}.dcm")
    ct = read_dicom_ct(tmp_path / "s")
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ct.image), expected)


def test_missing_slice_is_refused_naming_the_neighbours(real_dicom, tmp_path):
    copy_series(real_dicom, tmp_path / "gap", drop=[7])
    with pytest.raises(InputError, match=r"slice spacing is not uniform") as error:
        read_dicom_ct(tmp_path / "gap")
    message = str(error.value)
    # Instances 273 and 275 (on either side of the removed 274), 4 mm apart instead of 2.
    assert "instance 275" in message and "instance 273" in message and "4.000 mm" in message
    assert "1 slice(s) missing?" in message and str(tmp_path / "gap") in message


def test_one_slice_moved_is_refused(real_dicom, tmp_path):
    def move(k, ds):
        if k == 10:
            ds.ImagePositionPatient[2] = float(ds.ImagePositionPatient[2]) + 0.7
    copy_series(real_dicom, tmp_path / "moved", edit=move)
    with pytest.raises(InputError, match=r"irregular spacing") as error:
        read_dicom_ct(tmp_path / "moved")
    assert "instance 277" in str(error.value)


def test_mixed_orientation_and_pixel_spacing_are_refused(real_dicom, tmp_path):
    def tilt_one(k, ds):
        if k == 4:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9848078, -0.1736482]
    def respace_one(k, ds):
        if k == 4:
            ds.PixelSpacing = [0.8, 0.8]
    copy_series(real_dicom, tmp_path / "orientation", edit=tilt_one)
    copy_series(real_dicom, tmp_path / "spacing", edit=respace_one)
    with pytest.raises(InputError, match=r"2 different orientation \(ImageOrientationPatient\)s.*instance 271"):
        read_dicom_ct(tmp_path / "orientation")
    with pytest.raises(InputError, match=r"2 different pixel spacings.*instance 271"):
        read_dicom_ct(tmp_path / "spacing")


def test_two_images_at_one_position_are_refused_but_a_copied_file_is_not(real_dicom, real_reference, tmp_path):
    def second_acquisition(k, ds):
        if k == 5:
            ds.ImagePositionPatient = [float(v) for v in ds.ImagePositionPatient[:2]] + [-778.5]  # slice 6's place
            ds.AcquisitionNumber = 15
    copy_series(real_dicom, tmp_path / "same", edit=second_acquisition)
    with pytest.raises(InputError, match=r"1 pair\(s\) of different images at the same position \(acquisition "
                                         r"numbers 14, 15: several acquisitions in one series\)"):
        read_dicom_ct(tmp_path / "same")
    copied = tmp_path / "copied"
    copy_series(real_dicom, copied)
    first = sorted(copied.iterdir())[0]
    shutil.copy(first, copied / "copy_of_first.dcm")
    ct = read_dicom_ct(copied)
    assert voxel_hash(ct.image) == voxel_hash(real_reference)
    assert any("copies of an image already read" in w for w in ct.warnings)


# --- synthetic series: HU, tilt, choice among several series --------------------------------------------------------

def test_rescale_slope_and_intercept_give_hu(tmp_path):
    expected = synthetic_series(tmp_path / "s", slope=0.5, intercept=-1000.25)
    ct = read_dicom_ct(tmp_path / "s")
    assert ct.image.GetPixelID() == sitk.sitkFloat32
    np.testing.assert_allclose(sitk.GetArrayViewFromImage(ct.image), expected, atol=1e-3)
    assert ct.image.GetSpacing() == pytest.approx((0.7, 0.8, 2.5))  # columns, rows (PixelSpacing is row\column)
    assert ct.image.GetMetaData("0020|000e") == uid("ct") and ct.image.GetMetaData("0020|000d") == uid("study")


def test_gantry_tilt_is_resampled_onto_a_regular_grid(tmp_path, caplog):
    # GE-style tilt: axial orientation, each slice displaced 0.8 mm (exactly one row) in y.
    expected = synthetic_series(tmp_path / "tilt", in_plane_shift_mm=(0.0, 0.8, 0.0), step=2.5)
    with caplog.at_level(logging.WARNING):
        ct = read_dicom_ct(tmp_path / "tilt")
    assert ct.gantry_tilt_degrees == pytest.approx(np.degrees(np.arctan(0.8 / 2.5)))
    assert "gantry tilt of 17.74 degrees" in caplog.text
    np.testing.assert_allclose(ct.image.GetDirection(), np.eye(3).ravel())
    assert ct.image.GetOrigin() == pytest.approx((-10.0, -20.0, 100.0))
    array = sitk.GetArrayViewFromImage(ct.image)
    for k in range(expected.shape[0]):
        # Grid row y of slice k lies where the acquired slice's row y - k lies.
        np.testing.assert_array_equal(array[k, k:, :], expected[k, : expected.shape[1] - k, :])
        assert np.all(array[k, :k, :] == expected.min())
    # A point of the acquired slice 5 at row 3 keeps its physical position.
    acquired = np.array([-10.0 + 4 * 0.7, -20.0 + 3 * 0.8 + 5 * 0.8, 100.0 + 5 * 2.5])
    index = ct.image.TransformPhysicalPointToIndex(acquired.tolist())
    assert array[index[2], index[1], index[0]] == expected[5, 3, 4]


def test_half_pixel_tilt_interpolates_within_each_slice(tmp_path):
    expected = synthetic_series(tmp_path / "tilt", in_plane_shift_mm=(0.35, 0.0, 0.0), slices=4)  # 0.5 column
    array = sitk.GetArrayFromImage(read_dicom_ct(tmp_path / "tilt").image)
    # Slice 1 is shifted half a column: each value is the mean of two neighbours of the same slice.
    np.testing.assert_allclose(array[1, :, 1:], (expected[1, :, :-1] + expected[1, :, 1:]) / 2, rtol=1e-6)
    np.testing.assert_array_equal(array[0], expected[0])


def test_irregular_in_plane_jumps_are_not_taken_for_tilt(tmp_path):
    synthetic_series(tmp_path / "a", slices=4)
    synthetic_series(tmp_path / "a", slices=4, origin=(-10.0, -8.0, 110.0), seed=1, first_instance=5,
                     names=lambda k: f"B{k}.dcm")  # the same series continued, but with another field of view
    # Against the line from the first slice (0 mm) to the last (12 mm, 17.5 mm higher), instance 4 at 7.5 mm
    # lies 12 x 7.5 / 17.5 = 5.14 mm = 6.4 rows off.
    with pytest.raises(InputError, match=r"not in proportion to their distance as a gantry tilt would be "
                                         r"\(instance 4 \(IM0003.dcm\) is 6.4 pixels off\)"):
        read_dicom_ct(tmp_path / "a")


def test_one_uid_for_two_images_is_refused(tmp_path):
    synthetic_series(tmp_path / "a", slices=4)
    synthetic_series(tmp_path / "a", slices=4, origin=(-10.0, -20.0, 110.0), names=lambda k: f"B{k}.dcm")
    with pytest.raises(InputError, match=r"4 SOPInstanceUID\(s\) are shared by images at different positions"):
        read_dicom_ct(tmp_path / "a")


def test_choice_among_scout_pet_and_two_ct_series(tmp_path, caplog):
    folder = tmp_path / "study"
    synthetic_series(folder / "scout", slices=1, image_type="ORIGINAL\\PRIMARY\\LOCALIZER", series="scout",
                     description="Topogram", series_number=1)
    synthetic_series(folder / "pet", modality="PT", sop_class=PET_IMAGE_STORAGE, series="pet",
                     description="PET AC", series_number=3)
    soft = synthetic_series(folder / "soft", series="soft", description="Abdomen 1.25 B30f", series_number=4)
    synthetic_series(folder / "thick", series="thick", description="Abdomen 5.0", thickness=5.0, step=5.0,
                     slices=4, series_number=5)
    synthetic_series(folder / "mpr", series="mpr", description="Coronal MPR", image_type="DERIVED\\SECONDARY",
                     series_number=6, slices=12)
    series = {s.description: s for s in list_series(folder)}
    assert "scout/localizer" in series["Topogram"].problem
    assert series["PET AC"].problem == "modality PT, not CT"
    with caplog.at_level(logging.WARNING):
        ct = read_dicom_ct(folder)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(ct.image), soft)  # original, paper's thickness
    assert "using CT series 'Abdomen 1.25 B30f'" in caplog.text
    with pytest.raises(InputError, match=r"series 'PET AC' \(.*\) cannot be used: modality PT, not CT"):
        read_dicom_ct(folder, series_uid=uid("pet"))
    with pytest.raises(InputError, match="no series with SeriesInstanceUID 1.2.3"):
        read_dicom_ct(folder, series_uid="1.2.3")
    thick = read_ct(folder, series_uid=uid("thick"))  # the user's choice overrides the rule
    assert thick.GetSize()[2] == 4


def test_two_equally_good_kernels_make_the_user_choose(tmp_path, capsys):
    synthetic_series(tmp_path / "soft", series="soft", description="Chest B30f", kernel="B30f")
    synthetic_series(tmp_path / "lung", series="lung", description="Chest B70f", kernel="B70f", seed=2)
    with pytest.raises(InputError, match=r"2 CT series fit equally well .*; choose one with --series-uid") as error:
        read_dicom_ct(tmp_path)
    assert "kernel B30f" in str(error.value) and "kernel B70f" in str(error.value)
    assert read_dicom_ct(tmp_path, series_uid=uid("lung")).series_instance_uid == uid("lung")
    assert main(["dicom-series", str(tmp_path)]) == 0
    assert "No series is chosen by default" in capsys.readouterr().out


def test_not_a_ct_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not DICOM")
    with pytest.raises(InputError, match="no DICOM images found"):
        read_dicom_ct(tmp_path)
    synthetic_series(tmp_path / "enhanced", sop_class="1.2.840.10008.5.1.4.1.1.2.1", series="enhanced")
    with pytest.raises(InputError, match="enhanced multi-frame CT"):
        read_dicom_ct(tmp_path)


def test_a_file_given_as_the_folder_is_named_a_file(tmp_path, capsys):
    synthetic_series(tmp_path / "ct")
    one_slice = next((tmp_path / "ct").iterdir())
    assert main(["dicom-series", str(one_slice)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"DICOM folder '{one_slice}': a file, not a folder; give the "
                                                    "folder that holds the series' files.")


def test_an_image_file_cut_short_is_named_not_taken_for_another_object(tmp_path, caplog):
    """pydicom reads a header that ends early without an error; without Rows it looked like a DICOMDIR or a
    report, and the series was refused for a missing slice with no word on which file is damaged."""
    synthetic_series(tmp_path / "ct")
    damaged = sorted((tmp_path / "ct").iterdir())[3]
    damaged.write_bytes(damaged.read_bytes()[:damaged.stat().st_size // 3])
    with caplog.at_level(logging.WARNING), pytest.raises(InputError, match="1 slice\\(s\\) missing"):
        read_dicom_ct(tmp_path / "ct")
    assert f"DICOM file '{damaged}' is an image cut short" in caplog.text
