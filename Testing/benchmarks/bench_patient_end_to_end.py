"""One patient from files to prediction: abcir against the naive paper workflow, with peak memory.

A 512 x 512 x 300 CT (0.7 x 0.7 x 1.25 mm, int16, uncompressed NRRD so that
reading does not dominate either side) and a .seg.nrrd of 4 target lesions are
generated in a temporary folder. Each workflow runs in its own fresh process
(its start-up and, for abcir, its worker processes counted), while a sampler
adds up the resident memory of the process and its children:

* naive: read CT and lesions, resample the whole CT to 1 mm with the cubic
  B-spline (and the masks by nearest neighbour), then stock pyradiomics lesion
  by lesion, then the combined model's prediction;
* abcir: read CT and lesions, ``extract_lesions(jobs=2)`` and the same prediction;
* edit:  one lesion grown by one voxel, predicted again with the feature cache
  of the abcir run: only that lesion is computed.

The issue asks for abcir <= 0.2 x naive and a peak <= 1.5 GB.

    python Testing/benchmarks/bench_patient_end_to_end.py [--jobs 2] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import SimpleITK as sitk

from synthetic_ct import FULL_SIZE, FULL_SPACING, add_lesion, radius_for_voxels, synthetic_ct

LESIONS = (("liver_1", "liver", 30000, (300, 300, 130)), ("lung_1", "lung", 6000, (170, 180, 220)),
           ("lymph_node_1", "lymph_node", 3000, (250, 120, 90)), ("breast_1", "breast", 90000, (330, 190, 60)))
CLINICAL = ["lines=2+", "sites=3+", "visceral=yes", "tnbc=yes"]


class PeakMemory:
    """Largest sum of resident memory of this process and its children, sampled every 20 ms."""

    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def make_patient(folder: Path) -> tuple[Path, Path]:
    from abcir.imaging.segfile import SITE_TAG, Segment, write_seg_nrrd

    ct = synthetic_ct(FULL_SIZE, FULL_SPACING, seed=2)
    segments = []
    for index, (name, site, voxels, centre) in enumerate(LESIONS):
        ct, placed = add_lesion(ct, name, centre, radius_for_voxels(voxels, FULL_SPACING), seed=10 + index)
        segments.append(Segment(f"Segment_{index + 1}", name, placed.mask, tags={SITE_TAG: site}))
    ct_path, lesions_path = folder / "patient.nrrd", folder / "patient.seg.nrrd"
    sitk.WriteImage(ct, str(ct_path), False)
    write_seg_nrrd(lesions_path, segments)
    return ct_path, lesions_path


def naive(ct_path: Path, lesions_path: Path, jobs: int, cache: Path) -> dict:
    """Resample the whole CT to 1 mm, then stock pyradiomics lesion by lesion."""
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from abcir.patient.clinical_facts import parse_clinical
    from abcir.features.catalogue import LesionFeatures, feature_names
    from abcir.features.extract import lesion_provenances
    from abcir.patient.lesions import load_lesions
    from abcir.prediction.predict import predict_features
    from abcir.resources import parameter_file

    radiomics.setVerbosity(logging.ERROR)
    ct = sitk.ReadImage(str(ct_path))
    spacing = np.array(ct.GetSpacing())
    size = [int(n) for n in np.ceil(np.array(ct.GetSize()) * spacing / 1.0)]
    resampled = sitk.Resample(ct, size, sitk.Transform(), sitk.sitkBSpline, ct.GetOrigin(), (1.0, 1.0, 1.0),
                              ct.GetDirection(), 0, ct.GetPixelID())
    del ct
    lesions = load_lesions([lesions_path], resampled)  # each mask to the 1 mm grid, nearest neighbour
    extractor = RadiomicsFeatureExtractor(str(parameter_file()))
    rows = []
    for lesion, provenance in zip(lesions, lesion_provenances(resampled, lesions)):
        result = extractor.execute(resampled, lesion.mask)
        rows.append(LesionFeatures("P", lesion, np.array([float(result[n]) for n in feature_names()]), provenance))
    prediction = predict_features(rows, parse_clinical(CLINICAL), "combined")
    return {"probability": prediction.probability}


def abcir(ct_path: Path, lesions_path: Path, jobs: int, cache: Path) -> dict:
    """What ``abcir predict --jobs N`` does, with a feature cache."""
    from abcir.features import engine, extract
    from abcir.features.cache import FeatureCache
    from abcir.imaging.ct import read_ct
    from abcir.patient.clinical_facts import parse_clinical
    from abcir.patient.lesions import load_lesions
    from abcir.prediction.result import CTIdentity
    from abcir.prediction.predict import predict_features

    computed = []
    prepare = engine.prepare_lesion
    # One job prepares through engine_values, several through extract_lesions' pieces: count both.
    engine.prepare_lesion = extract.prepare_lesion = (
        lambda ct, mask, lesion_id: computed.append(lesion_id) or prepare(ct, mask, lesion_id))
    ct = read_ct(ct_path)
    lesions = load_lesions([lesions_path], ct)
    rows = extract.extract_lesions(ct, lesions, "P", jobs=jobs, cache=FeatureCache(cache))
    prediction = predict_features(rows, parse_clinical(CLINICAL), "combined",
                                  ct=CTIdentity(rows[0].provenance.ct_sha256))
    return {"probability": prediction.probability, "computed": computed}


def edit_one_lesion(lesions_path: Path) -> Path:
    from abcir.imaging.segfile import read_seg_nrrd, write_seg_nrrd

    segments = read_seg_nrrd(lesions_path)
    segments[0].mask = sitk.BinaryDilate(segments[0].mask, [1, 1, 1])
    edited = lesions_path.with_name("edited.seg.nrrd")
    write_seg_nrrd(edited, segments)
    return edited


def run_one(workflow: str, ct_path: Path, lesions_path: Path, jobs: int, cache: Path) -> None:
    """Child process: one workflow, its wall time and peak memory as JSON on stdout."""
    function = {"naive": naive, "abcir": abcir}[workflow]
    with PeakMemory() as memory:
        start = time.perf_counter()
        result = function(ct_path, lesions_path, jobs, cache)
        seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_bytes": memory.peak, **result}))


def child(workflow: str, ct_path: Path, lesions_path: Path, jobs: int, cache: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", workflow, str(ct_path), str(lesions_path),
                             str(jobs), str(cache)], check=True, capture_output=True, text=True,
                            cwd=Path(__file__).parent)
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        workflow, ct_path, lesions_path, jobs, cache = sys.argv[2:7]
        run_one(workflow, Path(ct_path), Path(lesions_path), int(jobs), Path(cache))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="folder to write the patient to (kept); default a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        folder.mkdir(parents=True, exist_ok=True)
        print(f"Generating the patient in {folder} ...", flush=True)
        ct_path, lesions_path = make_patient(folder)
        cache = folder / "cache"
        ours = child("abcir", ct_path, lesions_path, args.jobs, cache)
        reference = child("naive", ct_path, lesions_path, args.jobs, cache)
        edited = child("abcir", ct_path, edit_one_lesion(lesions_path), args.jobs, cache)
    gb = 1024 ** 3
    print(f"naive paper workflow: {reference['seconds']:7.2f} s, peak {reference['peak_bytes'] / gb:.2f} GB")
    print(f"abcir (jobs={args.jobs}):       {ours['seconds']:7.2f} s, peak {ours['peak_bytes'] / gb:.2f} GB, "
          f"ratio {ours['seconds'] / reference['seconds']:.3f}")
    print(f"edit one lesion, again: {edited['seconds']:7.2f} s, computed {edited['computed']} "
          f"(of {len(LESIONS)}), peak {edited['peak_bytes'] / gb:.2f} GB")


if __name__ == "__main__":
    main()
