"""The engine reference: stock values stored exactly, reproduced bit for bit, and what predictions make of it."""

from __future__ import annotations

import json
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import radiomics
import SimpleITK as sitk
from abcir.features import engine_check, parallel
from abcir.models.bundle import bundled_bundle
from abcir.patient.clinical_facts import parse_clinical
from abcir.features.engine_check import (
    CT_FILE,
    MASK_FILE,
    ROUNDING_LIMIT,
    EngineReference,
    check_engine,
    compare_values,
    decode_value,
    encode_value,
    load_reference,
    reference_dir,
    start_engine_check,
)
from abcir.features.engine import engine_values
from abcir.features.catalogue import feature_names, pyradiomics_version
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.prediction.result import VALUES_VERIFIED, Prediction
from abcir.prediction.predict import predict_lesions
from abcir.records import from_json_dict, to_json_dict
from abcir.resources import parameter_file
from radiomics.featureextractor import RadiomicsFeatureExtractor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "engine_reference"))
import make_engine_reference  # noqa: E402

CLINICAL = ["lines=1", "sites=1-2", "visceral=yes", "tnbc=no"]
#: A version string such as SlicerRadiomics' pyradiomics build (3.1.0 + 2 commits) reports.
SLICER_VERSION = "3.1.0.post2+g146e3bd"
#: Features computed from numpy.linalg.eigvals, whose last bits depend on the CPU's BLAS kernels.
EIGENVALUE_FEATURES = ("shape_MajorAxisLength", "shape_MinorAxisLength", "shape_LeastAxisLength",
                       "shape_Elongation", "shape_Flatness", "glcm_MCC")


@pytest.fixture(autouse=True)
def fresh_check():
    """Each test starts and ends without a cached check (some perturb the reference or the version)."""
    check_engine.cache_clear()
    yield
    check_engine.cache_clear()


@pytest.fixture(scope="module")
def images() -> tuple[sitk.Image, sitk.Image]:
    return sitk.ReadImage(str(reference_dir() / CT_FILE)), sitk.ReadImage(str(reference_dir() / MASK_FILE))


def reference_patient(images) -> list[Lesion]:
    ct, mask = images
    return [Lesion("reference", "liver", mask, measure_lesion(mask))]


def perturbed(name: str, value: float | str):
    """``load_reference`` with one stored value replaced."""
    original = load_reference()
    return lambda folder=None: replace(original, values={**original.values, name: value})


def assert_reproduces(values: np.ndarray, reference: np.ndarray) -> None:
    """Bit for bit, except eigenvalue features on a CPU whose BLAS kernels are not those that made the reference."""
    names = feature_names()
    eigen = np.array([name.endswith(EIGENVALUE_FEATURES) for name in names])
    differ = [names[i] for i in np.flatnonzero(values.view(np.uint64) != reference.view(np.uint64))]
    assert not [name for name in differ if not name.endswith(EIGENVALUE_FEATURES)]
    assert np.all(np.abs(values - reference)[eigen] <= ROUNDING_LIMIT * np.abs(reference)[eigen])


def test_installed_engine_reproduces_the_reference(images):
    assert pyradiomics_version() == "3.0.1"
    reference = load_reference().value_array()
    computed = engine_values(*images, "reference")
    assert_reproduces(computed, reference)
    check = check_engine()
    assert check.reproduced and check.pyradiomics_version == check.reference_pyradiomics_version == "3.0.1"
    assert check.identical == (computed.tobytes() == reference.tobytes())


def test_stored_values_are_those_of_stock_pyradiomics(images):
    result = RadiomicsFeatureExtractor(str(parameter_file())).execute(*images)
    assert_reproduces(np.array([float(result[name]) for name in feature_names()]), load_reference().value_array())


