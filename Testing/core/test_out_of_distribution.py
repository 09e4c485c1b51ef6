"""One model input far outside the training data is named with its distance, even when all others are typical."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from tiny_bundles import tiny_bundle

from abcir.models.bundle import load_bundle
from abcir.features.catalogue import LesionFeatures, Provenance, feature_names, pyradiomics_version
from abcir.imaging.ct import file_sha256
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.prediction.predict import OOD_Z_LIMIT, predict_features
from abcir.prediction.result import Prediction
from abcir.resources import parameter_file


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return tiny_bundle(tmp_path_factory.mktemp("weights") / "radiomics", "radiomics")


def _rows(vector: np.ndarray) -> list[LesionFeatures]:
    """One lesion whose 1130 values are ``vector`` (so the volume-weighted patient vector is ``vector``)."""
    array = np.zeros((4, 8, 8), dtype=np.uint8)
    array[1:3, 2:6, 2:6] = 1
    mask = sitk.GetImageFromArray(array)
    provenance = Provenance(pyradiomics_version(), file_sha256(parameter_file()), "0" * 64, "1" * 64,
                            (1.0, 1.0, 1.0), (1.0, 1.0, 1.0))
    return [LesionFeatures("P1", Lesion("liver_1", "liver", mask, measure_lesion(mask)), vector, provenance)]


def _typical_patient(bundle_path) -> tuple[np.ndarray, tuple[str, ...], np.ndarray, np.ndarray]:
    """A vector at the training mean of every model input (z = 0), and the inputs' names, means and SDs."""
    preprocessing = load_bundle(bundle_path).model().preprocessing
    names = feature_names()
    vector = np.zeros(len(names))
    for name, mean in zip(preprocessing.selected, preprocessing.means, strict=True):
        vector[names.index(name)] = mean
    return vector, preprocessing.selected, np.array(preprocessing.means), np.array(preprocessing.sds)


def test_a_single_input_15_sd_out_is_named_with_its_distance(bundle):
    vector, selected, means, sds = _typical_patient(bundle)
    outlier = selected[7]
    vector[feature_names().index(outlier)] = means[7] + 15.5 * sds[7]
    result = predict_features(_rows(vector), None, "radiomics", bundle)
    check = result.distribution
    assert (check.n_beyond, check.n_features) == (1, 20)  # 5 % of the inputs: below the aggregate threshold
    assert [(item.feature, round(item.z, 6)) for item in check.beyond] == [(outlier, 15.5)]
    assert not [w for w in result.warnings if w.startswith("Out of distribution")]
    [warning] = [w for w in result.warnings if w.startswith("Far outside the training data")]
    assert f"{outlier} 15.5 SD above the training mean" in warning and "extrapolation" in warning
    again = Prediction.from_dict(json.loads(json.dumps(result.to_dict())))  # the result file keeps the list
    assert again.distribution == check


def test_typical_inputs_give_no_warning_and_many_far_inputs_give_both(bundle):
    vector, selected, means, sds = _typical_patient(bundle)
    just_inside = vector.copy()
    just_inside[feature_names().index(selected[0])] = means[0] - 0.999 * OOD_Z_LIMIT * sds[0]
    inside = predict_features(_rows(just_inside), None, "radiomics", bundle)
    assert inside.distribution.beyond == () and not [w for w in inside.warnings if "training data" in w]
    for index, z in zip(range(5), (-6.0, 9.0, 7.0, -20.0, 5.5)):
        vector[feature_names().index(selected[index])] = means[index] + z * sds[index]
    result = predict_features(_rows(vector), None, "radiomics", bundle)
    assert [round(item.z, 6) for item in result.distribution.beyond] == [-20.0, 9.0, 7.0, -6.0, 5.5]
    aggregate, named = [w for w in result.warnings if "training" in w and "SD" in w]
    assert aggregate.startswith("Out of distribution: 5 of 20 model inputs lie more than 5 SD")
    assert named.startswith(f"Far outside the training data: {selected[3]} 20.0 SD below, {selected[1]} 9.0 SD "
                            f"above, {selected[2]} 7.0 SD above the training mean (and 2 more inputs beyond 5 SD)")
