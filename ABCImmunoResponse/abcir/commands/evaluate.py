"""``abcir evaluate``: every statistic of the paper for a file of model predictions (``abcir.evaluation``)."""

from __future__ import annotations

import argparse
import math


def _cutoff_argument(text: str) -> float | None:
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"'{text}' is neither 'auto' nor a number (a score, in log-odds)") from error
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"cut-off '{text}' must be a finite number")
    return value


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="AUC, calibration, decision curves, survival and a report for predictions",
        description=("Compute every statistic of the paper (AUC with DeLong CI, Table 2 metrics, "
                     "calibration, decision curves, maxstat cut-off, Kaplan-Meier, HR, C-index, "
                     "subgroups) and write metrics.json and report.html."))
    parser.add_argument("predictions",
                        help="CSV: patient_id, response, [pfs_months, pfs_event], <model>_score, "
                             "[<model>_probability], clinical columns")
    parser.add_argument("--out", required=True, help="folder for metrics.json, report.html, PNGs")
    parser.add_argument("--subgroup", nargs="+", action="extend", default=[], metavar="COLUMN",
                        help="clinical column(s) to compute subgroup AUCs over")
    parser.add_argument("--cutoff", type=_cutoff_argument, default=None, metavar="auto|NUMBER",
                        help="risk cut-off on the score: 'auto' (default) chooses it by maximally "
                             "selected log-rank statistic; a number applies a fixed cut-off, "
                             "e.g. one chosen on a training set")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier report in --out")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import run_evaluate

    metrics_path, report_path = run_evaluate(args.predictions, args.out, args.subgroup,
                                             args.cutoff, args.force)
    print(f"Wrote {metrics_path} and {report_path}")
    return 0
