"""Voxels of a volume node's grid as the SimpleITK images the core reads, same voxels and geometry.

Slicer keeps geometry in RAS (right, anterior, superior); ITK, DICOM and every
file the core writes use LPS, so the first two axes change sign. Voxels are
copied: the copy can be handed to a worker thread while the scene goes on.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

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
