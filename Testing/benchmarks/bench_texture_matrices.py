"""Texture matrices on real organs: pyradiomics' C ``_cmatrices`` against ``abcir.features.texture_matrices``.

Organs of the real CT in ../shared/data stand in for lesions of 2,400 to
700,000 voxels at 1 mm. Each is extracted once by abcir while every
``_cmatrices`` call's arguments are recorded (the 12 images' binned arrays, as
pyradiomics' feature classes pass them); then each call is timed with the C
code and with numpy, alternately, best of ``--repeat``, in this process. The
matrices are compared for identity (dtype, shape, every element, angles).

GLSZM has no numpy implementation in abcir: the candidates measured for it
(connected components per gray level with ``scipy.ndimage.label``; of the
same-level neighbour graph with ``scipy.sparse.csgraph``; SimpleITK's
``ScalarConnectedComponent``) are timed here too, to show why.

``--spheres N ...`` adds textured spheres of N voxels on a generated CT (those
of ``bench_lesion_extraction.py``), and ``--every-size`` times numpy below
``MINIMUM_VOXELS`` too: how the small-mask crossovers were found.

    PYTHONPATH=ABCImmunoResponse python Testing/benchmarks/bench_texture_matrices.py [SHARED_DATA_FOLDER]
        [--repeat 5] [--spheres 150 400 800 1300 2000 3000 5000 --every-size]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics import cMatrices
from scipy import ndimage
from scipy.sparse import csr_array
from scipy.sparse.csgraph import connected_components

from abcir.features import texture_matrices
from abcir.features.engine import lesion_values
from abcir.features.preparation import prepare_lesion
from abcir.imaging.ct import read_ct
from abcir.patient.lesions import align_to_ct

ORGANS = ((8, "adrenal gland"), (7, "pancreas"), (20, "colon"), (33, "vertebra T11"), (1, "spleen"), (5, "liver"))
KEPT = ("calculate_glcm", "calculate_glrlm", "calculate_gldm", "calculate_ngtdm")


def recorded_calls(ct: sitk.Image, mask: sitk.Image, name: str) -> list[tuple[str, tuple]]:
    """Every texture-matrix call of one extraction by abcir, with its arguments."""
    calls: list[tuple[str, tuple]] = []

    def recorder(function_name, function):
        def record(*args):
            calls.append((function_name, args))
            return function(*args)
        return record

    originals = {name_: getattr(texture_matrices._MATRICES, name_) for name_ in KEPT}
    glszm = cMatrices.calculate_glszm
    try:
        for name_, function in originals.items():
            setattr(texture_matrices._MATRICES, name_, recorder(name_, function))
        cMatrices.calculate_glszm = recorder("calculate_glszm", glszm)
        lesion_values(prepare_lesion(ct, mask, name))
    finally:
        for name_, function in originals.items():
            setattr(texture_matrices._MATRICES, name_, function)
        cMatrices.calculate_glszm = glszm
    return calls


def identical(ours, theirs) -> bool:
    if isinstance(theirs, tuple):
        return len(ours) == len(theirs) and all(identical(a, b) for a, b in zip(ours, theirs))
    return ours.dtype == theirs.dtype and ours.shape == theirs.shape and np.array_equal(ours, theirs)


def zones_matrix(gray: np.ndarray, size: np.ndarray, ng: int) -> np.ndarray:
    """The C code's GLSZM from one (gray level, size) pair per zone."""
    largest = int(size.max()) if size.size else 1
    counts = np.bincount((gray - 1) * largest + size - 1, minlength=ng * largest)
    return counts.reshape(1, ng, largest).astype(np.float64)


def glszm_ndimage(image, mask, ng, *_):
    """Candidate: 26-connected components of each gray level, in that level's bounding box."""
    levels = np.where(mask, image, 0)
    grays, sizes = [], []
    for gray, box in enumerate(ndimage.find_objects(levels), start=1):
        if box is not None:
            labels, _ = ndimage.label(levels[box] == gray, np.ones((3,) * image.ndim, bool))
            zone_sizes = np.bincount(labels.ravel())[1:]
            grays.append(np.full(zone_sizes.size, gray))
            sizes.append(zone_sizes)
    return zones_matrix(np.concatenate(grays), np.concatenate(sizes), ng)


