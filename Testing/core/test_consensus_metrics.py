"""Consensus core on synthetic grids: surface distances, matching, building, the session log."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree

from abcir.consensus.comparison import ComparedInputs, InputFile, compare_readers
from abcir.consensus.building import Decision, build_consensus
from abcir.consensus.matching import CENTROID, OVERLAP, UNMATCHED, match_lesions
from abcir.consensus.metrics import dice, surface_distances
from abcir.consensus.session import load_session, new_session, save_session, write_consensus
from abcir.errors import InputError
from abcir.imaging.ct import file_sha256
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion

SPACING = (0.7, 0.9, 2.5)


def _grid() -> sitk.Image:
    """An anisotropic grid with a flipped y axis, so index and physical space differ."""
    image = sitk.Image(48, 40, 16, sitk.sitkUInt8)
    image.SetSpacing(SPACING)
    image.SetOrigin((-10.0, 30.0, 100.0))
    image.SetDirection((1, 0, 0, 0, -1, 0, 0, 0, 1))
    return image


def _ball(centre_mm, radius_mm, semi_axes=(1.0, 1.0, 1.0)) -> sitk.Image:
    grid = _grid()
    z, y, x = np.indices(sitk.GetArrayViewFromImage(grid).shape)
    points = np.array([grid.TransformIndexToPhysicalPoint((0, 0, 0))])
    origin = points[0]
    axes = np.array(grid.GetDirection()).reshape(3, 3) * np.array(SPACING)
    physical = origin + np.stack([x, y, z], axis=-1) @ axes.T
    inside = (((physical - np.array(centre_mm)) / np.array(semi_axes)) ** 2).sum(axis=-1) <= radius_mm ** 2
    mask = sitk.GetImageFromArray(inside.astype(np.uint8))
    mask.CopyInformation(grid)
    return mask


def _lesion(name, mask, site="liver") -> Lesion:
    return Lesion(name, site, mask, measure_lesion(mask))


def _contour_points(mask: sitk.Image) -> tuple[np.ndarray, sitk.Image]:
    padded = sitk.ConstantPad(mask, (1, 1, 1), (1, 1, 1), 0)
    contour = sitk.BinaryContour(padded, fullyConnected=False, backgroundValue=0, foregroundValue=1)
    index = np.argwhere(sitk.GetArrayViewFromImage(contour) > 0)[:, ::-1]
    return np.array([contour.TransformIndexToPhysicalPoint([int(i) for i in row]) for row in index]), contour


def reference_distances(a: sitk.Image, b: sitk.Image) -> tuple[float, float, float]:
    """(HD95, Hausdorff by cKDTree, Hausdorff by SimpleITK) on the face-connected contours, in mm."""
    points_a, contour_a = _contour_points(a)
    points_b, contour_b = _contour_points(b)
    a_to_b = cKDTree(points_b).query(points_a)[0]
    b_to_a = cKDTree(points_a).query(points_b)[0]
    hausdorff = sitk.HausdorffDistanceImageFilter()
    hausdorff.Execute(contour_a, contour_b)
    return (max(np.percentile(a_to_b, 95), np.percentile(b_to_a, 95)), max(a_to_b.max(), b_to_a.max()),
            hausdorff.GetHausdorffDistance())


@pytest.mark.parametrize("moved", [(2.0, 0.0, 0.0), (0.0, -3.0, 5.0), (1.0, 1.0, 1.0)])
def test_surface_distances_match_independent_computations(moved):
    a = _ball((6.0, 12.0, 118.0), 7.0, semi_axes=(1.0, 0.7, 1.3))
    b = _ball((6.0 + moved[0], 12.0 + moved[1], 118.0 + moved[2]), 6.0)
    distances = surface_distances(a, b)
    hd95, hausdorff_tree, hausdorff_sitk = reference_distances(a, b)
    assert distances.hd95_mm == pytest.approx(hd95, abs=1e-9)
    assert distances.hausdorff_mm == pytest.approx(hausdorff_tree, abs=1e-9)
    assert distances.hausdorff_mm == pytest.approx(hausdorff_sitk, abs=1e-6)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(a, b)
    assert dice(a, b) == pytest.approx(overlap.GetDiceCoefficient(), abs=1e-12)


def _whole_grid_surface_distances(a: sitk.Image, b: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """surface_distances as it was computed on the whole grid: the union's box found by np.nonzero of it all."""
    from scipy import ndimage

    array_a, array_b = sitk.GetArrayFromImage(a) != 0, sitk.GetArrayFromImage(b) != 0
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(array_a | array_b))
    crops = [np.pad(array[box], 1) for array in (array_a, array_b)]
    faces = ndimage.generate_binary_structure(3, 1)
    surfaces = [crop & ~ndimage.binary_erosion(crop, structure=faces, border_value=0) for crop in crops]
    sampling = tuple(reversed(a.GetSpacing()))
    to_b = ndimage.distance_transform_edt(~surfaces[1], sampling=sampling)
    to_a = ndimage.distance_transform_edt(~surfaces[0], sampling=sampling)
    return to_b[surfaces[0]], to_a[surfaces[1]]


