"""``abcir predict``: one patient's probability of response, risk group, and what the weights are."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import InputError
from ..files import check_new_file
from ..options import DEFAULT_FLIP_LIMIT, DEFAULT_PERTURBATION_SET, MODEL_KINDS, PERTURBATION_SETS
from ..patient.clinical_facts import clinical_usage, parse_clinical
from ..progress import stderr_progress
from ..records import write_new_json
from . import Subcommands, jobs_argument, seed_argument

if TYPE_CHECKING:
    from ..prediction.result import Prediction


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir predict`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "predict", help="predict response (CR/PR vs SD/PD) for one patient",
        description="Probability of response (CR/PR vs SD/PD by RECIST 1.1) to anti-PD-1 combination therapy, "
                    "its log-odds score, and the risk group, for one patient. Research software: the result says "
                    "which weights made it and whether they are clinically validated (they are not).")
    parser.add_argument("--ct", help="DICOM series folder, or one .nrrd/.nii(.gz)/.mha CT file "
                                     "(not needed by --model clinical)")
    parser.add_argument("--lesions", nargs="+", default=[],
                        help="the target lesions: a Slicer .seg.nrrd, one label map, or several binary mask files")
    parser.add_argument("--clinical", nargs="+", metavar="KEY=VALUE",
                        help=f"the four clinical facts: {clinical_usage()} (combined and clinical models)")
    parser.add_argument("--model", choices=MODEL_KINDS,
                        help="which model (default: the kind of --weights, else combined)")
    parser.add_argument("--weights", help="a weight bundle folder (default: the bundled weights of --model)")
    parser.add_argument("--json", help="also write the result to this JSON file (never overwritten)")
    parser.add_argument("--sites", help="CSV 'label,site' giving each lesion's site")
    parser.add_argument("--series-uid", help="the series to use when the DICOM folder holds several")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="lesions extracted in parallel (default 1)")
    sensitivity = parser.add_argument_group(
        "outline sensitivity", "How far the probability moves when each target lesion's outline changes by a "
                               "plausible amount: its sensitivity to the outline, not a confidence interval.")
    sensitivity.add_argument("--sensitivity", action="store_true",
                             help="also predict under outline changes of each lesion, one at a time, and say "
                                  "whether the risk group holds")
    sensitivity.add_argument("--perturbations", metavar="SET|N",
                             help=f"the outline changes per lesion: {', '.join(PERTURBATION_SETS)} (default "
                                  f"{DEFAULT_PERTURBATION_SET}: +/-1 mm and 8 supervoxel randomisations), or N: "
                                  "+/-1 mm and N randomisations")
    sensitivity.add_argument("--seed", type=seed_argument, help="seed of the contour randomisations (default 0)")
    sensitivity.add_argument("--flip-limit", type=float, metavar="SHARE",
                             help=f"warn when the risk group flips in more than this share of the changes "
                                  f"(default {DEFAULT_FLIP_LIMIT:g})")
    parser.set_defaults(handler=run)


def format_probability(value: float) -> str:
    """Three decimals, without printing a certainty the model does not have as 0.000 or 1.000.

    Parameters
    ----------
    value : float
        A probability, in [0, 1].

    Returns
    -------
    str
        ``value`` with three decimals, ``<0.001`` below 0.0005 and ``>0.999`` above 0.9995.
    """
    return "<0.001" if value < 0.0005 else ">0.999" if value > 0.9995 else f"{value:.3f}"


def format_prediction(prediction: Prediction) -> str:
    """The result as a person reads it: provenance and warnings stand right under the probability.

    Parameters
    ----------
    prediction : Prediction
        One patient's prediction.

    Returns
    -------
    str
        Several lines: model, probability, provenance, warnings, score (log-odds), risk group and cut-off,
        clinical facts, each lesion (volume in cm3, diameters in mm) and the RECIST findings.
    """
    lines = [f"Model: {prediction.model}",
             f"Probability of response (CR/PR): {format_probability(prediction.probability)}"]
    if prediction.sensitivity is not None:
        lines.append(f"  Under outline changes: {prediction.sensitivity.summary}")
        if prediction.sensitivity.warning:
            lines.append(f"  Warning: {prediction.sensitivity.warning}")
    lines.append(f"  {prediction.provenance}")
    lines += [f"  Warning: {warning}" for warning in prediction.warnings]
    lines.append(f"Score (log-odds): {prediction.score:.3f}")
    if prediction.risk_group is None:
        lines.append("Risk group: not available (no cut-off in the weights)")
    else:
        relation = "<=" if prediction.risk_group == "high" else ">"
        lines.append(f"Risk group: {prediction.risk_group} (score {relation} cut-off {prediction.cutoff:.3f}, "
                     f"{prediction.weights.cutoff_method})")
    if prediction.clinical is not None:
        lines.append(f"Clinical facts: {' '.join(prediction.clinical.to_tokens())}")
    if prediction.lesions:
        lines.append("Lesions:")
        lines += [f"  {lesion.lesion_id}: site {lesion.site or 'unknown'}, volume {lesion.volume_mm3 / 1000:.2f} cm3, "
                  f"longest axial diameter {lesion.longest_axial_diameter_mm:.1f} mm, "
                  f"short axis {lesion.short_axis_mm:.1f} mm" for lesion in prediction.lesions]
    lines += [f"RECIST {finding.severity}: {finding.message}" for finding in prediction.recist]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir predict`` with parsed ``args``: print the prediction and, with ``--json``, write it.

    Parameters
    ----------
    args : argparse.Namespace
        ``ct``, ``lesions``, ``clinical`` (``KEY=VALUE`` tokens), ``model``, ``weights``, ``json`` (``None``:
        no file), ``sites``, ``series_uid``, ``jobs``, and the outline sensitivity's ``sensitivity``,
        ``perturbations``, ``seed`` and ``flip_limit`` (None: the defaults).

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        When the ``json`` file exists or its folder cannot be written, when lesions are given without a CT,
        when sensitivity settings are given without ``--sensitivity`` or are out of range, or as the clinical
        facts' parser and ``abcir.prediction.predict.predict_patient``; the command line turns it into a one-line
        message.
    """
    if args.json:
        check_new_file(args.json)  # before the slow part
    if args.lesions and not args.ct:
        raise InputError("--lesions needs --ct: lesions are read on the CT's grid.")
    clinical = parse_clinical(args.clinical) if args.clinical else None
    settings = {name: value for name, value in (("--perturbations", args.perturbations), ("--seed", args.seed),
                                                ("--flip-limit", args.flip_limit)) if value is not None}
    if settings and not args.sensitivity:
        raise InputError(f"{', '.join(settings)} set up the outline sensitivity; add --sensitivity to run it.")
    from ..features.parallel import extraction_pool, single_threaded_blas_from_start, skip_garbage_collection_at_exit

    single_threaded_blas_from_start()
    # The workers import pyradiomics, then check the engine, while this process reads the CT.
    pool = extraction_pool(args.jobs) if args.lesions and args.model != "clinical" else None
    skip_garbage_collection_at_exit()
    from ..features.engine_check import start_engine_check
    from ..prediction.predict import predict_patient

    start_engine_check(pool)
    analysis = None
    if args.sensitivity:
        from ..sensitivity.analysis import sensitivity_analysis
        from ..sensitivity.perturbations import perturbation_set_named

        analysis = sensitivity_analysis(perturbation_set_named(args.perturbations or DEFAULT_PERTURBATION_SET),
                                        args.seed or 0, args.jobs,
                                        DEFAULT_FLIP_LIMIT if args.flip_limit is None else args.flip_limit)
    prediction = predict_patient(args.ct, args.lesions, clinical, model=args.model, weights=args.weights,
                                 sites_csv=args.sites, jobs=args.jobs, progress=stderr_progress,
                                 series_uid=args.series_uid, sensitivity=analysis)
    print(format_prediction(prediction))
    if args.json:
        print(f"Result written to {write_new_json(args.json, prediction.to_dict())}")
    return 0
