"""Writing files whole: a file appears under its final name complete, or not at all.

Everything abcir writes goes through a temporary name in the same folder and an
atomic rename, so an interrupted run (a killed batch, a full disk) never leaves a
half file that a later run would take for a result. Text is always UTF-8, whatever
the machine's locale: reader, chair, segment and site names are not ASCII everywhere.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import InputError


def refuse_existing(path: str | os.PathLike, what: str = "Output") -> Path:
    """``path`` if nothing is there yet; results never replace an earlier file.

    Parameters
    ----------
    path : str or os.PathLike
        Where the caller means to write.
    what : str, optional
        How the message names the file, e.g. "Features table" (default "Output").

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    InputError
        If a file or folder already exists at ``path``.
    """
    path = Path(path)
    if path.exists():
        raise InputError(f"{what} '{path}' already exists; choose another name (it is not overwritten).")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write through ``write(temporary_name)``, then rename to ``path`` (replacing it, if the caller allows).

    Parameters
    ----------
    path : str or os.PathLike
        The final file; its folder is created if missing. An existing file is
        replaced: callers that must not replace one check first (``refuse_existing``).
    write : callable
        Called once with the temporary file's name (same folder, created empty)
        and writes the whole content there.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        If the folder or temporary file cannot be created or the rename fails.
        Whatever ``write`` raises is passed on; the temporary file is removed
        in every case.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=path.name, dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` as UTF-8 (line ends as given, on every OS) through ``atomic_write``, on disk before the rename.

    Parameters
    ----------
    path : str or os.PathLike
        The final file; an existing one is replaced.
    text : str
        The whole content, written without newline translation and fsynced.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        If the file cannot be written or renamed into place.
    """
    def write(name: str) -> None:
        with open(name, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return atomic_write(path, write)
