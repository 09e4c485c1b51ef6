"""``abcir agreement``: two readers over a cohort: feature ICCs, risk-group kappa, probability Bland-Altman."""

from __future__ import annotations

import argparse

from ..options import DEFAULT_MAX_CENTROID_DISTANCE_MM, DEFAULT_MIN_ICC, FEATURE_ICC_FILE, MODEL_KINDS, READERS_CSV_HELP
from ..progress import stderr_progress
from . import Subcommands, jobs_argument, text_argument


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir agreement`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "agreement", help="two readers over a cohort: per-feature ICC(2,1), risk-group kappa, report",
        description="Per-feature reproducibility between two readers over a cohort: ICC(2,1) (two-way random, "
                    "absolute agreement, single rater; Koo & Li 2016) with 95% CI over the matched lesion pairs, "
                    "the share of features with ICC >= --min-icc, and with weights Cohen's kappa of the risk group "
                    "and a Bland-Altman plot of the probability. 'abcir train --min-icc 0.75 --agreement DIR' "
                    f"then trains on the reproducible features only (DIR/{FEATURE_ICC_FILE}).",
        epilog=READERS_CSV_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cohort", required=True, help="readers.csv (format below)")
    parser.add_argument("--out", required=True, help="folder for the tables and report.html (must not hold an "
                                                     "earlier agreement)")
    parser.add_argument("--reader-a-name", default="A", type=text_argument,
                        help="reader A's name in the report (default A)")
    parser.add_argument("--reader-b-name", default="B", type=text_argument,
                        help="reader B's name in the report (default B)")
    parser.add_argument("--model", choices=MODEL_KINDS, help="model for the predictions (default: the kind of "
                                                             "--weights, else combined)")
    parser.add_argument("--weights", help="weight bundle folder (default: the bundled weights; none: no predictions)")
    parser.add_argument("--min-icc", type=float, default=DEFAULT_MIN_ICC,
                        help=f"ICC at which a feature counts as reproducible (default {DEFAULT_MIN_ICC:g})")
    parser.add_argument("--max-centroid-distance-mm", type=float, default=DEFAULT_MAX_CENTROID_DISTANCE_MM,
                        help="lesions that do not overlap are matched when their centroids are at most this far "
                             f"apart (default {DEFAULT_MAX_CENTROID_DISTANCE_MM:g} mm)")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="lesions extracted in parallel (default 1)")
    parser.add_argument("--sensitivity", action="store_true",
                        help="also recompute reader A's prediction under plausible outline changes and report "
                             "whether reader B's probability falls inside that range (a check that the changes "
                             "are realistic; radiomics and combined models)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir agreement`` with parsed ``args``: compare the two readers, write the tables and report.

    Parameters
    ----------
    args : argparse.Namespace
        ``cohort``, ``out``, ``reader_a_name``, ``reader_b_name``, ``model``, ``weights``, ``min_icc``,
        ``max_centroid_distance_mm`` (mm), ``jobs`` and ``sensitivity``.

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        When ``out`` already holds an agreement, or as ``abcir.consensus.cohort.run_cohort_agreement``;
        the command line turns it into a one-line message.
    """
    from ..consensus.cohort import check_output_folder, run_cohort_agreement, write_cohort_agreement
    from ..consensus.cohort_report import write_report
    from ..sensitivity.perturbations import DEFAULT_SET

    out = check_output_folder(args.out)
    result, rows_a, rows_b = run_cohort_agreement(
        args.cohort, args.reader_a_name, args.reader_b_name, args.model, args.weights, args.min_icc,
        args.max_centroid_distance_mm, args.jobs, progress=stderr_progress,
        sensitivity=DEFAULT_SET if args.sensitivity else None)
    summary_path = write_cohort_agreement(out, result, rows_a, rows_b)
    report = write_report(out, result)
    summary = result.summary()
    print(f"{summary['n_patients']} patients, {summary['n_matched_lesion_pairs']} matched lesion pairs; "
          f"{summary['icc']['n_reproducible']} of {summary['icc']['n_features_defined']} features with "
          f"ICC(2,1) >= {args.min_icc:g} ({100 * result.share_reproducible():.1f}%).")
    if result.kappa is not None:
        print(f"Risk group: {result.kappa.text()}.")
    if result.weights_provenance:
        print(f"Predictions: {result.weights_provenance}")
    for note in result.notes:
        print(f"Note: {note}")
    print(f"Written to {out}: {summary_path.name}, {FEATURE_ICC_FILE}, {report.name} and the tables.")
    return 0
