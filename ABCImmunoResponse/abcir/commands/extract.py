"""``abcir extract``: one patient's lesions in, the 1130 features per lesion out (CSV)."""

from __future__ import annotations

import argparse
import sys

from ..errors import InputError
from ..files import check_new_file
from ..patient.recist import validate_targets
from ..progress import stderr_progress
from . import Subcommands, jobs_argument, text_argument


def add_cli(subparsers: Subcommands) -> None:
    """Register ``abcir extract`` with the command line's ``subparsers``.

    Parameters
    ----------
    subparsers : abcir.commands.Subcommands
        The sub-command registry of the ``abcir`` parser.
    """
    parser = subparsers.add_parser("extract", help="extract the paper's 1130 radiomics features per lesion",
                                   description="Extract the paper's 1130 radiomics features per target lesion.")
    parser.add_argument("--ct", required=True, help="DICOM series folder, or one .nrrd/.nii(.gz)/.mha CT file")
    parser.add_argument("--lesions", required=True, nargs="+",
                        help="a Slicer .seg.nrrd, one label map, or several binary mask files")
    parser.add_argument("--out", required=True, help="features CSV to write (never overwritten)")
    parser.add_argument("--series-uid", help="DICOM SeriesInstanceUID when the CT folder holds several series")
    parser.add_argument("--sites", help="CSV 'label,site' giving each lesion's site")
    parser.add_argument("--patient-id", type=text_argument,
                        help="patient id written in each row (default: a DICOM series' PatientID, else the CT "
                             "file's name without its extension)")
    parser.add_argument("--jobs", type=jobs_argument, default=1, help="lesions extracted in parallel (default 1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run ``abcir extract`` with parsed ``args``: write the features CSV, RECIST findings on stderr.

    Parameters
    ----------
    args : argparse.Namespace
        ``ct``, ``lesions``, ``out``, ``series_uid``, ``sites``, ``patient_id`` and ``jobs``.

    Returns
    -------
    int
        The exit code, 0.

    Raises
    ------
    InputError
        As ``abcir.features.extract.extract_patient``, when ``patient_id`` is blank, or when ``out`` or its
        provenance sidecar exists or its folder cannot be written (checked before extraction); the command line
        turns it into a one-line message.
    """
    if args.patient_id is not None and not args.patient_id.strip():
        raise InputError(f"--patient-id '{args.patient_id}' is blank; give the patient's id, or leave the option out "
                         "to use the DICOM series' PatientID or the CT file's name.")
    check_new_file(args.out)  # before the slow part
    from ..features.parallel import (
        extraction_pool,
        shutdown_pools,
        single_threaded_blas_from_start,
        skip_garbage_collection_at_exit,
    )

    single_threaded_blas_from_start()
    extraction_pool(args.jobs)  # the workers import pyradiomics while this process reads the CT
    skip_garbage_collection_at_exit()
    from ..features.extract import extract_patient
    from ..features.table import provenance_path, write_features_csv

    check_new_file(provenance_path(args.out))

    rows = extract_patient(args.ct, args.lesions, patient_id=args.patient_id, sites_csv=args.sites,
                           jobs=args.jobs, progress=stderr_progress, series_uid=args.series_uid)
    shutdown_pools(wait=False)  # the workers exit while this process writes the table
    for finding in validate_targets([row.lesion for row in rows]):
        print(f"RECIST {finding.severity}: {finding.message}", file=sys.stderr)
    path = write_features_csv(args.out, rows)
    print(f"{len(rows)} lesions x {rows[0].values.size} features written to {path}")
    return 0
