"""Sub-commands of the ``abcir`` command line, one module each, and what they share.

Each module declares its options in ``add_cli(subparsers)`` (``subparsers`` is a
``Subcommands``) and does the work in ``run(args)``. Names typed on the command
line go through ``text_argument``, numbers of processes through ``jobs_argument``
and random seeds through ``seed_argument``, so that a value no command can use
is refused before any work. This package imports only the standard library
and ``abcir.files``, so that ``abcir --help`` stays fast.
"""

from __future__ import annotations

import argparse
from typing import Any, Protocol

from ..files import as_typed


class Subcommands(Protocol):
    """Where a command module's ``add_cli`` adds its sub-command: what ``add_subparsers()`` returns.

    Named by what it does rather than by argparse's private ``_SubParsersAction``.
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A new sub-command ``name``; keyword arguments as for ``argparse.ArgumentParser``."""


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


# numpy's and torch's generators take seeds in [0, 2**32) everywhere abcir uses them (numpy refuses a negative one
# with a traceback, torch one of 2**64 or more).
MAX_SEED = 2**32 - 1


def _whole_number(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number; give {what}.") from None


def jobs_argument(value: str) -> int:
    """A number of parallel processes given on the command line (``--jobs``): a whole number, 1 or more.

    More than the machine's cores is allowed: the pools clip it to the cores available.

    Parameters
    ----------
    value : str
        The argument as argparse received it (used as an argparse ``type``).

    Returns
    -------
    int
        The number of processes.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``value`` is not a whole number or is below 1; argparse reports it as a usage error (exit code 2).
    """
    jobs = _whole_number(value, "1 or more parallel processes (1 = no parallelism)")
    if jobs < 1:
        raise argparse.ArgumentTypeError(f"{jobs} processes; give 1 or more (1 = no parallelism).")
    return jobs


def seed_argument(value: str) -> int:
    """A random seed given on the command line: a whole number from 0 to ``MAX_SEED``.

    Parameters
    ----------
    value : str
        The argument as argparse received it (used as an argparse ``type``).

    Returns
    -------
    int
        The seed.

    Raises
    ------
    argparse.ArgumentTypeError
        If ``value`` is not a whole number in that range; argparse reports it as a usage error (exit code 2).
    """
    seed = _whole_number(value, f"a seed from 0 to {MAX_SEED}")
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"seed {seed} is out of range; give a whole number from 0 to {MAX_SEED}.")
    return seed
