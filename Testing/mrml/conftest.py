"""Fixtures for the MRML bridge tests: a real ``vtkMRMLScene`` from the ``slicer-core`` wheel and the real CT.

The bridge (``ABCImmunoResponse/ABCImmunoResponseLib``) sits beside the module
file, not in the pip package; pytest puts its folder on ``sys.path``
(``pythonpath`` in pyproject.toml). Every
test module starts with ``pytest.importorskip("slicer_core", ...)`` so that
without the wheel the tests are skipped with the reason, not failed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO / "Testing" / "core"))  # tiny_bundles: small trained weight bundles

from mrml_scene import (SLICER_CORE_MISSING, case_logic, case_parameter_node, case_parameters,  # noqa: E402
                        load_segmentation, load_volume, real_ct_files, two_lesion_scene, write_lesion_seg)


@pytest.fixture(scope="session")
def real_ct(shared_data, tmp_path_factory):
    """The real CT (read by the core from DICOM) as an NRRD file, its image, and the organ labels on its grid."""
    return real_ct_files(shared_data, tmp_path_factory.mktemp("real_ct"))


@pytest.fixture(scope="session")
def core_seg_file(real_ct, tmp_path_factory):
    """A .seg.nrrd written by the core (abcir.imaging.segfile) with the three stand-in lesions and their site tags."""
    return write_lesion_seg(real_ct["labels"], tmp_path_factory.mktemp("core_seg") / "lesions.seg.nrrd")


@pytest.fixture
def standalone():
    pytest.importorskip("slicer_core", reason=SLICER_CORE_MISSING)
    from ABCImmunoResponseLib.standalone import newStandaloneScene

    return newStandaloneScene()


@pytest.fixture
def case_scene(standalone, real_ct, core_seg_file):
    """A scene with the real CT and the core-written segmentation, both read by Slicer."""
    scene = standalone.scene
    volume = load_volume(scene, real_ct["path"])
    segmentation = load_segmentation(scene, core_seg_file)
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    return {"standalone": standalone, "scene": scene, "volume": volume, "segmentation": segmentation}


@pytest.fixture(scope="session")
def bundles(real_ct, core_seg_file, tmp_path_factory):
    """Small bundles trained on synthetic data around the stand-in patient (pancreas + adrenal), so that its
    probability is not pinned at 0 or 1 (Testing/core/tiny_bundles; not validated, as the provenance says).

    Without torch they come from the cache in Testing/fixtures/tiny_bundles, where the combined fit is keyed by
    this patient's feature vector, extracted here from the real CT: it is found only with the images it was made
    from (../shared/data); with others the tests skip, naming the generator that adds the fit."""
    import numpy as np

    from abcir.models.aggregation import aggregate
    from abcir.models.bundle import Cutoff
    from abcir.features.extract import extract_lesions
    from abcir.patient.lesions import load_lesions
    from tiny_bundles import tiny_bundle, tiny_fit

    lesions = [lesion for lesion in load_lesions([core_seg_file], real_ct["image"])
               if lesion.lesion_id in ("pancreas_1", "adrenal_1")]
    rows = extract_lesions(real_ct["image"], lesions, "P1")
    center = aggregate(np.vstack([row.values for row in rows]), [lesion.size.volume_mm3 for lesion in lesions])
    folder = tmp_path_factory.mktemp("weights")
    return {"combined": tiny_bundle(folder / "combined", "combined", fit=tiny_fit("combined", center=center)),
            "clinical": tiny_bundle(folder / "clinical", "clinical", cutoff=Cutoff(-0.5, "fixed for the test"))}


@pytest.fixture(scope="session")
def predicted(real_ct, core_seg_file, bundles, tmp_path_factory):
    """One real prediction through the Logic, in a child process, polled until it ends (as the panel polls it)."""
    from ABCImmunoResponseLib.case import collectCaseInputs

    nodes = two_lesion_scene(real_ct, core_seg_file)
    logic = case_logic(nodes, tmp_path_factory.mktemp("work"))
    parameter_node = case_parameter_node(nodes, bundles["combined"])
    updates = []
    applied = logic.startPrediction(parameter_node).wait(timeoutSeconds=300, onUpdate=updates.append)
    return {**nodes, "logic": logic, "parameterNode": parameter_node, "applied": applied,
            "progress": [progress for update in updates for progress in update.progress],
            "inputs": collectCaseInputs(case_parameters(nodes, bundles["combined"]))}
