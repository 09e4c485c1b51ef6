"""Start-up and lesion loading, as a user meets them: ``abcir --help``, ``abcir COMMAND --help``, ``load_lesions``.

* Help: each ``abcir [COMMAND] --help`` runs as a fresh process (what the ``abcir``
  script runs: ``from abcir.cli import main``), rounds alternating over the
  commands; an empty interpreter (``python -c pass``) is timed the same way as the
  floor. Issue #15's target is 0.3 s; before it every one took 2-3 s.
* ``load_lesions``: a 512 x 512 x 80 CT grid at 0.7 x 0.7 x 1.25 mm (int16) made
  from the real abdominal CT of ``../shared/data/ct_dicom_example`` (linear
  resampling, around the centre of the scan) and three of its TotalSegmentator
  organs as lesions, resampled by nearest neighbour (colon 20 mL, right
  autochthon muscle 41 mL, T12 vertebra 44 mL). The lesions are read as three
  binary mask files on the CT's grid, as three masks cropped to the lesion (5
  voxels around it, as some tools write them), as one label map and as one
  ``.seg.nrrd``. Each is timed with
  abcir's measurement and with the measurement before issue #15 (every corner of
  every voxel, ``Testing/core/test_measurements.reference_measure``) patched in,
  and the sizes are checked to be identical. Target: 0.2 s.

Prints the best of ``--rounds`` (3) for each.

    python Testing/benchmarks/bench_cli_startup.py [--rounds 3] [--shared ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import astuple
from pathlib import Path

import numpy as np
import SimpleITK as sitk

import abcir
from abcir.patient import lesions as lesions_module
from abcir.cli import build_parser
from abcir.imaging.ct import read_ct
from abcir.patient.measurements import LesionSize
from abcir.imaging.segfile import Segment, write_seg_nrrd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
from test_measurements import reference_measure  # the reference lives with its tests

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
GRID_SIZE = (512, 512, 80)
CLINICAL_SPACING = (0.7, 0.7, 1.25)  # mm
# TotalSegmentator label, lesion name, site
ORGANS = ((20, "colon", "other"), (87, "autochthon_right", "chest_wall"), (32, "vertebra_T12", "bone"))
CROP_MARGIN_VOXELS = 5
HELP_TARGET_S = 0.3
LOAD_TARGET_S = 0.2
ENTRY = "import sys; from abcir.cli import main; sys.exit(main())"  # what the installed abcir script runs


def best_process_seconds(commands: dict[str, list[str]], rounds: int) -> dict[str, float]:
    """Best wall time of each command line over ``rounds``, one process per run, commands alternating."""
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(abcir.__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]))
    best = {name: float("inf") for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=environment)
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def help_commands() -> dict[str, list[str]]:
    subparsers = next(action for action in build_parser()._actions if action.dest == "command")
    commands = {"python -c pass": [sys.executable, "-c", "pass"],
                "abcir --help": [sys.executable, "-c", ENTRY, "--help"]}
    commands.update({f"abcir {name} --help": [sys.executable, "-c", ENTRY, name, "--help"]
                     for name in subparsers.choices})
    return commands


def write_case(shared: Path, folder: Path) -> dict[str, list[Path]]:
    """The CT and its lesions in three layouts; the CT grid centred on the real scan's centre."""
    ct = read_ct(shared / "ct_dicom_example" / "dicom")
    labels = sitk.ReadImage(str(shared / "ct_dicom_example" / "organs_totalsegmentator.nii.gz"))
    direction = np.array(ct.GetDirection()).reshape(3, 3)
    centre = np.array(ct.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in ct.GetSize()]))
    origin = centre - direction @ (np.array(CLINICAL_SPACING) * (np.array(GRID_SIZE) - 1) / 2)
    grid = sitk.Image(GRID_SIZE, sitk.sitkInt16)
    grid.SetSpacing(CLINICAL_SPACING)
    grid.SetOrigin(tuple(origin))
    grid.SetDirection(ct.GetDirection())
    fine_ct = sitk.Resample(ct, grid, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)
    fine_labels = sitk.Resample(labels, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    sitk.WriteImage(fine_ct, str(folder / "ct.nrrd"))
    masks, cropped, segments = [], [], []
    label_map = sitk.Image(GRID_SIZE, sitk.sitkUInt8)
    label_map.CopyInformation(grid)
    for value, (label, name, site) in enumerate(ORGANS, start=1):
        mask = sitk.Cast(fine_labels == label, sitk.sitkUInt8)
        masks.append(folder / f"{name}.nrrd")
        sitk.WriteImage(mask, str(masks[-1]), True)
        shape = sitk.LabelShapeStatisticsImageFilter()
        shape.Execute(mask)
        box = np.array(shape.GetBoundingBox(1))
        start = np.maximum(box[:3] - CROP_MARGIN_VOXELS, 0)
        stop = np.minimum(box[:3] + box[3:] + CROP_MARGIN_VOXELS, GRID_SIZE)
        cropped.append(folder / "cropped" / f"{name}.nrrd")
        cropped[-1].parent.mkdir(exist_ok=True)
        sitk.WriteImage(sitk.RegionOfInterest(mask, (stop - start).tolist(), start.tolist()), str(cropped[-1]), True)
        segments.append(Segment(name, name, mask, tags={"ABCImmunoResponse.Site": site}))
        label_map = label_map + mask * value
    sitk.WriteImage(label_map, str(folder / "labels.nrrd"), True)
    write_seg_nrrd(folder / "lesions.seg.nrrd", segments)
    (folder / "sites.csv").write_text("label,site\n" + "".join(f"{value},{site}\n" for value, (_, _, site)
                                                                in enumerate(ORGANS, start=1)), encoding="utf-8")
    return {"3 mask files": masks, "3 cropped masks": cropped, "label map": [folder / "labels.nrrd"],
            ".seg.nrrd": [folder / "lesions.seg.nrrd"]}


def reference_size(mask: sitk.Image) -> LesionSize:
    return LesionSize(*reference_measure(mask))


def best_load(paths: list[Path], ct: sitk.Image, sites: Path | None, rounds: int) -> tuple[float, list]:
    best, loaded = float("inf"), []
    for _ in range(rounds):
        start = time.perf_counter()
        loaded = lesions_module.load_lesions(paths, ct, sites)
        best = min(best, time.perf_counter() - start)
    return best, loaded


def report_help(rounds: int) -> None:
    print(f"\nWhole process, best of {rounds} (target <= {HELP_TARGET_S} s)")
    for name, seconds in best_process_seconds(help_commands(), rounds).items():
        mark = "" if name.startswith("python") else ("  ok" if seconds <= HELP_TARGET_S else "  OVER TARGET")
        print(f"  {name:32s} {seconds:6.3f} s{mark}")


def report_load_lesions(shared: Path, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        layouts = write_case(shared, Path(folder))
        ct = sitk.ReadImage(str(Path(folder) / "ct.nrrd"))
        sites = Path(folder) / "sites.csv"
        print(f"\nload_lesions, 3 lesions on a {'x'.join(map(str, ct.GetSize()))} CT at "
              f"{' x '.join(f'{s:g}' for s in ct.GetSpacing())} mm, best of {rounds} (target <= {LOAD_TARGET_S} s)")
        print(f"  {'lesions given as':16s} {'abcir':>8s} {'with the old measurement':>25s} {'ratio':>6s}  "
              "sizes identical")
        for layout, paths in layouts.items():
            given_sites = sites if layout == "label map" else None
            seconds, loaded = best_load(paths, ct, given_sites, rounds)
            measure = lesions_module.measure_lesion
            lesions_module.measure_lesion = reference_size
            try:
                old_seconds, old_loaded = best_load(paths, ct, given_sites, rounds)
            finally:
                lesions_module.measure_lesion = measure
            identical = [astuple(a.size) for a in loaded] == [astuple(b.size) for b in old_loaded]
            print(f"  {layout:16s} {seconds:7.3f}s {old_seconds:24.3f}s {seconds / old_seconds:6.3f}  {identical}"
                  + ("" if seconds <= LOAD_TARGET_S else "  OVER TARGET"))
        masks = [lesion.mask for lesion in loaded]
        best_new = best_old = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            new = [astuple(lesions_module.measure_lesion(mask)) for mask in masks]
            best_new = min(best_new, time.perf_counter() - start)
            start = time.perf_counter()
            old = [reference_measure(mask) for mask in masks]
            best_old = min(best_old, time.perf_counter() - start)
        print(f"  measure_lesion alone, 3 lesions: {best_new:.4f} s against {best_old:.3f} s before, ratio "
              f"{best_new / best_old:.3f}, identical {new == old}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder (../shared/data)")
    options = parser.parse_args()
    logging.getLogger("abcir").setLevel(logging.ERROR)
    print(f"abcir from {Path(abcir.__file__).parent}; {os.cpu_count()} cores; load average "
          f"{', '.join(f'{load:.2f}' for load in os.getloadavg())}")
    report_help(options.rounds)
    if (options.shared / "ct_dicom_example" / "dicom").is_dir():
        report_load_lesions(options.shared, options.rounds)
    else:
        print(f"\nload_lesions: skipped, no real CT at {options.shared} (give --shared)")


if __name__ == "__main__":
    main()
