"""Whole processes, as a user runs them: ``abcir extract`` / ``abcir predict`` against a stock pyradiomics process.

Two cases are written to a folder (CT as uncompressed NRRD, each lesion as a
binary mask NRRD, a ``label,site`` CSV):

* ``real``: the real abdominal CT of ``../shared/data/ct_dicom_example``
  (512 x 512 x 20, 0.977 x 0.977 x 2 mm) and three of its TotalSegmentator
  organs as lesions (colon 20 mL, right autochthon muscle 41 mL, T12 vertebra
  45 mL), brought to clinical resolution: CT resampled to 0.7 x 0.7 x 1.25 mm
  with the cubic B-spline (the labels by nearest neighbour) over the same
  40 mm slab (32 slices), cropped in x and y to the body (HU > -500, 5 mm
  margin), then padded along z by 20 mirrored slices on each side (72 slices,
  90 mm; the organs stay in the 32 real slices, the mirrored slices give the
  filters real anatomy around them instead of a flat edge);
* ``synthetic``: a generated 512 x 512 x 300 CT (0.7 x 0.7 x 1.25 mm, int16)
  with five textured lesions of 1,000 to 400,000 voxels (``synthetic_ct.py``).

Each round runs, one after the other and each in a fresh process, timed from
start to exit with the resident memory of the process and its children sampled
every 20 ms:

* ``stock``: one Python process running ``RadiomicsFeatureExtractor(params)
  .execute(ct, mask)`` lesion by lesion (read with SimpleITK; BLAS on one
  thread, as abcir runs it);
* ``abcir extract --jobs 1`` and ``--jobs 2``;
* ``abcir predict --jobs 2`` (combined model);
* ``engine``: one process that reads the case, starts and warms the workers
  of ``jobs=2`` (one extraction of the case), then times
  ``extract_lesions(jobs=2)`` against stock ``execute`` in the same process
  (best of 3).

On a machine shared with other work a run counts only when the other
processes used at most ``--quiet`` cores meanwhile (measured from the
machine's CPU time less the run's own); a run is repeated up to ``--tries``
times to get one, and the CPU the others used is printed with each.

It prints the best of ``--rounds`` (3) for each, the ratios the issue (#15)
sets targets for, the peak memory, checks that the features of every abcir
run equal stock's (max relative difference 0), and ends with a Markdown table.
It also prints the CPU seconds of all the processes of each run, and the
floor that the ``--jobs 2`` run's CPU puts under ``jobs 2 / jobs 1``: that
CPU spread evenly over the cores, divided by the ``--jobs 1`` time. No
scheduling of the same work gets below it; only less work does.

    python Testing/benchmarks/bench_whole_process.py [--cases real synthetic] [--rounds 3] [--keep FOLDER]
                                                     [--quiet 0.1] [--tries 5]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import psutil
import SimpleITK as sitk

from synthetic_ct import FULL_SIZE, FULL_SPACING, add_lesion, radius_for_voxels, synthetic_ct

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ct_dicom_example"
CLINICAL_SPACING = (0.7, 0.7, 1.25)  # mm
PARAMETER_FILE = Path(__file__).resolve().parents[2] / "Resources" / "Parameters" / "abcir_paper.yaml"
MIRRORED_SLICES = 20  # on each side of the real slab
BODY_HU = -500
BODY_MARGIN_MM = 5.0
# TotalSegmentator label, lesion name, site
REAL_ORGANS = ((20, "colon", "other"), (87, "autochthon_right", "chest_wall"), (32, "vertebra_T12", "bone"))
SYNTHETIC_LESIONS = (("liver_1", "liver", 1000), ("lung_1", "lung", 4000), ("lymph_node_1", "lymph_node", 33000),
                     ("breast_1", "breast", 179000), ("adrenal_1", "adrenal", 400000))
CLINICAL = ["lines=2+", "sites=3+", "visceral=yes", "tnbc=yes"]
TARGETS = {"extract --jobs 2 / stock": 0.25, "jobs 2 / jobs 1": 0.65, "engine warm, 2 workers / stock": 0.15,
           "predict --jobs 2 / stock": 0.3}
MEMORY_TARGET_BYTES = 1.5 * 1024 ** 3
GB = 1024 ** 3


def write_case(folder: Path, ct: sitk.Image, lesions: list[tuple[str, str, sitk.Image]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(ct, str(folder / "ct.nrrd"), False)
    for name, _, mask in lesions:
        sitk.WriteImage(mask, str(folder / f"{name}.nrrd"), True)
    with open(folder / "sites.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "site"])
        writer.writerows((name, site) for name, site, _ in lesions)


def real_case(folder: Path) -> None:
    """The real CT and three organs at 0.7 x 0.7 x 1.25 mm, 72 slices (see the module docstring)."""
    from abcir.imaging.ct import read_ct
    from abcir.patient.lesions import align_to_ct

    ct = read_ct(SHARED / "dicom")
    labels = sitk.ReadImage(str(SHARED / "organs_totalsegmentator.nii.gz"))
    spacing = np.array(ct.GetSpacing())
    extent = np.array(ct.GetSize()) * spacing  # mm, edge to edge
    size = [int(n) for n in np.floor(extent / CLINICAL_SPACING)]
    origin = np.array(ct.GetOrigin()) - spacing / 2 + np.array(CLINICAL_SPACING) / 2

    def resample(image: sitk.Image, interpolator: int, default: float) -> np.ndarray:
        return sitk.GetArrayFromImage(sitk.Resample(image, size, sitk.Transform(), interpolator, origin.tolist(),
                                                    CLINICAL_SPACING, ct.GetDirection(), default,
                                                    image.GetPixelID()))

    array = resample(ct, sitk.sitkBSpline, -1024)  # z, y, x
    # The label file stores y flipped (direction -1 along y): each organ is put on the CT's grid first.
    organs = [resample(align_to_ct(name, labels == label, ct), sitk.sitkNearestNeighbor, 0)
              for label, name, _ in REAL_ORGANS]
    body = np.any(array > BODY_HU, axis=0)
    ys, xs = np.nonzero(body)
    margin = int(round(BODY_MARGIN_MM / CLINICAL_SPACING[0]))
    y0, y1 = max(0, ys.min() - margin), min(body.shape[0], ys.max() + margin + 1)
    x0, x1 = max(0, xs.min() - margin), min(body.shape[1], xs.max() + margin + 1)
    pad = ((MIRRORED_SLICES, MIRRORED_SLICES), (0, 0), (0, 0))
    image = sitk.GetImageFromArray(np.pad(array[:, y0:y1, x0:x1], pad, mode="reflect"))
    image.SetSpacing(CLINICAL_SPACING)
    image.SetOrigin((origin + np.array([x0, y0, -MIRRORED_SLICES]) * CLINICAL_SPACING).tolist())
    image.SetDirection(ct.GetDirection())
    lesions = []
    for (_, name, site), organ in zip(REAL_ORGANS, organs):
        mask = sitk.GetImageFromArray(np.pad(organ[:, y0:y1, x0:x1], pad))  # zero in the mirrored slices
        mask.CopyInformation(image)
        lesions.append((name, site, mask))
    write_case(folder, image, lesions)


def synthetic_case(folder: Path) -> None:
    """512 x 512 x 300 generated CT with five lesions (as ``bench_lesion_extraction.py`` places them)."""
    ct = synthetic_ct(FULL_SIZE, FULL_SPACING, seed=0)
    nx, ny, nz = FULL_SIZE
    offsets = ((0, 0, 0), (-150, 0, 60), (150, 0, -60), (0, -130, 90), (0, 130, -90))
    lesions = []
    for index, ((name, site, voxels), (dx, dy, dz)) in enumerate(zip(SYNTHETIC_LESIONS, offsets)):
        ct, placed = add_lesion(ct, name, (nx // 2 + dx, ny // 2 + dy, nz // 2 + dz),
                                radius_for_voxels(voxels, FULL_SPACING), seed=index)
        lesions.append((name, site, placed.mask))
    write_case(folder, ct, lesions)


def lesion_names(case: Path) -> list[str]:
    with open(case / "sites.csv", newline="", encoding="utf-8") as handle:
        return [row["label"] for row in csv.DictReader(handle)]


def describe(case: Path) -> str:
    ct = sitk.ReadImage(str(case / "ct.nrrd"))
    parts = []
    for name in lesion_names(case):
        voxels = int(np.count_nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(case / f"{name}.nrrd")))))
        parts.append(f"{name} {voxels * np.prod(ct.GetSpacing()) / 1000:.1f} mL")
    size = " x ".join(str(n) for n in ct.GetSize())
    spacing = " x ".join(f"{s:g}" for s in ct.GetSpacing())
    return f"{size} voxels, {spacing} mm; " + ", ".join(parts)


# --- children ---------------------------------------------------------------------------------------------


def stock_child(case: Path, out: Path) -> None:
    """What a pyradiomics user runs: read the CT and each mask, ``execute`` lesion by lesion.

    BLAS on one thread, as abcir runs it: threaded OpenBLAS would make stock's
    eigenvalues slower on a busy machine (flattering abcir) and may change
    their last bit on some CPUs.
    """
    import logging

    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor
    from threadpoolctl import threadpool_limits

    radiomics.setVerbosity(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(str(PARAMETER_FILE))
    ct = sitk.ReadImage(str(case / "ct.nrrd"))
    results = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for name in lesion_names(case):
            start = time.perf_counter()
            result = extractor.execute(ct, sitk.ReadImage(str(case / f"{name}.nrrd")))
            results[name] = {"seconds": time.perf_counter() - start,
                             "values": {key: float(value) for key, value in result.items()
                                        if not key.startswith("diagnostics_")}}
    out.write_text(json.dumps(results))


def engine_child(case: Path, out: Path) -> None:
    """In one process: warm 2 workers, then ``extract_lesions(jobs=2)`` and stock ``execute``, best of 3."""
    import logging

    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from abcir.features.extract import extract_lesions
    from abcir.imaging.ct import read_ct
    from abcir.patient.lesions import load_lesions
    from abcir.features.parallel import single_threaded_blas
    from abcir.resources import parameter_file

    radiomics.setVerbosity(logging.ERROR)
    ct = read_ct(case / "ct.nrrd")
    names = lesion_names(case)
    lesions = load_lesions([case / f"{name}.nrrd" for name in names], ct, case / "sites.csv")
    extract_lesions(ct, lesions, "P", jobs=2)  # workers started and warm
    stock = RadiomicsFeatureExtractor(str(parameter_file()))
    engine_s, stock_s = [], []
    for _ in range(3):
        start = time.perf_counter()
        extract_lesions(ct, lesions, "P", jobs=2)
        engine_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        with single_threaded_blas():
            for lesion in lesions:
                stock.execute(ct, lesion.mask)
        stock_s.append(time.perf_counter() - start)
    out.write_text(json.dumps({"engine": min(engine_s), "stock": min(stock_s)}))


# --- parent -----------------------------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """CPU seconds every process of this machine has used since boot (all but idle and I/O wait)."""
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))


def children_cpu_seconds() -> float:
    """User + system CPU seconds of every child process this one has waited for, and of their waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_process(command: list[str], env: dict) -> dict:
    """Run ``command`` to its end: wall seconds, the peak of the summed RSS of it and its children, the CPU
    seconds they used (``cpu``: the command waits for its workers before it exits, so theirs count), and the
    CPU that other processes of the machine used meanwhile (``others``, in cores: 0 on a quiet machine)."""
    peak = 0
    cpu: dict[int, float] = {}  # CPU seconds of each process of the tree, as last seen
    me = psutil.Process()
    mine_before, busy_before = sum(me.cpu_times()[:2]), busy_cpu_seconds()
    children_before = children_cpu_seconds()
    start = time.perf_counter()
    process = psutil.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while process.poll() is None:
        total = 0
        try:
            for member in [process, *process.children(recursive=True)]:
                try:
                    with member.oneshot():
                        total += member.memory_info().rss
                        cpu[member.pid] = sum(member.cpu_times()[:2])
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    others = busy_cpu_seconds() - busy_before - sum(cpu.values()) - (sum(me.cpu_times()[:2]) - mine_before)
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{stderr.decode()[-3000:]}")
    return {"seconds": seconds, "peak": peak, "cpu": children_cpu_seconds() - children_before,
            "others": max(0.0, others / seconds), "stdout": stdout.decode()}