@pytest.mark.parametrize("seed", range(40))
def test_box_restricted_metrics_equal_the_whole_grid_to_the_bit(seed):
    """Dice, surface distances, STAPLE's region, voxel lists and centroids look only at the masks' box; nothing
    changes."""
    from scipy import ndimage

    from abcir.consensus.building import STAPLE_MARGIN_MM, staple_region
    from abcir.consensus.matching import _voxels, centroid_mm

    rng = np.random.default_rng(seed)
    grid = _grid()
    shape = sitk.GetArrayViewFromImage(grid).shape
    masks = []
    for _ in range(2):
        noise = ndimage.gaussian_filter(rng.random(shape), rng.uniform(0.6, 3.0))
        inside = noise >= np.quantile(noise, 1 - rng.uniform(0.001, 0.05))
        if rng.random() < 0.3:  # scattered voxels too, and the grid's edges
            inside |= rng.random(shape) < 0.001
            inside[rng.integers(shape[0]), 0, :] = True
        mask = sitk.GetImageFromArray(inside.astype(np.uint8) * rng.choice([1, 255]))
        mask.CopyInformation(grid)
        masks.append(mask)
    a, b = masks
    array_a, array_b = sitk.GetArrayFromImage(a) != 0, sitk.GetArrayFromImage(b) != 0
    assert dice(a, b) == 2.0 * np.count_nonzero(array_a & array_b) / (array_a.sum() + array_b.sum())
    distances, expected = surface_distances(a, b), _whole_grid_surface_distances(a, b)
    assert np.array_equal(distances.a_to_b_mm, expected[0]) and np.array_equal(distances.b_to_a_mm, expected[1])
    nonzero = np.nonzero(array_a | array_b)
    margins = [int(np.ceil(STAPLE_MARGIN_MM / spacing)) for spacing in a.GetSpacing()]
    low = [max(int(nonzero[2 - axis].min()) - margins[axis], 0) for axis in range(3)]
    high = [min(int(nonzero[2 - axis].max()) + margins[axis] + 1, a.GetSize()[axis]) for axis in range(3)]
    assert staple_region(a, b) == (low, [stop - start for start, stop in zip(low, high)])
    for mask, array in ((a, array_a), (b, array_b)):
        lesion = _lesion("l", mask)
        assert np.array_equal(_voxels(lesion), np.flatnonzero(array))
        whole_grid = mask.TransformContinuousIndexToPhysicalPoint(
            [float(i) for i in np.argwhere(array).mean(axis=0)[::-1]])
        assert tuple(centroid_mm(lesion)) == whole_grid


def test_identical_masks_agree_perfectly_and_the_image_edge_is_surface():
    array = np.zeros((16, 40, 48), dtype=np.uint8)
    array[0:4, 0:10, 0:10] = 1  # touches three faces of the image
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(_grid())
    same = surface_distances(mask, mask)
    assert same.hausdorff_mm == 0.0 and dice(mask, mask) == 1.0
    # every voxel of the 4-slice block is on a face (edge voxels included): 4*10*10 - interior (2*8*8 at z=1..2)
    assert same.a_to_b_mm.size == 4 * 100 - 2 * 8 * 8


def test_metrics_refuse_other_grids_and_empty_masks():
    a = _ball((6.0, 12.0, 118.0), 6.0)
    other = sitk.Image(10, 10, 10, sitk.sitkUInt8)
    with pytest.raises(InputError, match="different voxel grids"):
        dice(a, other)
    empty = sitk.Image(a)
    empty *= 0
    with pytest.raises(InputError, match="empty"):
        surface_distances(a, empty)


