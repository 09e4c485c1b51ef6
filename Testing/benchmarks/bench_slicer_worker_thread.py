"""Which parallelism works when extraction runs on a worker thread of a host application such as 3D Slicer.

The benchmark runs in a child process set up like Slicer's:

* ``sys.executable`` is a launcher (``bin/PythonSlicer``) that cannot start
  ``multiprocessing`` spawn children (Slicer/Slicer#7445); the real interpreter
  is ``bin/python-real`` beside it;
* extraction runs on a worker thread while the main thread keeps an event loop
  going (a 10 ms timer), whose worst delay shows how responsive a GUI would stay.

It times the same lesions with stock pyradiomics, then abcir with ``jobs=1``,
threads (``backend="thread"``) and worker processes (``backend="process"``,
spawned through ``python-real``; first call and warm pool), checks that every
value equals stock's, and prints the ratios and timer delays.

    python Testing/benchmarks/bench_slicer_worker_thread.py [--sizes 4000 33000 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LAUNCHER = "#!/bin/sh\n# Stands for Slicer's PythonSlicer launcher: its spawn children never start.\nexit 1\n"


def host(sizes: list[int]) -> dict:
    """In the Slicer-like child: time each mode on a worker thread, with a timer on the main thread."""
    import numpy as np
    import radiomics
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from abcir.features import extract_lesions, feature_names
    from abcir.lesions import Lesion
    from abcir.measurements import measure_lesion
    from abcir.parallel import python_executable
    from abcir.resources import parameter_file
    from synthetic_ct import FULL_SIZE, FULL_SPACING, add_lesion, radius_for_voxels, synthetic_ct

    radiomics.setVerbosity(40)
    names = feature_names()
    ct = synthetic_ct(FULL_SIZE, FULL_SPACING, seed=4)
    nx, ny, nz = FULL_SIZE
    lesions = []
    for index, voxels in enumerate(sizes):
        centre = (nx // 2 + (index - 1) * 130, ny // 2 + (index % 2) * 60 - 30, nz // 2 + (index - 1) * 60)
        ct, placed = add_lesion(ct, f"L{voxels}", centre, radius_for_voxels(voxels, FULL_SPACING), seed=index)
        lesions.append(Lesion(placed.name, "liver", placed.mask, measure_lesion(placed.mask)))
    results = {"sys.executable": sys.executable, "worker interpreter": python_executable()}
    stock = RadiomicsFeatureExtractor(str(parameter_file()))
    reference = None
    for mode, jobs, backend in (("stock pyradiomics", 0, ""), ("jobs=1", 1, "process"), ("threads x2", 2, "thread"),
                                ("processes x2", 2, "process"), ("processes x2 (warm)", 2, "process")):
        outcome: dict = {}

        def work():
            start = time.perf_counter()
            if jobs:
                rows = extract_lesions(ct, lesions, "P", jobs=jobs, backend=backend)
                outcome["values"] = [row.values for row in rows]
            else:
                results_ = [stock.execute(ct, lesion.mask) for lesion in lesions]
                outcome["values"] = [np.array([float(result[name]) for name in names]) for result in results_]
            outcome["seconds"] = time.perf_counter() - start

        worker = threading.Thread(target=work)
        worst = 0.0
        worker.start()
        while worker.is_alive():  # the "GUI" event loop: a 10 ms timer
            tick = time.perf_counter()
            time.sleep(0.01)
            worst = max(worst, time.perf_counter() - tick - 0.01)
        worker.join()
        values = np.vstack(outcome["values"])
        if reference is None:
            reference = values
        results[mode] = {"seconds": outcome["seconds"], "worst_timer_delay_ms": 1000 * worst,
                         "identical": bool(np.array_equal(values, reference, equal_nan=True))}
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--host":
        sys.executable = sys.argv[2]  # as Slicer sets it, before anything starts a process
        print(json.dumps(host([int(s) for s in sys.argv[3:]])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 33000, 100000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        bin_folder = Path(temporary) / "bin"
        bin_folder.mkdir()
        launcher = bin_folder / "PythonSlicer"
        launcher.write_text(LAUNCHER)
        launcher.chmod(0o755)
        os.symlink(sys.executable, bin_folder / "python-real")
        # Slicer's launcher puts its packages on the path of everything it starts; so does this one.
        import abcir
        import numpy

        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(Path(numpy.__file__).parents[1]), str(Path(abcir.__file__).parents[1]), str(Path(__file__).parent)]))
        output = subprocess.run([sys.executable, __file__, "--host", str(launcher), *map(str, args.sizes)],
                                check=True, capture_output=True, text=True, cwd=Path(__file__).parent,
                                env=environment)
    results = json.loads(output.stdout.strip().splitlines()[-1])
    launcher, interpreter = results.pop("sys.executable"), results.pop("worker interpreter")
    print(f"host sys.executable: {launcher}; workers spawned with {interpreter}")
    base = results["stock pyradiomics"]["seconds"]
    for mode, result in results.items():
        print(f"{mode:22s} {result['seconds']:7.2f} s  ratio to stock {result['seconds'] / base:5.3f}  worst 10 ms-"
              f"timer delay {result['worst_timer_delay_ms']:6.1f} ms  same values as stock: {result['identical']}")


if __name__ == "__main__":
    main()
