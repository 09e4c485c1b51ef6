"""Voxels of a volume node's grid as the SimpleITK images the core reads, same voxels and geometry, and back.

Slicer keeps geometry in RAS (right, anterior, superior); ITK, DICOM and every
file the core writes use LPS, so the first two axes change sign. Voxels are
copied: the copy can be handed to a worker thread while the scene goes on.

Everything is measured on the CT's own grid, the scanner's, in the frame its
DICOM files describe. A linear parent transform (a registration, a move in the
Transforms module) only places the CT in the scene: segments come into the CT's
frame through the transform between the two nodes (``segments.segmentCrop``), and
results go back where the CT is shown (``orientedLabelmap``). A non-linear one is
refused (``requireVoxelsOnGrid``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

import slicer
from abcir.errors import InputError

from .i18n import tr as _

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def ijkToRasMatrix(volumeNode) -> vtk.vtkMatrix4x4:
    """The volume's voxel-index-to-RAS matrix (mm), as Slicer stores it."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return matrix


def voxelArray(imageData) -> np.ndarray:
    """A vtkImageData's single-component scalars as a (z, y, x) numpy view (not a copy)."""
    return numpy_support.vtk_to_numpy(imageData.GetPointData().GetScalars()).reshape(imageData.GetDimensions()[::-1])


def imageOnVolumeGrid(voxels: np.ndarray, volumeNode, firstIndex: Sequence[int] = (0, 0, 0)) -> sitk.Image:
    """An ``sitk.Image`` holding a copy of ``voxels`` (z, y, x) with the volume's geometry in LPS (mm).

    ``firstIndex`` (i, j, k) is the volume voxel of ``voxels[0, 0, 0]``: a crop of the volume's grid.
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(voxels))  # copies into ITK's buffer
    directions = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASDirectionMatrix(directions)
    axesRas = np.array([[directions.GetElement(row, column) for column in range(3)] for row in range(3)])
    # The first voxel, where the volume's matrix puts it (for index 0, its translation: the node's origin).
    originRas = np.array(ijkToRasMatrix(volumeNode).MultiplyPoint([*map(float, firstIndex), 1.0])[:3])
    image.SetSpacing(tuple(float(value) for value in volumeNode.GetSpacing()))
    image.SetOrigin(tuple(float(value) for value in RAS_TO_LPS @ originRas))
    image.SetDirection(tuple(float(value) for value in (RAS_TO_LPS @ axesRas).ravel()))
    return image


def requireVoxelsOnGrid(volumeNode) -> None:
    """Refuse a volume under a non-linear transform: its voxels are not where its grid puts them.

    Slicer's DICOM reader (5.10, by default) loads a tilted-gantry or unevenly
    spaced series onto a regular grid and puts it under a grid "acquisition
    transform" that moves each slice to where it was acquired. Features, RECIST
    sizes and the DICOM export taken from that grid would be distorted, and differ
    from the command line reading the same series. Any non-linear transform is
    refused, as it cannot be told from such a correction; a linear one is
    accepted (see the module's docstring).
    """
    transformNode = volumeNode.GetParentTransformNode()
    if transformNode is None or transformNode.IsTransformToWorldLinear():
        return
    while transformNode.IsLinear():  # name the non-linear one, which may be further up the chain
        transformNode = transformNode.GetParentTransformNode()
    raise InputError(_("CT volume '{name}': it is under the non-linear transform '{transform}' (such as the "
                       "acquisition transform Slicer's DICOM reader adds to a tilted-gantry or unevenly spaced "
                       "series), so its voxels are not on its grid; harden the transform (Data module, 'Show "
                       "transforms' ticked: right-click the volume's transform column > Harden transform) or load "
                       "the series again with Application Settings > DICOM > 'Acquisition geometry regularization' "
                       "set to 'harden regularization transform'.").format(name=volumeNode.GetName(),
                                                                           transform=transformNode.GetName()))


def imageFromVolumeNode(volumeNode) -> sitk.Image:
    """A copy of a scalar volume node's voxels as an ``sitk.Image`` in LPS, spacing in mm.

    The node's own grid is used, without its linear parent transform: that is
    the scanner's grid, in the frame of the DICOM files the export refers to, and
    the frame ``segments.segmentCrop`` puts the masks in.
    """
    if volumeNode is None or volumeNode.GetImageData() is None:
        name = volumeNode.GetName() if volumeNode is not None else "none"
        raise InputError(_("CT volume '{name}': no voxel data; load the CT series before predicting.").format(
            name=name))
    requireVoxelsOnGrid(volumeNode)
    imageData = volumeNode.GetImageData()
    components = imageData.GetNumberOfScalarComponents()
    if components != 1:
        raise InputError(_("CT volume '{name}': {components} components per voxel (a colour or vector image); select "
                           "the CT series itself, which has one intensity per voxel.").format(
            name=volumeNode.GetName(), components=components))
    return imageOnVolumeGrid(voxelArray(imageData), volumeNode)


def orientedLabelmap(voxels: np.ndarray, volumeNode, firstIndex: Sequence[int] = (0, 0, 0)
                     ) -> slicer.vtkOrientedImageData:
    """0/1 ``voxels`` (z, y, x) on the volume's grid as a labelmap for a new segmentation node, in world RAS.

    ``firstIndex`` (i, j, k) is the volume voxel of ``voxels[0, 0, 0]``: a crop
    keeps its place through the labelmap's extent, without a CT-sized copy. The
    volume's linear transform is applied, so that a segmentation node without a
    transform (the ones this module adds) shows the result on the CT where the CT
    is shown, and ``segments.segmentCrop`` gives back the same voxels.
    """
    requireVoxelsOnGrid(volumeNode)
    volumeToWorld = vtk.vtkMatrix4x4()
    slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(volumeNode.GetParentTransformNode(), None, volumeToWorld)
    ijkToWorld = vtk.vtkMatrix4x4()
    vtk.vtkMatrix4x4.Multiply4x4(volumeToWorld, ijkToRasMatrix(volumeNode), ijkToWorld)
    array = np.ascontiguousarray(voxels, dtype=np.uint8)
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*(value for start, count in zip(firstIndex, array.shape[::-1], strict=True)
                      for value in (int(start), int(start) + count - 1)))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.GetPointData().GetScalars().DeepCopy(numpy_support.numpy_to_vtk(array.ravel(), deep=True,
                                                                          array_type=vtk.VTK_UNSIGNED_CHAR))
    image.SetImageToWorldMatrix(ijkToWorld)
    return image
