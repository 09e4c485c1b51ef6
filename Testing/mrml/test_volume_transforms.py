"""A CT volume node under a parent transform, as Slicer 5.10 leaves it, to the core's image and back.

Slicer's DICOM reader puts a tilted-gantry or unevenly spaced series under a
grid "acquisition transform" (DICOMScalarVolumePlugin, AcquisitionModeling): the
node's own grid is then not where the voxels are, so such a volume is refused.
A linear transform only places the CT in the scene: the image is the CT's own
grid, segments are brought onto it, and results are put back where the CT is
shown. The volumes are small synthetic ones on an oblique grid, so that a sign
or axis mistake shows.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import SimpleITK as sitk
from mrml_scene import SLICER_CORE_MISSING, whole_grid_mask

pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)

import slicer  # noqa: E402
import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from abcir.errors import InputError  # noqa: E402
from abcir.patient.lesions import align_to_ct  # noqa: E402
from abcir.patient.measurements import measure_lesion  # noqa: E402
from ABCImmunoResponseLib.case import collectCaseInputs  # noqa: E402
from ABCImmunoResponseLib.consensus import collectConsensusInputs  # noqa: E402
from ABCImmunoResponseLib.lesion_table import lesionRows  # noqa: E402
from ABCImmunoResponseLib.parameters import CaseParameters  # noqa: E402
from ABCImmunoResponseLib.segments import segmentCrop, segmentSize  # noqa: E402
from ABCImmunoResponseLib.sensitivity import addOutlineSegmentation  # noqa: E402
from ABCImmunoResponseLib.volumes import imageFromVolumeNode, orientedLabelmap  # noqa: E402

SIZE = (20, 18, 16)  # i, j, k
SPACING = (0.8, 0.7, 2.0)  # mm
ORIGIN_RAS = (10.0, -20.0, 30.0)  # mm
ANGLE = math.radians(30.0)
# Columns: the i, j, k axes in RAS, turned 30 degrees about the superior axis.
AXES_RAS = np.array([[math.cos(ANGLE), -math.sin(ANGLE), 0.0],
                     [math.sin(ANGLE), math.cos(ANGLE), 0.0],
                     [0.0, 0.0, 1.0]])
LESION = (slice(5, 9), slice(6, 10), slice(7, 12))  # (k, j, i): voxels of the bright block
LESION_HU = 3000


def _voxels() -> np.ndarray:
    """A (k, j, i) ramp, distinct in every voxel, with a bright block no ramp value reaches."""
    voxels = np.arange(np.prod(SIZE), dtype=np.int16).reshape(SIZE[::-1]) % 2000 - 1000
    voxels[LESION] = LESION_HU
    return voxels


def _lesion_mask() -> np.ndarray:
    mask = np.zeros(SIZE[::-1], dtype=np.uint8)
    mask[LESION] = 1
    return mask


def _ct(scene, name: str = "CT"):
    """A scalar volume node holding ``_voxels`` on the oblique grid."""
    image = vtk.vtkImageData()
    image.SetDimensions(*SIZE)
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = _voxels().ravel()
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    volume.SetAndObserveImageData(image)
    volume.SetSpacing(*SPACING)
    volume.SetOrigin(*ORIGIN_RAS)
    directions = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            directions.SetElement(row, column, AXES_RAS[row, column])
    volume.SetIJKToRASDirectionMatrix(directions)
    return volume


def _rigid_move(scene, parent=None):
    """A linear transform node: 20 degrees about the anterior axis, then 7, -4, 12 mm."""
    angle = math.radians(20.0)
    matrix = vtk.vtkMatrix4x4()
    for (row, column), value in {(0, 0): math.cos(angle), (0, 2): math.sin(angle), (2, 0): -math.sin(angle),
                                 (2, 2): math.cos(angle), (0, 3): 7.0, (1, 3): -4.0, (2, 3): 12.0}.items():
        matrix.SetElement(row, column, value)
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Registration")
    node.SetMatrixTransformToParent(matrix)
    if parent is not None:
        node.SetAndObserveTransformNodeID(parent.GetID())
    return node


def _to_world(volume, ijk) -> np.ndarray:
    """Where a voxel index (i, j, k) is shown: its RAS point through the volume's transforms (mm)."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    local = ijk_to_ras.MultiplyPoint((*ijk, 1.0))[:3]
    world = [0.0, 0.0, 0.0]
    volume.TransformPointToWorld(local, world)
    return np.array(world)


