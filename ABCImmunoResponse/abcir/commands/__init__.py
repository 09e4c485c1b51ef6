"""Sub-commands of the ``abcir`` command line, one module each, and what they share.

Each module declares its options in ``add_cli(subparsers)`` (``subparsers`` is a
``Subcommands``) and does the work in ``run(args)``. Names typed on the command
line go through ``text_argument``. This package imports only the standard
library, so that ``abcir --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Protocol


class Subcommands(Protocol):
    """Where a command module's ``add_cli`` adds its sub-command: what ``add_subparsers()`` returns.

    Named by what it does rather than by argparse's private ``_SubParsersAction``.
    """

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A new sub-command ``name``; keyword arguments as for ``argparse.ArgumentParser``."""


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