def test_matching_overlap_then_centroid_then_unmatched():
    a = [_lesion("a1", _ball((0.0, 10.0, 110.0), 5.0)),
         _lesion("a2", _ball((20.0, 5.0, 120.0), 3.0)),
         _lesion("a3", _ball((0.0, 0.0, 130.0), 2.0))]
    b = [_lesion("b_far", _ball((20.0, 5.0 + 8.0, 120.0), 2.5)),  # no overlap with a2, centroid 8 mm away
         _lesion("b1", _ball((1.0, 10.0, 110.0), 5.0)),
         _lesion("b_new", _ball((-5.0, 0.0, 104.0), 2.0))]
    matches = match_lesions(a, b, max_centroid_distance_mm=10.0)
    pairs = {m.key: m for m in matches}
    assert pairs[("a1", "b1")].method == OVERLAP
    assert pairs[("a2", "b_far")].method == CENTROID
    assert pairs[("a2", "b_far")].centroid_distance_mm == pytest.approx(8.0, abs=1.0)
    assert pairs[("a3", None)].method == UNMATCHED and pairs[(None, "b_new")].method == UNMATCHED
    assert [m.key for m in matches][:3] == [("a1", "b1"), ("a2", "b_far"), ("a3", None)]
    strict = {m.key for m in match_lesions(a, b, max_centroid_distance_mm=5.0)}
    assert ("a2", None) in strict and (None, "b_far") in strict


@pytest.mark.parametrize("distance", [-1.0, float("nan")])
def test_matching_refuses_a_negative_or_nan_centroid_distance(distance):
    """NaN compared false with every distance, so nothing was matched by centroid, silently."""
    a = [_lesion("a1", _ball((0.0, 10.0, 110.0), 5.0))]
    with pytest.raises(InputError, match=f"Maximum centroid distance {distance} mm: must be 0 or more"):
        match_lesions(a, a, max_centroid_distance_mm=distance)


def test_a_split_lesion_leaves_a_note():
    whole = _lesion("liver_1", _ball((0.0, 10.0, 112.0), 7.0))
    half_1 = _lesion("liver_1", _ball((-3.0, 10.0, 112.0), 4.0))
    half_2 = _lesion("liver_2", _ball((4.0, 10.0, 112.0), 3.0))
    matches = match_lesions([whole], [half_1, half_2])
    assert matches[0].key == ("liver_1", "liver_1")
    assert matches[1].key == (None, "liver_2") and "overlaps liver_1" in matches[1].note


def _comparison():
    a = [_lesion("liver_1", _ball((0.0, 10.0, 112.0), 6.0)), _lesion("lung_1", _ball((18.0, 0.0, 125.0), 3.0),
                                                                      "lung")]
    b = [_lesion("liver_1", _ball((1.0, 10.0, 112.0), 6.0), "peritoneum"),
         _lesion("node_1", _ball((-5.0, 0.0, 104.0), 3.0), "lymph_node")]
    return compare_readers(a, b, "Dr A", "Dr B")


def _decision(key, method, **kwargs):
    return Decision(key[0], key[1], method, decided_by="Dr C", decided_at="2030-01-01T00:00:00+00:00", **kwargs)


def test_agreement_table_reports_sites_and_unmatched():
    comparison = _comparison()
    assert comparison.unmatched("a") == ["lung_1"] and comparison.unmatched("b") == ["node_1"]
    [disagreement] = comparison.site_disagreements()
    assert (disagreement.site_a, disagreement.site_b) == ("liver", "peritoneum")
    row = comparison.lesions[0]
    assert row.volume_diff_percent == pytest.approx(
        100 * (row.volume_b_mm3 - row.volume_a_mm3) / ((row.volume_a_mm3 + row.volume_b_mm3) / 2))
    assert "SITE DIFFERS" in comparison.summary_text() and "only in B: node_1" in comparison.summary_text()


def test_building_methods_and_their_masks():
    comparison = _comparison()
    pair, only_a, only_b = (m.key for m in comparison.matches)
    match = comparison.matches[0]
    base = [_decision(only_a, "a"), _decision(only_b, "exclude")]
    for method, expected in (("union", sitk.Or(match.a.mask, match.b.mask)),
                             ("intersection", sitk.And(match.a.mask, match.b.mask)),
                             ("b", match.b.mask)):
        built = build_consensus(comparison.matches, [_decision(pair, method, site="liver"), *base], "Dr A", "Dr B")
        assert [item.segment.name for item in built] == ["liver_1", "lung_1"]
        np.testing.assert_array_equal(sitk.GetArrayFromImage(built[0].segment.mask),
                                      sitk.GetArrayFromImage(expected))
        assert built[0].segment.tags["ABCImmunoResponse.Consensus.Method"] == method
        assert built[0].segment.tags["ABCImmunoResponse.Site"] == "liver"
        assert built[1].segment.tags["ABCImmunoResponse.Site"] == "lung"
    built = build_consensus(comparison.matches, [_decision(pair, "staple", site="liver"), *base], "Dr A", "Dr B")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(built[0].segment.mask) > 0,
                                  reference_staple(match.a.mask, match.b.mask))
    assert built[0].staple is not None and len(built[0].staple.sensitivity) == 2