def _labelmap_centre(segmentation_node, segment_id) -> np.ndarray:
    """Mean RAS point of a segment's voxels as stored, in the segmentation's own frame (mm)."""
    labelmap = slicer.vtkOrientedImageData()
    segmentation_node.GetBinaryLabelmapRepresentation(segment_id, labelmap)
    extent = labelmap.GetExtent()
    values = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars()).reshape(
        [extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1])
    k, j, i = np.nonzero(values)
    ijk = np.stack([i + extent[0], j + extent[2], k + extent[4], np.ones_like(i)]).astype(float)
    image_to_world = vtk.vtkMatrix4x4()
    labelmap.GetImageToWorldMatrix(image_to_world)
    matrix = np.array([[image_to_world.GetElement(row, column) for column in range(4)] for row in range(4)])
    return (matrix @ ijk)[:3].mean(axis=1)


def _acquisition_transform(scene, volume):
    """A grid transform as Slicer's DICOM reader makes for a tilted gantry (``gridTransformFromCorners``):
    one displacement per slice corner, each slice shifted along j by 1 mm more than the one below."""
    grid = vtk.vtkImageData()
    grid.SetOrigin(*volume.GetOrigin())
    grid.SetDimensions(2, 2, SIZE[2])
    grid.SetSpacing(SPACING[0] * SIZE[0], SPACING[1] * SIZE[1], SPACING[2])
    grid.AllocateScalars(vtk.VTK_DOUBLE, 3)
    displacements = numpy_support.vtk_to_numpy(grid.GetPointData().GetScalars()).reshape(SIZE[2], 2, 2, 3)
    displacements[:] = 0.0
    displacements[...] = AXES_RAS[:, 1] * np.arange(SIZE[2])[:, None, None, None]
    transform = slicer.vtkOrientedGridTransform()
    directions = vtk.vtkMatrix4x4()
    volume.GetIJKToRASDirectionMatrix(directions)
    transform.SetGridDirectionMatrix(directions)
    transform.SetDisplacementGridData(grid)
    node = scene.AddNewNodeByClass("vtkMRMLGridTransformNode", "CT acquisition transform")
    node.SetAndObserveTransformToParent(transform)
    return node


def _bspline_transform(scene, volume):
    """A vtkMRMLTransformNode holding a VTK B-spline warp (as a deformable registration leaves)."""
    coefficients = vtk.vtkImageData()
    coefficients.SetOrigin(*volume.GetOrigin())
    coefficients.SetDimensions(4, 4, 4)
    coefficients.SetSpacing(10.0, 10.0, 10.0)
    coefficients.AllocateScalars(vtk.VTK_DOUBLE, 3)
    values = numpy_support.vtk_to_numpy(coefficients.GetPointData().GetScalars())
    values[:] = 0.0
    values[21] = (2.0, -1.0, 0.5)  # one inner control point moved
    transform = vtk.vtkBSplineTransform()
    transform.SetCoefficientData(coefficients)
    node = scene.AddNewNodeByClass("vtkMRMLTransformNode", "Deformable registration")
    node.SetAndObserveTransformToParent(transform)
    return node


def _grid_under_move(scene, volume):
    """A linear transform under a grid transform: the chain to world is not linear."""
    return _rigid_move(scene, parent=_acquisition_transform(scene, volume))


def test_without_a_transform_the_image_is_the_node_grid_in_lps(standalone):
    image = imageFromVolumeNode(_ct(standalone.scene))
    assert image.GetSize() == SIZE
    assert image.GetPixelID() == sitk.sitkInt16
    assert np.array_equal(sitk.GetArrayViewFromImage(image), _voxels())
    assert image.GetSpacing() == pytest.approx(SPACING, abs=1e-12)
    assert image.GetOrigin() == pytest.approx((-10.0, 20.0, 30.0), abs=1e-12)
    lps_axes = np.diag([-1.0, -1.0, 1.0]) @ AXES_RAS
    assert image.GetDirection() == pytest.approx(tuple(lps_axes.ravel()), abs=1e-12)
    # Independent of the code under test: ITK's index-to-point of a voxel is Slicer's IJK-to-RAS point in LPS.
    volume = standalone.scene.GetFirstNodeByName("CT")
    ras = _to_world(volume, (3, 11, 9))
    assert image.TransformIndexToPhysicalPoint((3, 11, 9)) == pytest.approx((-ras[0], -ras[1], ras[2]), abs=1e-9)


