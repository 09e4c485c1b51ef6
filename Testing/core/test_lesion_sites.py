"""Where a lesion's site comes from (tag, --sites, name, Slicer terminology), said in the features CSV;
and one binary mask file as one lesion named after the file.

Terminology entries are written in Slicer's serialised form with codes from Slicer's
own terminology lists (SNOMED CT in 5.x; SNOMED RT, scheme SRT, in v4.10.2's lists).
"""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import SimpleITK as sitk
from seg_nrrd_files import DICOM_MASTER, terminology

from abcir.cli import main
from abcir.imaging.ct import file_stem
from abcir.patient.lesions import load_lesions
from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd
from abcir.patient.sites import (
    SITE_SOURCES,
    SITES,
    TERMINOLOGY_TAG,
    SiteChoice,
    choose_site,
    site_from_code,
    site_from_terminology,
)

RIGHT_LUNG = terminology("SCT^39607008^Lung", modifier="SCT^24028007^Right")  # Slicer 5 General Anatomy
TISSUE = terminology("SCT^85756007^Tissue", category="SCT^85756007^Tissue")  # every new segment's default
# Slicer 4.10's DICOM master list codes in SNOMED RT: a mass in the liver.
MASS_IN_LIVER_410 = terminology("SRT^M-03000^Mass", category="SRT^M-01000^Morphologically Altered Structure",
                                region="SRT^T-62000^Liver", context=DICOM_MASTER)
NEOPLASM_IN_LUNG = terminology("SCT^14799000^Neoplasm, Secondary",
                               category="SCT^49755003^Morphologically Altered Structure",
                               region="SCT^39607008^Lung", context=DICOM_MASTER)


def _ct() -> sitk.Image:
    rng = np.random.default_rng(0)
    array = (40 + rng.normal(0, 10, (12, 40, 40))).astype(np.int16)
    array[:, :4, :] = -1000
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    image.SetOrigin((-10.0, -20.0, 30.0))
    return image


def _box(ct: sitk.Image, index: int, value: float = 1, pixel=sitk.sitkUInt8) -> sitk.Image:
    """A 4 x 6 x 6 voxel box, a different place for each index."""
    array = np.zeros(sitk.GetArrayViewFromImage(ct).shape)
    row, column = divmod(index, 5)
    array[3:7, 6 + 7 * row:12 + 7 * row, 3 + 7 * column:9 + 7 * column] = value
    mask = sitk.Cast(sitk.GetImageFromArray(array), pixel)
    mask.CopyInformation(ct)
    return mask


def test_site_from_terminology_reads_slicer_entries_by_code():
    assert site_from_terminology(RIGHT_LUNG) == "lung"  # the type names the organ
    assert site_from_terminology(MASS_IN_LIVER_410) == "liver"  # the region, in SNOMED RT
    assert site_from_terminology(NEOPLASM_IN_LUNG) == "lung"
    assert site_from_terminology(TISSUE) is None
    assert site_from_terminology(RIGHT_LUNG.replace("39607008", "3341006")) is None  # "Right lung": not a site
    assert site_from_terminology(RIGHT_LUNG.replace("SCT^39607008^Lung", "99XYZ^39607008^Lung")) is None
    assert site_from_terminology("Lung") is None and site_from_terminology(None) is None
    assert all(site_from_code("SCT", site.snomed_code) == key for key, site in SITES.items())


def test_the_tag_then_the_sites_row_then_the_name_then_the_terminology():
    assert choose_site("liver_1", tag="lymph node", listed="lung", terminology=RIGHT_LUNG) == SiteChoice(
        "lymph_node", "tag")
    assert choose_site("liver_1", listed="lung", terminology=RIGHT_LUNG) == SiteChoice("lung", "sites_file")
    assert choose_site("liver_1", terminology=RIGHT_LUNG) == SiteChoice("liver", "name")
    assert choose_site("right lung", terminology=RIGHT_LUNG) == SiteChoice("lung", "terminology")
    assert choose_site("right lung", tag="spleen", terminology=RIGHT_LUNG) == SiteChoice(None, None)
    assert choose_site("blob", terminology=TISSUE) == SiteChoice(None, None)


def _segmentation(tmp_path, ct: sitk.Image):
    segments = [
        Segment("s1", "Segment_1", _box(ct, 0), tags={SITE_TAG: "lymph_node", TERMINOLOGY_TAG: NEOPLASM_IN_LUNG}),
        Segment("s2", "lung_2", _box(ct, 1)),
        Segment("s3", "right lung", _box(ct, 2), tags={TERMINOLOGY_TAG: RIGHT_LUNG}),
        Segment("s4", "Läsion 3", _box(ct, 3), tags={TERMINOLOGY_TAG: MASS_IN_LIVER_410}),
        Segment("s5", "liver_2", _box(ct, 4), tags={TERMINOLOGY_TAG: NEOPLASM_IN_LUNG}),
        Segment("s6", "blob", _box(ct, 5), tags={TERMINOLOGY_TAG: TISSUE}),
    ]
    return write_seg_nrrd(tmp_path / "lesions.seg.nrrd", segments)


