"""abcir's GLCM class (``abcir.features.glcm_features``) gives stock pyradiomics' values, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from radiomics.glcm import RadiomicsGLCM

from abcir.features import glcm_features
from abcir.features.engine import feature_inputs
from abcir.features.glcm_features import dense_q, mcc_q, with_fast_glcm
from abcir.features.preparation import configured_extractor, filter_arguments, prepare_lesion
from abcir.features.radiomics_log import quiet_radiomics
from abcir.features.texture_matrices import with_numpy_matrices
from abcir.imaging.ct import read_ct
from abcir.patient.lesions import align_to_ct

FAST = with_fast_glcm(RadiomicsGLCM)


def same_array(ours: np.ndarray, stock: np.ndarray) -> None:
    """Same dtype, shape, strides (memory order: what numpy's reductions follow) and bytes (NaN, signs of zeros)."""
    assert (ours.dtype, ours.shape) == (stock.dtype, stock.shape)
    assert ours.size == 0 or ours.strides == stock.strides
    assert ours.tobytes() == stock.tobytes()


def same_values(ours: dict, stock: dict) -> None:
    """The same feature names, each value the same bytes (voxel-based maps as arrays)."""
    assert list(ours) == list(stock)
    for name, value in stock.items():
        mine = ours[name]
        if isinstance(value, sitk.Image):
            mine, value = sitk.GetArrayFromImage(mine), sitk.GetArrayFromImage(value)
        assert np.asarray(mine).tobytes() == np.asarray(value).tobytes(), name


def instance(feature_class: type, image: np.ndarray, mask: np.ndarray, **options):
    """A GLCM instance of the image (gray levels as they are: bin width 1) with every feature enabled."""
    made = feature_class(sitk.GetImageFromArray(image.astype(np.float64)),
                         sitk.GetImageFromArray(mask.astype(np.uint8)), binWidth=1, **options)
    made.enableAllFeatures()
    return made


@quiet_radiomics()
def assert_as_stock(image: np.ndarray, mask: np.ndarray, **options) -> None:
    """Features, pxAddy/pxSuby, cluster powers and MCC's Q (banded where it applies) equal stock's."""
    ours, stock = instance(FAST, image, mask, **options), instance(RadiomicsGLCM, image, mask, **options)
    same_values(ours.execute(), stock.execute())
    if options.get("voxelBased"):
        return
    for name in ("pxAddy", "pxSuby", "px", "py", "ux", "uy", "HXY"):
        same_array(ours.coefficients[name], stock.coefficients[name])
    p, coefficients = ours.P_glcm, ours.coefficients
    i, j, ux, uy = (coefficients[name] for name in ("i", "j", "ux", "uy"))
    for exponent in (3, 4):
        expected = ((i + j)[None, :, :, None] - ux - uy) ** exponent  # stock's statement
        same_array(glcm_features.cluster_power(ours._sum_groups, ux, uy, exponent, p.shape), expected)
    reference = dense_q(p, coefficients["px"], coefficients["py"], coefficients["eps"])
    for method in ("banded", "auto"):
        same_array(mcc_q(p, coefficients["px"], coefficients["py"], coefficients["eps"], method), reference)


@st.composite
def glcm_inputs(draw):
    """A small image of integer gray levels and a mask holding at least one voxel, of one of several kinds."""
    shape = draw(st.sampled_from([(4, 5, 6), (1, 6, 7), (5, 1, 6), (2, 8, 8), (6, 6, 6), (3, 3, 3)]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    kind = draw(st.sampled_from(("random", "sparse", "holes", "one slice", "whole", "blob")))
    if kind == "random":
        mask = rng.random(shape) < 0.6
    elif kind == "sparse":  # scattered voxels: sparse GLCMs, angles without pairs
        mask = rng.random(shape) < 0.2
    elif kind == "holes":
        mask = rng.random(shape) < 0.9
        mask[tuple(slice(1, -1) for _ in shape)] = False
    elif kind == "one slice":  # 2D-thin along one axis
        mask = np.zeros(shape, dtype=bool)
        axis = int(rng.integers(0, 3))
        index = [slice(None)] * 3
        index[axis] = int(rng.integers(0, shape[axis]))
        mask[tuple(index)] = True
    elif kind == "whole":
        mask = np.ones(shape, dtype=bool)
    else:  # a ball: gray levels vary smoothly, as in real lesions
        grid = np.indices(shape) - (np.array(shape) - 1)[:, None, None, None] / 2
        mask = np.sum(grid ** 2, axis=0) <= (max(shape) / 2) ** 2
    if not mask.any():
        mask[tuple(int(rng.integers(0, n)) for n in shape)] = True
    levels = draw(st.sampled_from(("flat", "two", "few", "many", "gaps", "smooth")))
    if levels == "flat":
        image = np.full(shape, 7)
    elif levels == "two":
        image = rng.integers(1, 3, shape)
    elif levels == "few":
        image = rng.integers(1, 6, shape)
    elif levels == "many":
        image = rng.integers(1, 90, shape)
    elif levels == "gaps":  # gray levels absent from the ROI: stock deletes their rows and columns
        image = rng.choice([1, 4, 5, 30, 31, 80], shape)
    else:  # neighbours close in gray level: banded Q with narrow bands
        image = np.add.accumulate(rng.integers(-2, 3, shape), axis=2) + np.arange(shape[1])[:, None] * 3 + 40
    options = draw(st.sampled_from([{}, {"symmetricalGLCM": False}, {"weightingNorm": "manhattan"},
                                    {"weightingNorm": "no_weighting"}, {"force2D": True},
                                    {"force2D": True, "force2Ddimension": 2}, {"distances": [1, 2]}]))
    return image, mask, options


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=glcm_inputs())
@example(case=(np.array([[[1, 2, 1, 2]]]), np.ones((1, 1, 4), bool), {}))  # one angle: Nd = 1
@example(case=(np.array([[[3, 3], [3, 3]]]), np.array([[[True, False], [False, False]]]), {}))  # one voxel
def test_random_images_as_stock(case):
    image, mask, options = case
    assert_as_stock(image, mask, **options)


@pytest.mark.parametrize("levels", [3, 60])
def test_voxel_based_as_stock(levels):
    rng = np.random.default_rng(levels)
    image = rng.integers(1, levels + 1, (3, 5, 5))
    mask = rng.random(image.shape) < 0.7
    assert_as_stock(image, mask, voxelBased=True, kernelRadius=1)


def test_banded_q_with_several_voxels_and_nan_angles():
    rng = np.random.default_rng(11)
    p = rng.random((3, 50, 50, 13)) * (rng.random((3, 50, 50, 13)) < 0.1)  # (Nv, Ng, Ng, Nd), sparse
    p[1, :, :, 2] = 0  # an empty column block
    px, py, eps = p.sum(2, keepdims=True), p.sum(1, keepdims=True), np.spacing(1)
    same_array(mcc_q(p, px, py, eps, "banded"), dense_q(p, px, py, eps))
    p[2, :, :, 4] = np.nan  # an angle without pairs: stock's NaNs, its loop
    px, py = p.sum(2, keepdims=True), p.sum(1, keepdims=True)
    same_array(mcc_q(p, px, py, eps, "banded"), dense_q(p, px, py, eps))


def test_cost_model_takes_bands_for_many_sparse_levels(monkeypatch):
    rng = np.random.default_rng(2)
    ng = 120
    near = np.abs(np.subtract.outer(np.arange(ng), np.arange(ng))) <= 3  # neighbours differ by <= 3 levels
    p = rng.random((1, ng, ng, 13)) * near[None, :, :, None]
    px, py, eps = p.sum(2, keepdims=True), p.sum(1, keepdims=True), np.spacing(1)
    used = []
    monkeypatch.setattr(glcm_features, "banded_q", lambda *args: used.append("banded") or dense_q(*args[:4]))
    mcc_q(p, px, py, eps)
    mcc_q(p[:, :20, :20], px[:, :20], py[:, :, :20], eps)  # few gray levels: stock's loop
    assert used == ["banded"]


def test_class_identity():
    assert FAST is not RadiomicsGLCM and issubclass(FAST, RadiomicsGLCM)
    assert (FAST.__name__, FAST.__module__) == ("RadiomicsGLCM", "radiomics.glcm")
    assert FAST.getFeatureNames() == RadiomicsGLCM.getFeatureNames()
    assert with_fast_glcm(RadiomicsGLCM) is FAST  # cached
    numpy_class = with_numpy_matrices(RadiomicsGLCM)
    assert issubclass(with_fast_glcm(numpy_class), numpy_class)
    assert with_fast_glcm(dict) is dict


@pytest.fixture(scope="module")
def colon_pieces(shared_data):
    """The wavelet pieces of the real colon (label 20) as the engine computes them."""
    folder = shared_data / "ct_dicom_example"
    ct = read_ct(folder / "dicom")
    labels = sitk.ReadImage(str(folder / "organs_totalsegmentator.nii.gz"))
    mask = align_to_ct("20", sitk.Cast(labels == 20, sitk.sitkUInt8), ct)
    with quiet_radiomics():
        return [piece for piece in feature_inputs(prepare_lesion(ct, mask, "20")) if piece.image_type == "Wavelet"]


@pytest.mark.parametrize("band", ["wavelet-LLL", "wavelet-HHH"])
def test_real_organ_as_stock(colon_pieces, band):
    piece = next(piece for piece in colon_pieces if piece.name == band)
    extractor = configured_extractor()
    arguments = filter_arguments(extractor, piece.image_type)
    results, p_glcm = [], None
    with quiet_radiomics():
        for feature_class in (with_fast_glcm(with_numpy_matrices(RadiomicsGLCM)), RadiomicsGLCM):
            made = feature_class(piece.image, piece.mask, **arguments)
            for name in extractor.enabledFeatures["glcm"] or ():
                made.enableFeatureByName(name)
            results.append(made.execute())
            p_glcm, coefficients = made.P_glcm, made.coefficients
    same_values(*results)
    reference = dense_q(p_glcm, coefficients["px"], coefficients["py"], coefficients["eps"])
    same_array(mcc_q(p_glcm, coefficients["px"], coefficients["py"], coefficients["eps"], "banded"), reference)
