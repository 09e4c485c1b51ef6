"""``.seg.nrrd`` files as older Slicer versions wrote them, and UTF-8 headers, read as Slicer reads them.

The files are built here from the format (``seg_nrrd_files``); the expected masks and
positions come from how each file was built, not from the reader. The same files are
compared with Slicer's own reader in ``Testing/mrml/test_segfile_layouts_slicer.py``.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk
from seg_nrrd_files import overlapping_masks, slicer_45_file, slicer_410_file, write_nrrd

from abcir.cli import main
from abcir.errors import InputError
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
NAMES = ["liver_1", "liver_2", "lung_1"]


def _zyx(mask_xyz: np.ndarray) -> np.ndarray:
    return np.transpose(mask_xyz, (2, 1, 0)).astype(np.uint8)


def _rotation_z(degrees: float) -> np.ndarray:
    angle = np.radians(degrees)
    return np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])


def assert_geometry(image: sitk.Image, origin_lps: np.ndarray, axes_lps: np.ndarray) -> None:
    """``axes_lps`` holds the voxel axes as columns (mm)."""
    spacing = np.linalg.norm(axes_lps, axis=0)
    assert image.GetOrigin() == pytest.approx(tuple(origin_lps), abs=1e-9)
    assert image.GetSpacing() == pytest.approx(tuple(spacing), abs=1e-12)
    assert image.GetDirection() == pytest.approx(tuple((axes_lps / spacing).ravel()), abs=1e-12)


def test_slicer_410_file_gives_each_segment_its_own_component(tmp_path):
    masks = overlapping_masks()
    axes = np.diag([0.8, -0.9, 2.5])
    path = slicer_410_file(tmp_path / "old.seg.nrrd", masks, NAMES, (10.0, -20.0, 5.0), axes,
                           tags=[{SITE_TAG: "liver"}, {}, {"Note": "x"}])
    segments = read_seg_nrrd(path)
    assert [(s.segment_id, s.name) for s in segments] == [("Segment_1", "liver_1"), ("Segment_2", "liver_2"),
                                                          ("Segment_3", "lung_1")]
    assert [s.tags for s in segments] == [{SITE_TAG: "liver"}, {}, {"Note": "x"}]
    assert segments[1].color == pytest.approx((0.2, 0.5, 0.5))
    for segment, mask in zip(segments, masks, strict=True):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(segment.mask), _zyx(mask))
        assert_geometry(segment.mask, np.array([10.0, -20.0, 5.0]), axes)
    # the reading the issue reported: every segment from component 0 would give segment 0's voxels
    assert not np.array_equal(sitk.GetArrayFromImage(segments[1].mask), _zyx(masks[0]))


def test_slicer_410_segment_keeps_only_its_extent(tmp_path):
    masks = overlapping_masks()
    path = slicer_410_file(tmp_path / "stray.seg.nrrd", masks, NAMES, (0.0, 0.0, 0.0), np.eye(3))
    stray = [mask.copy() for mask in masks]
    stray[2][0, 0, 6] = True  # outside Segment2_Extent, which was written from the clean mask
    data_path = slicer_410_file(tmp_path / "stray2.seg.nrrd", stray, NAMES, (0.0, 0.0, 0.0), np.eye(3))
    header_from_clean = path.read_bytes().split(b"\n\n", 1)[0]
    body_with_stray = data_path.read_bytes().split(b"\n\n", 1)[1]
    (tmp_path / "cropped.seg.nrrd").write_bytes(header_from_clean + b"\n\n" + body_with_stray)
    segments = read_seg_nrrd(tmp_path / "cropped.seg.nrrd")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(segments[2].mask), _zyx(masks[2]))


def test_slicer_45_file_without_space_is_read_as_ras_with_the_common_extent_offset(tmp_path):
    masks = overlapping_masks()
    axes_ras = _rotation_z(30) @ np.diag([0.8, 0.9, 2.5])
    origin_ras, start = np.array([30.0, -12.0, 40.0]), (3, -2, 4)
    path = slicer_45_file(tmp_path / "rt.seg.nrrd", masks, NAMES, origin_ras, axes_ras, start,
                          tags=[{}, {SITE_TAG: "liver"}, {}])
    segments = read_seg_nrrd(path)
    assert [s.name for s in segments] == NAMES and segments[1].tags == {SITE_TAG: "liver"}
    # voxel i of the file is at RAS origin + axes (i + start); the mask's voxel 0 is file voxel 0
    expected_origin = RAS_TO_LPS @ (origin_ras + axes_ras @ np.array(start, dtype=float))
    for segment, mask in zip(segments, masks, strict=True):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(segment.mask), _zyx(mask))
        assert_geometry(segment.mask, expected_origin, RAS_TO_LPS @ axes_ras)
    point = segments[0].mask.TransformIndexToPhysicalPoint((2, 3, 1))
    assert point == pytest.approx(tuple(RAS_TO_LPS @ (origin_ras + axes_ras @ (np.array([2, 3, 1]) + start))))


def test_slicer_45_segment_keeps_only_label_1_inside_its_extent(tmp_path):
    masks = overlapping_masks()
    path = slicer_45_file(tmp_path / "rt.seg.nrrd", masks, NAMES, (0.0, 0.0, 0.0), np.eye(3), (5, 5, 5))
    header, body = path.read_bytes().split(b"\n\n", 1)
    data = np.frombuffer(gzip.decompress(body), dtype=np.uint8).reshape((14, 12, 7, 3), order="F").copy()
    data[13, 11, 6, 0] = 1  # outside Segment0_Extent
    data[3, 3, 2, 0] = 2  # inside it, but not the label value 1
    (tmp_path / "edited.seg.nrrd").write_bytes(header + b"\n\n" + gzip.compress(data.tobytes(order="F")))
    first = read_seg_nrrd(tmp_path / "edited.seg.nrrd")[0]
    expected = masks[0].copy()
    expected[3, 3, 2] = False
    np.testing.assert_array_equal(sitk.GetArrayFromImage(first.mask), _zyx(expected))


def test_utf8_names_and_tags_round_trip_and_are_written_as_utf8(tmp_path):
    mask = sitk.GetImageFromArray(_zyx(overlapping_masks()[0]))
    name, note = "poumon gauche (lésion)", "vu par Dr Müller, 王医生"
    path = write_seg_nrrd(tmp_path / "utf8.seg.nrrd", [Segment("s1", name, mask, tags={SITE_TAG: "lung",
                                                                                        "Note": note})])
    header = path.read_bytes().split(b"\n\n", 1)[0]
    assert f"Segment0_Name:={name}\n".encode() in header + b"\n"
    assert note.encode("utf-8") in header
    [segment] = read_seg_nrrd(path)
    assert (segment.name, segment.tags) == (name, {SITE_TAG: "lung", "Note": note})


def test_a_utf8_header_written_elsewhere_and_a_latin1_line_are_read(tmp_path):
    masks = overlapping_masks()[:1]
    [segment] = read_seg_nrrd(slicer_410_file(tmp_path / "a.seg.nrrd", masks, ["lésion ½"], (0, 0, 0), np.eye(3)))
    assert segment.name == "lésion ½"
    latin1 = (tmp_path / "a.seg.nrrd").read_bytes().replace("lésion ½".encode(), "lésion".encode("latin-1"))
    (tmp_path / "b.seg.nrrd").write_bytes(latin1)
    assert read_seg_nrrd(tmp_path / "b.seg.nrrd")[0].name == "lésion"


def test_a_line_break_in_a_name_is_refused_before_writing(tmp_path):
    mask = sitk.GetImageFromArray(_zyx(overlapping_masks()[0]))
    with pytest.raises(InputError, match="Segment0_Name contains a line break"):
        write_seg_nrrd(tmp_path / "x.seg.nrrd", [Segment("s1", "liver\n1", mask)])
    assert not (tmp_path / "x.seg.nrrd").exists()


def _layered(tmp_path, key_values: dict[str, str], data: np.ndarray | None = None):
    data = np.zeros((6, 5, 4), dtype=np.uint8) if data is None else data
    fields = [("space", "left-posterior-superior"), ("space directions", "(1,0,0) (0,1,0) (0,0,1)"),
              ("kinds", "domain domain domain"), ("endian", "little"), ("space origin", "(0,0,0)")]
    return write_nrrd(tmp_path / "layered.seg.nrrd", data, fields, key_values, encoding="raw")


@pytest.mark.parametrize("key_values, message", [
    ({"Segment0_ID": "a", "Segment1_ID": "b", "Segment1_Name": "lung_1"},
     "segment 'lung_1' is in layer 1, but the file holds 1 layer"),
    ({"Segment0_ID": "a", "Segment0_Layer": "first"}, "field Segment0_Layer is 'first', not a whole number"),
    ({"Segment0_ID": "a", "Segmentation_Extent": "0 5 0 4 0 3"}, "not Slicer 4.5's 4D layout"),
])
def test_damaged_headers_are_refused_in_one_line(tmp_path, key_values, message):
    path = _layered(tmp_path, key_values)
    with pytest.raises(InputError, match=message) as error:
        read_seg_nrrd(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_the_command_line_refuses_a_damaged_segmentation_with_one_line_and_exit_2(tmp_path, capsys):
    ct = sitk.Image(6, 5, 4, sitk.sitkInt16) - 1000
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    space_4d = np.zeros((6, 5, 4, 2), dtype=np.uint8)
    fields = [("space dimension", "4"), ("space directions", "(1,0,0,0) (0,1,0,0) (0,0,1,0) (0,0,0,1)"),
              ("kinds", "domain domain domain domain"), ("endian", "little"), ("space origin", "(0,0,0,0)")]
    path = write_nrrd(tmp_path / "rt.seg.nrrd", space_4d, fields, {"Segment0_ID": "a"})  # no Segmentation_Extent
    code = main(["extract", "--ct", str(tmp_path / "ct.nrrd"), "--lesions", str(path),
                 "--out", str(tmp_path / "f.csv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "rt.seg.nrrd" in err and "without a leading list axis" in err and "Save it again from Slicer" in err
