"""DICOM SEG as --lesions: segments become lesions on the CT grid, voxel for voxel, with sites from their codes.

The SEGs are made here by highdicom from known masks on the real CT series (TotalSegmentator
organs standing in for lesions, and a box), or by ``abcir export-dicom``; reading them back
must give the same voxels, names and sites. SEGs drawn on another series are refused.
"""

from __future__ import annotations

import json
import logging

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

from abcir.cli import main
from abcir.dicom.seg_reading import FRACTIONAL_THRESHOLD
from abcir.dicom.series import read_dicom_ct
from abcir.errors import InputError
from abcir.patient.lesions import load_lesions
from dicom_cases import copy_series, synthetic_series, uid
from test_dicom_export import make_prediction

PANCREAS, ADRENAL = 7, 8
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


def real_series_and_organs(shared_data, folder) -> tuple:
    """The real series copied to ``folder``/ct with its UIDs restored, read, and its organ labels (z, y, x)."""
    copy_series(shared_data / "ct_dicom_example" / "dicom", folder / "ct", restore_uids=True)
    ct = read_dicom_ct(folder / "ct")
    organs = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    return ct, sitk.GetArrayFromImage(sitk.Resample(organs, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0))


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    """The real series with its UIDs restored, and known masks (z, y, x) on its grid."""
    folder = tmp_path_factory.mktemp("seg_real")
    ct, labels = real_series_and_organs(shared_data, folder)
    box = np.zeros(labels.shape, dtype=bool)
    box[4:9, 200:230, 300:321] = True  # in the liver: a lesion whose site comes from its label
    masks = {"adrenal lesion": labels == ADRENAL, "liver_2": box, "N1": labels == PANCREAS}
    return folder, ct, masks


def _sources(ct) -> list[pydicom.Dataset]:
    sources = []
    for path in ct.files:
        dataset = pydicom.dcmread(path)
        for keyword in TYPE2:  # the anonymised series lacks these type 2 attributes
            if keyword not in dataset:
                setattr(dataset, keyword, "")
        sources.append(dataset)
    return sources


# Sites coded three ways: an anatomic region (adrenal), none (liver_2: its label), the property type (lymph node).
CODES = {"adrenal lesion": (codes.SCT.Neoplasm, [Code("23451007", "SCT", "Adrenal gland")]),
         "liver_2": (codes.SCT.Neoplasm, None),
         "N1": (Code("59441001", "SCT", "Lymph node"), None)}


def _descriptions(coded) -> list[hd.seg.SegmentDescription]:
    return [hd.seg.SegmentDescription(number, name, codes.SCT.MorphologicallyAbnormalStructure, kind,
                                      hd.seg.SegmentAlgorithmTypeValues.MANUAL, anatomic_regions=regions)
            for number, (name, (kind, regions)) in enumerate(coded.items(), start=1)]


def write_seg(ct, masks: dict[str, np.ndarray], path, kind: str = "BINARY", coded=None) -> None:
    """A highdicom SEG of ``masks`` (slices of the CT in its slice order), one frame per CT image, coded as
    ``coded`` says (segment label: property type, anatomic regions; default ``CODES``)."""
    stacked = np.stack(list(masks.values()), axis=-1)
    if kind == "FRACTIONAL":
        # Just above the threshold inside, just below it in a ring around: the threshold gives the mask back.
        ring = np.stack([sitk.GetArrayFromImage(sitk.BinaryDilate(sitk.GetImageFromArray(m.astype(np.uint8)),
                                                                   (2, 2, 0))) > 0 for m in masks.values()], axis=-1)
        pixels = np.where(stacked, 0.51, np.where(ring, 0.49, 0.0)).astype(np.float32)
    elif kind == "LABELMAP":
        pixels = np.zeros(stacked.shape[:3], dtype=np.uint8)
        for channel in range(stacked.shape[-1]):
            pixels[stacked[..., channel]] = channel + 1
    else:
        pixels = stacked.astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=_sources(ct), pixel_array=pixels, segmentation_type=kind,
        segment_descriptions=_descriptions(coded or {name: CODES[name] for name in masks}),
        series_instance_uid=hd.UID(), series_number=50, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="abcir tests", manufacturer_model_name="test", software_versions="1", device_serial_number="1")
    seg.save_as(path)


