"""The ``abcir`` command line: everything the Slicer panel does, for scripts and CI.

Each sub-command lives with the code it drives and registers itself through an
``add_cli(subparsers)`` function; this module only assembles them and turns
``InputError`` into a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
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
    "abcir.evaluation",
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


def stderr_progress(done: int, total: int, what: str) -> None:
    """Progress for long runs, on stderr so stdout stays machine-readable."""
    print(f"[{done}/{total}] {what}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # How the command was given, for records such as a bundle's training provenance.
    args.command_line = "abcir " + shlex.join(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.handler(args) or 0)
    except InputError as error:
        print(f"abcir {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
