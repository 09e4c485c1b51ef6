"""Helpers shared by the MRML bridge tests (fixtures are in conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

SLICER_CORE_MISSING = ("slicer-core is not installed (pip install 'slicer-core>=5.13'); the MRML bridge tests need "
                       "its vtkMRMLScene")

#: TotalSegmentator labels of the real CT that stand in for target lesions: label -> (segment name, site).
LESION_LABELS = {7: ("pancreas_1", "other"), 8: ("adrenal_1", "adrenal"), 20: ("colon_1", "peritoneum")}


def label_mask(labels: sitk.Image, value: int) -> np.ndarray:
    """Voxels (z, y, x) of one label as a boolean array."""
    return sitk.GetArrayFromImage(labels) == value


def _read(scene, path: Path, name: str, node_class: str, storage_class: str):
    import slicer

    node = scene.AddNewNodeByClass(node_class, name)
    storage = getattr(slicer, storage_class)()
    storage.SetFileName(str(path))
    assert storage.ReadData(node), f"Slicer could not read {path}"
    return node


def load_volume(scene, path: Path, name: str = "CT"):
    """A scalar volume node read by Slicer's own reader (ITK through vtkMRMLVolumeArchetypeStorageNode)."""
    return _read(scene, path, name, "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode")


def load_segmentation(scene, path: Path, name: str = "Lesions"):
    """A segmentation node read by Slicer's own .seg.nrrd reader."""
    return _read(scene, path, name, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode")


def case_parameters(scene_nodes: dict, bundle_path: Path, **changes):
    """The panel's state for the stand-in patient: both facts confirmed, combined model, the given weights."""
    from ABCImmunoResponseLib.parameters import CaseParameters

    parameters = CaseParameters(ctVolume=scene_nodes["volume"], segmentation=scene_nodes["segmentation"],
                                priorLines="1", metastaticSites="1-2", visceral="yes", tnbc="no",
                                model="combined", bundlePath=str(bundle_path))
    for name, value in changes.items():
        setattr(parameters, name, value)
    return parameters


def case_parameter_node(scene_nodes: dict, bundle_path: Path, **changes):
    """The module's parameter node in the scene, holding ``case_parameters`` as the panel would store them."""
    from ABCImmunoResponseLib.parameters import getOrCreateParameterNode, writeCaseParameters

    node = getOrCreateParameterNode(scene_nodes["scene"])
    writeCaseParameters(node, case_parameters(scene_nodes, bundle_path, **changes))
    return node


def case_logic(scene_nodes: dict, work_folder: Path, jobs: int = 1):
    """The module's Logic on the test scene, with children started from this interpreter."""
    from ABCImmunoResponseLib.case_logic import CaseLogic, ChildRuntime

    return CaseLogic(scene_nodes["scene"], ChildRuntime.forThisProcess(work_folder, jobs=jobs))


def two_lesion_scene(real_ct: dict, core_seg_file: Path) -> dict:
    """A new scene with the CT and the core-written segmentation, the colon unticked (keeps tests short)."""
    from ABCImmunoResponseLib.segments import setSegmentIncluded
    from ABCImmunoResponseLib.standalone import newStandaloneScene

    standalone = newStandaloneScene()
    volume = load_volume(standalone.scene, real_ct["path"])
    segmentation = load_segmentation(standalone.scene, core_seg_file)
    setSegmentIncluded(segmentation, "Segment_20", False)
    return {"standalone": standalone, "scene": standalone.scene, "volume": volume, "segmentation": segmentation}


def scene_state(scene) -> tuple[str, list]:
    """The scene as Slicer would save it (its MRML text) and every node's ID, for byte-for-byte comparison."""
    scene.SetSaveToXMLString(1)
    scene.Commit()
    text = scene.GetSceneXMLString()
    scene.SetSaveToXMLString(0)
    return text, [scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())]


def still_running(processes: list, timeout: float) -> list:
    """Which of ``processes`` (psutil) still run ``timeout`` seconds on; a zombie has exited (only its parent, or
    init for orphans, can still reap it), so it does not count."""
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=timeout)
    running = []
    for process in alive:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(process)
        except psutil.NoSuchProcess:
            pass
    return running