@pytest.mark.parametrize("kind", ["BINARY", "FRACTIONAL", "LABELMAP"])
def test_highdicom_seg_of_known_masks_reads_back_voxel_for_voxel(real, tmp_path, kind):
    _, ct, masks = real
    path = tmp_path / "lesions"  # no extension: DICOM files are recognised by content, as PACS exports them
    write_seg(ct, masks, path, kind)
    assert pydicom.dcmread(path).SegmentationType == kind
    lesions = load_lesions([path], ct.image)
    assert [(lesion.lesion_id, lesion.site) for lesion in lesions] == [
        ("adrenal lesion", "adrenal"), ("liver_2", "liver"), ("N1", "lymph_node")]
    for lesion, known in zip(lesions, masks.values(), strict=True):
        mask = sitk.GetArrayViewFromImage(lesion.mask)
        assert mask.dtype == np.uint8 and lesion.mask.GetSize() == ct.image.GetSize()
        np.testing.assert_array_equal(mask, known.astype(np.uint8))
        assert lesion.mask.GetOrigin() == ct.image.GetOrigin()


def test_fractional_seg_straddles_the_threshold(real, tmp_path):
    """The fractional SEG above stores 130/255 (0.510) inside and 125/255 (0.490) in a ring around, so reading it
    back voxel for voxel shows that the threshold is 0.5 (not 'any fraction')."""
    _, ct, masks = real
    write_seg(ct, masks, tmp_path / "fractional.dcm", "FRACTIONAL")
    seg = hd.seg.segread(tmp_path / "fractional.dcm")
    assert seg.MaximumFractionalValue == 255
    stored = seg.get_volume(segment_numbers=[2], rescale_fractional=False).array
    assert set(np.unique(stored).tolist()) == {0, 125, 130}
    assert 125 / 255 < FRACTIONAL_THRESHOLD <= 130 / 255


def test_export_dicom_then_seg_as_lesions_gives_the_same_voxels_and_sites(real, tmp_path, capsys):
    """Round trip through the command line: export-dicom, then the SEG it wrote as --lesions."""
    folder, ct, masks = real
    label_map = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8)
    for value, mask in enumerate(masks.values(), start=1):
        label_map[mask] = value
    image = sitk.GetImageFromArray(label_map)
    image.CopyInformation(ct.image)
    sitk.WriteImage(image, str(tmp_path / "labels.nrrd"))
    (tmp_path / "sites.csv").write_text("label,site\n1,adrenal\n2,liver\n3,lymph_node\n")
    exported = load_lesions([tmp_path / "labels.nrrd"], ct.image, tmp_path / "sites.csv")
    (tmp_path / "result.json").write_text(json.dumps(make_prediction(ct, exported).to_dict()))
    common = ["export-dicom", "--result", str(tmp_path / "result.json"), "--ct", str(folder / "ct")]
    assert main([*common, "--lesions", str(tmp_path / "labels.nrrd"), "--sites", str(tmp_path / "sites.csv"),
                 "--out", str(tmp_path / "first")]) == 0
    seg_path = tmp_path / "first" / "lesions_seg.dcm"
    back = load_lesions([seg_path], ct.image)
    assert [(lesion.lesion_id, lesion.site) for lesion in back] == [("1", "adrenal"), ("2", "liver"),
                                                                    ("3", "lymph_node")]
    for lesion, original in zip(back, exported, strict=True):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(lesion.mask),
                                      sitk.GetArrayViewFromImage(original.mask))
        assert lesion.size == original.size
    # The same result exports again from the SEG alone: the command line takes it as --lesions.
    assert main([*common, "--lesions", str(seg_path), "--out", str(tmp_path / "second")]) == 0
    assert "3 segments) written" in capsys.readouterr().out


def test_tilted_series_export_reads_back(tmp_path):
    """A gantry-tilted CT is resampled onto a regular grid; its exported SEG lies on that grid and reads back."""
    synthetic_series(tmp_path / "ct", in_plane_shift_mm=(0.0, 0.35, 0.0), slices=10, rows=32, columns=32)
    ct = read_dicom_ct(tmp_path / "ct")
    array = np.zeros(sitk.GetArrayViewFromImage(ct.image).shape, dtype=np.uint8)
    array[2:6, 10:20, 8:15] = 1
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(ct.image)
    sitk.WriteImage(mask, str(tmp_path / "liver_1.nrrd"))
    sitk.WriteImage(mask, str(tmp_path / "lung_1.nrrd"))
    lesions = load_lesions([tmp_path / "liver_1.nrrd", tmp_path / "lung_1.nrrd"], ct.image)
    (tmp_path / "result.json").write_text(json.dumps(make_prediction(ct, lesions).to_dict()))
    assert main(["export-dicom", "--result", str(tmp_path / "result.json"), "--ct", str(tmp_path / "ct"),
                 "--lesions", str(tmp_path / "liver_1.nrrd"), str(tmp_path / "lung_1.nrrd"),
                 "--out", str(tmp_path / "out")]) == 0
    back = load_lesions([tmp_path / "out" / "lesions_seg.dcm"], ct.image)
    assert [(lesion.lesion_id, lesion.site) for lesion in back] == [("liver_1", "liver"), ("lung_1", "lung")]
    for lesion in back:
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(lesion.mask), array)


