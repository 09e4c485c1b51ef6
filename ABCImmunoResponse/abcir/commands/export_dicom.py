"""``abcir export-dicom``: a prediction result as DICOM SEG (target lesions) and DICOM SR (the result), for PACS."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..files import check_writable_folder
from . import Subcommands

if TYPE_CHECKING:
    from ..prediction.result import Prediction


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir export-dicom`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser(
        "export-dicom", help="write the target lesions as DICOM SEG and the prediction as DICOM SR",
        description="Write the target lesions of a prediction as a DICOM Segmentation and the prediction as a "
                    "DICOM Structured Report (TID 1500), both in the CT's study, for PACS. The result must have "
                    "been computed on this DICOM series (its voxel hash is checked).")
    parser.add_argument("--result", required=True, help="result JSON written by 'abcir predict --json'")
    parser.add_argument("--ct", required=True, help="the DICOM folder the prediction was made on")
    parser.add_argument("--lesions", required=True, nargs="+",
                        help="the target lesions the prediction used: a Slicer .seg.nrrd, one label map, or "
                             "several binary mask files")
    parser.add_argument("--out", required=True, help="folder to write lesions_seg.dcm and prediction_sr.dcm to "
                                                      "(existing files are never overwritten)")
    parser.add_argument("--sites", help="CSV 'label,site' giving each lesion's site")
    parser.add_argument("--series-uid", help="the series to use when the DICOM folder holds several "
                                             "(default: the one recorded in the result)")
    parser.set_defaults(handler=run)


def read_result(path: str) -> Prediction:
    """A prediction result JSON file as a ``Prediction``.

    Parameters
    ----------
    path : str
        A result file written by ``abcir predict --json``.

    Returns
    -------
    Prediction
        The prediction it records, as ``Prediction.from_dict`` reads it.

    Raises
    ------
    InputError
        When the file cannot be read or is not JSON, or as ``Prediction.from_dict`` when its content is not a
        prediction result.
    """
    from ..prediction.result import Prediction

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InputError(f"Result '{path}': cannot be read as JSON ({error}).") from error
    return Prediction.from_dict(data, where=f"Result '{path}'")


def run(args: argparse.Namespace) -> int:
    """Run ``abcir export-dicom`` with parsed ``args``: write the DICOM SEG and SR and say where.

    Parameters
    ----------
    args : argparse.Namespace
        ``result``, ``ct``, ``lesions``, ``out``, ``sites`` and ``series_uid`` (``None``: the series recorded in
        the result).

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        When ``out`` is a file or cannot be written, when the result cannot be read, when the series it was
        made on is not in ``ct``, or as the DICOM reading and export; the command line turns it into a one-line
        message.
    """
    from ..dicom.export import export_dicom
    from ..dicom.series import list_series, read_dicom_ct
    from ..patient.lesions import load_lesions

    check_writable_folder(args.out, "--out")
    prediction = read_result(args.result)
    recorded_series = prediction.ct.series_instance_uid if prediction.ct else ""
    if not args.series_uid and recorded_series:
        here = [series.series_instance_uid for series in list_series(args.ct)]
        if recorded_series not in here:
            raise InputError(f"Result '{args.result}': made on series {recorded_series}, which is not in DICOM "
                             f"folder '{args.ct}' ({', '.join(uid or '(no UID)' for uid in here)}). Give the "
                             "folder the prediction was made on.")
    ct = read_dicom_ct(args.ct, series_uid=args.series_uid or recorded_series or None)
    lesions = load_lesions(args.lesions, ct.image, args.sites)
    written = export_dicom(prediction, ct, lesions, args.out, result_name=args.result)
    print(f"DICOM Segmentation ({len(prediction.lesions)} segments) written to {written.seg_path}")
    print(f"DICOM Structured Report written to {written.sr_path}")
    return 0
