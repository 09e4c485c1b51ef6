"""Cohort throughput: ``abcir batch --jobs 2`` against ``--jobs 1`` on a generated cohort.

Generates a cohort (``abcir make-cohort``, 40 patients by default) in a
temporary folder, runs the batch with one and with two jobs into fresh output
folders (no shared cache), each in its own process, checks that the tables are
identical and prints the times and their ratio (the issue asks for <= 0.6).

    python Testing/benchmarks/bench_batch_throughput.py [--n 40] [--jobs 2] [--keep FOLDER]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from abcir.cohort.generator import make_cohort


def timed_batch(cohort: Path, out: Path, jobs: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "abcir.cli", "batch", "--cohort", str(cohort), "--out", str(out),
                    "--jobs", str(jobs)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", help="folder for the cohort and outputs (kept); default a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(args.keep or temporary)
        summary = make_cohort(folder / "cohort", args.n, seed=9, jobs=args.jobs)
        print(f"{summary.n_patients} patients, {summary.n_lesions} lesions in {summary.folder}", flush=True)
        one = timed_batch(summary.table, folder / "jobs1", 1)
        many = timed_batch(summary.table, folder / f"jobs{args.jobs}", args.jobs)
        same = pd.read_parquet(folder / "jobs1" / "features.parquet").equals(
            pd.read_parquet(folder / f"jobs{args.jobs}" / "features.parquet"))
    print(f"--jobs 1: {one:.1f} s; --jobs {args.jobs}: {many:.1f} s; ratio {many / one:.3f}; identical tables: {same}")


if __name__ == "__main__":
    main()
