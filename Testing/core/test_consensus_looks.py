"""A consensus segment keeps the colour and terminology of the reader whose outline (or site) it took."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from abcir.cli import main
from abcir.consensus.building import DEFAULT_COLOR, TERMINOLOGY_TAG
from abcir.imaging.segfile import SITE_TAG, Segment, read_seg_nrrd, write_seg_nrrd
from abcir.patient.sites import SITES

TAG = "ABCImmunoResponse.Consensus."
INCLUDE_TAG = "ABCImmunoResponse.Include"  # the Slicer panel's tick: abcir's own, never copied


def _terminology(code: str, meaning: str) -> str:
    """A terminology entry as Slicer 5 serialises it (category and type, then the anatomic region)."""
    return ("Segmentation category and type - DICOM master list~SCT^49755003^Morphologically Altered Structure"
            f"~SCT^14799000^Neoplasm, Secondary~^^~Anatomic codes - DICOM master list~SCT^{code}^{meaning}~^^")


def _ct() -> sitk.Image:
    rng = np.random.default_rng(3)
    ct = sitk.GetImageFromArray(rng.integers(-100, 200, size=(24, 64, 64)).astype(np.int16))
    ct.SetSpacing((1.0, 1.0, 2.0))
    ct.SetOrigin((-32.0, -32.0, 0.0))
    return ct


def _ball(ct: sitk.Image, centre_mm, radius_mm: float = 5.0) -> sitk.Image:
    z, y, x = np.indices(sitk.GetArrayViewFromImage(ct).shape)
    physical = np.stack([x - 32.0, y - 32.0, 2.0 * z], axis=-1)
    mask = sitk.GetImageFromArray((((physical - centre_mm) ** 2).sum(axis=-1) <= radius_mm ** 2).astype(np.uint8))
    mask.CopyInformation(ct)
    return mask


@pytest.fixture(scope="module")
def readers(tmp_path_factory) -> tuple[Path, Path, Path]:
    folder = tmp_path_factory.mktemp("looks")
    ct = _ct()
    sitk.WriteImage(ct, str(folder / "ct.nrrd"))
    at = {"liver_1": (-15.0, -15.0, 24.0), "lung_1": (15.0, -15.0, 24.0), "peritoneum_1": (-15.0, 15.0, 24.0),
          "adrenal_1": (15.0, 15.0, 24.0), "node_1": (0.0, 0.0, 24.0)}
    moved = {name: (x + 1.0, y, z) for name, (x, y, z) in at.items()}

    def segment(name, centre, color, site, terminology, **more):
        tags = {SITE_TAG: site, TERMINOLOGY_TAG: _terminology(*terminology), INCLUDE_TAG: "1", **more}
        return Segment(f"id_{name}", name, _ball(ct, centre), color, tags)

    a = [segment("liver_1", at["liver_1"], (0.9, 0.1, 0.1), "liver", ("10200004", "Liver"), Note="reader A's note"),
         segment("lung_1", at["lung_1"], (0.1, 0.9, 0.1), "lung", ("39607008", "Lung")),
         segment("peritoneum_1", at["peritoneum_1"], (0.2, 0.2, 0.9), "peritoneum", ("15425007", "Peritoneum")),
         segment("adrenal_1", at["adrenal_1"], (0.7, 0.7, 0.1), "adrenal", ("23451007", "Adrenal gland"),
                 Note="check adrenal")]
    b = [segment("liver_1", moved["liver_1"], (0.1, 0.1, 0.9), "liver", ("10200004", "Liver B")),
         segment("lung_1", moved["lung_1"], (0.9, 0.9, 0.1), "lung", ("39607008", "Lung B")),
         segment("peritoneum_1", moved["peritoneum_1"], (0.1, 0.8, 0.8), "lymph_node", ("59441001", "Lymph node B")),
         segment("adrenal_1", moved["adrenal_1"], (0.5, 0.1, 0.5), "adrenal", ("23451007", "Adrenal B")),
         segment("node_1", at["node_1"], (1.0, 0.5, 0.0), "lymph_node", ("59441001", "Node only B"))]
    return folder / "ct.nrrd", write_seg_nrrd(folder / "A.seg.nrrd", a), write_seg_nrrd(folder / "B.seg.nrrd", b)


def test_consensus_keeps_the_taken_readers_colour_and_terminology(readers, tmp_path):
    ct, path_a, path_b = readers
    before = {path: path.read_bytes() for path in (path_a, path_b)}
    given = {segment.name: segment for segment in read_seg_nrrd(path_a)}, \
        {segment.name: segment for segment in read_seg_nrrd(path_b)}
    assert main(["consensus", "--ct", str(ct), "--reader-a", str(path_a), "--reader-b", str(path_b),
                 "--out", str(tmp_path), "--chair", "Dr C", "--unmatched", "keep",
                 "--choose", "liver_1=union", "--choose", "lung_1=b",
                 "--choose", "peritoneum_1=a", "--site", "peritoneum_1=lymph_node",
                 "--choose", "adrenal_1=intersection", "--site", "adrenal_1=other"]) == 0
    built = {segment.name: segment for segment in read_seg_nrrd(tmp_path / "consensus.seg.nrrd")}
    assert sorted(built) == ["adrenal_1", "liver_1", "lung_1", "node_1", "peritoneum_1"]

    def expect(name: str, reader: int, source: str | None = None) -> None:
        """Colour, terminology and other non-abcir tags of ``source`` (default ``name``) of reader 0 (A) / 1 (B)."""
        taken = given[reader][source or name]
        assert built[name].color == pytest.approx(taken.color, abs=1e-6), name
        for key, value in taken.tags.items():
            if not key.startswith("ABCImmunoResponse."):
                assert built[name].tags[key] == value, (name, key)

    expect("liver_1", 0)  # union: reader A's look, including A's own note
    assert built["liver_1"].tags["Note"] == "reader A's note"
    expect("lung_1", 1)  # B's outline: B's look
    expect("node_1", 1)  # only B drew it
    # A's outline, but the chair took B's site: B's look, which describes that site
    expect("peritoneum_1", 1)
    assert built["peritoneum_1"].tags[SITE_TAG] == "lymph_node"
    assert "Lymph node B" in built["peritoneum_1"].tags[TERMINOLOGY_TAG]
    # a site neither reader gave: the site's colour; A's terminology names another organ and is dropped
    adrenal = built["adrenal_1"]
    assert adrenal.color == pytest.approx(SITES["other"].color, abs=1e-6)
    assert TERMINOLOGY_TAG not in adrenal.tags and adrenal.tags["Note"] == "check adrenal"
    for segment in built.values():  # abcir's own tags are the consensus', never copied from a reader
        assert INCLUDE_TAG not in segment.tags and segment.tags[TAG + "DecidedBy"] == "Dr C"
    assert {path: path.read_bytes() for path in (path_a, path_b)} == before


def test_a_mask_file_carries_no_look_and_its_consensus_segment_is_grey(readers, tmp_path):
    ct, _, path_b = readers
    sitk.WriteImage(read_seg_nrrd(path_b)[0].mask, str(tmp_path / "labels.nrrd"))  # B's liver_1, as a mask file
    assert main(["consensus", "--ct", str(ct), "--reader-a", str(tmp_path / "labels.nrrd"), "--reader-b", str(path_b),
                 "--out", str(tmp_path / "out"), "--chair", "Dr C", "--method", "a", "--unmatched", "exclude"]) == 0
    [segment] = read_seg_nrrd(tmp_path / "out" / "consensus.seg.nrrd")
    assert segment.color == pytest.approx(DEFAULT_COLOR)  # A's outline, no site, no colour of A's to keep
    assert TERMINOLOGY_TAG not in segment.tags  # B's terminology is not taken with A's outline


CUT_SHORT_NRRD = b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4 4 4\nencoding: gzip\n\n\x1f\x8b"


@pytest.mark.parametrize("content", [b"not an image", CUT_SHORT_NRRD])
def test_an_unreadable_edited_outline_is_refused_in_one_line(readers, tmp_path, capsys, content):
    """ITK's whole multi-line exception used to be the message."""
    ct, path_a, path_b = readers
    edited = tmp_path / "liver_edit.nrrd"
    edited.write_bytes(content)
    assert main(["consensus", "--ct", str(ct), "--reader-a", str(path_a), "--reader-b", str(path_b),
                 "--out", str(tmp_path / "out"), "--chair", "Dr C", "--method", "a", "--unmatched", "keep",
                 "--edited", f"liver_1={edited}"]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    assert error.startswith(f"abcir consensus: error: --edited liver_1 '{edited}': cannot be read (")
    assert not (tmp_path / "out" / "consensus.seg.nrrd").exists()
