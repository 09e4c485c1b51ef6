"""``abcir batch``: a whole cohort table extracted and predicted, resumably, here or on a Dask cluster."""

from __future__ import annotations

import argparse
import sys

from ..options import MODEL_KINDS, PERTURBATION_ICC_FILE
from . import Subcommands, jobs_argument, seed_argument


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir batch`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "batch", help="features and predictions for every patient of a cohort table (resumable)",
        description="Extract the 1130 features of every target lesion of every patient in a cohort table and "
                    "predict each patient. Kill it at any moment and run it again: it finishes only what is "
                    "missing. A failing patient is listed in DIR/failures.csv and the others go on.")
    parser.add_argument("--cohort", required=True,
                        help="cohort CSV: patient_id, ct, lesions (paths relative to the CSV), optional sites, "
                             "clinical facts and outcomes (as written by 'abcir make-cohort')")
    parser.add_argument("--out", required=True,
                        help="output folder: features.parquet/.csv, predictions.csv (abcir evaluate input), "
                             "failures.csv, and per-patient results that later runs reuse")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="patients processed in parallel here (default 1)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="run on an existing Dask distributed cluster (tcp://host:port); its workers must "
                             "see the cohort's files and the output folder")
    parser.add_argument("--models", nargs="+", choices=MODEL_KINDS,
                        help="models to predict with (default: every model whose weights are bundled or given)")
    parser.add_argument("--weights", nargs="+", default=[], metavar="BUNDLE",
                        help="weight bundle folders to use instead of the bundled weights of their kind")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also recompute each prediction under plausible outline changes of every lesion (1 mm "
                             "erosion and dilation, contour randomisations): per patient the probability's range "
                             "and whether the risk group holds (predictions.csv <model>_stable, "
                             "_probability_low/_high), over the cohort the share of stable patients and per "
                             f"feature the ICC(2,1) under the changes ({PERTURBATION_ICC_FILE}); about 10 extra "
                             "extractions per lesion and model, plus 10 for the ICC")
    parser.add_argument("--sensitivity-seed", type=seed_argument, default=0,
                        help="seed of the contour randomisations (default 0)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir batch`` with parsed ``args``, showing a progress bar on stderr, and say where the tables are.

    Parameters
    ----------
    args : argparse.Namespace
        ``cohort``, ``out``, ``jobs``, ``scheduler``, ``models``, ``weights``, ``sensitivity`` and
        ``sensitivity_seed``.

    Returns
    -------
    int
        The exit code: 0, or 1 when a patient, a prediction or a sensitivity analysis failed (listed in
        ``failures.csv``).

    Raises
    ------
    InputError
        As ``abcir.batch.run.run_batch``; the command line turns it into a one-line message.
    """
    from ..batch.run import run_batch
    from ..batch.sensitivity import SensitivitySettings
    from ..progress import TerminalProgress
    from ..sensitivity.perturbations import DEFAULT_SET

    sensitivity = SensitivitySettings(DEFAULT_SET, args.sensitivity_seed) if args.sensitivity else None
    summary = run_batch(args.cohort, args.out, jobs=args.jobs, scheduler=args.scheduler, models=args.models,
                        weights=args.weights, progress=TerminalProgress(), sensitivity=sensitivity)
    print(f"{summary.n_finished} of {summary.n_patients} patients finished ({summary.n_computed} computed in this "
          f"run, {summary.seconds:.1f} s); features in {summary.features_parquet} and {summary.features_csv}")
    if summary.predictions_csv:
        print(f"Predictions ({', '.join(summary.models)}) in {summary.predictions_csv}")
        for model in summary.weights:
            if model.provenance:
                print(f"  {model.kind}: {model.provenance}")
    else:
        print("No predictions: no model weights are bundled or given (--weights); features only.")
    if summary.sensitivity is not None:
        for share in summary.sensitivity.stable:
            stable = "no patient with a risk group" if share.share is None else \
                f"{share.n_stable} of {share.n_patients} patients ({share.share:.0%})"
            print(f"Outline sensitivity, {share.model}: risk group stable in {stable}")
        if summary.sensitivity.perturbation_icc:
            print(f"Per-feature ICC under the outline changes in {summary.sensitivity.perturbation_icc}")
    if summary.failures:
        print(f"{len(summary.failures)} failures, with reasons, in {summary.failures_csv}", file=sys.stderr)
        return 1
    return 0
