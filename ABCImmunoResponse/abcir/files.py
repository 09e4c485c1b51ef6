"""Writing files whole: a file appears under its final name complete, or not at all.

Everything abcir writes goes through a temporary name in the same folder and an
atomic rename, so an interrupted run (a killed batch, a full disk) never leaves a
half file that a later run would take for a result.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import InputError


def refuse_existing(path: str | os.PathLike, what: str = "Output") -> Path:
    """``path`` if nothing is there yet; results never replace an earlier file."""
    path = Path(path)
    if path.exists():
        raise InputError(f"{what} '{path}' already exists; choose another name (it is not overwritten).")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Write through ``write(temporary_name)``, then rename to ``path`` (replacing it, if the caller allows)."""
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
