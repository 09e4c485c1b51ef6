"""Comparing two readers on a big CT: ``compare_readers`` against the same statistics on the whole grid.

"Compare the readers" in the Slicer panel runs ``abcir.consensus.comparison.compare_readers`` on Slicer's
GUI thread, and ``abcir agreement`` runs it per patient. Every lesion's mask has the CT's size; matching,
Dice and the surface distances now look only at the box holding the lesions' voxels. The reference is
the same statistics computed on the whole grid, as they were before: voxel lists by ``np.flatnonzero``,
centroids by ``np.argwhere(...).mean``, Dice on the whole arrays and the surface distances' box found by
``np.nonzero`` of the whole union.

The case is the generated 512 x 512 x 300 CT of ``bench_whole_process.py`` (0.7 x 0.7 x 1.25 mm) with
its five lesions (0.6-251 mL) as reader A, and the same lesions dilated by one voxel as reader B. Rounds
alternate between the two ways and check that the agreement tables are identical.

    python Testing/benchmarks/bench_consensus_compare.py [--rounds 3] [--keep FOLDER]

Prints each round, the best of each and their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "ABCImmunoResponse"), str(Path(__file__).parent)]

from bench_whole_process import lesion_names, synthetic_case  # noqa: E402

from abcir.consensus import comparison, matching, metrics  # noqa: E402
from abcir.imaging.ct import read_ct  # noqa: E402
from abcir.patient.lesions import Lesion, load_lesions  # noqa: E402
from abcir.patient.measurements import measure_lesion  # noqa: E402


def whole_grid_voxels(lesion: Lesion) -> np.ndarray:
    return np.flatnonzero(sitk.GetArrayViewFromImage(lesion.mask))


def whole_grid_centroid_mm(lesion: Lesion) -> np.ndarray:
    index_zyx = np.argwhere(sitk.GetArrayViewFromImage(lesion.mask) != 0).mean(axis=0)
    return np.array(lesion.mask.TransformContinuousIndexToPhysicalPoint([float(i) for i in index_zyx[::-1]]))


def whole_grid_dice(a: sitk.Image, b: sitk.Image) -> float:
    array_a, array_b = sitk.GetArrayViewFromImage(a) != 0, sitk.GetArrayViewFromImage(b) != 0
    return 2.0 * int(np.count_nonzero(array_a & array_b)) / (int(array_a.sum()) + int(array_b.sum()))


def whole_grid_surface_distances(a: sitk.Image, b: sitk.Image) -> metrics.SurfaceDistances:
    array_a, array_b = sitk.GetArrayViewFromImage(a) != 0, sitk.GetArrayViewFromImage(b) != 0
    box = tuple(slice(int(idx.min()), int(idx.max()) + 1) for idx in np.nonzero(array_a | array_b))
    crops = [np.pad(array[box], 1) for array in (array_a, array_b)]
    faces = ndimage.generate_binary_structure(3, 1)
    surface_a, surface_b = (crop & ~ndimage.binary_erosion(crop, structure=faces, border_value=0) for crop in crops)
    sampling = tuple(reversed(a.GetSpacing()))
    to_b = ndimage.distance_transform_edt(~surface_b, sampling=sampling)
    to_a = ndimage.distance_transform_edt(~surface_a, sampling=sampling)
    return metrics.SurfaceDistances(a_to_b_mm=to_b[surface_a], b_to_a_mm=to_a[surface_b])


@contextmanager
def whole_grid() -> Iterator[None]:
    """The reference: the statistics computed on the whole grid, in place of the box-restricted ones."""
    saved = matching._voxels, matching.centroid_mm, comparison.dice, comparison.surface_distances
    matching._voxels, matching.centroid_mm = whole_grid_voxels, whole_grid_centroid_mm
    comparison.dice, comparison.surface_distances = whole_grid_dice, whole_grid_surface_distances
    try:
        yield
    finally:
        matching._voxels, matching.centroid_mm, comparison.dice, comparison.surface_distances = saved


def readers(case: Path) -> tuple[list[Lesion], list[Lesion]]:
    """Reader A: the case's lesions; reader B: each dilated by one voxel."""
    ct = read_ct(case / "ct.nrrd")
    names = lesion_names(case)
    lesions_a = load_lesions([case / f"{name}.nrrd" for name in names], ct, case / "sites.csv")
    lesions_b = []
    for lesion in lesions_a:
        dilated = sitk.BinaryDilate(lesion.mask, (1, 1, 1))
        lesions_b.append(Lesion(lesion.lesion_id, lesion.site, dilated, measure_lesion(dilated)))
    return lesions_a, lesions_b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="folder for the generated case (kept, and reused when present)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        case = Path(args.keep or temporary) / "synthetic"
        if not (case / "sites.csv").is_file():
            print(f"Writing the generated case to {case} ...", flush=True)
            synthetic_case(case)
        lesions_a, lesions_b = readers(case)
        times: dict[str, list[float]] = {"abcir": [], "reference": []}
        for round_number in range(args.rounds):
            tables = {}
            for way in times:
                with whole_grid() if way == "reference" else nullcontext():
                    start = time.perf_counter()
                    result = comparison.compare_readers(lesions_a, lesions_b, "A", "B")
                    times[way].append(time.perf_counter() - start)
                tables[way] = [asdict(row) for row in result.lesions]
            identical = repr(tables["abcir"]) == repr(tables["reference"])
            print(f"round {round_number + 1}: abcir {times['abcir'][-1]:.3f} s, whole-grid reference "
                  f"{times['reference'][-1]:.3f} s, agreement tables identical: {identical}", flush=True)
            if not identical:
                sys.exit("The agreement tables differ from the reference's.")
        best = {way: min(values) for way, values in times.items()}
        print(f"best of {args.rounds}: abcir {best['abcir']:.3f} s, reference {best['reference']:.3f} s, "
              f"ratio {best['abcir'] / best['reference']:.3f}")


if __name__ == "__main__":
    main()
