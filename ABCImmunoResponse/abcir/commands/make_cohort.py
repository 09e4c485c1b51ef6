"""``abcir make-cohort``: write a generated cohort (synthetic CTs, lesions, clinical table); not patient data."""

from __future__ import annotations

import argparse
import time

from ..progress import stderr_progress
from . import Subcommands, jobs_argument, seed_argument


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir make-cohort`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "make-cohort", help="generate a synthetic cohort that behaves like the paper's (not patient data)",
        description="Generate N synthetic patients: a CT and a .seg.nrrd of target lesions each, and cohort.csv "
                    "with the four clinical facts, response and PFS, drawn from the model in "
                    "docs/synthetic_cohort.md. Rerun the same command to complete an interrupted cohort.")
    parser.add_argument("--n", type=int, required=True, help="number of patients (the paper had 240)")
    parser.add_argument("--out", required=True,
                        help="new or empty folder (or this cohort's own folder, to complete it)")
    parser.add_argument("--seed", type=seed_argument, default=0,
                        help="random seed; the same seed gives the same files (default 0)")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="patients generated in parallel (default 1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir make-cohort`` with parsed ``args`` and say what was generated, and where.

    Parameters
    ----------
    args : argparse.Namespace
        ``n`` (patients), ``out``, ``seed`` and ``jobs``.

    Returns
    -------
    int
        The exit code, 0.
    """
    from ..cohort.generator import make_cohort

    start = time.perf_counter()
    summary = make_cohort(args.out, args.n, args.seed, jobs=args.jobs, progress=stderr_progress)
    seconds = time.perf_counter() - start
    print(f"{summary.n_patients} generated patients ({summary.n_lesions} target lesions; {summary.n_generated} made "
          f"now in {seconds:.1f} s) in {summary.folder}; table {summary.table}. Synthetic data, not patient data.")
    return 0