def test_segments_get_sites_and_sources(tmp_path, caplog):
    ct = _ct()
    with caplog.at_level(logging.WARNING):
        lesions = load_lesions([_segmentation(tmp_path, ct)], ct)
    assert [(lesion.lesion_id, lesion.site, lesion.site_source) for lesion in lesions] == [
        ("Segment_1", "lymph_node", "tag"), ("lung_2", "lung", "name"), ("right lung", "lung", "terminology"),
        ("Läsion 3", "liver", "terminology"), ("liver_2", "liver", "name"), ("blob", None, None)]
    assert "Lesion 'liver_2': the name says site 'liver' but the terminology entry says 'lung'" in caplog.text
    assert "Lesion 'blob': no site given" in caplog.text


def test_the_features_csv_says_where_each_site_came_from(tmp_path):
    ct = _ct()
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    segments = [Segment("s1", "Segment_1", _box(ct, 0), tags={SITE_TAG: "lymph_node"}),
                Segment("s2", "lung_2", _box(ct, 1)),
                Segment("s3", "right lung", _box(ct, 2), tags={TERMINOLOGY_TAG: RIGHT_LUNG})]
    path = write_seg_nrrd(tmp_path / "lesions.seg.nrrd", segments)
    out = tmp_path / "features.csv"
    assert main(["extract", "--ct", str(tmp_path / "ct.nrrd"), "--lesions", str(path), "--out", str(out)]) == 0
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["lesion_id"], row["site"], row["site_source"], row["visceral"]) for row in rows] == [
        ("Segment_1", "lymph_node", "tag", "0"), ("lung_2", "lung", "name", "1"),
        ("right lung", "lung", "terminology", "1")]
    assert {row["site_source"] for row in rows} <= set(SITE_SOURCES)


@pytest.mark.parametrize("file_name, pixel, value, name, site", [
    ("chest_wall_1.nrrd", sitk.sitkUInt8, 1, "chest_wall_1", "chest_wall"),
    ("Lymph node 2.nii.gz", sitk.sitkFloat32, 1.0, "Lymph node 2", "lymph_node"),
    ("lesion.v2.mha", sitk.sitkInt16, 1, "lesion.v2", None),  # only the image extension goes
])
def test_one_binary_mask_file_is_one_lesion_named_after_the_file(tmp_path, file_name, pixel, value, name, site):
    ct = _ct()
    sitk.WriteImage(_box(ct, 0, value, pixel), str(tmp_path / file_name))
    [lesion] = load_lesions([tmp_path / file_name], ct)
    assert file_stem(tmp_path / file_name) == name
    assert (lesion.lesion_id, lesion.site, lesion.site_source) == (name, site, "name" if site else None)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(lesion.mask), sitk.GetArrayFromImage(_box(ct, 0)))


def test_a_binary_mask_takes_its_site_from_a_sites_row_by_name_or_label_1(tmp_path):
    ct = _ct()
    sitk.WriteImage(_box(ct, 0), str(tmp_path / "target.nrrd"))
    for row, site in (("target,liver", "liver"), ("1,lung", "lung")):
        (tmp_path / "sites.csv").write_text(f"label,site\n{row}\n", encoding="utf-8")
        [lesion] = load_lesions([tmp_path / "target.nrrd"], ct, tmp_path / "sites.csv")
        assert (lesion.lesion_id, lesion.site, lesion.site_source) == ("target", site, "sites_file")


def test_other_values_make_a_label_map_and_sites_files_are_read_as_utf8(tmp_path):
    ct = _ct()
    sitk.WriteImage(_box(ct, 0, 2), str(tmp_path / "labels.nrrd"))  # one lesion, but labelled 2: a label map
    (tmp_path / "sites.csv").write_bytes("\ufefflabel,site\n2,Lymph node\n".encode("utf-8"))  # with a BOM
    [lesion] = load_lesions([tmp_path / "labels.nrrd"], ct, tmp_path / "sites.csv")
    assert (lesion.lesion_id, lesion.site, lesion.site_source) == ("2", "lymph_node", "sites_file")
    two = sitk.Add(_box(ct, 0), _box(ct, 1, 3))
    sitk.WriteImage(two, str(tmp_path / "two.nrrd"))
    assert [lesion.lesion_id for lesion in load_lesions([tmp_path / "two.nrrd"], ct)] == ["1", "3"]
