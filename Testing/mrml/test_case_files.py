"""Save case: four kinds of files under one base name, never overwriting, readable by the core."""

from __future__ import annotations

import csv
import hashlib
import json

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, load_segmentation

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402
import vtk  # noqa: E402
from ABCImmunoResponseLib.case_files import FEATURES_PROVENANCE_SUFFIX, FEATURES_SUFFIX, saveCase  # noqa: E402
from ABCImmunoResponseLib.lesion_table import lesionRows  # noqa: E402
from ABCImmunoResponseLib.segments import segmentTag, setSegmentIncluded  # noqa: E402
from abcir.errors import InputError  # noqa: E402
from abcir.features.table import provenance_path, read_features_csv  # noqa: E402
from abcir.imaging.segfile import SITE_TAG, read_seg_nrrd  # noqa: E402
from abcir.prediction.result import Prediction  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

LABELMAP = "Binary labelmap"
CLOSED_SURFACE = "Closed surface"
#: Two spheres (RAS centre in mm, radius in mm, site), apart, as an RTSTRUCT or imported models bring them.
SPHERES = {"liver_1": ((0.0, 0.0, 0.0), 10.0, "liver"), "lung_1": ((30.0, 0.0, 0.0), 8.0, "lung")}


def test_save_case_writes_every_file_and_a_second_save_gets_a_new_name(predicted, tmp_path):
    segmentation, volume = predicted["segmentation"], predicted["volume"]
    result = predicted["applied"]
    rows = lesionRows(segmentation, volume)
    saved = saveCase(tmp_path, "CT: patient/1", segmentation, result.prediction, result.featuresFile, rows)
    assert saved.baseName == "CT_ patient_1" and not saved.renamed
    names = sorted(path.name for path in saved.files)
    assert names == sorted(f"CT_ patient_1{suffix}" for suffix in
                           (".seg.nrrd", ".result.json", ".features.csv", ".features.provenance.json", ".lesions.csv"))

    segments = read_seg_nrrd(tmp_path / "CT_ patient_1.seg.nrrd")
    assert [(s.name, s.tags[SITE_TAG]) for s in segments] == [("pancreas_1", "other"), ("adrenal_1", "adrenal"),
                                                              ("colon_1", "peritoneum")]
    stored = json.loads((tmp_path / "CT_ patient_1.result.json").read_text())
    assert Prediction.from_dict(stored) == result.prediction
    features = read_features_csv(tmp_path / "CT_ patient_1.features.csv")
    assert list(features["lesion_id"]) == ["pancreas_1", "adrenal_1"]
    # the child's table and its provenance, copied byte for byte
    assert (tmp_path / "CT_ patient_1.features.csv").read_bytes() == result.featuresFile.read_bytes()
    assert (tmp_path / "CT_ patient_1.features.provenance.json").read_bytes() == \
        provenance_path(result.featuresFile).read_bytes()
    with open(tmp_path / "CT_ patient_1.lesions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [(row["lesion"], row["included"]) for row in table] == [("pancreas_1", "1"), ("adrenal_1", "1"),
                                                                   ("colon_1", "0")]

    before = {path: path.read_bytes() for path in saved.files}
    again = saveCase(tmp_path, "CT: patient/1", segmentation, result.prediction, result.featuresFile, rows)
    assert again.baseName == "CT_ patient_1_2" and again.renamed
    assert all(path.read_bytes() == content for path, content in before.items())  # nothing overwritten


def test_a_file_of_the_case_already_there_moves_the_whole_set_to_a_new_name(predicted, tmp_path):
    (tmp_path / "case.lesions.csv").write_text("someone else's file")
    saved = saveCase(tmp_path, "case", None, predicted["applied"].prediction, None, [])
    assert saved.baseName == "case_2" and [path.name for path in saved.files] == ["case_2.result.json"]
    assert (tmp_path / "case.lesions.csv").read_text() == "someone else's file"


def test_features_sidecar_name_is_the_core_s(tmp_path):
    assert provenance_path(tmp_path / f"x{FEATURES_SUFFIX}").name == f"x{FEATURES_PROVENANCE_SUFFIX}"


