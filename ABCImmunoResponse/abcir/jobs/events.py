"""What a running job tells its parent: one JSON object per line in ``FOLDER/events.jsonl``.

A file, not a pipe: the child appends and flushes each line, the parent reads
whatever complete lines have appeared since its last look, from a remembered
byte offset, without ever waiting. No pipe buffer can fill up and stall the
child, and the parent needs no reader thread (which in Slicer would compete
with the Qt loop for the GIL). A line the child is still writing has no
newline yet; the parent leaves it for its next look.

The lines are::

    {"event": "status", "text": "Extracting radiomics features of 3 lesions"}
    {"event": "progress", "done": 1, "total": 3, "what": "liver_1"}
    {"event": "done"}                       (only after result.json is complete)
    {"event": "error", "kind": "input"|"bug", "message": "one line"}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TextIO

from ..records import from_json_dict

EVENTS_FILE = "events.jsonl"
SENSITIVITY_STEP = "outline sensitivity"  # ProgressEvent.what for each outline change of the sensitivity analysis
ERROR_KINDS = ("input", "bug")  # input: the user can fix it (InputError); bug: anything else


@dataclass(frozen=True)
class StatusEvent:
    """What the job is doing now, for the panel's status line."""

    text: str


@dataclass(frozen=True)
class ProgressEvent:
    """Step ``done`` of ``total`` is finished; ``what`` names it (a lesion id, or a changed outline)."""

    done: int
    total: int
    what: str


@dataclass(frozen=True)
class DoneEvent:
    """The result file is complete."""


@dataclass(frozen=True)
class ErrorEvent:
    """The job failed; ``message`` is one line for the user."""

    kind: str
    message: str


Event = StatusEvent | ProgressEvent | DoneEvent | ErrorEvent
_NAMES: dict[str, type] = {"status": StatusEvent, "progress": ProgressEvent, "done": DoneEvent, "error": ErrorEvent}


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of white space folded into single spaces.

    Parameters
    ----------
    text : str
        Any text, e.g. an error message spanning lines.

    Returns
    -------
    str
        The words of ``text`` joined by single spaces, without leading or trailing space.
    """
    return " ".join(text.split())


def write_event(stream: TextIO, event: Event) -> None:
    """Append ``event`` as one line and flush it, so the parent sees it at once.

    Parameters
    ----------
    stream : TextIO
        The open ``events.jsonl``, in text mode, appending.
    event : StatusEvent, ProgressEvent, DoneEvent or ErrorEvent
        The event; written as ``{"event": name, ...its fields}``.

    Raises
    ------
    ValueError
        A field holds NaN or an infinity (strict JSON).
    """
    name = next(key for key, cls in _NAMES.items() if isinstance(event, cls))
    stream.write(json.dumps({"event": name, **asdict(event)}, allow_nan=False) + "\n")
    stream.flush()


def parse_event(line: bytes | str) -> Event:
    """One line as an event; ``ValueError`` says what is wrong with it.

    Parameters
    ----------
    line : bytes or str
        One line of ``events.jsonl`` (UTF-8 when bytes), with or without its newline.

    Returns
    -------
    StatusEvent, ProgressEvent, DoneEvent or ErrorEvent
        The event the line names, with its fields.

    Raises
    ------
    ValueError
        The line is not JSON, names no known event, its fields do not fit the
        event, or an error event's kind is not "input" or "bug".
    """
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"event line {line[:80]!r} is not JSON ({error})") from error
    if not isinstance(data, dict) or data.get("event") not in _NAMES:
        raise ValueError(f"event line {line[:80]!r} names no known event ({', '.join(_NAMES)})")
    fields = {key: value for key, value in data.items() if key != "event"}
    event = from_json_dict(_NAMES[data["event"]], fields, f"event line {line[:80]!r}", ValueError)
    if isinstance(event, ErrorEvent) and event.kind not in ERROR_KINDS:
        raise ValueError(f"event line {line[:80]!r}: error kind {event.kind!r} is not one of {', '.join(ERROR_KINDS)}")
    return event


def parse_lines(data: bytes) -> tuple[list[Event], int]:
    """The events of the complete lines in ``data``, and how many bytes they took.

    A last line without its newline is still being written: it is not parsed
    and not counted, so the caller reads it again from there next time.

    Parameters
    ----------
    data : bytes
        What was read of ``events.jsonl`` from the caller's offset onwards.

    Returns
    -------
    tuple of (list of Event, int)
        The events of the complete lines (blank lines skipped), and the number of
        bytes those lines took (the caller's next offset is its offset plus that).

    Raises
    ------
    ValueError
        A complete line is not a valid event (``parse_event``).
    """
    complete = data[:data.rfind(b"\n") + 1]
    return [parse_event(line) for line in complete.splitlines() if line.strip()], len(complete)
