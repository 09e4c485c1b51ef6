"""The ``abcir`` command line: everything the Slicer panel does, for scripts and CI.

Each sub-command is a module of ``abcir.commands`` with two functions:
``add_cli(subparsers)`` declares its options, and ``run(args)`` does the work.
A command module imports, at its top, only modules that import nothing heavy
(its package ``abcir.commands`` with the shared argument types, ``abcir.options``,
``abcir.patient.clinical_facts``, ``abcir.patient.sites``, ``abcir.patient.recist``, ``abcir.progress``,
the standard library); ``run`` imports what the command needs (numpy, SimpleITK,
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
import shlex
import sys
from typing import Sequence

from . import __version__
from .commands import as_typed
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
    """The ``abcir`` parser with every sub-command of ``COMMAND_MODULES``, in that order.

    Returns
    -------
    argparse.ArgumentParser
        Parser with ``--version``, ``-v/--verbose`` and a required COMMAND; each
        sub-command sets ``args.handler`` to its module's ``run``.
    """
    parser = argparse.ArgumentParser(prog="abcir", description=(
        "Radiomics response prediction for advanced breast cancer on anti-PD-1 combination therapy "
        "(Zhao et al., J Immunother Cancer 2023). Research software; not clinically validated."))
    parser.add_argument("--version", action="version", version=f"abcir {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_cli(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``abcir`` command and return its exit code; an ``InputError`` becomes one line on stderr.

    Parameters
    ----------
    argv : sequence of str or None, optional
        The arguments after the program name; None (the default) reads ``sys.argv[1:]``.

    Returns
    -------
    int
        The command's exit code (0 when its handler returns None), or 2 after an
        ``InputError``, whose message is printed to stderr.

    Raises
    ------
    SystemExit
        From argparse, for ``--help``, ``--version`` (code 0) or invalid
        arguments (code 2).
    """
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
