"""What Slicer waits for, on a big CT: Predict pressed, and the lesion table rebuilt after an edit.

Both run on Slicer's GUI thread:

* Predict (``ABCImmunoResponseLib.case``): the CT and each ticked segment copied out of the scene
  (``collectCaseInputs``; the lesion table has measured the segments already, as the panel shows it before
  Predict), then the job folder the child reads (``writePredictionJob``);
* the lesion table after an edit in the Segment Editor (``lesion_table.lesionRows`` with no size cached: the
  segments share one labelmap layer, as Slicer keeps them, so an edit of one measures all again).

The scene is the slicer-core wheel's: the generated 512 x 512 x 300 CT of ``bench_whole_process.py``
(0.7 x 0.7 x 1.25 mm) read by Slicer's volume reader, its five lesions (0.6-251 mL) as the segments of a
``.seg.nrrd`` read by Slicer's segmentation reader.

The reference is what the panel did before: each segment resampled onto every voxel of the CT's grid
(Slicer's ``ResampleOrientedImageToReferenceOrientedImage`` with the CT's whole extent, the voxels copied
twice on the way to SimpleITK), written whole into the job folder, and measured on the whole grid. The
panel now resamples, writes and measures each segment's region only. Rounds alternate between the two,
each from the same scene, and check that the masks, placed on the CT's grid as the child places them, are
identical voxel for voxel, and the sizes identical to the bit.

    python Testing/benchmarks/bench_panel_predict.py [--rounds 3] [--keep FOLDER]

Needs the slicer-core wheel (``.venv312``). Prints each round, the best of each and their ratios.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "ABCImmunoResponse"), str(REPO / "Testing" / "mrml"), str(Path(__file__).parent)]

from bench_whole_process import lesion_names, synthetic_case  # noqa: E402
from mrml_scene import SLICER_CORE_MISSING, case_parameters, load_segmentation, load_volume  # noqa: E402

from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd  # noqa: E402
from abcir.models.bundle import bundled_bundle  # noqa: E402
from abcir.patient.lesions import align_to_ct  # noqa: E402
from abcir.patient.measurements import measure_lesion  # noqa: E402


def whole_grid_segment_mask(segmentationNode, segmentId: str, volumeNode) -> sitk.Image:
    """The reference: the segment resampled onto every voxel of the CT's grid, as the panel did before."""
    import slicer

    from ABCImmunoResponseLib.segments import segmentOnVolumeGrid
    from ABCImmunoResponseLib.volumes import imageOnVolumeGrid, voxelArray

    labelmap, reference, transform = segmentOnVolumeGrid(segmentationNode, segmentId, volumeNode)
    resampled = slicer.vtkOrientedImageData()
    slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(
        labelmap, reference, resampled, False, False, transform)
    voxels = (voxelArray(resampled) != 0).astype(np.uint8)
    return imageOnVolumeGrid(np.array(voxels, copy=True), volumeNode)  # imageOnVolumeGrid copied them before


def write_whole_mask(mask: sitk.Image, folder: Path, name: str) -> str:
    """The reference: a lesion's mask written with the CT's size."""
    from ABCImmunoResponseLib.case import writeImage

    return writeImage(mask, folder, name)


def scene_of(case: Path, work: Path):
    """The slicer-core scene with the case's CT and its lesions as one segmentation, and the panel's parameters."""
    from ABCImmunoResponseLib.lesion_table import SizeCache, lesionRows
    from ABCImmunoResponseLib.standalone import newStandaloneScene

    names = lesion_names(case)
    segments = [Segment(f"Segment_{index}", name, sitk.ReadImage(str(case / f"{name}.nrrd")),
                        tags={SITE_TAG: name.rsplit("_", 1)[0]}) for index, name in enumerate(names)]
    write_seg_nrrd(work / "lesions.seg.nrrd", segments)
    standalone = newStandaloneScene()
    volume = load_volume(standalone.scene, case / "ct.nrrd")
    segmentation = load_segmentation(standalone.scene, work / "lesions.seg.nrrd")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    parameters = case_parameters({"volume": volume, "segmentation": segmentation},
                                 bundled_bundle("combined").path)
    sizes = SizeCache()
    lesionRows(segmentation, volume, sizes)  # the lesion table the panel shows before Predict
    return standalone, parameters, sizes


