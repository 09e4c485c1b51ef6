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


def as_typed(value: str, errors: str = "replace") -> str:
    """``value`` (an argument, or a name taken from a path) with undecodable bytes decoded as UTF-8.

    Under an ASCII locale (C or POSIX without Python's UTF-8 mode) Python keeps the bytes of 'Müller' as lone
    surrogates, which no UTF-8 file can hold; terminals and file systems use UTF-8, so those bytes are decoded
    as UTF-8 (see ``abcir.commands.text_argument``). Bytes that are not UTF-8 either become U+FFFD unless
    ``errors`` says otherwise.

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


def itk_path(path: str | os.PathLike, what: str) -> str:
    """``path`` as the text SimpleITK opens or writes: the file's name decoded as UTF-8.

    SimpleITK passes names to ITK as UTF-8. Under an ASCII locale (C or POSIX without Python's UTF-8
    mode) Python keeps the bytes of a name such as 'Müller.nrrd' as lone surrogates, which SimpleITK
    cannot convert: the process aborts (``std::logic_error``) instead of raising.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    what : str
        How a message names it ("CT", "Lesions").

    Returns
    -------
    str
        The name, its bytes decoded as UTF-8 (unchanged under a UTF-8 locale).

    Raises
    ------
    InputError
        If the name's bytes are not UTF-8, which ITK cannot open.
    """
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} {os.fspath(path)!a}: the file name is not UTF-8, which ITK needs; rename "
                         "the file or a folder above it.") from None


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


def _writable_place(target: Path, folder: Path, what: str) -> None:
    """Refuse ``target`` when ``folder``, the folder that will hold it, cannot be made or written in."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        if existing == target.absolute():
            raise InputError(f"{what} '{target}' is a file; give a folder.")
        raise InputError(f"{what} '{target}' cannot be made: '{existing}' is a file, not a folder; give another path.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{what} '{target}': cannot write in '{existing}' (read-only or no permission); choose a "
                         "folder you can write to.")


def check_writable_folder(folder: str | os.PathLike, what: str = "Output") -> Path:
    """``folder`` if it is, or can be made, a folder this process can write in; checked before any slow work.

    Without it a read-only or mistyped output place is found only when the result is written, as a traceback.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder results go to; it and its parents need not exist yet.
    what : str, optional
        How the message names it, e.g. "--out" (default "Output").

    Returns
    -------
    pathlib.Path
        ``folder`` as a Path.

    Raises
    ------
    InputError
        If ``folder`` or one of its parents is a file, or the nearest existing folder cannot be written to
        (read-only file system, no permission).
    """
    folder = Path(folder)
    _writable_place(folder, folder.absolute(), what)
    return folder


def check_new_file(path: str | os.PathLike, what: str = "Output") -> Path:
    """``path`` if nothing is there yet and its folder can be written (``refuse_existing``, ``check_writable_folder``).

    Parameters
    ----------
    path : str or os.PathLike
        The file the caller will write.
    what : str, optional
        How the message names it (default "Output").

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    InputError
        If something exists at ``path``, or its folder cannot be made or written to.
    """
    path = refuse_existing(path, what)
    _writable_place(path, path.absolute().parent, what)
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
