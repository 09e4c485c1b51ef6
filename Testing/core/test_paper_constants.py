"""The paper's numbers in ``abcir.paper`` agree with the shipped files that carry them too."""

from __future__ import annotations

import yaml

from abcir.features.catalogue import feature_names, resampled_spacing_mm
from abcir.paper import N_FEATURES, RESAMPLED_SPACING_MM
from abcir.resources import parameter_file


def test_the_parameter_file_resamples_to_the_paper_s_spacing():
    settings = yaml.safe_load(parameter_file().read_text(encoding="utf-8"))["setting"]
    assert tuple(settings["resampledPixelSpacing"]) == RESAMPLED_SPACING_MM == resampled_spacing_mm()
    assert settings["interpolator"] == "sitkBSpline"  # "cubic spline interpolation" (Methods)


def test_the_feature_list_has_the_paper_s_count():
    assert len(feature_names()) == N_FEATURES == 107 + 279 + 744  # original + LoG + wavelet (Methods)
