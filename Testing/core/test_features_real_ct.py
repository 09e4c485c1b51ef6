"""On a real contrast CT, abcir's features are stock pyradiomics' features, in the fixed order."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import radiomics
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from abcir.features.extract import extract_patient
from abcir.paper import N_FEATURES
from abcir.features.catalogue import feature_names, feature_names_sha256
from abcir.imaging.ct import file_sha256, read_ct, voxel_hash
from abcir.resources import parameter_file

ORGANS = {7: "pancreas", 8: "adrenal"}  # lesion-sized organs standing in for target lesions


@pytest.fixture(scope="module")
def real_case(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("real")
    labels = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    sites = folder / "sites.csv"
    sites.write_text("label,site\n7,other\n8,adrenal\n")
    label_map = folder / "organs.nrrd"
    sitk.WriteImage(sitk.Mask(labels, sitk.Or(labels == 7, labels == 8)), str(label_map))
    ct_folder = shared_data / "ct_dicom_example" / "dicom"
    rows = extract_patient(ct_folder, [label_map], patient_id="P1", sites_csv=sites)
    return ct_folder, labels, rows


def test_values_equal_stock_pyradiomics(real_case):
    ct_folder, labels, rows = real_case
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_folder)))
    ct = reader.Execute()
    radiomics.setVerbosity(logging.ERROR)
    stock = RadiomicsFeatureExtractor(str(parameter_file()))
    assert [row.lesion.lesion_id for row in rows] == ["7", "8"]
    for row, label in zip(rows, ORGANS):
        mask = sitk.Resample(sitk.Cast(labels == label, sitk.sitkUInt8), ct, sitk.Transform(),
                             sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        expected = stock.execute(ct, mask)
        values = np.array([float(expected[name]) for name in feature_names()])
        assert row.values.shape == (N_FEATURES,)
        np.testing.assert_array_equal(row.values, values)


def test_fixed_order_and_count():
    names = feature_names()
    assert len(names) == len(set(names)) == 1130
    assert names[0] == "original_shape_Elongation" and names[-1] == "wavelet-LLL_ngtdm_Strength"
    prefixes = [name.split("_")[0] for name in names]
    assert prefixes.count("original") == 107
    for image_type in ("log-sigma-1-0-mm-3D", "log-sigma-2-0-mm-3D", "log-sigma-3-0-mm-3D"):
        assert prefixes.count(image_type) == 93
    assert sum(p.startswith("wavelet-") for p in prefixes) == 8 * 93
    classes = [name.split("_")[1] for name in names if name.startswith("original_")]
    assert {c: classes.count(c) for c in set(classes)} == {
        "shape": 14, "firstorder": 18, "glcm": 24, "glrlm": 16, "glszm": 16, "gldm": 14, "ngtdm": 5}
    assert len(feature_names_sha256()) == 64


def test_provenance_and_sites(real_case):
    ct_folder, _, rows = real_case
    ct = read_ct(ct_folder)
    pancreas, adrenal = rows
    assert (pancreas.lesion.site, adrenal.lesion.site) == ("other", "adrenal")
    assert adrenal.lesion.visceral is True and pancreas.lesion.visceral is False
    for row in rows:
        provenance = row.provenance
        assert provenance.pyradiomics_version == "3.0.1"
        assert provenance.parameter_file_sha256 == file_sha256(parameter_file())
        assert provenance.ct_sha256 == voxel_hash(ct)
        assert provenance.mask_sha256 == voxel_hash(row.lesion.mask)
        assert provenance.spacing_original_mm == pytest.approx((0.9765625, 0.9765625, 2.0))
        assert provenance.spacing_resampled_mm == (1.0, 1.0, 1.0)
    assert pancreas.provenance.mask_sha256 != adrenal.provenance.mask_sha256
    # organ sizes as the data README gives them (voxels on the CT grid)
    assert (pancreas.lesion.size.voxel_count, adrenal.lesion.size.voxel_count) == (1327, 1254)