def test_seg_of_another_series_is_refused_naming_both(real, tmp_path, capsys):
    folder, ct, masks = real
    write_seg(ct, {"N1": masks["N1"]}, tmp_path / "seg.dcm")
    # Another scan: another series and frame of reference.
    synthetic_series(tmp_path / "other", slices=6, rows=16, columns=16)
    other = read_dicom_ct(tmp_path / "other")
    with pytest.raises(InputError) as refused:
        load_lesions([tmp_path / "seg.dcm"], other.image)
    message = str(refused.value)
    assert "\n" not in message
    for named in (ct.series_instance_uid, ct.frame_of_reference_uid, other.series_instance_uid,
                  other.frame_of_reference_uid, "--series-uid"):
        assert named in message
    # Same frame of reference (same scan), another reconstruction: still another series.
    copy_series(folder / "ct", tmp_path / "recon", edit=lambda k, ds: setattr(ds, "SeriesInstanceUID", uid("recon")))
    recon = read_dicom_ct(tmp_path / "recon")
    with pytest.raises(InputError, match=f"series {ct.series_instance_uid} .*CT given \\(series {uid('recon')}"):
        load_lesions([tmp_path / "seg.dcm"], recon.image)
    # On the command line: one line, exit 2, nothing written.
    assert main(["extract", "--ct", str(tmp_path / "other"), "--lesions", str(tmp_path / "seg.dcm"),
                 "--out", str(tmp_path / "features.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "drawn on series" in error and not (tmp_path / "features.csv").exists()


def test_ct_without_uids_places_segments_by_coordinates_with_a_warning(real, tmp_path, caplog):
    _, ct, masks = real
    write_seg(ct, masks, tmp_path / "seg.dcm")
    plain = sitk.Image(ct.image)
    for key in plain.GetMetaDataKeys():
        plain.EraseMetaData(key)
    sitk.WriteImage(plain, str(tmp_path / "ct.nrrd"))
    from_file = sitk.ReadImage(str(tmp_path / "ct.nrrd"))
    with caplog.at_level(logging.WARNING):
        lesions = load_lesions([tmp_path / "seg.dcm"], from_file)
    assert "carries no DICOM UIDs" in caplog.text and ct.series_instance_uid in caplog.text
    for lesion, known in zip(lesions, masks.values(), strict=True):
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(lesion.mask), known.astype(np.uint8))


def test_other_dicom_objects_are_refused_in_one_line(real, tmp_path):
    _, ct, masks = real
    write_seg(ct, masks, tmp_path / "seg.dcm")
    sitk.WriteImage(sitk.Cast(ct.image > 0, sitk.sitkUInt8), str(tmp_path / "mask.nrrd"))
    damaged = tmp_path / "damaged.dcm"
    damaged.write_bytes((tmp_path / "seg.dcm").read_bytes()[:4000])
    cases = {
        (ct.files[0],): "a DICOM CT object",
        (tmp_path / "seg.dcm", tmp_path / "mask.nrrd"): "give it on its own",
        (damaged,): "highdicom cannot read",
    }
    for paths, expected in cases.items():
        with pytest.raises(InputError) as refused:
            load_lesions(list(paths), ct.image)
        assert expected in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_sites_from_snomed_rt_codes_and_else_from_the_label(real, tmp_path):
    """Older SEGs code anatomy in SNOMED RT (T-62000: liver); a region that is no site leaves it to the label."""
    _, ct, masks = real
    coded = {"segment A": (codes.SCT.Neoplasm, [Code("T-62000", "SRT", "Liver")]),
             "lung_3": (codes.SCT.Neoplasm, [Code("3341006", "SCT", "Right lung")]),
             "segment C": (codes.SCT.Neoplasm, [Code("15776009", "SCT", "Pancreas")])}
    write_seg(ct, dict(zip(coded, masks.values(), strict=True)), tmp_path / "seg.dcm", coded=coded)
    lesions = load_lesions([tmp_path / "seg.dcm"], ct.image)
    assert [(lesion.lesion_id, lesion.site) for lesion in lesions] == [
        ("segment A", "liver"), ("lung_3", "lung"), ("segment C", None)]
