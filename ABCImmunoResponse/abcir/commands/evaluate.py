"""``abcir evaluate``: every statistic of the paper for a file of model predictions, as files.

The statistics are :mod:`abcir.evaluation`; this module reads the options and
writes ``metrics.json`` and ``report.html`` (with its PNG figures) into the
``--out`` folder. The statistics and report modules are imported when the
command runs, so that ``abcir --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from . import Subcommands


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


def prepare_output(out: str | Path, force: bool) -> Path:
    """Create the report folder ``out``, refusing to overwrite an earlier report unless ``force``.

    Parameters
    ----------
    out : str or Path
        The folder; created with its parents if absent.
    force : bool
        Whether an earlier ``metrics.json`` or ``report.html`` there may be replaced.

    Returns
    -------
    Path
        The folder, which exists.

    Raises
    ------
    InputError
        ``out`` is a file or cannot be written, or holds an earlier report and ``force`` is false.
    """
    from ..errors import InputError
    from ..evaluation.metrics import METRICS_FILE
    from ..files import check_writable_folder
    from ..report.html import REPORT_FILE

    out_dir = Path(out)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out '{out_dir}' is a file; give a folder for the report.")
    check_writable_folder(out_dir, "--out")
    existing = [name for name in (METRICS_FILE, REPORT_FILE) if (out_dir / name).exists()]
    if existing and not force:
        raise InputError(f"Folder '{out_dir}' already holds a report ({', '.join(existing)}); "
                         "choose another --out folder or add --force to overwrite it.")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def weights_beside(folder: Path) -> dict[str, str]:
    """Where the weights behind a predictions file in ``folder`` came from, by model kind.

    The provenance lines ``abcir batch`` recorded in ``batch.json``; else, for the
    ``predictions.csv`` of ``abcir train``, those of the bundles it wrote beside it
    (each verified as any bundle is before use; one that fails is left out).

    Parameters
    ----------
    folder : Path
        The predictions file's folder.

    Returns
    -------
    dict of str to str
        Model kind -> provenance line; empty when neither is there.
    """
    from ..batch.store import recorded_weights
    from ..errors import InputError
    from ..models.bundle import MANIFEST, load_bundle
    from ..options import MODEL_KINDS
    from ..prediction.result import WeightsInfo

    recorded = recorded_weights(folder)
    if recorded:
        return recorded
    trained = {}
    for kind in MODEL_KINDS:
        if (folder / kind / MANIFEST).is_file():
            try:
                bundle = load_bundle(folder / kind)
            except InputError:  # BundleError included: not shown as the file's weights
                continue
            if bundle.manifest.model == kind:
                trained[kind] = WeightsInfo.from_bundle(bundle).provenance()
    return trained


def run_evaluate(predictions: str | Path, out: str | Path, subgroups: list[str] | None = None,
                 cutoff: float | None = None, force: bool = False) -> tuple[Path, Path]:
    """Read a predictions file, evaluate every model in it and write the metrics and the report.

    Parameters
    ----------
    predictions : str or Path
        The predictions CSV (format in :mod:`abcir.evaluation.table`); what ``abcir batch``
        or ``abcir train`` wrote beside it says where each model's weights came from
        (``weights_beside``).
    out : str or Path
        The folder for ``metrics.json``, ``report.html`` and the figures.
    subgroups : list of str or None
        Clinical columns to compute subgroup AUCs over.
    cutoff : float or None
        A fixed risk cut-off on the score (log-odds); ``None`` chooses each
        model's by the maximally selected log-rank statistic.
    force : bool
        Whether an earlier report in ``out`` may be replaced.

    Returns
    -------
    tuple of Path
        The paths of ``metrics.json`` and ``report.html``.

    Raises
    ------
    InputError
        The predictions file is unreadable or invalid, a subgroup is not one of
        its clinical columns, or ``out`` cannot take the report (see
        ``prepare_output``). Nothing is written before the statistics succeed.
    """
    from ..evaluation.analysis import evaluate
    from ..evaluation.metrics import write_metrics
    from ..evaluation.table import read_predictions
    from ..report import write_report

    table = read_predictions(predictions)
    evaluation = evaluate(table, subgroups or (), cutoff, weights_beside(Path(predictions).parent))
    out_dir = prepare_output(out, force)
    metrics_path = write_metrics(evaluation, out_dir)
    report_path = write_report(evaluation, out_dir)
    return metrics_path, report_path


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir evaluate`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
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
    """Run ``abcir evaluate`` with parsed ``args`` and say where the files are.

    Parameters
    ----------
    args : argparse.Namespace
        ``predictions``, ``out``, ``subgroup``, ``cutoff`` (log-odds or ``None``) and ``force``.

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        As ``run_evaluate``; the command line turns it into a one-line message.
    """
    metrics_path, report_path = run_evaluate(args.predictions, args.out, args.subgroup,
                                             args.cutoff, args.force)
    print(f"Wrote {metrics_path} and {report_path}")
    for line in json.loads(metrics_path.read_text(encoding="utf-8"))["weights"]:
        print(f"Weights of {line}")
    return 0
