"""The first-order class that computes its repeated statistics once gives stock pyradiomics' values, bit for bit."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from radiomics.firstorder import RadiomicsFirstOrder

from abcir.features.firstorder_features import with_repeated_statistics_once


def features(feature_class: type, image: np.ndarray, mask: np.ndarray) -> dict:
    """Every first-order feature of ``image`` (HU-like floats) in ``mask``, as ``execute`` returns them."""
    instance = feature_class(sitk.GetImageFromArray(image), sitk.GetImageFromArray(mask.astype(np.uint8)),
                             binWidth=25, voxelArrayShift=1000)
    instance.enableAllFeatures()
    return instance.execute()


def assert_bitwise_equal(ours: dict, stock: dict) -> None:
    """The same names, and each value the same double (NaN included)."""
    assert list(ours) == list(stock)
    for name in stock:
        assert np.asarray(ours[name]).tobytes() == np.asarray(stock[name]).tobytes(), name


def images():
    """A small 3D image with a mask holding at least two voxels: flat regions, few and many gray levels."""
    shape = st.tuples(st.integers(1, 5), st.integers(2, 6), st.integers(2, 6))
    return shape.flatmap(lambda size: st.tuples(
        arrays(np.float64, size, elements=st.one_of(st.sampled_from([0.0, 40.0, -1000.0]),
                                                   st.floats(-1024, 3071, allow_nan=False))),
        arrays(np.bool_, size, elements=st.booleans()).filter(lambda mask: mask.sum() >= 2)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=images())
@example(case=(np.full((2, 3, 3), 40.0), np.ones((2, 3, 3), dtype=bool)))  # flat: Skewness and Kurtosis change m2
def test_random_regions_as_stock(case):
    image, mask = case
    assert_bitwise_equal(features(with_repeated_statistics_once(RadiomicsFirstOrder), image, mask),
                         features(RadiomicsFirstOrder, image, mask))


def test_only_first_order_changes():
    first_order = with_repeated_statistics_once(RadiomicsFirstOrder)
    assert first_order is not RadiomicsFirstOrder and issubclass(first_order, RadiomicsFirstOrder)
    assert (first_order.__name__, first_order.__module__) == ("RadiomicsFirstOrder", "radiomics.firstorder")
    assert first_order.getFeatureNames() == RadiomicsFirstOrder.getFeatureNames()
    assert with_repeated_statistics_once(dict) is dict
