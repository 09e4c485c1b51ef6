"""The outline-sensitivity analysis (issue 17) on the real CT: shared extraction, flips at the cut-off, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from abcir.models.aggregation import aggregate
from abcir.models.bundle import Cutoff, load_bundle
from abcir.patient.clinical_facts import parse_clinical
from abcir.errors import InputError
from abcir.features.engine import engine_values
from abcir.features.extract import extract_lesions
from abcir.patient.lesions import load_lesions
from abcir.prediction.predict import predict_features
from abcir.sensitivity.analysis import MIN_FOR_INTERVAL, analyse_sensitivity
from abcir.sensitivity.perturbations import PerturbationSet, perturb
from abcir.sensitivity.result import SENSITIVITY_SCHEMA
from abcir.sensitivity.shared_extraction import compute_outlines, outline_pieces, share_region
from tiny_bundles import tiny_bundle, tiny_fit

CLINICAL = ["lines=1", "sites=1-2", "visceral=yes", "tnbc=yes"]
#: Erosion, dilation and one randomisation per lesion: 6 extractions for the two lesions.
SMALL = PerturbationSet("test", randomisations=1)


@pytest.fixture(scope="module")
def patient(shared_data, tmp_path_factory):
    """Pancreas (7) and right adrenal (8) of the real CT as two target lesions, as ``test_predict`` builds them
    (so that the cached tiny fit around this patient's vector serves on Python 3.12 without torch)."""
    from abcir.dicom.series import read_dicom_ct

    folder = tmp_path_factory.mktemp("patient")
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    label_map = folder / "lesions.nrrd"
    sitk.WriteImage(sitk.Mask(labels, sitk.Or(labels == 7, labels == 8)), str(label_map))
    sites = folder / "sites.csv"
    sites.write_text("label,site\n7,other\n8,adrenal\n")
    ct = read_dicom_ct(shared_data / "ct_dicom_example" / "dicom").image
    lesions = load_lesions([label_map], ct, sites)
    rows = extract_lesions(ct, lesions, "P1")
    vector = aggregate(np.vstack([row.values for row in rows]), [l.size.volume_mm3 for l in lesions])
    return {"ct": ct, "lesions": lesions, "rows": rows, "vector": vector, "folder": folder}


@pytest.fixture(scope="module")
def fit(patient):
    return tiny_fit("combined", center=patient["vector"])


def bundle_with_cutoff(patient, fit, name: str, value: float):
    return tiny_bundle(patient["folder"] / name, "combined", fit=fit, cutoff=Cutoff(value, "fixed for the test"))


def test_shared_region_gives_the_engine_values_for_the_segmented_outline(patient):
    """The shortcut (one resampled region and one set of filters per lesion) changes no value: for the
    unperturbed mask it reproduces the engine bit for bit."""
    ct = patient["ct"]
    for lesion in patient["lesions"]:
        region = share_region(ct, lesion.mask, lesion.lesion_id)
        shared = compute_outlines([("k", lesion.lesion_id, outline_pieces(region, ct, lesion.mask))])["k"]
        assert np.array_equal(shared, engine_values(ct, lesion.mask, lesion.lesion_id), equal_nan=True)


def test_a_patient_at_the_cutoff_flips_and_one_far_from_it_does_not(patient, fit):
    facts = parse_clinical(CLINICAL)
    base = predict_features(patient["rows"], facts, "combined", load_bundle(
        bundle_with_cutoff(patient, fit, "probe", 0.0)))
    far = analyse_sensitivity(patient["ct"], patient["lesions"], facts, "combined",
                              bundle_with_cutoff(patient, fit, "far", base.score - 100.0), rows=patient["rows"],
                              perturbation_set=SMALL)
    scores = [item.score for item in far.perturbations]
    assert far.n_perturbations == 6 and far.risk_group == "low" and far.n_same_risk_group == 6
    assert not far.unstable and far.warning is None and far.flip_share == 0
    assert max(abs(s - base.score) for s in scores) < 100.0  # far from every outline (measured: up to 9)
    assert len(set(scores)) == 6 and far.score == pytest.approx(base.score, abs=1e-12)
    # The same patient with the cut-off at its own score: whatever raises the score flips it.
    at = analyse_sensitivity(patient["ct"], patient["lesions"], facts, "combined",
                             bundle_with_cutoff(patient, fit, "at", base.score), rows=patient["rows"],
                             perturbation_set=SMALL)
    expected_flips = sum(s > base.score for s in scores)
    assert 0 < expected_flips < 6
    assert at.risk_group == "high" and at.n_same_risk_group == 6 - expected_flips
    assert [item.score for item in at.perturbations] == scores  # the cut-off changes groups, not scores
    assert at.unstable and at.flip_share == pytest.approx(expected_flips / 6)
    per_lesion = {item.lesion_id: item for item in at.lesions}
    assert at.deciding_lesion == max(per_lesion.values(), key=lambda item: (item.flips, item.largest_change)).lesion_id
    assert f"lesion '{at.deciding_lesion}'" in at.warning and "depends on the outlines" in at.warning
    assert at.probability_low <= at.probability <= at.probability_high
    assert at.interval_90 is None and at.min_for_interval == MIN_FOR_INTERVAL  # 6 are too few for 90 %


def test_the_result_reads_as_json(patient, fit):
    facts = parse_clinical(CLINICAL)
    result = analyse_sensitivity(patient["ct"], patient["lesions"], facts, "combined",
                                 bundle_with_cutoff(patient, fit, "json", 0.0), rows=patient["rows"],
                                 perturbation_set=PerturbationSet("erode-dilate", randomisations=0))
    data = json.loads(result.to_json())
    assert data["schema"] == SENSITIVITY_SCHEMA and data["schema_version"] == 1
    assert data["n_perturbations"] == 4 and len(data["perturbations"]) == 4
    assert [(p["lesion_id"], p["perturbation"]) for p in data["perturbations"]] == [
        ("7", "erode_1mm"), ("7", "dilate_1mm"), ("8", "erode_1mm"), ("8", "dilate_1mm")]
    assert data["summary"] == result.summary and data["summary"].startswith(f"probability {result.probability:.2f} (")
    assert "risk group" in data["summary"] and data["lesions"][0]["lesion_id"] == "7"
    volumes = {p["perturbation"]: p["volume_mm3"] for p in data["perturbations"] if p["lesion_id"] == "7"}
    assert volumes["erode_1mm"] < patient["lesions"][0].size.volume_mm3 < volumes["dilate_1mm"]


def test_the_clinical_model_is_refused(patient):
    with pytest.raises(InputError, match="clinical model reads no outline"):
        analyse_sensitivity(patient["ct"], patient["lesions"], parse_clinical(CLINICAL), "clinical")


def test_changed_outlines_go_through_the_extraction_scheduler(patient, monkeypatch):
    """``compute_outlines`` hands its pieces to ``features.extract.compute_pieces``, the scheduler of
    ``extract_lesions``: with a worker beside this process, both compute pieces, and the values are those of one
    process, bit for bit."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from abcir.features import extract

    ct, lesion = patient["ct"], patient["lesions"][1]
    region = share_region(ct, lesion.mask, lesion.lesion_id)
    outlines = [perturbation.mask for perturbation in perturb(lesion.lesion_id, lesion.mask, ct, SMALL)]
    alone = compute_outlines((k, lesion.lesion_id, outline_pieces(region, ct, m)) for k, m in enumerate(outlines))
    threads: list[int] = []
    compute = extract.compute_input

    def recorded(piece):
        threads.append(threading.get_ident())
        return compute(piece)

    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(extract, "extraction_pool", lambda jobs, backend: pool)
    monkeypatch.setattr(extract, "compute_input", recorded)
    try:
        shared = compute_outlines(((k, lesion.lesion_id, outline_pieces(region, ct, m))
                                   for k, m in enumerate(outlines)), jobs=2)
    finally:
        pool.shutdown()
    assert len(threads) == 13 * len(outlines) and len(set(threads)) == 2
    assert shared.keys() == alone.keys() == set(range(len(outlines)))
    for key, values in alone.items():
        assert np.array_equal(shared[key], values, equal_nan=True)


def test_named_perturbation_sets_are_the_command_lines():
    from abcir.options import DEFAULT_PERTURBATION_SET, PERTURBATION_SETS
    from abcir.sensitivity.perturbations import DEFAULT_SET, NAMED_SETS, perturbation_set_named

    assert tuple(NAMED_SETS) == PERTURBATION_SETS and DEFAULT_SET.name == DEFAULT_PERTURBATION_SET
    assert [NAMED_SETS[name].size for name in PERTURBATION_SETS] == [10, 8, 16]
    assert perturbation_set_named("extended") is NAMED_SETS["extended"]
    three = perturbation_set_named("3")
    assert three.names == ("erode_1mm", "dilate_1mm", "random_1", "random_2", "random_3")
    with pytest.raises(InputError, match="Perturbations '-2'"):
        perturbation_set_named("-2")