@pytest.mark.parametrize("make_transform", [_acquisition_transform, _bspline_transform, _grid_under_move],
                         ids=["dicom-acquisition-grid", "bspline", "linear-under-grid"])
def test_a_volume_under_a_non_linear_transform_is_refused_naming_it_and_the_fix(standalone, make_transform):
    scene = standalone.scene
    volume = _ct(scene, "Tilted CT")
    transform = make_transform(scene, volume)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    assert not transform.IsTransformToWorldLinear()
    non_linear = transform if not transform.IsLinear() else transform.GetParentTransformNode()
    with pytest.raises(InputError) as refused:
        imageFromVolumeNode(volume)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith("CT volume 'Tilted CT': it is under the non-linear transform "
                              f"'{non_linear.GetName()}'")
    assert "Harden transform" in message
    assert "'Acquisition geometry regularization' set to 'harden regularization transform'" in message
    # Results cannot be placed on such a CT either.
    with pytest.raises(InputError, match="'Tilted CT': it is under the non-linear transform"):
        orientedLabelmap(_lesion_mask(), volume)


def test_consensus_refuses_a_tilted_ct_before_reading_the_segmentations(standalone):
    scene = standalone.scene
    volume = _ct(scene, "Tilted CT")
    volume.SetAndObserveTransformNodeID(_acquisition_transform(scene, volume).GetID())
    a = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Reader A")
    b = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Reader B")  # empty: reading them would fail otherwise
    with pytest.raises(InputError, match="CT volume 'Tilted CT': it is under the non-linear transform"):
        collectConsensusInputs(volume, a, b, "Dr A", "Dr B")


def test_the_lesion_table_and_predict_refuse_a_tilted_ct_before_measuring_its_lesions(standalone):
    """The lesion table shows the refusal instead of sizes from the distorted grid, and Predict says it first,
    not RECIST findings measured there."""
    scene = standalone.scene
    volume = _ct(scene, "Tilted CT")
    volume.SetAndObserveTransformNodeID(_acquisition_transform(scene, volume).GetID())
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Lesions")
    segmentation.GetSegmentation().AddEmptySegment("liver_1")  # empty: a RECIST error if it were measured
    with pytest.raises(InputError, match="CT volume 'Tilted CT': it is under the non-linear transform"):
        lesionRows(segmentation, volume)
    parameters = CaseParameters(ctVolume=volume, segmentation=segmentation, model="radiomics")
    with pytest.raises(InputError, match="CT volume 'Tilted CT': it is under the non-linear transform"):
        collectCaseInputs(parameters)


def test_hardening_the_acquisition_transform_makes_the_volume_usable(standalone):
    scene = standalone.scene
    volume = _ct(scene)
    volume.SetAndObserveTransformNodeID(_acquisition_transform(scene, volume).GetID())
    volume.HardenTransform()  # resamples the voxels onto a regular grid that holds the sheared stack
    assert volume.GetParentTransformNode() is None
    assert imageFromVolumeNode(volume).GetSize() == volume.GetImageData().GetDimensions()


def test_under_a_linear_transform_the_image_is_the_ct_own_grid(standalone):
    scene = standalone.scene
    expected = imageFromVolumeNode(_ct(scene, "Unmoved"))
    volume = _ct(scene)
    volume.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
    image = imageFromVolumeNode(volume)
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(expected))
    assert image.GetSpacing() == expected.GetSpacing()
    assert image.GetOrigin() == expected.GetOrigin()
    assert image.GetDirection() == expected.GetDirection()


