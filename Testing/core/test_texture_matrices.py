"""The numpy texture matrices are pyradiomics' C ones (``radiomics._cmatrices``), array for array."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from radiomics import cMatrices, getFeatureClasses

from abcir.features import texture_matrices
from abcir.features.engine import lesion_values
from abcir.features.preparation import prepare_lesion
from abcir.imaging.ct import read_ct
from abcir.patient.lesions import align_to_ct
from abcir.features.texture_matrices import with_numpy_matrices

FUNCTIONS = ("calculate_glcm", "calculate_glrlm", "calculate_gldm", "calculate_ngtdm")


@pytest.fixture(autouse=True, scope="module")
def numpy_at_every_size():
    """Small masks go to C for speed only (``MINIMUM_VOXELS``): here numpy computes every size it can."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(texture_matrices, "MINIMUM_VOXELS", dict.fromkeys(texture_matrices.MINIMUM_VOXELS, 0))
        yield


def outcome(function, *args):
    """What a call gives: its result, or the type and message of what it raised."""
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 (the C code's exceptions are part of what is compared)
        return type(error), str(error)


def assert_same(ours, theirs) -> None:
    """Equal arrays (dtype, shape, every element), tuple for tuple; or the same exception."""
    assert type(ours) is type(theirs)
    if isinstance(theirs, tuple):
        assert len(ours) == len(theirs)
        for mine, reference in zip(ours, theirs):
            assert_same(mine, reference)
    elif isinstance(theirs, np.ndarray):
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        assert np.array_equal(ours, theirs)
    else:
        assert ours == theirs


def calls(image, mask, ng, alpha=0, force2d=False, force2d_dimension=0, distances=(1,)):
    """Each function's ``_cmatrices`` arguments, as pyradiomics' feature classes build them."""
    distances = np.array(distances)
    nr = max(image.shape)
    return {
        "calculate_glcm": (image, mask, distances, ng, force2d, force2d_dimension),
        "calculate_glrlm": (image, mask, ng, nr, force2d, force2d_dimension),
        "calculate_gldm": (image, mask, distances, ng, alpha, force2d, force2d_dimension),
        "calculate_ngtdm": (image, mask, distances, ng, force2d, force2d_dimension),
    }


def assert_as_c(image, mask, ng, **options) -> None:
    before = image.copy(), mask.copy()
    for name, args in calls(image, mask, ng, **options).items():
        assert_same(outcome(getattr(texture_matrices, name), *args), outcome(getattr(cMatrices, name), *args))
    assert np.array_equal(before[0], image) and np.array_equal(before[1], mask)  # inputs left as they were


@st.composite
def texture_inputs(draw):
    """An image (gray levels 1..Ng in the mask, anything outside) and a mask of one of several kinds."""
    ndim = draw(st.sampled_from((3, 3, 3, 2, 1)))
    shape = draw(st.tuples(*[st.integers(1, 9)] * ndim))
    ng = draw(st.one_of(st.integers(1, 6), st.integers(7, 40), st.just(300)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    kind = draw(st.sampled_from(("random", "sparse", "one voxel", "whole", "holes", "one slice")))
    if kind == "random":
        mask = rng.random(shape) < 0.6
    elif kind == "sparse":  # scattered voxels: non-contiguous, many lines with one voxel
        mask = rng.random(shape) < 0.15
    elif kind == "one voxel":
        mask = np.zeros(shape, dtype=bool)
        mask[tuple(rng.integers(0, n) for n in shape)] = True
    elif kind == "whole":  # touches every border
        mask = np.ones(shape, dtype=bool)
    elif kind == "holes":
        mask = rng.random(shape) < 0.9
        mask[tuple(slice(1, -1) for _ in shape)] = False
    else:  # 2D-thin: one slice along one axis
        mask = np.zeros(shape, dtype=bool)
        axis = rng.integers(0, ndim)
        index = [slice(None)] * ndim
        index[axis] = rng.integers(0, shape[axis])
        mask[tuple(index)] = rng.random(mask[tuple(index)].shape) < 0.8
    if draw(st.booleans()):  # flat region
        image = np.full(shape, rng.integers(1, ng + 1), dtype=np.int64)
    else:
        image = rng.integers(1, ng + 1, shape)
    image[~mask] = rng.integers(-3, ng + 4, int((~mask).sum()))  # values outside the mask are never read
    return image, mask, ng


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=texture_inputs(), alpha=st.integers(0, 2), force2d=st.booleans(), force2d_dimension=st.integers(0, 3))
# Runs of length 1 only, yet lines with two voxels of the mask (C's multiElement): in contact ...
@example(case=(np.array([[[1, 2]]]), np.ones((1, 1, 2), bool), 2), alpha=0, force2d=False, force2d_dimension=0)
# ... and with a gap.
@example(case=(np.array([[[1, 5, 1]]]), np.array([[[True, False, True]]]), 1), alpha=0, force2d=False,
         force2d_dimension=0)
# No line with two voxels along z: that direction counts no runs.
@example(case=(np.array([[[1, 1]], [[1, 1]]]), np.array([[[True, False]], [[False, True]]]), 1), alpha=1,
         force2d=False, force2d_dimension=0)
def test_random_images_as_c(case, alpha, force2d, force2d_dimension):
    image, mask, ng = case
    assert_as_c(image, mask, ng, alpha=alpha, force2d=force2d, force2d_dimension=force2d_dimension)


def test_neighbour_angles_are_the_c_ones():
    for shape in ((5, 6, 7), (1, 6, 7), (5, 1, 7), (5, 6, 1), (1, 1, 7), (4, 5), (1, 5), (6,)):
        mask = np.ones(shape, dtype=bool)
        image = np.ones(shape, dtype=np.int64)
        for force2d, dimension in ((False, 0), (True, 0), (True, 1), (True, 2), (True, 5)):
            axis = dimension if force2d and dimension < len(shape) else None
            ours = texture_matrices.neighbour_angles(shape, False, axis)
            c_result = outcome(cMatrices.calculate_glcm, image, mask, np.array([1]), 1, force2d, dimension)
            if c_result[0] is RuntimeError:  # "Error getting angle count.": nothing moves
                assert ours.shape == (0, len(shape))
            else:
                assert_same(ours, c_result[1])


def test_inputs_outside_the_vectorised_scope_go_to_c():
    rng = np.random.default_rng(3)
    image = rng.integers(1, 9, (6, 7, 8))
    mask = rng.random(image.shape) < 0.7
    assert_as_c(image, mask, 8, distances=(1, 2))  # other distances
    assert_as_c(image, mask, 8, distances=(2,))
    out_of_range = image.copy()
    out_of_range[mask.nonzero()[0][0], mask.nonzero()[1][0], mask.nonzero()[2][0]] = 0  # a level below 1
    assert_as_c(out_of_range, mask, 8)
    assert_as_c(image.astype(np.float64), mask, 8)  # not integers
    assert_as_c(np.ones((1, 1, 1), np.int64), np.ones((1, 1, 1), bool), 1)  # one voxel: C raises
    assert_as_c(image, mask, 8.0)  # C reads ints: it raises
    assert_as_c(image, mask, 8, alpha=0.5)
    assert_as_c(image, mask, 8, alpha=2 ** 40)
    short_nr = calls(image, mask, 8)["calculate_glrlm"][:3] + (3, False, 0)
    assert_same(texture_matrices.calculate_glrlm(*short_nr), cMatrices.calculate_glrlm(*short_nr))
    voxels = np.array(np.nonzero(mask))[:, :5]
    for name, args in calls(image, mask, 8).items():  # voxel-based kernels
        assert_same(getattr(texture_matrices, name)(*args, 1, voxels), getattr(cMatrices, name)(*args, 1, voxels))


def test_small_masks_go_to_c(monkeypatch):
    rng = np.random.default_rng(5)
    image = rng.integers(1, 5, (12, 12, 12))
    mask = np.zeros(image.shape, dtype=bool)
    mask[2:10, 2:10, 2:10] = rng.random((8, 8, 8)) < 0.9  # about 460 voxels
    voxels = int(mask.sum())
    monkeypatch.setattr(texture_matrices, "MINIMUM_VOXELS", {"glcm": voxels + 1, "glrlm": voxels + 1,
                                                              "gldm": voxels, "ngtdm": voxels})
    to_c = []
    monkeypatch.setattr(texture_matrices, "cMatrices", type("Recorder", (), {
        name: staticmethod(lambda *args, _name=name: to_c.append(_name) or getattr(cMatrices, _name)(*args))
        for name in FUNCTIONS}))
    assert_as_c(image, mask, 4)
    assert sorted(to_c) == ["calculate_glcm", "calculate_glrlm"]


def test_feature_classes():
    classes = getFeatureClasses()
    for name in ("glszm", "firstorder", "shape"):
        assert with_numpy_matrices(classes[name]) is classes[name]
    for name in ("glcm", "glrlm", "gldm", "ngtdm"):
        numpy_class = with_numpy_matrices(classes[name])
        assert issubclass(numpy_class, classes[name]) and numpy_class.__module__ == classes[name].__module__
        # pyradiomics' own statements, with cMatrices bound to the numpy functions.
        assert numpy_class._calculateMatrix.__code__ is classes[name]._calculateMatrix.__code__
        assert numpy_class._calculateMatrix.__globals__["cMatrices"] is texture_matrices._MATRICES


@pytest.fixture(scope="module")
def real_ct(shared_data):
    folder = shared_data / "ct_dicom_example"
    return read_ct(folder / "dicom"), sitk.ReadImage(str(folder / "organs_totalsegmentator.nii.gz"))


def organ_calls(real_ct, label: int, monkeypatch) -> list[tuple[str, tuple]]:
    """The arguments pyradiomics' feature classes pass while abcir extracts one organ (12 images).

    The numpy functions' way to the C code is cut meanwhile: none of these calls goes to C.
    """
    ct, labels = real_ct
    recorded: list[tuple[str, tuple]] = []

    def recorder(name, function):
        def record(*args):
            recorded.append((name, args))
            return function(*args)
        return record

    for name in FUNCTIONS:
        monkeypatch.setattr(texture_matrices._MATRICES, name, recorder(name, getattr(texture_matrices, name)))
    monkeypatch.setattr(texture_matrices, "cMatrices", None)
    mask = align_to_ct(str(label), sitk.Cast(labels == label, sitk.sitkUInt8), ct)
    lesion_values(prepare_lesion(ct, mask, str(label)))
    monkeypatch.undo()
    return recorded


@pytest.mark.parametrize("label", [7, 8, 20])  # pancreas, adrenal gland, colon
def test_real_organs_as_c(real_ct, label, monkeypatch):
    recorded = organ_calls(real_ct, label, monkeypatch)
    assert sorted(name for name, _ in recorded) == sorted(FUNCTIONS * 12)  # 12 images
    for name, args in recorded:
        assert_same(getattr(texture_matrices, name)(*args), getattr(cMatrices, name)(*args))


@pytest.mark.slow
@pytest.mark.parametrize("label", [1, 5])  # spleen (250,000 voxels at 1 mm), liver (700,000)
def test_large_real_organs_as_c(real_ct, label, monkeypatch):
    for name, args in organ_calls(real_ct, label, monkeypatch):
        assert_same(getattr(texture_matrices, name)(*args), getattr(cMatrices, name)(*args))