def test_nothing_to_save_is_said(tmp_path):
    with pytest.raises(InputError, match="nothing to save yet"):
        saveCase(tmp_path, "case", None, None, None, [])


def test_unticked_lesions_are_in_the_lesion_table_but_not_in_the_features(predicted, tmp_path):
    segmentation, volume = predicted["segmentation"], predicted["volume"]
    setSegmentIncluded(segmentation, "Segment_8", False)
    try:
        rows = lesionRows(segmentation, volume)
        saveCase(tmp_path, "case", None, None, None, rows)
        with open(tmp_path / "case.lesions.csv", newline="") as handle:
            included = [row["included"] for row in csv.DictReader(handle)]
        assert included == ["1", "0", "0"]
    finally:
        setSegmentIncluded(segmentation, "Segment_8", True)


def sphere_surface(center, radius):
    source = vtk.vtkSphereSource()
    source.SetCenter(*center)
    source.SetRadius(radius)
    source.SetThetaResolution(48)
    source.SetPhiResolution(48)
    source.Update()
    return source.GetOutput()


def reference_geometry(origin, extent) -> str:
    """A 1 mm axis-aligned grid as Slicer's 'Reference image geometry' conversion parameter (an RTSTRUCT gets its
    CT's; without one Slicer picks a 0.08 mm grid around each surface, too large for a unit test)."""
    image = slicer.vtkOrientedImageData()
    image.SetOrigin(*origin)
    image.SetSpacing(1.0, 1.0, 1.0)
    image.SetExtent(*extent)
    return slicer.vtkSegmentationConverter.SerializeImageGeometry(image)


def surface_segmentation(scene, name="Surfaces"):
    """A segmentation whose source representation is a closed surface, with site tags and a reference grid."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName(CLOSED_SURFACE)  # before adding, or Slicer converts to a labelmap
    segmentation.SetConversionParameter(slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(),
                                        reference_geometry((-20.0, -20.0, -20.0), (0, 69, 0, 39, 0, 39)))
    for segmentName, (center, radius, site) in SPHERES.items():
        segment = slicer.vtkSegment()
        segment.SetName(segmentName)
        segment.SetTag(SITE_TAG, site)
        segment.AddRepresentation(CLOSED_SURFACE, sphere_surface(center, radius))
        segmentation.AddSegment(segment)
    return node


def layered_segmentation(scene, name="Layers"):
    """A labelmap segmentation with two segments that do not overlap yet sit in two layers (one labelmap each),
    as after importing them one by one; Slicer's writer would merge them into one layer."""
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    for index, segmentName in enumerate(("liver_1", "lung_1")):
        image = slicer.vtkOrientedImageData()
        image.SetOrigin(20.0 * index, 0.0, 0.0)
        image.SetSpacing(1.0, 1.0, 1.0)
        image.SetExtent(0, 9, 0, 9, 0, 9)
        image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        image.GetPointData().GetScalars().Fill(1)
        segment = slicer.vtkSegment()
        segment.SetName(segmentName)
        segment.AddRepresentation(LABELMAP, image)
        node.GetSegmentation().AddSegment(segment)
    assert node.GetSegmentation().GetNumberOfLayers() == 2
    return node


def segmentation_state(node) -> tuple:
    """What saving must leave as it was: the source representation, the representations held, the layers, the
    segments (ID, name, site tag, label, the very data object, its modification time and a digest of its numbers),
    and the modification times of the node and its segmentation."""
    segmentation = node.GetSegmentation()
    source = segmentation.GetSourceRepresentationName()
    contained = []
    segmentation.GetContainedRepresentationNames(contained)
    segments = []
    for segmentId in segmentation.GetSegmentIDs():
        segment = segmentation.GetSegment(segmentId)
        data = segment.GetRepresentation(source)
        numbers = data.GetPointData().GetScalars() if isinstance(data, vtk.vtkImageData) else data.GetPoints().GetData()
        digest = hashlib.sha256(numpy_support.vtk_to_numpy(numbers).tobytes()).hexdigest()
        segments.append((segmentId, segment.GetName(), segmentTag(segment, SITE_TAG), segment.GetLabelValue(), data,
                         data.GetMTime(), digest))
    return (source, sorted(contained), segmentation.GetNumberOfLayers(), segments, node.GetMTime(),
            segmentation.GetMTime())


