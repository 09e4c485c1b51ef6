"""The ``abcir`` command line: everything the Slicer panel does, for scripts and CI.

Each sub-command is a module of ``abcir.commands`` with two functions:
``add_cli(subparsers)`` declares its options, and ``run(args)`` does the work.
A command module imports, at its top, only modules that import nothing heavy
(``abcir.options``, ``abcir.patient.clinical_facts``, ``abcir.patient.sites``, ``abcir.patient.recist``,
``abcir.progress``, the standard library); ``run`` imports what the command needs (numpy, SimpleITK,
pyradiomics, pandas, highdicom, ...). Every invocation builds the whole parser,
so ``abcir --help`` and ``abcir COMMAND --help`` start in tens of milliseconds
and a command imports only what it uses (``Testing/core/test_cli_startup.py``
checks it). This module only assembles the commands and turns ``InputError``
into a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shlex
import sys
from typing import Sequence

from . import __version__
from .errors import InputError

# Modules that contribute sub-commands, in the order ``abcir --help`` lists them.
COMMAND_MODULES = (
    "abcir.commands.extract",
    "abcir.commands.consensus",
    "abcir.commands.agreement",
    "abcir.commands.predict",
    "abcir.commands.dicom_series",
    "abcir.commands.export_dicom",
    "abcir.commands.evaluate",
    "abcir.commands.make_cohort",
    "abcir.commands.train",
    "abcir.commands.demo",
    "abcir.commands.batch",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abcir", description=(
        "Radiomics response prediction for advanced breast cancer on anti-PD-1 combination therapy "
        "(Zhao et al., J Immunother Cancer 2023). Research software; not clinically validated."))
    parser.add_argument("--version", action="version", version=f"abcir {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def as_typed(value: str, errors: str = "replace") -> str:
    """``value`` (an argument, or a name taken from a path) with undecodable bytes decoded as UTF-8.

    See ``text_argument``; bytes that are not UTF-8 either become U+FFFD unless ``errors`` says otherwise.
    """
    if not any("\udc80" <= char <= "\udcff" for char in value):
        return value
    return os.fsencode(value).decode("utf-8", errors)


def text_argument(value: str) -> str:
    """A name or free text given on the command line (a reader, a chair, a reason), as the user typed it.

    Under an ASCII locale (C or POSIX without Python's UTF-8 mode) Python keeps the
    bytes of 'Müller' as lone surrogates, which no UTF-8 file can hold. Terminals
    send UTF-8, so those bytes are decoded as UTF-8. File paths are not passed
    through this: the file system wants their bytes back as they came.
    """
    try:
        return as_typed(value, "strict")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{ascii(value)} is neither text in this locale's encoding nor UTF-8; "
                                         "run abcir under a UTF-8 locale (e.g. LANG=C.UTF-8).") from None


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):
        # A console that cannot show a name (a reader 'Dr Łukasz' on a Latin-1 terminal) shows it
        # escaped instead of failing after the files were written; files are always UTF-8.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    # How the command was given, for records such as a bundle's training provenance.
    given = sys.argv[1:] if argv is None else list(argv)
    args.command_line = "abcir " + shlex.join(as_typed(arg) for arg in given)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"abcir {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