def press_predict(parameters, sizes, folder: Path, reference: bool) -> tuple[float, list[sitk.Image]]:
    """Seconds of ``collectCaseInputs`` + ``writePredictionJob`` (the new way or the reference), and the masks
    as the child puts them on the CT's grid."""
    from ABCImmunoResponseLib import case, segments

    saved = segments.segmentCrop, case.writeLesionMask
    if reference:
        segments.segmentCrop, case.writeLesionMask = whole_grid_segment_mask, write_whole_mask
    try:
        start = time.perf_counter()
        inputs = case.collectCaseInputs(parameters, sizes)
        case.writePredictionJob(folder, inputs, 2, None)
        seconds = time.perf_counter() - start
    finally:
        segments.segmentCrop, case.writeLesionMask = saved
    return seconds, [align_to_ct(lesion.name, lesion.mask, inputs.ct) for lesion in inputs.lesions]


def rebuild_table(segmentation, volume, reference: bool) -> tuple[float, list]:
    """Seconds of ``lesionRows`` with nothing cached (the new way or the reference), and the sizes."""
    from ABCImmunoResponseLib import lesion_table

    saved = lesion_table.segmentSize
    if reference:
        lesion_table.segmentSize = lambda *segment: measure_lesion(whole_grid_segment_mask(*segment))
    try:
        start = time.perf_counter()
        rows = lesion_table.lesionRows(segmentation, volume, lesion_table.SizeCache())
        seconds = time.perf_counter() - start
    finally:
        lesion_table.segmentSize = saved
    return seconds, [row.size for row in rows]


def same_masks(ours: list[sitk.Image], theirs: list[sitk.Image]) -> bool:
    return all(np.array_equal(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b))
               and a.GetOrigin() == b.GetOrigin() and a.GetSpacing() == b.GetSpacing()
               and a.GetDirection() == b.GetDirection() for a, b in zip(ours, theirs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="folder for the generated case (kept, and reused when present)")
    args = parser.parse_args()
    try:
        import slicer_core  # noqa: F401
    except ImportError:
        sys.exit(SLICER_CORE_MISSING)
    with tempfile.TemporaryDirectory() as temporary:
        case = Path(args.keep or temporary) / "synthetic"
        if not (case / "sites.csv").is_file():
            print(f"Writing the generated case to {case} ...", flush=True)
            synthetic_case(case)
        work = Path(temporary) / "work"
        work.mkdir()
        _standalone, parameters, sizes = scene_of(case, work)
        times: dict[tuple[str, str], list[float]] = {}
        for round_number in range(args.rounds):
            results = {}
            for way in ("abcir", "reference"):
                folder = work / f"job_{way}"
                folder.mkdir()
                seconds, results["Predict", way] = press_predict(parameters, sizes, folder, way == "reference")
                times.setdefault(("Predict", way), []).append(seconds)
                shutil.rmtree(folder)
                seconds, results["table", way] = rebuild_table(parameters.segmentation, parameters.ctVolume,
                                                               way == "reference")
                times.setdefault(("table", way), []).append(seconds)
            masks = same_masks(results["Predict", "abcir"], results["Predict", "reference"])
            table = results["table", "abcir"] == results["table", "reference"]
            print(f"round {round_number + 1}: Predict {times['Predict', 'abcir'][-1]:.3f} s against "
                  f"{times['Predict', 'reference'][-1]:.3f} s (masks identical: {masks}); lesion table "
                  f"{times['table', 'abcir'][-1]:.3f} s against {times['table', 'reference'][-1]:.3f} s "
                  f"(sizes identical: {table})", flush=True)
            if not (masks and table):
                sys.exit("The masks or sizes differ from the reference's.")
        for task, label in (("Predict", "Predict"), ("table", "lesion table after an edit")):
            ours, theirs = min(times[task, "abcir"]), min(times[task, "reference"])
            print(f"{label}, best of {args.rounds}: abcir {ours:.3f} s, whole-grid reference {theirs:.3f} s, "
                  f"ratio {ours / theirs:.3f}")


if __name__ == "__main__":
    main()
