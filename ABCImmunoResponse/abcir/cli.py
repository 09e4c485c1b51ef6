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
from typing import Any, Protocol, Sequence

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


class Subcommands(Protocol):
    """Where a command module's ``add_cli`` adds its sub-command: what ``add_subparsers()`` returns.

    Named by what it does rather than by argparse's private ``_SubParsersAction``.
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A new sub-command ``name``; keyword arguments as for ``argparse.ArgumentParser``."""


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


def as_typed(value: str, errors: str = "replace") -> str:
    """``value`` (an argument, or a name taken from a path) with undecodable bytes decoded as UTF-8.

    See ``text_argument``; bytes that are not UTF-8 either become U+FFFD unless ``errors`` says otherwise.

    Parameters
    ----------
    value : str
        A string from ``sys.argv`` or the file system; undecodable bytes appear
        in it as lone surrogates (U+DC80 to U+DCFF).
    errors : str, optional
        The error handler of ``bytes.decode`` for bytes that are not UTF-8
        either: "replace" (the default) or "strict" to raise.

    Returns
    -------
    str
        ``value`` unchanged when it has no such surrogates, else its bytes decoded as UTF-8.

    Raises
    ------
    UnicodeDecodeError
        With ``errors="strict"``, if the bytes are not UTF-8.
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

    Parameters
    ----------
    value : str
        The argument as argparse received it (used as an argparse ``type``).

    Returns
    -------
    str
        The text, surrogate-escaped bytes decoded as UTF-8.

    Raises
    ------
    argparse.ArgumentTypeError
        If those bytes are not UTF-8 either; argparse reports it as a usage error.
    """
    try:
        return as_typed(value, "strict")
    except UnicodeDecodeError:
        raise argparse.ArgumentTypeError(f"{ascii(value)} is neither text in this locale's encoding nor UTF-8; "
                                         "run abcir under a UTF-8 locale (e.g. LANG=C.UTF-8).") from None


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
