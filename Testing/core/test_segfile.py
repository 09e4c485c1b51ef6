"""``.seg.nrrd`` files written by abcir read back with the same segments, tags, voxels and geometry."""

from __future__ import annotations

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk

from abcir.errors import InputError
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd


def _segments():
    base = np.zeros((6, 20, 30), dtype=np.uint8)
    geometry = sitk.GetImageFromArray(base)
    geometry.SetSpacing((0.7, 0.8, 2.5))
    geometry.SetOrigin((10.0, -20.0, 5.0))
    geometry.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    masks = []
    for box in [(slice(1, 4), slice(2, 8), slice(3, 9)), (slice(2, 5), slice(5, 12), slice(6, 15))]:
        array = base.copy()
        array[box] = 1
        mask = sitk.GetImageFromArray(array)
        mask.CopyInformation(geometry)
        masks.append(mask)
    return [Segment("Segment_1", "liver_1", masks[0], (0.9, 0.4, 0.2), {SITE_TAG: "liver", "Note": "a:b"}),
            Segment("Segment_2", "lymph_node_1", masks[1], (0.3, 0.8, 0.4), {SITE_TAG: "lymph_node"})]


def test_round_trip_with_overlapping_segments(tmp_path):
    segments = _segments()
    path = write_seg_nrrd(tmp_path / "lesions.seg.nrrd", segments)
    data, header = nrrd.read(str(path))
    assert data.ndim == 4 and header["kinds"][0] == "list"  # overlapping segments need two layers
    back = read_seg_nrrd(path)
    for original, read in zip(segments, back):
        assert (read.segment_id, read.name, read.tags) == (original.segment_id, original.name, original.tags)
        assert read.color == pytest.approx(original.color)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(read.mask), sitk.GetArrayFromImage(original.mask))
        assert read.mask.GetOrigin() == pytest.approx(original.mask.GetOrigin())
        assert read.mask.GetSpacing() == pytest.approx(original.mask.GetSpacing())
        assert read.mask.GetDirection() == pytest.approx(original.mask.GetDirection())


def test_ras_header_is_converted_to_lps(tmp_path):
    segments = _segments()[:1]
    path = write_seg_nrrd(tmp_path / "lps.seg.nrrd", segments)
    data, header = nrrd.read(str(path))
    header["space"] = "right-anterior-superior"
    header["space directions"] = header["space directions"] @ np.diag([-1.0, -1.0, 1.0])
    header["space origin"] = header["space origin"] * np.array([-1.0, -1.0, 1.0])
    nrrd.write(str(tmp_path / "ras.seg.nrrd"), data, header)
    read = read_seg_nrrd(tmp_path / "ras.seg.nrrd")[0]
    assert read.mask.GetOrigin() == pytest.approx(segments[0].mask.GetOrigin())
    assert read.mask.GetDirection() == pytest.approx(segments[0].mask.GetDirection())


def test_never_overwrites_and_refuses_mixed_grids(tmp_path):
    segments = _segments()
    path = write_seg_nrrd(tmp_path / "a.seg.nrrd", segments)
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        write_seg_nrrd(path, segments[:1])
    assert path.read_bytes() == before
    moved = sitk.Image(segments[1].mask)
    moved.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(InputError, match="Segment 'lymph_node_1': its grid differs"):
        write_seg_nrrd(tmp_path / "b.seg.nrrd", [segments[0], Segment("x", "lymph_node_1", moved)])
    assert not (tmp_path / "b.seg.nrrd").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["a.seg.nrrd"]


def test_plain_labelmap_is_not_a_segmentation(tmp_path):
    nrrd.write(str(tmp_path / "plain.seg.nrrd"), np.ones((4, 4, 4), dtype=np.uint8))
    with pytest.raises(InputError, match="no SegmentN_ fields"):
        read_seg_nrrd(tmp_path / "plain.seg.nrrd")


def test_same_segments_give_the_same_bytes(tmp_path):
    segments = _segments()
    first = write_seg_nrrd(tmp_path / "first.seg.nrrd", segments).read_bytes()
    second = write_seg_nrrd(tmp_path / "second.seg.nrrd", segments).read_bytes()
    assert first == second and b"# on " not in first