def glszm_csgraph(image, mask, ng, *_):
    """Candidate: components of the graph linking 26-neighbours of one gray level."""
    flat, steps = texture_matrices._padded(image, mask, ng)
    sources, targets = [], []
    for step in np.abs(texture_matrices.neighbour_angles(image.shape, False, None) @ steps):
        linked = np.flatnonzero((flat[step:] == flat[:-step]) & (flat[:-step] > 0))
        sources.append(linked)
        targets.append(linked + step)
    sources, targets = np.concatenate(sources), np.concatenate(targets)
    graph = csr_array((np.ones(sources.size, np.int8), (sources, targets)), shape=(flat.size, flat.size))
    _, labels = connected_components(graph, directed=False)
    voxels = np.flatnonzero(flat)
    size = np.bincount(labels[voxels])
    gray = np.zeros(size.size, np.intp)
    gray[labels[voxels]] = flat[voxels]
    return zones_matrix(gray[size > 0], size[size > 0], ng)


def glszm_itk(image, mask, ng, *_):
    """Candidate: SimpleITK's ScalarConnectedComponent (threshold 0, fully connected), one thread."""
    levels = np.where(mask, image, 0).astype(np.int32)
    connected = sitk.ScalarConnectedComponentImageFilter()
    connected.SetDistanceThreshold(0.0)
    connected.SetFullyConnected(True)
    connected.SetNumberOfThreads(1)
    labelled = connected.Execute(sitk.GetImageFromArray(levels))
    labels = sitk.GetArrayViewFromImage(labelled)[mask]
    size = np.bincount(labels)
    gray = np.zeros(size.size, np.intp)
    gray[labels] = levels[mask]
    return zones_matrix(gray[size > 0], size[size > 0], ng)


GLSZM_CANDIDATES = {"glszm ndimage.label": glszm_ndimage, "glszm csgraph": glszm_csgraph, "glszm SimpleITK": glszm_itk}


def best_of(function, args, repeat: int) -> tuple[float, object]:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def cases(shared: Path, spheres: list[int]):
    """(name, CT, mask) of the real organs, then of the generated spheres."""
    folder = shared / "ct_dicom_example"
    ct = read_ct(folder / "dicom")
    labels = sitk.ReadImage(str(folder / "organs_totalsegmentator.nii.gz"))
    for label, name in ORGANS:
        yield name, ct, align_to_ct(name, sitk.Cast(labels == label, sitk.sitkUInt8), ct)
    if spheres:
        from bench_lesion_extraction import place
        ct, lesions = place(spheres)
        for lesion in lesions:
            yield f"sphere {lesion.size.voxel_count}", ct, lesion.mask


def main(shared: Path, repeat: int, spheres: list[int], every_size: bool) -> None:
    radiomics.setVerbosity(logging.ERROR)
    logging.getLogger("abcir").setLevel(logging.ERROR)
    if every_size:
        texture_matrices.MINIMUM_VOXELS = dict.fromkeys(texture_matrices.MINIMUM_VOXELS, 0)
    print(f"{'organ':13s} {'voxels':>7s} {'box':>8s} {'matrix':20s} {'C ms':>8s} {'numpy ms':>9s} {'ratio':>6s} "
          "identical")
    totals: dict[str, list[float]] = {}
    for name, ct, mask in cases(shared, spheres):
        calls = recorded_calls(ct, mask, name)
        voxels, box = int(np.count_nonzero(calls[0][1][1])), calls[0][1][1].size
        rows: dict[str, list] = {}
        for function_name, args in calls:
            candidates = ({function_name[len("calculate_"):]: getattr(texture_matrices, function_name)}
                          if function_name in KEPT else GLSZM_CANDIDATES)
            c_time, c_result = best_of(getattr(cMatrices, function_name), args, repeat)
            for label_, candidate in candidates.items():
                numpy_time, numpy_result = best_of(candidate, args, repeat)
                row = rows.setdefault(label_, [0.0, 0.0, True])
                row[0] += c_time
                row[1] += numpy_time
                row[2] = row[2] and identical(numpy_result, c_result)
        for label_, (c_time, numpy_time, same) in rows.items():
            total = totals.setdefault(label_, [0.0, 0.0])
            total[0] += c_time
            total[1] += numpy_time
            print(f"{name:13s} {voxels:7d} {box:8d} {label_:20s} {c_time * 1e3:8.1f} {numpy_time * 1e3:9.1f} "
                  f"{numpy_time / c_time:6.2f} {same}")
    print("all cases, 12 images each:")
    for label_, (c_time, numpy_time) in totals.items():
        print(f"  {label_:20s} C {c_time:6.2f} s, numpy {numpy_time:6.2f} s, ratio {numpy_time / c_time:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shared", nargs="?", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--spheres", type=int, nargs="*", default=[])
    parser.add_argument("--every-size", action="store_true")
    arguments = parser.parse_args()
    main(arguments.shared, arguments.repeat, arguments.spheres, arguments.every_size)
