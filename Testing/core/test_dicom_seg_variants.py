"""DICOM SEG (and RTSTRUCT) as vendors and tools write them, read as --lesions on the real CT series.

Each SEG is made here from known masks on the CT's grid (highdicom, then edited with pydicom into
the layout a given writer uses: frame order, sparse frames, segment numbering, functional groups,
dimension indices, another grid, compression). The expected lesions are the masks the SEG was made
from (or, for a SEG on another grid, the nearest-neighbour image of the SEG's own voxels computed
here with numpy), never the reader's output. The reader got these wrong up to commit 73ac28e (a SEG drawn on
the CT is now put on the CT's voxels frame by frame, and decoding is tried on its own):

- sparse frames without SpacingBetweenSlices (Type 3 in the Pixel Measures macro) where no two
  frames lie on neighbouring slices: the slice spacing is inferred from the frames (4 mm instead
  of 2 mm) and the mask gains the slices between them, or the SEG is refused;
- segments whose frames have their own in-plane crop (any Image Position per frame is valid):
  refused as "not a regular 3D volume";
- pixel data the installed decoders cannot decompress: refused as a geometry problem.
"""

from __future__ import annotations

import copy
import io

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes

from abcir.cli import main
from abcir.dicom.series import read_dicom_ct
from abcir.errors import InputError
from abcir.patient.lesions import load_lesions
from dicom_cases import copy_series
from test_rtstruct_rasterisation import write_rtstruct

PANCREAS, ADRENAL = 7, 8
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


