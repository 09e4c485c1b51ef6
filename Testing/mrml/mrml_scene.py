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


def whole_grid_mask(segmentation, segment_id: str, volume) -> sitk.Image:
    """A segment as a 0/1 mask on the whole of the CT's grid: the panel's crop (``segmentCrop``) placed on the
    grid as the child places a job's masks (``align_to_ct``)."""
    from abcir.patient.lesions import align_to_ct
    from ABCImmunoResponseLib.segments import segmentCrop
    from ABCImmunoResponseLib.volumes import imageFromVolumeNode

    return align_to_ct(segment_id, segmentCrop(segmentation, segment_id, volume), imageFromVolumeNode(volume))


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


def real_ct_files(shared_data: Path, folder: Path) -> dict:
    """The real CT (read by the core from DICOM) as an NRRD file in ``folder``, its image, and the organ labels on
    its grid (the ``real_ct`` fixture; ``Testing/benchmarks/bench_panel_poll.py`` makes the same case)."""
    from abcir.imaging.ct import read_ct

    image = read_ct(shared_data / "ct_dicom_example" / "dicom")
    path = folder / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    labels_file = shared_data / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"
    labels = sitk.Resample(sitk.ReadImage(str(labels_file)), image, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return {"path": path, "image": image, "labels": labels, "labels_file": labels_file}


def write_lesion_seg(labels: sitk.Image, path: Path) -> Path:
    """A .seg.nrrd written by the core (abcir.imaging.segfile) with the ``LESION_LABELS`` organs and their site tags."""
    from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd
    from abcir.patient.sites import SITES

    segments = [Segment(f"Segment_{value}", name, sitk.Cast(labels == value, sitk.sitkUInt8), SITES[site].color,
                        {SITE_TAG: site}) for value, (name, site) in LESION_LABELS.items()]
    return write_seg_nrrd(path, segments)


def two_lesion_scene(real_ct: dict, core_seg_file: Path) -> dict:
    """A new scene with the CT and the core-written segmentation, the colon unticked (keeps tests short)."""
    from ABCImmunoResponseLib.segments import setSegmentIncluded
    from ABCImmunoResponseLib.standalone import newStandaloneScene

    standalone = newStandaloneScene()
    volume = load_volume(standalone.scene, real_ct["path"])
    segmentation = load_segmentation(standalone.scene, core_seg_file)
    setSegmentIncluded(segmentation, "Segment_20", False)
    return {"standalone": standalone, "scene": standalone.scene, "volume": volume, "segmentation": segmentation}


def start_two_lesion_prediction(ct_path: str, seg_path: str, bundle_path: str, work_folder: str) -> tuple[dict, object]:
    """Predict as the panel does, two processes, on ``two_lesion_scene`` of these files: (scene nodes, run).

    What a fresh interpreter runs to watch the panel's polls (``test_panel_process``, ``bench_panel_poll``).
    """
    nodes = two_lesion_scene({"path": Path(ct_path)}, Path(seg_path))
    run = case_logic(nodes, Path(work_folder), jobs=2).startPrediction(case_parameter_node(nodes, Path(bundle_path)))
    return nodes, run


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