def run_quietly(command_for: Callable[[Path], list[str]], folder: Path, env: dict, quiet: float,
                tries: int) -> dict:
    """``run_process(command_for(output folder))`` again (``tries`` times at most, each try writing into a
    folder of its own) until other processes used at most ``quiet`` cores during the run; the quietest
    run, with its ``folder``. On a shared machine a run beside other work says little."""
    runs = []
    for attempt in range(tries):
        output = folder / f"try{attempt + 1}"
        output.mkdir(parents=True)
        runs.append({**run_process(command_for(output), env), "folder": output})
        if runs[-1]["others"] <= quiet:
            break
        time.sleep(2.0)
    return min(runs, key=lambda run: run["others"])


def abcir_command(case: Path, command: str, jobs: int, out: Path) -> list[str]:
    """``abcir extract`` (writing ``out/features.csv``) or ``abcir predict`` (``out/prediction.json``)."""
    arguments = [sys.executable, "-m", "abcir.cli", command, "--ct", str(case / "ct.nrrd"),
                 "--lesions", *[str(case / f"{name}.nrrd") for name in lesion_names(case)],
                 "--sites", str(case / "sites.csv"), "--jobs", str(jobs)]
    if command == "extract":
        return arguments + ["--out", str(out / "features.csv")]
    return arguments + ["--clinical", *CLINICAL, "--model", "combined", "--json", str(out / "prediction.json")]


