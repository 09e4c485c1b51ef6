"""``abcir dicom-series``: the series in a DICOM folder, which one would be read, and why others are not."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from ..errors import InputError
from . import Subcommands

if TYPE_CHECKING:
    from ..dicom.series import SeriesInfo


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir dicom-series`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "dicom-series", help="list the series in a DICOM folder and the CT series that would be used",
        description="List the series in a DICOM folder (description, images, spacing, kernel), mark the CT series "
                    "the other commands would read, and say why each other series cannot be used. Pass another "
                    "one to them with --series-uid.")
    parser.add_argument("folder", help="DICOM folder (searched recursively)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def _spacing(series: SeriesInfo) -> str:
    in_plane = "x".join(f"{v:.3g}" for v in series.pixel_spacing_mm) if series.pixel_spacing_mm else "?"
    between = f"{series.slice_spacing_mm:.3g}" if series.slice_spacing_mm else "?"
    return f"{in_plane} x {between}"


def run(args: argparse.Namespace) -> int:
    """Run ``abcir dicom-series`` with parsed ``args``: print the folder's series and which one is chosen.

    Parameters
    ----------
    args : argparse.Namespace
        ``folder`` (searched recursively) and ``json`` (print JSON instead of a table).

    Returns
    -------
    int
        The exit code, 0, also when no series can be chosen (the reason is printed).
    """
    from ..dicom.series import choose_series, list_series

    series = list_series(args.folder)
    try:
        chosen: SeriesInfo | None = choose_series(series, folder=args.folder)
        reason = ""
    except InputError as error:
        chosen, reason = None, str(error)
    if args.json:
        rows = [{"series_instance_uid": s.series_instance_uid, "study_instance_uid": s.study_instance_uid,
                 "modality": s.modality, "series_number": s.series_number, "description": s.description,
                 "images": s.images, "pixel_spacing_mm": s.pixel_spacing_mm, "slice_spacing_mm": s.slice_spacing_mm,
                 "slice_thickness_mm": s.slice_thickness_mm, "kernel": s.kernel, "image_type": list(s.image_type),
                 "chosen": s is chosen, "problem": s.problem} for s in series]
        print(json.dumps({"series": rows, "no_choice_reason": reason or None}, indent=2))
        return 0
    for s in series:
        mark = "*" if s is chosen else " "
        status = "used by default" if s is chosen else ("usable" if s.usable else f"not usable: {s.problem}")
        print(f"{mark} {s.series_instance_uid or '(no SeriesInstanceUID)'}\n"
              f"    #{s.series_number if s.series_number is not None else '-'} {s.modality} "
              f"'{s.description}', {s.images} images, spacing {_spacing(s)} mm, thickness "
              f"{s.slice_thickness_mm if s.slice_thickness_mm is not None else '?'} mm, kernel {s.kernel or '?'}, "
              f"{'/'.join(s.image_type[:3]) or '?'}\n    {status}")
    if chosen is None:
        print(f"No series is chosen by default: {reason}")
    return 0
