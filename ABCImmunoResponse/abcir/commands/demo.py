"""``abcir demo``: one generated patient through the whole path with the bundled weights."""

from __future__ import annotations

import argparse
import time

from ..progress import stderr_progress
from . import Subcommands, jobs_argument, seed_argument
from .predict import format_prediction


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir demo`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "demo", help="run the whole path on a generated example patient",
        description="Make a synthetic example patient, extract its features and predict with the three bundled "
                    "models (trained on generated data; not clinically validated). Writes a report folder.")
    parser.add_argument("--out", required=True, help="new folder for the example patient and the report")
    parser.add_argument("--seed", type=seed_argument, default=0, help="which example patient (default 0)")
    parser.add_argument("--jobs", type=jobs_argument, default=2, help="lesions extracted in parallel (default 2)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir demo`` with parsed ``args``, print the three predictions and where the report is.

    Parameters
    ----------
    args : argparse.Namespace
        ``out`` (a new folder), ``seed`` (which example patient) and ``jobs``.

    Returns
    -------
    int
        The exit code, 0.
    """
    from ..prediction.demo import run_demo

    start = time.perf_counter()
    result = run_demo(args.out, seed=args.seed, jobs=args.jobs, progress=stderr_progress)
    for prediction in result.predictions.values():
        print(format_prediction(prediction), end="\n\n")
    print(f"Report: {result.report} ({time.perf_counter() - start:.1f} s)")
    return 0
