"""A MRML scene outside the Slicer application, set up as Slicer sets up its own.

The ``slicer-core`` wheel has the MRML classes but not the application that
registers segmentation converters and connects file input/output. This does the
few steps the headless entry and the tests need: binary labelmap and closed
surface conversion rules, the segmentations logic (segmentation nodes and
storage), and a data I/O manager with a cache folder so ``.mrb`` bundles can be
read. Inside Slicer, use ``slicer.mrmlScene`` instead.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import slicer


def registerConverterRules() -> None:
    """Binary labelmap <-> closed surface, once per process (Slicer's Segmentations module does it at startup)."""
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    registered = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for rule in (slicer.vtkBinaryLabelmapToClosedSurfaceConversionRule,
                 slicer.vtkClosedSurfaceToBinaryLabelmapConversionRule):
        if rule.__name__ not in registered:
            factory.RegisterConverterRule(rule())


@dataclass
class StandaloneScene:
    """A scene with the logics that keep it usable; keep this object alive while using the scene."""

    scene: object
    segmentationsLogic: object
    remoteIO: object
    dataIO: object
    cacheFolder: tempfile.TemporaryDirectory = field(repr=False)

    def load(self, path: str | Path) -> None:
        """Read a ``.mrb`` bundle or a ``.mrml`` scene file (with the files it references) into the scene."""
        path = Path(path)
        if path.suffix.lower() == ".mrb":
            ok = self.scene.ReadFromMRB(str(path))
        else:
            self.scene.SetURL(str(path))
            ok = self.scene.Import()
        if not ok:
            raise OSError("Slicer's scene reader failed")


def newStandaloneScene() -> StandaloneScene:
    """An empty scene that reads and writes volumes, segmentations, tables and scene bundles."""
    registerConverterRules()
    scene = slicer.vtkMRMLScene()
    segmentationsLogic = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentationsLogic.SetMRMLScene(scene)
    cacheFolder = tempfile.TemporaryDirectory(prefix="abcir-mrml-cache-")
    remoteIO = slicer.vtkMRMLRemoteIOLogic()
    remoteIO.SetMRMLScene(scene)
    remoteIO.GetCacheManager().SetRemoteCacheDirectory(cacheFolder.name)
    dataIO = slicer.vtkDataIOManagerLogic()
    dataIO.SetMRMLScene(scene)
    dataIO.SetAndObserveDataIOManager(remoteIO.GetDataIOManager())
    remoteIO.AddDataIOToScene()
    return StandaloneScene(scene, segmentationsLogic, remoteIO, dataIO, cacheFolder)