def test_reference_exercises_every_image_type_and_feature_class():
    values = load_reference().values
    groups: dict[tuple[str, str], list[float]] = {}
    for name, value in values.items():
        image_type, feature_class, _ = name.rsplit("_", 2)
        groups.setdefault((image_type, feature_class), []).append(decode_value(value, name))
    image_types = {image_type for image_type, _ in groups}
    assert len(image_types) == 12 and {"log-sigma-3-0-mm-3D", "wavelet-HHH", "original"} <= image_types
    assert {feature_class for _, feature_class in groups} == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm",
                                                              "ngtdm"}
    assert len(groups) == 1 + 12 * 6
    for group, numbers in groups.items():
        assert np.isfinite(numbers).all() and len(set(numbers)) > len(numbers) // 2, group
    # Rounding of the eigenvalues stays small relative to the values (engine_check's ROUNDING_LIMIT).
    assert min(abs(decode_value(v, n)) for n, v in values.items() if n.endswith(EIGENVALUE_FEATURES)) > 0.1


def test_regenerating_the_reference_gives_the_same_files(tmp_path):
    written = make_engine_reference.write_reference(tmp_path / "again")
    for name in (CT_FILE, MASK_FILE):
        assert (tmp_path / "again" / name).read_bytes() == (reference_dir() / name).read_bytes(), name
    stored = load_reference()
    assert replace(written, software=stored.software, values=stored.values) == stored
    assert_reproduces(written.value_array(), stored.value_array())
    again = from_json_dict(EngineReference, json.loads((tmp_path / "again" / "values.json").read_text()), "x",
                           RuntimeError)
    assert again == written
    with pytest.raises(FileExistsError, match="already exist"):
        make_engine_reference.write_reference(tmp_path / "again")


def test_values_round_trip_exactly_through_json():
    values = [0.1, -0.0, 1e-310, 2.0 ** 60 + 1, float("nan"), float("inf"), -float("inf")]
    encoded = json.loads(json.dumps([encode_value(v) for v in values], allow_nan=False))
    decoded = np.array([decode_value(v, "x") for v in encoded])
    assert decoded.tobytes() == np.array(values).tobytes()


def test_comparison_is_bitwise_with_nan_equal_to_nan():
    names = feature_names()
    reference = np.linspace(1.0, 2.0, len(names))
    reference[5] = np.nan
    assert compare_values(reference.copy(), reference) == (True, None, None)
    computed = reference.copy()
    computed[7] = np.nextafter(computed[7], 3.0)
    computed[900] *= 1.001
    identical, name, size = compare_values(computed, reference)
    assert not identical and name == names[900] and size == pytest.approx(0.001 / 1.001)
    computed[5] = 1.0
    assert compare_values(computed, reference)[1:] == (names[5], np.inf)
    zeros = np.zeros(len(names))
    signed = zeros.copy()
    signed[3] = -0.0
    assert compare_values(signed, zeros) == (False, names[3], 0.0)


def test_a_perturbed_reference_names_the_largest_difference(monkeypatch):
    name = "wavelet-HLH_glszm_ZoneEntropy"
    stored = load_reference().values[name]
    monkeypatch.setattr(engine_check, "load_reference", perturbed(name, stored * (1 + 1e-9)))
    check = check_engine()
    assert not check.identical and not check.reproduced and check.largest_difference_feature == name
    assert check.largest_relative_difference == pytest.approx(1e-9, rel=1e-3)


def test_rounding_of_another_blas_is_verified_and_said(monkeypatch, images):
    """Two ulp in an eigenvalue feature, as OpenBLAS' SkylakeX kernels give: verified, no warning, said so."""
    name = "original_shape_MinorAxisLength"
    stored = load_reference().values[name]
    monkeypatch.setattr(engine_check, "load_reference", perturbed(name, np.nextafter(np.nextafter(stored, 0), 0)))
    check = check_engine()
    assert not check.identical and check.reproduced and 0 < check.largest_relative_difference < 1e-15
    result = predict_lesions(images[0], reference_patient(images), parse_clinical(CLINICAL), "combined")
    assert result.values_verified and result.values_relative_difference == check.largest_relative_difference
    assert f"{VALUES_VERIFIED} up to floating-point rounding (" in result.provenance
    assert not [warning for warning in result.warnings if "pyradiomics" in warning]