def centroid_lps(mask: sitk.Image) -> np.ndarray:
    """The centre of a mask's voxels in LPS (mm)."""
    indices = np.argwhere(sitk.GetArrayViewFromImage(mask) != 0)[:, ::-1].astype(float)  # (x, y, z)
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(indices.mean(axis=0).tolist()))


def test_a_closed_surface_segmentation_is_saved_as_a_seg_nrrd_that_slicer_and_the_core_read(standalone, tmp_path):
    node = surface_segmentation(standalone.scene)
    segmentIds = list(node.GetSegmentation().GetSegmentIDs())
    saved = saveCase(tmp_path, "surfaces", node, None, None, [])

    path = tmp_path / "surfaces.seg.nrrd"
    assert saved.files == (path,)
    assert [entry.name for entry in tmp_path.iterdir()] == [path.name]  # no folder of .vtp pieces beside it
    assert path.read_bytes().startswith(b"NRRD")  # not Slicer's XML .vtm under the .seg.nrrd name

    reread = load_segmentation(standalone.scene, path, "Reread")
    segmentation = reread.GetSegmentation()
    assert segmentation.GetSourceRepresentationName() == LABELMAP
    assert list(segmentation.GetSegmentIDs()) == segmentIds
    assert [segmentation.GetSegment(segmentId).GetName() for segmentId in segmentIds] == list(SPHERES)
    assert [segmentTag(segmentation.GetSegment(segmentId), SITE_TAG) for segmentId in segmentIds] == \
        [site for _, _, site in SPHERES.values()]

    segments = read_seg_nrrd(path)
    assert [(s.segment_id, s.name, s.tags[SITE_TAG]) for s in segments] == \
        [(segmentId, name, site) for segmentId, (name, (_, _, site)) in zip(segmentIds, SPHERES.items())]
    for segment, (center, radius, _) in zip(segments, SPHERES.values()):
        voxels = int(sitk.GetArrayViewFromImage(segment.mask).sum())
        assert segment.mask.GetSpacing() == (1.0, 1.0, 1.0)  # the reference grid, not Slicer's default
        assert voxels == pytest.approx(4 / 3 * np.pi * radius ** 3, rel=0.05)  # 1 mm voxels: mm3
        np.testing.assert_allclose(centroid_lps(segment.mask), [-center[0], -center[1], center[2]], atol=0.25)
        slicerMask = slicer.vtkOrientedImageData()
        assert reread.GetBinaryLabelmapRepresentation(segment.segment_id, slicerMask)
        assert int(numpy_support.vtk_to_numpy(slicerMask.GetPointData().GetScalars()).sum()) == voxels


@pytest.mark.parametrize("make", [layered_segmentation, surface_segmentation], ids=["layers", "closed_surface"])
def test_saving_leaves_the_scene_s_segmentation_as_it_was(standalone, tmp_path, make):
    node = make(standalone.scene)
    before = segmentation_state(node)
    saveCase(tmp_path, "case", node, None, None, [])
    assert segmentation_state(node) == before
    assert read_seg_nrrd(tmp_path / "case.seg.nrrd")[0].name == "liver_1"


def test_a_source_representation_that_cannot_become_a_labelmap_is_refused_before_writing(standalone, tmp_path):
    node = standalone.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Contours")
    segmentation = node.GetSegmentation()
    segmentation.SetSourceRepresentationName("Planar contour")  # SlicerRT's; its converters are not registered here
    segment = slicer.vtkSegment()
    segment.SetName("liver_1")
    segment.AddRepresentation("Planar contour", sphere_surface((0.0, 0.0, 0.0), 10.0))
    segmentation.AddSegment(segment)
    before = segmentation_state(node)
    with pytest.raises(InputError, match=r"Segmentation 'Contours': its source representation 'Planar contour' "
                                         r"cannot be converted to a binary labelmap.*SlicerRT"):
        saveCase(tmp_path, "case", node, None, None, [])
    assert list(tmp_path.iterdir()) == []
    assert segmentation_state(node) == before