def reference_staple(a: sitk.Image, b: sitk.Image) -> np.ndarray:
    """SimpleITK's STAPLE on the union's bounding box + 10 mm (numpy slicing), probability > 0.5 + 1e-6."""
    union = sitk.GetArrayFromImage(a | b) > 0
    box = []
    for axis, positions in enumerate(np.nonzero(union)):  # numpy axes z, y, x
        margin = int(np.ceil(10.0 / a.GetSpacing()[2 - axis]))
        box.append(slice(max(positions.min() - margin, 0), min(positions.max() + margin + 1, union.shape[axis])))
    crops = [sitk.GetImageFromArray(sitk.GetArrayFromImage(mask)[tuple(box)]) for mask in (a, b)]
    staple = sitk.STAPLEImageFilter()
    staple.SetForegroundValue(1.0)
    expected = np.zeros(union.shape, dtype=bool)
    expected[tuple(box)] = sitk.GetArrayFromImage(staple.Execute(crops)) > 0.5 + 1e-6
    return expected


def test_staple_of_nested_outlines_is_the_smaller_one():
    """With one outline inside the other, STAPLE ties (probability 0.5) on the rim: the rim is left out."""
    inner = _ball((6.0, 12.0, 118.0), 5.0)
    outer = sitk.BinaryDilate(inner, (1, 1, 1), sitk.sitkCross)
    a, b = _lesion("liver_1", inner), _lesion("liver_1", outer)
    matches = match_lesions([a], [b])
    [built] = build_consensus(matches, [_decision(matches[0].key, "staple")], "A", "B")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(built.segment.mask), sitk.GetArrayFromImage(inner))


def test_building_refuses_what_the_chair_has_not_decided():
    comparison = _comparison()
    pair, only_a, only_b = (m.key for m in comparison.matches)
    done = [_decision(only_a, "a"), _decision(only_b, "b")]
    with pytest.raises(InputError, match="no decision yet for A liver_1 / B liver_1"):
        build_consensus(comparison.matches, done, "A", "B")
    with pytest.raises(InputError, match="different sites"):
        build_consensus(comparison.matches, [_decision(pair, "union"), *done], "A", "B")
    with pytest.raises(InputError, match="needs both readers"):
        build_consensus(comparison.matches, [_decision(pair, "a"), _decision(only_a, "union"),
                                             _decision(only_b, "b")], "A", "B")
    with pytest.raises(InputError, match="every lesion is excluded"):
        build_consensus(comparison.matches, [_decision(k, "exclude") for k in (pair, only_a, only_b)], "A", "B")
    with pytest.raises(InputError, match="edited outline"):
        build_consensus(comparison.matches, [_decision(pair, "edited"), *done], "A", "B")


def test_session_round_trip_and_refusals(tmp_path):
    comparison = _comparison()
    files = {}
    for side in ("a", "b"):
        files[side] = tmp_path / f"{side}.seg.nrrd"
        files[side].write_bytes(side.encode() * 10)
    inputs = ComparedInputs(InputFile("ct", "0" * 64), InputFile(str(files["a"]), file_sha256(files["a"])),
                            InputFile(str(files["b"]), file_sha256(files["b"])))
    session = new_session(comparison, inputs, "Dr C")
    pair, only_a, only_b = (m.key for m in comparison.matches)
    session = session.decide(_decision(pair, "a", reason="B drew the wrong organ"))
    session = session.decide(_decision(pair, "union", site="liver"))
    session = session.decide(_decision(only_a, "a")).decide(_decision(only_b, "exclude"))
    assert [d.method for d in session.superseded] == ["a"]
    built = build_consensus(comparison.matches, session.decisions, "Dr A", "Dr B",
                            session_file="consensus.session.json")
    saved = write_consensus(tmp_path / "out", session, built)
    log = tmp_path / "out" / "consensus.session.json"
    again = load_session(log)
    assert again == saved
    assert again.output.sha256 == file_sha256(tmp_path / "out" / "consensus.seg.nrrd")
    assert json.loads(log.read_text())["decisions"][0]["method"] == "union"
    with pytest.raises(InputError, match="already exists"):
        write_consensus(tmp_path / "out", session, built)
    with pytest.raises(InputError, match="already exists"):
        save_session(log, session)
    files["b"].write_bytes(b"changed")
    with pytest.raises(InputError, match="has changed since the session"):
        load_session(log)
