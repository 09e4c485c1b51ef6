"""Every bad CT or lesion input gets its own message, naming the input, and nothing is written."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.cli import main
from abcir.errors import InputError
from abcir.imaging.ct import read_ct
from abcir.patient.lesions import load_lesions
from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd


def _ct(size=(40, 40, 12), spacing=(0.8, 0.8, 2.0)) -> sitk.Image:
    rng = np.random.default_rng(0)
    array = np.full(size[::-1], -1000, dtype=np.int16)
    array[:, 5:35, 5:35] = 40 + rng.normal(0, 10, (size[2], 30, 30)).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-10.0, -20.0, 30.0))
    return image


def _mask_like(ct: sitk.Image, box=(slice(3, 8), slice(10, 20), slice(12, 22)), value=1) -> sitk.Image:
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.uint8)
    array[box] = value
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    return mask


@pytest.fixture
def ct_file(tmp_path):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(_ct(), str(path))
    return path


def _write(image: sitk.Image, path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.nrrd", "no such file or folder"),
    (lambda p: (p / "ct.txt").write_text("x") and p / "ct.txt", "unsupported file type"),
    (lambda p: _write(sitk.Image(40, 40, sitk.sitkInt16) - 1000, p / "slice.nrrd"), "a 2D image"),
    (lambda p: _write(sitk.Cast(sitk.RescaleIntensity(_ct(), 0, 255), sitk.sitkUInt8), p / "png_like.nrrd"),
     "intensities range 0..255, which does not look like CT in Hounsfield units"),
    (lambda p: _write(sitk.Compose(_ct(), _ct(), _ct()), p / "rgb.nrrd"), "3 components per voxel"),
    (lambda p: (p / "broken.nrrd").write_text("not an image") and p / "broken.nrrd", "cannot be read"),
])
def test_bad_ct(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(InputError, match=message) as error:
        read_ct(path)
    assert str(path) in str(error.value)


def test_lesion_problems_each_have_their_own_message(tmp_path, ct_file):
    ct = read_ct(ct_file)
    cases = {
        "empty": (_mask_like(ct, value=0), "the mask is empty"),
        "dot": (_mask_like(ct, box=(slice(5, 6), slice(15, 16), slice(15, 16))), "the mask is a single voxel"),
        "nonbinary": (_mask_like(ct, value=1) + _mask_like(ct, box=(slice(3, 4), slice(10, 11), slice(12, 14))),
                      "mask values 0, 1, 2; a lesion mask must be binary"),
    }
    elsewhere = _mask_like(ct)
    elsewhere.SetOrigin((500.0, 500.0, 500.0))
    cases["elsewhere"] = (elsewhere, "does not overlap the CT in physical space")
    oblique = _mask_like(ct)
    angle = np.radians(10)
    oblique.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1))
    cases["oblique"] = (oblique, "rotated 10.00 degrees against the CT")
    for name, (mask, message) in cases.items():
        path = _write(mask, tmp_path / f"{name}.nrrd")
        other = _write(_mask_like(ct), tmp_path / f"ok_{name}.nrrd")
        with pytest.raises(InputError, match=message) as error:
            load_lesions([other, path], ct)
        assert f"Lesion '{name}'" in str(error.value)


@pytest.mark.parametrize("planes, values, shown", [
    ((0, 11), (1, 2), "0, 1, 2"),  # the lesion's first and last planes, the CT's first and last
    ((4, 6), (-1, 1), "-1, 0, 1"),  # a negative value (a plane whose maximum is 0)
    ((5, 5), (-3, -3), None),  # one negative value: binary (0 and one other value)
])
def test_the_binary_check_sees_every_plane_of_the_lesion(tmp_path, ct_file, planes, values, shown):
    """The check reads only the slab of planes holding the lesion; the values at its ends still count."""
    ct = read_ct(ct_file)
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape, dtype=np.int16)
    array[planes[0], 10:20, 12:22] = values[0]
    array[planes[1], 12:20, 12:20] = values[1]
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct)
    paths = [_write(_mask_like(ct), tmp_path / "other.nrrd"), _write(mask, tmp_path / "lesion.nrrd")]
    if shown is None:
        lesion = load_lesions(paths, ct)[1]
        assert lesion.size.voxel_count == 100  # the second square lies inside the first
        return
    with pytest.raises(InputError, match=f"mask values {shown}; a lesion mask must be binary"):
        load_lesions(paths, ct)


def test_flipped_axes_are_resampled_exactly(tmp_path, ct_file):
    ct = read_ct(ct_file)
    mask = _mask_like(ct)
    flipped = sitk.Flip(mask, [False, True, False])  # same voxels, y axis reversed in the header
    assert flipped.GetDirection() != ct.GetDirection()
    lesion = load_lesions([_write(flipped, tmp_path / "liver_1.nrrd"), _write(mask, tmp_path / "lung_1.nrrd")], ct)[0]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lesion.mask), sitk.GetArrayFromImage(mask))
    assert lesion.site == "liver"


def test_label_map_with_sites_csv_and_unknown_site_warning(tmp_path, ct_file, caplog):
    ct = read_ct(ct_file)
    labels = _mask_like(ct) + 3 * _mask_like(ct, box=(slice(3, 8), slice(25, 30), slice(25, 30)))
    sites = tmp_path / "sites.csv"
    sites.write_text("label,site\n1,Liver\n")
    with caplog.at_level(logging.WARNING):
        lesions = load_lesions([_write(labels, tmp_path / "labels.nrrd")], ct, sites)
    assert [(lesion.lesion_id, lesion.site) for lesion in lesions] == [("1", "liver"), ("3", None)]
    assert "Lesion '3': no site given" in caplog.text
    bad_sites = tmp_path / "bad_sites.csv"
    bad_sites.write_text("label,site\n1,spleen-ish\n")
    with pytest.raises(InputError, match="line 2: unknown site 'spleen-ish'"):
        load_lesions([tmp_path / "labels.nrrd"], ct, bad_sites)


def test_segmentation_sites_from_tags_then_names(tmp_path, ct_file, caplog):
    ct = read_ct(ct_file)
    segments = [
        Segment("s1", "Segment_1", _mask_like(ct), tags={SITE_TAG: "lymph_node"}),
        Segment("s2", "lung_2", _mask_like(ct, box=(slice(3, 8), slice(25, 30), slice(25, 30)))),
        Segment("s3", "thing", _mask_like(ct, box=(slice(8, 11), slice(25, 30), slice(10, 15))),
                tags={SITE_TAG: "spleen"}),
    ]
    path = write_seg_nrrd(tmp_path / "lesions.seg.nrrd", segments)
    with caplog.at_level(logging.WARNING):
        lesions = load_lesions([path], ct)
    assert [(lesion.lesion_id, lesion.site, lesion.visceral) for lesion in lesions] == [
        ("Segment_1", "lymph_node", False), ("lung_2", "lung", True), ("thing", None, None)]
    assert "site 'spleen' is not in the site list" in caplog.text


def test_cli_writes_nothing_on_failure(tmp_path, ct_file, capsys):
    ct = read_ct(ct_file)
    good = _write(_mask_like(ct), tmp_path / "liver_1.nrrd")
    empty = _write(_mask_like(ct, value=0), tmp_path / "liver_2.nrrd")
    out = tmp_path / "features.csv"
    assert main(["extract", "--ct", str(ct_file), "--lesions", good, empty, "--out", str(out)]) == 2
    assert "Lesion 'liver_2': the mask is empty" in capsys.readouterr().err
    assert list(tmp_path.glob("features*")) == []


def test_cli_extract_and_never_overwrite(tmp_path, ct_file, capsys):
    ct = read_ct(ct_file)
    first = _write(_mask_like(ct), tmp_path / "liver_1.nrrd")
    second = _write(_mask_like(ct, box=(slice(3, 9), slice(22, 32), slice(8, 18))), tmp_path / "lung_1.nrrd")
    out = tmp_path / "features.csv"
    assert main(["extract", "--ct", str(ct_file), "--lesions", first, second, "--out", str(out),
                 "--patient-id", "P7", "--jobs", "2"]) == 0
    captured = capsys.readouterr()
    # Progress counts lesions as they finish, in whichever order the two processes finish them.
    reported = sorted(line.split("] ")[1] for line in captured.err.splitlines() if line.startswith("["))
    assert reported == ["liver_1", "lung_1"]
    assert "[1/2] " in captured.err and "[2/2] " in captured.err
    header, *rows = out.read_text().splitlines()
    columns = header.split(",")
    assert columns[:9] == ["patient_id", "lesion_id", "site", "site_source", "visceral", "voxel_count",
                           "volume_mm3", "longest_axial_diameter_mm", "short_axis_mm"]
    assert len(columns) == 9 + 1130
    assert [row.split(",")[:5] for row in rows] == [["P7", "liver_1", "liver", "name", "1"],
                                                    ["P7", "lung_1", "lung", "name", "1"]]
    before = out.read_bytes()
    assert main(["extract", "--ct", str(ct_file), "--lesions", first, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == before


@pytest.mark.parametrize("name", ["image.nii", "image.nii.gz"])
def test_cut_short_nifti_is_refused_not_read_with_missing_voxels(tmp_path, ct_file, name):
    """ITK reads a NIfTI file that ends early without an error; the voxels it lacks would be zeros."""
    ct = read_ct(ct_file)
    whole = tmp_path / name
    sitk.WriteImage(ct, str(whole))
    cut = tmp_path / f"cut_{name}"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.8)])
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_ct(whole)), sitk.GetArrayFromImage(ct))
    with pytest.raises(InputError, match=r"the file is cut short.*Copy the file again") as error:
        read_ct(cut)
    assert f"CT '{cut}'" in str(error.value)
    mask = tmp_path / f"liver_1.{name.split('.', 1)[1]}"
    sitk.WriteImage(_mask_like(ct), str(mask))
    cut_mask = tmp_path / f"liver_2.{name.split('.', 1)[1]}"
    cut_mask.write_bytes(mask.read_bytes()[:int(mask.stat().st_size * 0.8)])
    with pytest.raises(InputError, match=f"Lesions '{cut_mask}': the file is cut short"):
        load_lesions([cut_mask], ct)


def test_damaged_gzip_nifti_is_refused(tmp_path, ct_file):
    path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(read_ct(ct_file), str(path))
    data = bytearray(path.read_bytes())
    data[-12] ^= 0xFF  # in the last deflate block: zlib or the CRC check notices
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=f"CT '{path}': (its gzip data are damaged|cannot be read|the file is cut)"):
        read_ct(path)


@pytest.mark.parametrize("text, message", [
    ("label,site\n1,liver\n1,lung\n", "label '1' is on lines 2 and 3; give each lesion one line"),
    ("label,site\n,liver\n", "line 2: the label is empty"),
    ("label,site\n1\n", "line 2: no site for label '1'; write it as '1,SITE'"),
    ("label,site\n1,liver,lung\n", "line 2: more cells than the header 'label,site'"),
])
def test_sites_file_mistakes_are_refused(tmp_path, ct_file, text, message):
    ct = read_ct(ct_file)
    labels = _write(_mask_like(ct), tmp_path / "labels.nrrd")
    sites = tmp_path / "sites.csv"
    sites.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=f"Sites file '{sites}'.*{message}"):
        load_lesions([labels], ct, sites)


def test_sites_file_with_extra_columns_and_empty_lines_is_read(tmp_path, ct_file):
    ct = read_ct(ct_file)
    labels = _write(_mask_like(ct), tmp_path / "labels.nrrd")
    sites = tmp_path / "sites.csv"
    sites.write_text("\ufefflabel,site,comment\n1,Liver,segment 4\n,,\n", encoding="utf-8")
    assert [lesion.site for lesion in load_lesions([labels], ct, sites)] == ["liver"]


def test_a_folder_given_as_lesions_is_named_a_folder(tmp_path, ct_file):
    with pytest.raises(InputError, match=f"Lesions '{tmp_path}': a folder; give the segmentation file in it"):
        load_lesions([tmp_path], read_ct(ct_file))


def test_an_unreadable_metaimage_is_not_called_missing(tmp_path, ct_file):
    """ITK's last line for a MetaImage cut short is a stale errno: 'Reason: No such file or directory'."""
    whole = tmp_path / "ct.mha"
    sitk.WriteImage(read_ct(ct_file), str(whole))
    cut = tmp_path / "cut.mha"
    cut.write_bytes(whole.read_bytes()[:int(whole.stat().st_size * 0.8)])
    with pytest.raises(InputError, match=f"CT '{cut}': cannot be read \\(File cannot be read: .*\\); give a whole "
                                         "image file .*copied again if it may have been cut short") as error:
        read_ct(cut)
    assert "No such file" not in str(error.value)
