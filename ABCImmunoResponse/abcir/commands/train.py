"""``abcir train``: a site's cohort in, three weight bundles and a model card out."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from ..errors import InputError
from ..files import check_writable_folder
from ..options import AGGREGATIONS, DEFAULT_AGGREGATION, PERTURBATION_ICC_FILE
from ..progress import stderr_progress
from . import Subcommands, jobs_argument, seed_argument, text_argument


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir train`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "train", help="train the clinical, radiomics and combined models on a cohort",
        description="Train the three models on a cohort and write one verified weight bundle per model plus a "
                    "model card. Cohort columns: patient_id, response (1 CR/PR, 0 SD/PD), prior_lines_ge2, "
                    "metastatic_sites_ge3, visceral, tnbc (0/1), optional pfs_months + pfs_event, center, split "
                    "(train/validation), and ct + lesions paths for --cohort.")
    parser.add_argument("--cohort", help="cohort CSV with ct and lesions paths (features are extracted and cached)")
    parser.add_argument("--features", help="per-lesion features CSV from 'abcir extract' or 'abcir batch'")
    parser.add_argument("--labels", help="per-patient CSV with the outcome and clinical columns (with --features)")
    parser.add_argument("--out", required=True, help="new folder for the bundles and the model card")
    parser.add_argument("--seed", type=seed_argument, default=0, help="seed of the split, initial weights and batches")
    parser.add_argument("--aggregation", choices=AGGREGATIONS, default=DEFAULT_AGGREGATION,
                        help="how lesions become one patient vector")
    parser.add_argument("--site", default="site", type=text_argument,
                        help="name of the site or data set, recorded in the bundles")
    parser.add_argument("--synthetic", action="store_true", help="the cohort is generated, not patients")
    parser.add_argument("--description", default="", type=text_argument,
                        help="how the cohort was made or collected (recorded)")
    parser.add_argument("--date-from", type=text_argument, help="first treatment date of the cohort (recorded)")
    parser.add_argument("--date-to", type=text_argument, help="last treatment date of the cohort (recorded)")
    parser.add_argument("--min-icc", type=float, help="train only on features with ICC(2,1) >= this value")
    parser.add_argument("--agreement", help="folder written by 'abcir agreement' (with --min-icc)")
    parser.add_argument("--min-perturbation-icc", type=float,
                        help="train only on features with ICC(2,1) >= this value between segmented and changed "
                             "outlines (with --perturbation-icc; combines with --min-icc)")
    parser.add_argument("--perturbation-icc", metavar="FILE",
                        help=f"{PERTURBATION_ICC_FILE} written by 'abcir batch --sensitivity' (with "
                             "--min-perturbation-icc)")
    parser.add_argument("--cache", help="feature cache folder (default: OUT/../.abcir-feature-cache)")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="lesions extracted in parallel")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir train`` with parsed ``args``: train the three models and print their validation AUCs.

    Parameters
    ----------
    args : argparse.Namespace
        ``cohort``, or ``features`` with ``labels``; ``out``, ``seed``, ``aggregation``, ``site``,
        ``synthetic``, ``description``, ``date_from``, ``date_to``, ``min_icc`` with ``agreement``,
        ``min_perturbation_icc`` with ``perturbation_icc``, ``cache``
        (``None``: ``OUT/../.abcir-feature-cache``), ``jobs`` and ``command_line``.

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        When ``out`` is a file or cannot be written, as ``abcir.consensus.feature_icc.icc_feature_subset`` (a
        threshold without its table, no feature left), when torch is not installed, or as
        ``abcir.training.pipeline``; the command line turns it into a one-line message.
    """
    from ..consensus.feature_icc import icc_feature_subset

    out = check_writable_folder(args.out, "--out")  # before the features are extracted
    subset = icc_feature_subset(args.min_icc, args.agreement, args.min_perturbation_icc, args.perturbation_icc)
    if importlib.util.find_spec("torch") is None:  # only training needs it: prediction runs on numpy alone
        raise InputError("training needs torch, which is not installed here; install it with "
                         "pip install 'abcir[train]' (or pip install torch==2.13.0 for the CPU build).")
    # torch is imported here, not at start-up: predicting needs no torch.
    from ..training.pipeline import load_training_inputs, train_cohort
    from ..training.settings import TrainingSettings

    cache = Path(args.cache) if args.cache else out.resolve().parent / ".abcir-feature-cache"
    table, lesion_features = load_training_inputs(args.cohort, args.features, args.labels, cache, args.jobs,
                                                  stderr_progress)
    settings = TrainingSettings(seed=args.seed, aggregation=args.aggregation,
                                source="synthetic" if args.synthetic else "site", site=args.site,
                                description=args.description,
                                date_from=args.date_from, date_to=args.date_to, feature_subset=subset,
                                command=args.command_line)
    result = train_cohort(table, lesion_features, out, settings)
    for kind, (auc, ci) in result.validation_auc.items():
        shown = "n/a" if auc is None else f"{auc:.3f}" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
        print(f"{kind:>9}: validation AUC {shown}  -> {result.bundles[kind]}")
    print(f"model card: {result.model_card}\npredictions: {result.predictions}")
    return 0