def max_relative_difference(csv_path: Path, stock: dict) -> float:
    """Largest |abcir - stock| / max(|abcir|, |stock|) over every lesion and feature (0: identical)."""
    worst = 0.0
    with open(csv_path, newline="", encoding="utf-8") as handle:
        rows = {row["lesion_id"]: row for row in csv.DictReader(handle)}
    for name, reference in stock.items():
        row = rows[name]
        for feature, expected in reference["values"].items():
            ours = float(row[feature])
            if ours == expected or (np.isnan(ours) and np.isnan(expected)):
                continue
            worst = max(worst, abs(ours - expected) / max(abs(ours), abs(expected)))
    return worst


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def bench_case(case: Path, rounds: int, env: dict, quiet: float, tries: int) -> dict:
    """Time, check and print one case; returns its best times, ratios and peaks for the summary table."""
    print(f"\n== {case.name}: {describe(case)}", flush=True)
    runs: dict[str, list[dict]] = {}
    difference = 0.0
    for round_number in range(rounds):
        scratch = case / f"round{round_number}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir()
        plan = {"stock": lambda out: [sys.executable, __file__, "--stock", str(case), str(out / "stock.json")],
                "extract --jobs 1": lambda out: abcir_command(case, "extract", 1, out),
                "extract --jobs 2": lambda out: abcir_command(case, "extract", 2, out),
                "predict --jobs 2": lambda out: abcir_command(case, "predict", 2, out)}
        chosen = {}
        for name, command_for in plan.items():
            before = load()
            chosen[name] = run_quietly(command_for, scratch / name.replace(" ", "_"), env, quiet, tries)
            runs.setdefault(name, []).append(chosen[name])
            print(f"  round {round_number + 1} {name:17s} {chosen[name]['seconds']:6.2f} s  CPU "
                  f"{chosen[name]['cpu']:6.2f} s  peak {chosen[name]['peak'] / GB:5.2f} GB  "
                  f"(other processes {chosen[name]['others']:.2f} cores; "
                  f"load average before {before})", flush=True)
        stock = json.loads((chosen["stock"]["folder"] / "stock.json").read_text())
        per_lesion = ", ".join(f"{name} {value['seconds']:.2f} s" for name, value in stock.items())
        print(f"    stock per lesion: {per_lesion}")
        for name in ("extract --jobs 1", "extract --jobs 2"):
            difference = max(difference, max_relative_difference(chosen[name]["folder"] / "features.csv", stock))
        shutil.rmtree(scratch)
    scratch = case / "engine"
    shutil.rmtree(scratch, ignore_errors=True)
    engine_run = run_quietly(lambda out: [sys.executable, __file__, "--engine", str(case), str(out / "engine.json")],
                             scratch, env, quiet, tries)
    engine = json.loads((engine_run["folder"] / "engine.json").read_text())
    shutil.rmtree(scratch)
    fastest = {name: min(results, key=lambda result: result["seconds"]) for name, results in runs.items()}
    best = {name: result["seconds"] for name, result in fastest.items()}
    cpu = {name: result["cpu"] for name, result in fastest.items()}
    peaks = {name: max(result["peak"] for result in results) for name, results in runs.items()}
    print(f"  best of {rounds}: " + ", ".join(f"{name} {seconds:.2f} s" for name, seconds in best.items()))
    print("  peak memory (all processes): " + ", ".join(f"{name} {peak / GB:.2f} GB" for name, peak in peaks.items()))
    ratios = {"extract --jobs 2 / stock": best["extract --jobs 2"] / best["stock"],
              "extract --jobs 1 / stock": best["extract --jobs 1"] / best["stock"],
              "jobs 2 / jobs 1": best["extract --jobs 2"] / best["extract --jobs 1"],
              "engine warm, 2 workers / stock": engine["engine"] / engine["stock"],
              "predict --jobs 2 / stock": best["predict --jobs 2"] / best["stock"]}
    # No schedule can finish the --jobs 2 run's work faster than its CPU time spread evenly over the cores.
    cores = len(os.sched_getaffinity(0))
    floor = cpu["extract --jobs 2"] / cores / best["extract --jobs 1"]
    print(f"  CPU of all processes (fastest runs): extract --jobs 1 {cpu['extract --jobs 1']:.2f} s in "
          f"{best['extract --jobs 1']:.2f} s, --jobs 2 {cpu['extract --jobs 2']:.2f} s in "
          f"{best['extract --jobs 2']:.2f} s; on {cores} cores that CPU takes at least "
          f"{cpu['extract --jobs 2'] / cores:.2f} s, so jobs 2 / jobs 1 >= {floor:.3f} at that CPU")
    print(f"  engine in one process, warm: {engine['engine']:.2f} s vs stock {engine['stock']:.2f} s "
          f"(other processes {engine_run['others']:.2f} cores)")
    for name, ratio in ratios.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  target <= {target:.2f}: {'met' if ratio <= target else 'NOT met'}"
        print(f"  ratio {name:32s} {ratio:6.3f}{verdict}")
    memory = peaks["extract --jobs 2"]
    print(f"  peak memory extract --jobs 2: {memory / GB:.2f} GB (target <= {MEMORY_TARGET_BYTES / GB:.1f} GB: "
          f"{'met' if memory <= MEMORY_TARGET_BYTES else 'NOT met'})")
    print(f"  max relative difference to stock, every lesion and feature: {difference:g} "
          f"({'identical' if difference == 0 else 'DIFFERENT'})")
    return {"best": best, "cpu": cpu, "floor": floor, "peaks": peaks, "ratios": ratios, "engine": engine,
            "difference": difference}


