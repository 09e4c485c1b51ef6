"""Dataclasses to and from JSON, with a message naming the field when a file does not fit.

Weight manifests and prediction results are JSON files that people edit,
copy between machines and keep for years. Reading one back checks every field
against the dataclass it describes (names, types, nesting) and says which
field is wrong, instead of failing later with a ``KeyError``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from .files import atomic_write_text, refuse_existing

T = TypeVar("T")


def to_json_dict(record: Any) -> dict:
    """A dataclass as a JSON-ready dict (tuples become lists when dumped).

    Parameters
    ----------
    record : dataclass instance
        The record; nested dataclasses become nested dicts.

    Returns
    -------
    dict
        Field name -> value, recursively (``dataclasses.asdict``).

    Raises
    ------
    TypeError
        If ``record`` is not a dataclass instance.
    """
    return dataclasses.asdict(record)


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` as a UTF-8 JSON file (strict: no NaN; names as written), replacing it whole.

    For files a program keeps up to date in its own output folder (a batch's ``batch.json``);
    results use ``write_new_json``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; an existing one is replaced atomically.
    data : dict
        JSON-serialisable content, written indented by 2 with a final newline.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If ``data`` holds NaN or an infinity (nothing is written).
    TypeError
        If ``data`` holds a value JSON cannot represent (nothing is written).
    OSError
        If the file cannot be written.
    """
    return atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n")


def write_new_json(path: str | os.PathLike, data: dict, what: str = "Output") -> Path:
    """Write ``data`` as a new UTF-8 JSON file (strict: no NaN; names as written); never replaces a file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create.
    data : dict
        JSON-serialisable content.
    what : str, optional
        How the message names the file if it exists (default "Output").

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If something already exists at ``path``.
    ValueError, TypeError, OSError
        As ``write_json``.
    """
    return write_json(refuse_existing(path, what), data)


def from_json_dict(cls: type[T], data: Any, where: str, error: type[Exception]) -> T:
    """Build dataclass ``cls`` from parsed JSON; ``where`` names the file in messages, ``error`` is raised.

    Every field is checked against ``cls``'s type hints, recursively (nested
    dataclasses, tuples, dicts, optional and union types); a JSON number is
    accepted for a float field, but not a bool for an int.

    Parameters
    ----------
    cls : type
        The dataclass to build.
    data : Any
        The parsed JSON (``json.load`` output), expected to be an object.
    where : str
        The file, as messages name it.
    error : type of Exception
        The exception class to raise, e.g. ``InputError`` or ``BundleError``;
        called with the message.

    Returns
    -------
    object
        An instance of ``cls``; fields absent from ``data`` take their defaults.

    Raises
    ------
    error
        If a field is missing (without default), unknown, of the wrong type or
        length, or a float is not finite; the message names the field's path.
    """
    return _dataclass(cls, data, where, "", error)


def _dataclass(cls: type, data: Any, where: str, path: str, error: type[Exception]) -> Any:
    if not isinstance(data, dict):
        raise error(f"{where}: field '{path or '(top level)'}' must be an object, not {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    known = {field.name: field for field in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise error(f"{where}: field '{_join(path, unknown[0])}' is not part of this format; "
                    "the file was written by another program or edited by hand.")
    values = {}
    for name, field in known.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise error(f"{where}: field '{_join(path, name)}' is missing.")
            continue
        values[name] = _convert(hints[name], data[name], where, _join(path, name), error)
    return cls(**values)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _convert(hint: Any, value: Any, where: str, path: str, error: type[Exception]) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [option for option in args if option is not type(None)]
        problems = []
        for option in options:
            try:
                return _convert(option, value, where, path, error)
            except error as problem:
                problems.append(str(problem).removeprefix(f"{where}: "))
        if len(problems) == 1:
            raise error(f"{where}: {problems[0]}")
        raise error(f"{where}: field '{path}' fits none of its forms ({'; '.join(problems)}).")
    if dataclasses.is_dataclass(hint):
        return _dataclass(hint, value, where, path, error)
    if origin is tuple:
        if not isinstance(value, list):
            raise error(f"{where}: field '{path}' must be a list, not {type(value).__name__}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, where, f"{path}[{i}]", error) for i, item in enumerate(value))
        if len(value) != len(args):
            raise error(f"{where}: field '{path}' must have {len(args)} items, not {len(value)}.")
        return tuple(_convert(arg, item, where, f"{path}[{i}]", error) for i, (arg, item) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise error(f"{where}: field '{path}' must be an object, not {type(value).__name__}.")
        return {key: _convert(args[1], item, where, f"{path}.{key}", error) for key, item in value.items()}
    return _scalar(hint, value, where, path, error)


def _scalar(hint: Any, value: Any, where: str, path: str, error: type[Exception]) -> Any:
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise error(f"{where}: field '{path}' is {value}; a finite number is needed.")
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint in (str, bool) and isinstance(value, hint):
        return value
    raise error(f"{where}: field '{path}' must be {getattr(hint, '__name__', hint)}, not {type(value).__name__} "
                f"({value!r:.40}).")