def test_a_segment_drawn_on_the_moved_ct_covers_the_ct_voxels_under_it(standalone):
    """The segmentation (no transform) is drawn where the CT is shown; its mask must select the bright block."""
    scene = standalone.scene
    volume = _ct(scene)
    volume.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
    drawn = slicer.vtkOrientedImageData()
    drawn.SetExtent(0, SIZE[0] - 1, 0, SIZE[1] - 1, 0, SIZE[2] - 1)
    drawn.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(drawn.GetPointData().GetScalars())[:] = _lesion_mask().ravel()
    ijk_to_world, to_world, ijk_to_ras = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
    volume.GetParentTransformNode().GetMatrixTransformToWorld(to_world)
    volume.GetIJKToRASMatrix(ijk_to_ras)
    vtk.vtkMatrix4x4.Multiply4x4(to_world, ijk_to_ras, ijk_to_world)
    drawn.SetImageToWorldMatrix(ijk_to_world)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Lesions")
    segment_id = segmentation.GetSegmentation().AddEmptySegment("lesion", "lesion")
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        drawn, segmentation, segment_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    mask = sitk.GetArrayFromImage(whole_grid_mask(segmentation, segment_id, volume))
    assert np.array_equal(mask, _lesion_mask())
    ct = sitk.GetArrayFromImage(imageFromVolumeNode(volume))  # a copy: a view would outlive its image
    assert np.all(ct[mask == 1] == LESION_HU)


def test_results_are_placed_on_the_moved_ct_where_it_is_shown(standalone):
    """A new segmentation node filled as the consensus fills it: shown on the CT, and read back voxel for voxel."""
    scene = standalone.scene
    volume = _ct(scene)
    volume.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
    node = slicer.vtkMRMLSegmentationNode()
    segment_id = node.GetSegmentation().AddEmptySegment("consensus", "consensus")
    assert slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
        orientedLabelmap(_lesion_mask(), volume), node, segment_id,
        slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE)
    node.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    scene.AddNode(node)
    lesion_centre = [(part.start + part.stop - 1) / 2 for part in LESION][::-1]  # (i, j, k)
    assert _labelmap_centre(node, segment_id) == pytest.approx(_to_world(volume, lesion_centre), abs=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(whole_grid_mask(node, segment_id, volume)), _lesion_mask())


def test_changed_outlines_are_shown_on_the_moved_ct(standalone, tmp_path):
    """A crop (as the child writes each changed outline) keeps its place on a CT under a linear transform."""
    scene = standalone.scene
    volume = _ct(scene)
    volume.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
    crop = np.ones((4, 4, 5), dtype=np.uint8)  # the bright block's voxels
    sitk.WriteImage(sitk.GetImageFromArray(crop), str(tmp_path / "erode.nrrd"))
    node = addOutlineSegmentation(scene, volume, "lesion", [{"mask": "erode.nrrd", "perturbation": "erode_1mm",
                                                             "first_index": [7, 6, 5]}], tmp_path)
    segment_id = node.GetSegmentation().GetNthSegmentID(0)
    assert np.array_equal(sitk.GetArrayFromImage(whole_grid_mask(node, segment_id, volume)), _lesion_mask())


def _blob_segmentation(scene, offset_mm=(0.0, 0.0, 0.0), empty=False):
    """A segmentation holding one irregular segment on a grid of its own: 0.5 mm voxels, turned 10 degrees."""
    rng = np.random.default_rng(3)
    size = (14, 12, 10)  # i, j, k
    voxels = (rng.random(size[::-1]) < 0.45).astype(np.uint8)
    voxels[:, :2] = 0  # not filling its own extent either
    if empty:
        voxels[:] = 0
    labelmap = slicer.vtkOrientedImageData()
    labelmap.SetDimensions(*size)
    labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = voxels.ravel()
    angle = math.radians(10.0)
    matrix = vtk.vtkMatrix4x4()
    axes = np.array([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0], [-math.sin(angle), 0.0, math.cos(angle)]])
    centre = np.array(ORIGIN_RAS) + AXES_RAS @ (np.array(SIZE) * np.array(SPACING) / 2)
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, axes[row, column] * 0.5)
        matrix.SetElement(row, 3, centre[row] - 3.0 + offset_mm[row])
    labelmap.SetImageToWorldMatrix(matrix)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Blob")
    node.AddSegmentFromBinaryLabelmapRepresentation(labelmap, "blob_1", [1.0, 0.0, 0.0])
    return node


