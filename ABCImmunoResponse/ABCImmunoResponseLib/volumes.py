"""Voxels of a volume node's grid as the SimpleITK images the core reads, same voxels and geometry, and back.

Slicer keeps geometry in RAS (right, anterior, superior); ITK, DICOM and every
file the core writes use LPS, so the first two axes change sign. Voxels are
copied: the copy can be handed to a worker thread while the scene goes on.
"""

from __future__ import annotations

from typing import Sequence

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


def imageOnVolumeGrid(voxels: np.ndarray, volumeNode) -> sitk.Image:
    """An ``sitk.Image`` holding a copy of ``voxels`` (z, y, x) with the volume's geometry in LPS (mm)."""
    image = sitk.GetImageFromArray(np.array(voxels, copy=True))
    directions = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASDirectionMatrix(directions)
    axesRas = np.array([[directions.GetElement(row, column) for column in range(3)] for row in range(3)])
    image.SetSpacing(tuple(float(value) for value in volumeNode.GetSpacing()))
    image.SetOrigin(tuple(float(value) for value in RAS_TO_LPS @ np.array(volumeNode.GetOrigin())))
    image.SetDirection(tuple(float(value) for value in (RAS_TO_LPS @ axesRas).ravel()))
    return image


def imageFromVolumeNode(volumeNode) -> sitk.Image:
    """A copy of a scalar volume node's voxels as an ``sitk.Image`` in LPS, spacing in mm.

    The node's own geometry is used; a parent transform is not applied, as
    features are computed on the voxel grid the scanner produced.
    """
    if volumeNode is None or volumeNode.GetImageData() is None:
        name = volumeNode.GetName() if volumeNode is not None else "none"
        raise InputError(_("CT volume '{name}': no voxel data; load the CT series before predicting.").format(name=name))
    imageData = volumeNode.GetImageData()
    components = imageData.GetNumberOfScalarComponents()
    if components != 1:
        raise InputError(_("CT volume '{name}': {components} components per voxel (a colour or vector image); select "
                           "the CT series itself, which has one intensity per voxel.").format(
            name=volumeNode.GetName(), components=components))
    return imageOnVolumeGrid(voxelArray(imageData), volumeNode)


def orientedLabelmap(voxels: np.ndarray, volumeNode, firstIndex: Sequence[int] = (0, 0, 0)
                     ) -> slicer.vtkOrientedImageData:
    """0/1 ``voxels`` (z, y, x) on the volume's grid as a labelmap Slicer's segmentations take.

    ``firstIndex`` (i, j, k) is the volume voxel of ``voxels[0, 0, 0]``: a crop
    keeps its place through the labelmap's extent, without a CT-sized copy.
    """
    array = np.ascontiguousarray(voxels, dtype=np.uint8)
    image = slicer.vtkOrientedImageData()
    image.SetExtent(*(value for start, count in zip(firstIndex, array.shape[::-1])
                      for value in (int(start), int(start) + count - 1)))
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.GetPointData().GetScalars().DeepCopy(numpy_support.numpy_to_vtk(array.ravel(), deep=True,
                                                                          array_type=vtk.VTK_UNSIGNED_CHAR))
    image.SetImageToWorldMatrix(ijkToRasMatrix(volumeNode))
    return image