@pytest.fixture(scope="module")
def real(shared_data, tmp_path_factory):
    """The real series (UIDs restored), its source datasets for highdicom, and known masks (z, y, x) on its grid."""
    folder = tmp_path_factory.mktemp("seg_variants")
    copy_series(shared_data / "ct_dicom_example" / "dicom", folder / "ct", restore_uids=True)
    ct = read_dicom_ct(folder / "ct")
    organs = sitk.ReadImage(str(shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    labels = sitk.GetArrayFromImage(sitk.Resample(organs, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    sources = []
    for path in ct.files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in TYPE2:  # the anonymised series lacks these type 2 attributes
            if keyword not in dataset:
                setattr(dataset, keyword, "")
        sources.append(dataset)
    big = np.zeros(labels.shape, dtype=bool)
    big[4:12, 200:260, 300:360] = True
    inner = np.zeros(labels.shape, dtype=bool)
    inner[6:10, 220:240, 320:340] = True  # inside 'big': one voxel in two segments
    corner = np.zeros(labels.shape, dtype=bool)
    corner[8:14, 250:280, 350:380] = True  # overlaps 'big' in part
    masks = {"adrenal_1": labels == ADRENAL, "liver_2": big, "liver_3": inner, "liver_4": corner,
             "pancreas_5": labels == PANCREAS}
    return ct, sources, masks


def _segmentation(real, masks: dict[str, np.ndarray], kind: str = "BINARY", pixels: np.ndarray | None = None,
                  **options) -> hd.seg.Segmentation:
    """A highdicom SEG of ``masks`` (one segment each, numbered from 1 in this order) on the CT's slices."""
    _, sources, _ = real
    if pixels is None:
        pixels = np.stack(list(masks.values()), axis=-1).astype(np.uint8)
    descriptions = [hd.seg.SegmentDescription(number, name, codes.SCT.MorphologicallyAbnormalStructure,
                                              codes.SCT.Neoplasm, hd.seg.SegmentAlgorithmTypeValues.MANUAL)
                    for number, name in enumerate(masks, start=1)]
    return hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=kind, segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=50, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="abcir tests", manufacturer_model_name="test", software_versions="1", device_serial_number="1",
        **options)


def _lesions(path, ct_image) -> dict[str, np.ndarray]:
    return {lesion.lesion_id: sitk.GetArrayFromImage(lesion.mask).astype(bool)
            for lesion in load_lesions([path], ct_image)}


def _assert_masks(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    """Same lesion names, and each mask voxel for voxel (the count of differing voxels in the message)."""
    assert sorted(found) == sorted(expected)
    for name, mask in expected.items():
        wrong = int(np.count_nonzero(found[name] != mask))
        assert wrong == 0, (f"{name}: {wrong} voxels differ (expected {int(mask.sum())}, "
                            f"read {int(found[name].sum())})")


def _frames(dataset: Dataset) -> np.ndarray:
    """The stored frames (frames, rows, columns), also for a single-frame SEG."""
    pixels = dataset.pixel_array
    return pixels[None] if int(dataset.NumberOfFrames) == 1 else pixels


def _set_binary_frames(dataset: Dataset, frames: np.ndarray) -> None:
    """Replace a BINARY SEG's frames: bit-packed across frame boundaries, as PS3.5 8.1.1 says."""
    dataset.NumberOfFrames = len(frames)
    dataset.Rows, dataset.Columns = frames.shape[1:]
    dataset.PixelData = pydicom.pixels.pack_bits(frames.astype(np.uint8).ravel())


def _edited(real, tmp_path, name, masks, edit, **options):
    path = tmp_path / f"{name}.dcm"
    _segmentation(real, masks, **options).save_as(path)
    dataset = pydicom.dcmread(path)
    edit(dataset)
    dataset.save_as(path)
    return path


def _slice_index(frame_item: Dataset, ct) -> int:
    """The CT slice a frame lies on, from its Image Position (not from any index the writer recorded)."""
    position = [float(v) for v in frame_item.PlanePositionSequence[0].ImagePositionPatient]
    return round(ct.image.TransformPhysicalPointToContinuousIndex(position)[2])


# ---------------------------------------------------------------- fractional

@pytest.mark.parametrize("fractional_type", ["PROBABILITY", "OCCUPANCY"])
@pytest.mark.parametrize("maximum", [255, 100, 7, 1])
def test_fractional_segments_are_inside_from_half_the_maximum_value(real, tmp_path, fractional_type, maximum):
    """Random stored values 0..MaximumFractionalValue over two overlapping boxes: inside where stored >= max / 2
    (the README's 0.5, dcmqi and Slicer keep the stored fraction); the stored values come from the generator."""
    ct, _, masks = real
    rng = np.random.default_rng(maximum)
    regions = {name: masks[name] for name in ("liver_2", "liver_4")}
    stored = {name: np.where(region, rng.integers(0, maximum + 1, size=region.shape), 0)
              for name, region in regions.items()}
    pixels = np.stack([values / maximum for values in stored.values()], axis=-1).astype(np.float32)
    path = tmp_path / "fractional.dcm"
    _segmentation(real, regions, "FRACTIONAL", pixels, fractional_type=fractional_type,
                  max_fractional_value=maximum).save_as(path)
    written = hd.seg.segread(path)
    assert written.MaximumFractionalValue == maximum and written.SegmentationFractionalType == fractional_type
    raw = written.get_volume(rescale_fractional=False).array
    assert raw.max() == maximum and (maximum % 2 or (raw == maximum // 2).any())  # exactly 0.5 occurs: inside
    _assert_masks(_lesions(path, ct.image), {name: 2 * values >= maximum for name, values in stored.items()})


@pytest.mark.parametrize("syntax", ["RLE", "JPEG-LS", "JPEG 2000", "deflated"])
def test_compressed_fractional_seg_reads_back(real, tmp_path, syntax):
    """A PACS may store a fractional SEG compressed losslessly; frames are encoded here with pydicom's own
    encoders (RLE, JPEG-LS via pyjpegls) or Pillow's OpenJPEG (JPEG 2000), decoded by the reader's pydicom."""
    ct, _, masks = real
    regions = {name: masks[name] for name in ("adrenal_1", "liver_4")}
    pixels = np.stack([np.where(region, 0.8, 0.3 * (~region)) for region in regions.values()], axis=-1)
    path = tmp_path / "compressed.dcm"
    _segmentation(real, regions, "FRACTIONAL", pixels.astype(np.float32)).save_as(path)
    dataset = pydicom.dcmread(path)
    if syntax == "RLE":
        dataset.compress(pydicom.uid.RLELossless)
    elif syntax == "JPEG-LS":
        dataset.compress(pydicom.uid.JPEGLSLossless, encoding_plugin="pyjpegls")
    elif syntax == "JPEG 2000":
        from PIL import Image

        encoded = []
        for frame in _frames(dataset):
            buffer = io.BytesIO()
            Image.fromarray(frame.astype(np.uint8)).save(buffer, format="JPEG2000", irreversible=False, no_jp2=True)
            encoded.append(buffer.getvalue())
        dataset.PixelData = encapsulate(encoded)
        dataset["PixelData"].VR = "OB"
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
    else:
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
    _assert_masks(_lesions(path, ct.image), regions)


def test_pixel_data_that_cannot_be_decoded_is_named_as_such(real, tmp_path):
    """Failed at 73ac28e: frames in a transfer syntax no installed plugin decodes (JPEG Lossless SV1, the most common
    lossless one; the frames here are not a valid JPEG stream, so any decoder fails) are refused as a geometry
    problem ('frames do not form a regular 3D volume ... export the SEG again on the CT's slices')."""
    ct, _, masks = real
    path = tmp_path / "undecodable.dcm"
    _segmentation(real, {"liver_2": masks["liver_2"]}, "FRACTIONAL",
                  masks["liver_2"][..., None].astype(np.float32)).save_as(path)
    dataset = pydicom.dcmread(path)
    dataset.PixelData = encapsulate([frame.tobytes() for frame in _frames(dataset)])
    dataset["PixelData"].VR = "OB"
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.JPEGLosslessSV1
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError) as refused:
        load_lesions([path], ct.image)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message
    assert "regular 3D volume" not in message, message
    assert any(word in message.lower() for word in ("decod", "decompress", "transfer syntax")), message


# ---------------------------------------------------------------- frames, segments, functional groups

def _permute_frames(order_of):
    def edit(dataset):
        frames = _frames(dataset)
        order = order_of(len(frames))
        groups = list(dataset.PerFrameFunctionalGroupsSequence)
        dataset.PerFrameFunctionalGroupsSequence = Sequence([groups[i] for i in order])
        _set_binary_frames(dataset, frames[order])
    return edit


@pytest.mark.parametrize("order", ["shuffled", "reversed"])
def test_frames_in_any_order_give_the_same_masks(real, tmp_path, order):
    ct, _, masks = real
    permutation = {"shuffled": lambda n: np.random.default_rng(3).permutation(n),
                   "reversed": lambda n: np.arange(n)[::-1]}[order]
    path = _edited(real, tmp_path, order, masks, _permute_frames(permutation))
    _assert_masks(_lesions(path, ct.image), masks)


def _renumber(numbers, dimension_values=True):
    def edit(dataset):
        for item in dataset.SegmentSequence:
            item.SegmentNumber = numbers[item.SegmentNumber]
        for group in dataset.PerFrameFunctionalGroupsSequence:
            reference = group.SegmentIdentificationSequence[0]
            reference.ReferencedSegmentNumber = numbers[reference.ReferencedSegmentNumber]
            if dimension_values:
                content = group.FrameContentSequence[0]
                content.DimensionIndexValues = [numbers[content.DimensionIndexValues[0]],
                                                *content.DimensionIndexValues[1:]]
    return edit


@pytest.mark.parametrize("case", ["from 3 with gaps", "from 2", "stale dimension index values",
                                  "segment sequence reversed"])
def test_segment_numbers_need_not_start_at_one_nor_follow_the_sequence(real, tmp_path, case):
    """Frames belong to the segment their ReferencedSegmentNumber names (dcmqi writes label values as numbers)."""
    ct, _, masks = real
    edit = {"from 3 with gaps": _renumber({1: 3, 2: 7, 3: 12, 4: 13, 5: 40}),
            "from 2": _renumber({n: n + 1 for n in range(1, 6)}),
            "stale dimension index values": _renumber({1: 5, 2: 4, 3: 3, 4: 2, 5: 1}, dimension_values=False),
            "segment sequence reversed": lambda ds: setattr(ds, "SegmentSequence",
                                                            Sequence(list(ds.SegmentSequence)[::-1]))}[case]
    path = _edited(real, tmp_path, "renumbered", masks, edit)
    _assert_masks(_lesions(path, ct.image), masks)


def test_overlapping_segments_stay_separate(real, tmp_path):
    """'liver_3' lies inside 'liver_2' and 'liver_4' overlaps it: each keeps all its voxels."""
    ct, _, masks = real
    overlapping = {name: masks[name] for name in ("liver_2", "liver_3", "liver_4")}
    assert np.count_nonzero(overlapping["liver_2"] & overlapping["liver_3"]) == 1600
    path = tmp_path / "overlap.dcm"
    _segmentation(real, overlapping).save_as(path)
    _assert_masks(_lesions(path, ct.image), overlapping)


def _move_to_each_frame(keyword, name):
    """An edit (called ``name``) that moves a shared functional group (``keyword``) into every frame's groups."""
    def edit(dataset):
        shared = dataset.SharedFunctionalGroupsSequence[0]
        item = shared[keyword].value
        del shared[keyword]
        for group in dataset.PerFrameFunctionalGroupsSequence:
            setattr(group, keyword, copy.deepcopy(item))
    edit.__name__ = name
    return edit


_orientation_per_frame = _move_to_each_frame("PlaneOrientationSequence", "orientation_per_frame")
_measures_per_frame = _move_to_each_frame("PixelMeasuresSequence", "measures_per_frame")


def _stack_dimensions(dataset):
    """Dimensions Segment, Stack ID, In-Stack Position (as some vendors index frames) instead of the position."""
    organisation = dataset.DimensionIndexSequence[0].DimensionOrganizationUID
    items = []
    for pointer, group, label in ((0x0062000B, 0x0062000A, "Referenced Segment Number"),
                                  (0x00209056, 0x00209111, "Stack ID"),
                                  (0x00209057, 0x00209111, "In-Stack Position Number")):
        item = Dataset()
        item.DimensionOrganizationUID, item.DimensionIndexPointer = organisation, pointer
        item.FunctionalGroupPointer, item.DimensionDescriptionLabel = group, label
        items.append(item)
    dataset.DimensionIndexSequence = Sequence(items)
    heights = sorted({float(g.PlanePositionSequence[0].ImagePositionPatient[2])
                      for g in dataset.PerFrameFunctionalGroupsSequence}, reverse=True)
    for group in dataset.PerFrameFunctionalGroupsSequence:
        content = group.FrameContentSequence[0]
        position = heights.index(float(group.PlanePositionSequence[0].ImagePositionPatient[2])) + 1
        content.StackID, content.InStackPositionNumber = "1", position
        content.DimensionIndexValues = [content.DimensionIndexValues[0], 1, position]


def _reversed_position_index(dataset):
    for group in dataset.PerFrameFunctionalGroupsSequence:
        content = group.FrameContentSequence[0]
        content.DimensionIndexValues = [content.DimensionIndexValues[0], 100 - content.DimensionIndexValues[1]]


def _two_decimal_positions(dataset):
    for group in dataset.PerFrameFunctionalGroupsSequence:
        position = group.PlanePositionSequence[0]
        position.ImagePositionPatient = [f"{float(v):.2f}" for v in position.ImagePositionPatient]


def _no_references(dataset):
    del dataset.ReferencedSeriesSequence
    for group in dataset.PerFrameFunctionalGroupsSequence:
        del group.DerivationImageSequence


@pytest.mark.parametrize("edit", [_orientation_per_frame, _measures_per_frame, _stack_dimensions,
                                  _reversed_position_index, _two_decimal_positions, _no_references],
                         ids=lambda edit: edit.__name__.strip("_"))
def test_functional_group_layouts(real, tmp_path, edit):
    ct, _, masks = real
    path = _edited(real, tmp_path, edit.__name__.strip("_"), masks, edit)
    _assert_masks(_lesions(path, ct.image), masks)


def test_shared_plane_position_and_segment_identification(real, tmp_path):
    """All frames on one slice (a key-slice SEG): the position may sit in the shared functional groups; one
    segment: so may its identification."""
    ct, _, _ = real
    first, second = (np.zeros(ct.image.GetSize()[::-1], dtype=bool) for _ in range(2))
    first[9, 200:230, 300:330], second[9, 100:130, 300:330] = True, True

    def shared_position(dataset):
        position = dataset.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
        for group in dataset.PerFrameFunctionalGroupsSequence:
            del group.PlanePositionSequence
        dataset.SharedFunctionalGroupsSequence[0].PlanePositionSequence = position

    two = {"liver_1": first, "liver_2": second}
    _assert_masks(_lesions(_edited(real, tmp_path, "shared_position", two, shared_position), ct.image), two)
    one = {"liver_1": first}
    seg = _segmentation(real, one)
    assert "SegmentIdentificationSequence" in seg.SharedFunctionalGroupsSequence[0]
    seg.save_as(tmp_path / "one.dcm")
    _assert_masks(_lesions(tmp_path / "one.dcm", ct.image), one)


def test_dcmqi_layout_as_slicer_quantitative_reporting_writes_it(real, tmp_path):
    """dcmqi's itkimage2segimage (libsrc/Itk2DicomConverter.cpp): per segment, one frame for every slice of its
    bounding box (empty ones too), segment after segment; a position index that restarts at 1 for each segment;
    spacing as '%e' strings with SliceThickness = SpacingBetweenSlices; the source images in a shared Derivation
    Image Sequence; SegmentsOverlap UNDEFINED."""
    ct, _, masks = real
    holed = masks["liver_2"].copy()
    holed[7] = False  # an empty slice inside the bounding box: dcmqi writes an empty frame for it
    layout = {"liver_2": holed, "liver_4": masks["liver_4"]}

    def dcmqi(dataset):
        frames = _frames(dataset)
        shared = dataset.SharedFunctionalGroupsSequence[0]
        derivation = copy.deepcopy(dataset.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence)
        derivation[0].SourceImageSequence = Sequence(
            [copy.deepcopy(g.DerivationImageSequence[0].SourceImageSequence[0])
             for g in dataset.PerFrameFunctionalGroupsSequence
             if g.SegmentIdentificationSequence[0].ReferencedSegmentNumber == 1])
        shared.DerivationImageSequence = derivation
        measures = shared.PixelMeasuresSequence[0]
        measures.PixelSpacing = ["9.765625e-01", "9.765625e-01"]
        measures.SpacingBetweenSlices = measures.SliceThickness = "2.000000e+00"
        kept, groups = [], []
        for number, mask in enumerate(layout.values(), start=1):
            present = np.flatnonzero(mask.any(axis=(1, 2)))
            for i, group in enumerate(dataset.PerFrameFunctionalGroupsSequence):
                k = _slice_index(group, ct)
                if group.SegmentIdentificationSequence[0].ReferencedSegmentNumber == number and \
                        present[0] <= k <= present[-1]:
                    del group.DerivationImageSequence
                    group.FrameContentSequence[0].DimensionIndexValues = [number, int(k - present[0] + 1)]
                    kept.append(i)
                    groups.append(group)
        dataset.PerFrameFunctionalGroupsSequence = Sequence(groups)
        _set_binary_frames(dataset, frames[kept])
        dataset.SegmentsOverlap = "UNDEFINED"

    path = _edited(real, tmp_path, "dcmqi", layout, dcmqi, omit_empty_frames=False)
    written = pydicom.dcmread(path)
    assert int(written.NumberOfFrames) == 8 + 6  # the empty slice 7 of liver_2 has its frame
    _assert_masks(_lesions(path, ct.image), layout)


def test_labelmap_seg_with_segment_numbers_not_from_one(real, tmp_path):
    """LABELMAP SEG (pixel value = segment number; highdicom writes a 'Background' segment 0, not a lesion)."""
    ct, _, masks = real
    labels = np.zeros(masks["liver_2"].shape, dtype=np.uint8)
    labels[masks["liver_2"]], labels[masks["liver_4"]] = 1, 2
    expected = {"liver_2": masks["liver_2"] & ~masks["liver_4"], "liver_4": masks["liver_4"]}

    def renumber(dataset):
        dataset.PixelData = np.array([0, 4, 9], dtype=np.uint8)[_frames(dataset)].tobytes()
        for item in dataset.SegmentSequence:
            item.SegmentNumber = {0: 0, 1: 4, 2: 9}[item.SegmentNumber]

    seg = _segmentation(real, expected, "LABELMAP", labels)
    seg.save_as(tmp_path / "labelmap.dcm")
    _assert_masks(_lesions(tmp_path / "labelmap.dcm", ct.image), expected)
    dataset = pydicom.dcmread(tmp_path / "labelmap.dcm")
    renumber(dataset)
    dataset.save_as(tmp_path / "labelmap_renumbered.dcm")
    _assert_masks(_lesions(tmp_path / "labelmap_renumbered.dcm", ct.image), expected)


def test_empty_segment_is_refused_in_one_line_naming_it(real, tmp_path):
    """A segment with no frame at all (highdicom omits empty frames) is no lesion: refused, naming it."""
    ct, _, masks = real
    path = tmp_path / "empty.dcm"
    _segmentation(real, {"liver_2": masks["liver_2"], "liver_9": np.zeros_like(masks["liver_2"])}).save_as(path)
    assert {g.SegmentIdentificationSequence[0].ReferencedSegmentNumber
            for g in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence} == {1}
    with pytest.raises(InputError) as refused:
        load_lesions([path], ct.image)
    assert "\n" not in str(refused.value) and "'liver_9'" in str(refused.value) and "empty" in str(refused.value)


# ---------------------------------------------------------------- sparse frames (fail today)

def _without_slice_spacing(dataset):
    del dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices


@pytest.mark.parametrize("slices", [[[4, 6, 8]], [[5], [8]], [[4, 6, 9]]],
                         ids=["every other slice", "one slice each", "irregular gaps"])
def test_sparse_frames_without_spacing_between_slices_stay_on_their_slices(real, tmp_path, slices):
    """Failed at 73ac28e. Frames only where a segment is present and no SpacingBetweenSlices (Type 3, left out by
    many writers): highdicom infers the slice spacing from the frames present (4 mm here, the CT has 2 mm),
    and the masks are resampled onto the CT with the slices in between filled ('every other slice': 1,800
    extra voxels; 'one slice each': each 600-voxel lesion read as 1,800), or refused ('irregular gaps').
    Each frame lies on a CT slice, so each must land on that slice."""
    ct, _, _ = real
    expected = {}
    for number, ks in enumerate(slices, start=1):
        mask = np.zeros(ct.image.GetSize()[::-1], dtype=bool)
        mask[ks, 200 - 60 * number:230 - 60 * number, 300:320] = True
        expected[f"liver_{number}"] = mask
    path = _edited(real, tmp_path, "sparse", expected, _without_slice_spacing)
    positions = {_slice_index(g, ct) for g in pydicom.dcmread(path).PerFrameFunctionalGroupsSequence}
    assert positions == {k for ks in slices for k in ks}
    _assert_masks(_lesions(path, ct.image), expected)


def test_sparse_frames_with_spacing_between_slices(real, tmp_path):
    """The same sparse SEG with SpacingBetweenSlices (as highdicom and dcmqi write it) is read right today."""
    ct, _, _ = real
    mask = np.zeros(ct.image.GetSize()[::-1], dtype=bool)
    mask[[4, 6, 8], 140:170, 300:320] = True
    path = tmp_path / "sparse_spacing.dcm"
    _segmentation(real, {"liver_1": mask}).save_as(path)
    _assert_masks(_lesions(path, ct.image), {"liver_1": mask})


# ---------------------------------------------------------------- frames on another grid

DX = 0.9765625  # the CT's pixel spacing (mm)


def _regrid(real, tmp_path, name, masks, frame, rows, columns, position, orientation=None, spacing=None):
    """A SEG of ``masks`` whose every frame is replaced: pixels ``frame(pixels, segment)``, position
    ``position(xyz, segment)`` (patient mm), optional shared orientation and pixel spacing."""
    def edit(dataset):
        frames = _frames(dataset)
        new = []
        shared = dataset.SharedFunctionalGroupsSequence[0]
        for pixels, group in zip(frames, dataset.PerFrameFunctionalGroupsSequence, strict=True):
            number = group.get("SegmentIdentificationSequence",
                               shared.get("SegmentIdentificationSequence"))[0].ReferencedSegmentNumber
            item = group.PlanePositionSequence[0]
            xyz = position([float(v) for v in item.ImagePositionPatient], number)
            item.ImagePositionPatient = [f"{v:.6f}" for v in xyz]
            new.append(frame(pixels, number))
        if orientation is not None:
            shared.PlaneOrientationSequence[0].ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        if spacing is not None:
            shared.PixelMeasuresSequence[0].PixelSpacing = [f"{v:.7f}" for v in spacing]
        _set_binary_frames(dataset, np.stack(new))
        assert (dataset.Rows, dataset.Columns) == (rows, columns)
    return _edited(real, tmp_path, name, masks, edit)


def _nearest(count_ct: int, first: float, step: float, count_seg: int) -> tuple[np.ndarray, np.ndarray]:
    """For CT voxels 0..count_ct-1 along one axis, the nearest SEG voxel (SEG voxel j at CT index first + j*step)
    and whether the CT voxel lies within the SEG's extent (half a SEG voxel beyond the outer centres)."""
    continuous = (np.arange(count_ct) - first) / step
    return np.clip(np.round(continuous).astype(int), 0, count_seg - 1), np.abs(
        continuous - np.clip(continuous, 0, count_seg - 1)) <= 0.5


@pytest.mark.parametrize("grid", ["crop", "odd crop", "rotated 180", "rows flipped", "coarser", "coarser, shifted"])
def test_frames_on_another_grid(real, tmp_path, grid):
    """Frames on a crop, a flip or a coarser in-plane grid of the CT (the CT's slices): the expected mask is the
    SEG's own voxels, copied (crop, flip) or nearest-neighbour sampled at the CT's voxel centres, computed here."""
    ct, _, masks = real
    chosen = {name: masks[name] for name in ("adrenal_1", "liver_2", "liver_4")}
    expected = chosen
    if grid in ("crop", "odd crop"):
        r0, c0, rows, columns = (180, 200, 168, 184) if grid == "crop" else (190, 199, 151, 193)
        path = _regrid(real, tmp_path, grid, chosen, lambda f, s: f[r0:r0 + rows, c0:c0 + columns], rows, columns,
                       lambda p, s: [p[0] + c0 * DX, p[1] + r0 * DX, p[2]])
        expected = {name: np.pad(mask[:, r0:r0 + rows, c0:c0 + columns],
                                 ((0, 0), (r0, 512 - r0 - rows), (c0, 512 - c0 - columns)))
                    for name, mask in chosen.items()}
    elif grid == "rotated 180":
        path = _regrid(real, tmp_path, "rot180", chosen, lambda f, s: f[::-1, ::-1], 512, 512,
                       lambda p, s: [p[0] + 511 * DX, p[1] + 511 * DX, p[2]], orientation=(-1, 0, 0, 0, -1, 0))
    elif grid == "rows flipped":  # slice normal -z: frames stacked the other way
        path = _regrid(real, tmp_path, "flipy", chosen, lambda f, s: f[::-1, :], 512, 512,
                       lambda p, s: [p[0], p[1] + 511 * DX, p[2]], orientation=(1, 0, 0, 0, -1, 0))
    else:
        # SEG voxel j centred at CT index first + 2.5 j: never half-way between two CT voxel centres.
        first = 0.0 if grid == "coarser" else 0.3
        count = 204
        sampled = np.round(first + 2.5 * np.arange(count)).astype(int)
        path = _regrid(real, tmp_path, "coarse", chosen, lambda f, s: f[np.ix_(sampled, sampled)], count, count,
                       lambda p, s: [p[0] + first * DX, p[1] + first * DX, p[2]], spacing=(2.5 * DX, 2.5 * DX))
        nearest, inside = _nearest(512, first, 2.5, count)
        expected = {}
        for name, mask in chosen.items():
            seg_voxels = mask[:, sampled][:, :, sampled]
            expected[name] = seg_voxels[:, nearest][:, :, nearest] & inside[None, :, None] & inside[None, None, :]
    _assert_masks(_lesions(path, ct.image), expected)


def test_frames_on_thinner_slices(real, tmp_path):
    """A SEG on 1 mm slices of the CT's 2 mm grid (an AI tool's working grid): CT slice k is nearest to SEG
    frame 2k (same position); the frames half-way between hold another box, which must not appear."""
    ct, _, masks = real
    box = masks["liver_2"]
    decoy = np.roll(box, 40, axis=2)

    def thinner(dataset):
        frames, groups = [], []
        shared = dataset.SharedFunctionalGroupsSequence[0]
        shared.PixelMeasuresSequence[0].SpacingBetweenSlices = "1.0"
        by_slice = {_slice_index(g, ct): (g, f) for g, f in zip(dataset.PerFrameFunctionalGroupsSequence,
                                                                 _frames(dataset), strict=True)}
        for j in range(2 * (len(by_slice) - 1) + 1):
            group, pixels = by_slice[j // 2]
            group = copy.deepcopy(group)
            if j % 2:
                del group.DerivationImageSequence
                position = group.PlanePositionSequence[0]
                position.ImagePositionPatient = [position.ImagePositionPatient[0], position.ImagePositionPatient[1],
                                                 f"{float(position.ImagePositionPatient[2]) + 1.0:.6f}"]
                pixels = decoy[j // 2]
            frames.append(pixels)
            groups.append(group)
        dataset.PerFrameFunctionalGroupsSequence = Sequence(groups)
        _set_binary_frames(dataset, np.stack(frames))

    path = _edited(real, tmp_path, "thinner", {"liver_2": box}, thinner, omit_empty_frames=False)
    _assert_masks(_lesions(path, ct.image), {"liver_2": box})


def test_segments_with_their_own_frame_crop(real, tmp_path):
    """Failed at 73ac28e. Each segment's frames cropped around that segment (same size, another Image Position per
    segment; PS3.3 allows any position per frame): every frame lies on the CT's grid, but the reader asks
    highdicom for one volume over all frames and refuses the SEG ('segment 1's frames do not form a regular
    3D volume ... Export the SEG again on the CT's slices')."""
    ct, _, masks = real
    chosen = {"liver_2": masks["liver_2"], "liver_4": masks["liver_4"]}
    corners = {1: (190, 290), 2: (240, 340)}
    path = _regrid(real, tmp_path, "own_crop", chosen,
                   lambda f, s: f[corners[s][0]:corners[s][0] + 80, corners[s][1]:corners[s][1] + 80], 80, 80,
                   lambda p, s: [p[0] + corners[s][1] * DX, p[1] + corners[s][0] * DX, p[2]])
    _assert_masks(_lesions(path, ct.image), chosen)


def test_oblique_seg_is_refused_in_one_line(real, tmp_path):
    ct, _, masks = real
    angle = np.radians(10)
    path = _regrid(real, tmp_path, "oblique", {"liver_2": masks["liver_2"]}, lambda f, s: f, 512, 512,
                   lambda p, s: p, orientation=(np.cos(angle), np.sin(angle), 0, -np.sin(angle), np.cos(angle), 0))
    with pytest.raises(InputError, match="rotated 10.00 degrees") as refused:
        load_lesions([path], ct.image)
    assert "\n" not in str(refused.value)


def test_seg_referencing_another_series_is_refused_naming_both(real, tmp_path):
    ct, _, masks = real
    other = pydicom.uid.generate_uid(entropy_srcs=["abcir seg variants", "other series"])

    def elsewhere(dataset):
        dataset.ReferencedSeriesSequence[0].SeriesInstanceUID = other

    path = _edited(real, tmp_path, "elsewhere", {"liver_2": masks["liver_2"]}, elsewhere)
    with pytest.raises(InputError) as refused:
        load_lesions([path], ct.image)
    message = str(refused.value)
    assert "\n" not in message and other in message and ct.series_instance_uid in message


# ---------------------------------------------------------------- RTSTRUCT: refused (README, DICOM)

def _ring(cx: float, cy: float, radius: float, points: int = 24, reverse: bool = False) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    loop = np.stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)], axis=1)
    return loop[::-1] if reverse else loop


@pytest.mark.parametrize("variant", ["on slices", "hole as reversed inner contour", "no contour sequence",
                                     "POINT", "OPEN_PLANAR", "between slices"])
def test_rtstruct_variants_are_refused_in_one_line(real, tmp_path, variant):
    ct, _, _ = real
    structures = {"liver_1": {k: [_ring(300.3, 200.7, 12.2)] for k in range(5, 9)}}
    if variant == "hole as reversed inner contour":
        structures["liver_1"] = {k: [_ring(300.3, 200.7, 12.2), _ring(300.3, 200.7, 5.1, reverse=True)]
                                 for k in range(5, 9)}
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(ct, structures, path)
    dataset = pydicom.dcmread(path)
    contours = dataset.ROIContourSequence[0]
    if variant == "no contour sequence":
        del contours.ContourSequence
    elif variant in ("POINT", "OPEN_PLANAR"):
        for item in contours.ContourSequence:
            item.ContourGeometricType = variant
            if variant == "POINT":
                item.NumberOfContourPoints, item.ContourData = 1, item.ContourData[:3]
    elif variant == "between slices":
        for item in contours.ContourSequence:
            item.ContourData = [f"{float(v) + (1.0 if i % 3 == 2 else 0.0):.6f}"
                                for i, v in enumerate(item.ContourData)]
    dataset.save_as(path)
    with pytest.raises(InputError) as refused:
        load_lesions([path], ct.image)
    message = str(refused.value)
    assert "\n" not in message and str(path) in message and "RTSTRUCT is not read" in message
    assert "SlicerRT" in message


def test_rtstruct_on_the_command_line_exits_2_in_one_line(real, tmp_path, capsys):
    ct, _, _ = real
    path = tmp_path / "rtstruct.dcm"
    write_rtstruct(ct, {"liver_1": {k: [_ring(300.3, 200.7, 12.2)] for k in range(5, 9)}}, path)
    folder = str(ct.files[0]).rsplit("/", 1)[0]
    assert main(["extract", "--ct", folder, "--lesions", str(path), "--out", str(tmp_path / "f.csv")]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and str(path) in error and not (tmp_path / "f.csv").exists()