def _whole_grid_mask(segmentation, volume) -> np.ndarray:
    """The segment resampled onto every voxel of the CT's grid: what the panel did before it resampled only the
    voxels around the segment (the reference the new way must equal)."""
    labelmap = slicer.vtkOrientedImageData()
    segmentation.GetBinaryLabelmapRepresentation(segmentation.GetSegmentation().GetNthSegmentID(0), labelmap)
    reference = slicer.vtkOrientedImageData()
    reference.SetExtent(volume.GetImageData().GetExtent())
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(ijk_to_ras)
    reference.SetImageToWorldMatrix(ijk_to_ras)
    transform = None
    if segmentation.GetParentTransformNode() or volume.GetParentTransformNode():
        transform = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(segmentation.GetParentTransformNode(),
                                                             volume.GetParentTransformNode(), transform)
    resampled = slicer.vtkOrientedImageData()
    assert slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, False, transform)
    return numpy_support.vtk_to_numpy(resampled.GetPointData().GetScalars()).reshape(SIZE[::-1]) != 0


def _small_move(scene):
    """A linear transform node that keeps the blob on the small CT: 7 degrees about the superior axis through
    the CT's centre, then 1.3, -0.8, 2.5 mm."""
    centre = np.array(ORIGIN_RAS) + AXES_RAS @ (np.array(SIZE) * np.array(SPACING) / 2)
    angle = math.radians(7.0)
    rotation = np.array([[math.cos(angle), -math.sin(angle), 0.0], [math.sin(angle), math.cos(angle), 0.0],
                         [0.0, 0.0, 1.0]])
    translation = centre - rotation @ centre + np.array([1.3, -0.8, 2.5])
    matrix = vtk.vtkMatrix4x4()
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, rotation[row, column])
        matrix.SetElement(row, 3, translation[row])
    node = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Small move")
    node.SetMatrixTransformToParent(matrix)
    return node


@pytest.mark.parametrize("case", ["same frame", "segmentation moved", "ct moved", "both moved", "deformed",
                                  "partly outside", "outside", "empty"])
def test_a_segment_mask_resampled_around_the_segment_equals_the_whole_grid_resampled(standalone, case):
    """Only the CT voxels around a segment are resampled; the mask is the one resampling every voxel gives."""
    scene = standalone.scene
    volume = _ct(scene)
    offset = {"partly outside": (0.0, 0.0, 14.0), "outside": (0.0, 0.0, 60.0)}.get(case, (0.0, 0.0, 0.0))
    segmentation = _blob_segmentation(scene, offset, empty=case == "empty")
    if case == "segmentation moved":
        segmentation.SetAndObserveTransformNodeID(_small_move(scene).GetID())
    if case == "ct moved":
        volume.SetAndObserveTransformNodeID(_small_move(scene).GetID())
    if case == "both moved":  # each by a move of its own, the same one
        segmentation.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
        volume.SetAndObserveTransformNodeID(_rigid_move(scene).GetID())
    if case == "deformed":
        segmentation.SetAndObserveTransformNodeID(_bspline_transform(scene, volume).GetID())
    expected = _whole_grid_mask(segmentation, volume)
    segment_id = segmentation.GetSegmentation().GetNthSegmentID(0)
    crop = segmentCrop(segmentation, segment_id, volume)  # what Predict sends, and the lesion table measures
    assert sitk.GetArrayViewFromImage(crop).dtype == np.uint8
    assert set(np.unique(sitk.GetArrayViewFromImage(crop))) <= {0, 1}
    if case in ("outside", "empty"):
        assert not expected.any()
        assert crop.GetSize() == (1, 1, 1) and not sitk.GetArrayViewFromImage(crop).any()
        return
    assert 0 < expected.sum() < expected.size / 4  # a lesion, not the whole grid
    placed = whole_grid_mask(segmentation, segment_id, volume)  # as the child places it
    assert np.array_equal(sitk.GetArrayViewFromImage(placed) != 0, expected)
    assert segmentSize(segmentation, segment_id, volume) == measure_lesion(placed)  # to the bit
    if case != "deformed":  # a non-linear transform gets the whole grid
        assert np.prod(crop.GetSize()) < expected.size / 2