def print_table(summaries: dict[str, dict]) -> None:
    """The README's speed table (Markdown), one column per case."""
    names = list(summaries)
    print("\n| run | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for run in ("stock", "extract --jobs 1", "extract --jobs 2", "predict --jobs 2"):
        label = "stock pyradiomics, one process" if run == "stock" else f"`abcir {run}`"
        cells = [f"{summary['best'][run]:.2f} s, {summary['peaks'][run] / GB:.2f} GB" for summary in summaries.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    cells = [f"{summary['engine']['engine']:.2f} s vs {summary['engine']['stock']:.2f} s"
             for summary in summaries.values()]
    print("| engine in one process, warm, `jobs=2`, vs stock in the same process | " + " | ".join(cells) + " |")
    for ratio in summaries[names[0]]["ratios"]:
        print(f"| ratio {ratio} | " + " | ".join(f"{summary['ratios'][ratio]:.3f}" for summary in summaries.values())
              + " |")
    print("| CPU of all processes, `--jobs 1` / `--jobs 2` | " + " | ".join(
        f"{summary['cpu']['extract --jobs 1']:.2f} s / {summary['cpu']['extract --jobs 2']:.2f} s"
        for summary in summaries.values()) + " |")
    print("| floor of jobs 2 / jobs 1 at that CPU (CPU of `--jobs 2` / cores / time of `--jobs 1`) | "
          + " | ".join(f"{summary['floor']:.3f}" for summary in summaries.values()) + " |")
    print("| max relative difference to stock | "
          + " | ".join(f"{summary['difference']:g}" for summary in summaries.values()) + " |")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] in ("--stock", "--engine"):
        (stock_child if sys.argv[1] == "--stock" else engine_child)(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["real", "synthetic"], choices=("real", "synthetic"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="folder for the cases (kept, and reused when present)")
    parser.add_argument("--quiet", type=float, default=0.1,
                        help="a run counts when other processes used at most this many cores meanwhile (0.1)")
    parser.add_argument("--tries", type=int, default=5, help="runs at most, to get one that counts (5)")
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "ABCIR_FEATURE_CACHE"}
    # The children import the abcir beside this checkout, whether or not it is installed.
    source = str(Path(__file__).resolve().parents[2] / "ABCImmunoResponse")
    sys.path.insert(0, source)  # and so does this process, which writes the cases
    env["PYTHONPATH"] = os.pathsep.join([source, str(Path(__file__).parent), env.get("PYTHONPATH", "")])
    summaries = {}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(args.keep or temporary)
        for name in args.cases:
            case = root / name
            if not (case / "sites.csv").is_file():
                if name == "real" and not SHARED.is_dir():
                    print(f"Real case skipped: {SHARED} is absent.")
                    continue
                print(f"Writing the {name} case to {case} ...", flush=True)
                (real_case if name == "real" else synthetic_case)(case)
            summaries[name] = bench_case(case, args.rounds, env, args.quiet, args.tries)
    if summaries:
        print_table(summaries)


if __name__ == "__main__":
    main()