def test_the_check_runs_once_per_process(monkeypatch, images):
    calls = []

    def counting(*args):
        calls.append(args[2])
        return engine_values(*args)

    monkeypatch.setattr(engine_check, "engine_values", counting)
    first = check_engine()
    assert check_engine() is first and calls == ["engine reference"]


def test_a_changed_reference_file_is_refused(tmp_path):
    for name in (CT_FILE, MASK_FILE, "values.json"):
        (tmp_path / name).write_bytes((reference_dir() / name).read_bytes())
    (tmp_path / MASK_FILE).write_bytes((tmp_path / MASK_FILE).read_bytes()[:-1] + b"\x01")
    with pytest.raises(RuntimeError, match=r"mask.nrrd: not the file the engine reference values were computed from"):
        load_reference(tmp_path)


def test_identical_values_are_verified_whatever_the_version_string(monkeypatch, images):
    """SlicerRadiomics' pyradiomics reports another version; its values decide, and abcir falls back to stock."""
    monkeypatch.setattr(radiomics, "__version__", SLICER_VERSION)
    bundle = bundled_bundle("combined")
    assert bundle.manifest.features.pyradiomics_version == "3.0.1" != pyradiomics_version()
    result = predict_lesions(images[0], reference_patient(images), parse_clinical(CLINICAL), "combined", bundle)
    assert check_engine().reproduced and check_engine().pyradiomics_version == SLICER_VERSION
    assert result.values_verified and VALUES_VERIFIED in result.provenance
    assert "NOT clinically validated" in result.provenance
    assert not [warning for warning in result.warnings if "pyradiomics" in warning]
    written = json.loads(json.dumps(result.to_dict()))
    assert written["values_verified"] is True and Prediction.from_dict(written) == result
    older = {key: value for key, value in written.items() if not key.startswith("values_")}
    assert Prediction.from_dict(older).values_verified is False


def test_different_values_are_warned_about_by_feature(monkeypatch, images):
    name = "log-sigma-2-0-mm-3D_ngtdm_Busyness"
    stored = load_reference().values[name]
    monkeypatch.setattr(engine_check, "load_reference", perturbed(name, stored * 1.02))
    result = predict_lesions(images[0], reference_patient(images), parse_clinical(CLINICAL), "combined")
    warnings = [warning for warning in result.warnings if "engine reference" in warning]
    assert len(warnings) == 1 and f"largest relative difference 0.0196, in {name}" in warnings[0]
    assert "pyradiomics==3.0.1" in warnings[0]
    assert not result.values_verified and VALUES_VERIFIED not in result.provenance


def test_clinical_predictions_need_no_check(monkeypatch, images):
    monkeypatch.setattr(engine_check, "engine_values", lambda *args: pytest.fail("no features, nothing to check"))
    result = predict_lesions(None, [], parse_clinical(CLINICAL), "clinical")
    assert not result.values_verified and VALUES_VERIFIED not in result.provenance


def test_reference_json_fits_its_record():
    data = json.loads((reference_dir() / "values.json").read_text())
    assert data == to_json_dict(load_reference())
    assert list(data["values"]) == list(feature_names())


def test_a_worker_computes_the_check_for_this_process(monkeypatch):
    """``start_engine_check``: a worker process checks while this one would read the CT; same result."""
    calls = []
    monkeypatch.setattr(engine_check, "engine_values", lambda *args: calls.append(args[2]) or engine_values(*args))
    parallel.shutdown_pools()
    try:
        start_engine_check(parallel.extraction_pool(2))
        from_worker = check_engine()
    finally:
        parallel.shutdown_pools()
    assert calls == []  # computed in the worker, not here
    check_engine.cache_clear()
    assert check_engine() == from_worker and calls == ["engine reference"]
    assert from_worker.reproduced


def test_a_check_the_worker_never_began_is_computed_here(monkeypatch):
    calls = []
    monkeypatch.setattr(engine_check, "engine_values", lambda *args: calls.append(args[2]) or engine_values(*args))
    never_started = Future()
    never_started.cancel()  # what shutting the pool down does to a check still queued
    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(pool, "submit", lambda *args: never_started)
    start_engine_check(pool)
    pool.shutdown()
    assert check_engine().reproduced and calls == ["engine reference"]
