"""The consensus session log: who decided what, when and why, saved next to the consensus.

A session is one chair's pass over one patient's two readings. Its log
(``<name>.session.json`` beside ``<name>.seg.nrrd``) records the CT and both
readers' files with their SHA-256, every decision, and the consensus file's own
SHA-256. Reopening a session checks that the readers' files are byte for byte
those that were compared, carries the decisions over, and writes the revised
consensus as a new file, linking back to the log it came from; nothing earlier
is overwritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

import SimpleITK as sitk

from .. import __version__
from ..errors import InputError
from ..imaging.ct import file_sha256
from ..imaging.segfile import SITE_TAG, read_seg_nrrd, write_seg_nrrd
from ..records import from_json_dict, to_json_dict, write_new_json
from .building import TAG_PREFIX, ConsensusSegment, Decision, PairKey, describe
from .comparison import ComparedInputs, InputFile, ReaderComparison

SESSION_FORMAT = "abcir.consensus_session/1"
DEFAULT_NAME = "consensus"


def now_utc() -> str:
    """The current time as ISO 8601 in UTC, to the second: the time stamp of every decision."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SegmentRecord:
    """What one consensus segment is: its id, the pair and method it came from, its size."""

    segment_id: str
    a: str | None
    b: str | None
    method: str
    site: str | None
    voxel_count: int
    volume_mm3: float
    staple_sensitivity: tuple[float, float] | None = None
    staple_specificity: tuple[float, float] | None = None


@dataclass(frozen=True)
class SessionOutput:
    """The consensus file a session wrote (name relative to the log's folder) and its SHA-256."""

    file: str
    sha256: str
    segments: tuple[SegmentRecord, ...]


@dataclass(frozen=True)
class ConsensusSession:
    """A chair's decisions on two readers' segmentations of one patient."""

    inputs: ComparedInputs
    reader_a: str
    reader_b: str
    max_centroid_distance_mm: float
    chair: str
    created_at: str
    decisions: tuple[Decision, ...] = ()
    superseded: tuple[Decision, ...] = ()  # earlier decisions replaced in this session or a reopened one
    output: SessionOutput | None = None
    previous_session: InputFile | None = None
    abcir_version: str = __version__
    format: str = SESSION_FORMAT

    def decide(self, decision: Decision) -> ConsensusSession:
        """This session with ``decision`` in place of any earlier one for the same pair (kept as superseded)."""
        earlier = [d for d in self.decisions if d.key == decision.key]
        kept = tuple(d for d in self.decisions if d.key != decision.key)
        return replace(self, decisions=kept + (decision,), superseded=self.superseded + tuple(earlier))

    def decision_for(self, key: PairKey) -> Decision | None:
        """The current decision for the pair ``key`` (A's lesion id, B's), or None if it is undecided."""
        return next((d for d in self.decisions if d.key == key), None)


def new_session(comparison: ReaderComparison, inputs: ComparedInputs, chair: str) -> ConsensusSession:
    """An empty session for a comparison, chaired by ``chair``.

    Parameters
    ----------
    comparison : ReaderComparison
        The two readers' comparison; its reader names and centroid distance (mm) are recorded.
    inputs : ComparedInputs
        The CT and the readers' files, with their SHA-256.
    chair : str
        Who decides; surrounding white space is dropped.

    Returns
    -------
    ConsensusSession
        A session without decisions, created now (UTC).

    Raises
    ------
    InputError
        When ``chair`` is empty or only white space.
    """
    if not chair.strip():
        raise InputError("Consensus: the chair's name is empty; say who decides (--chair NAME).")
    return ConsensusSession(inputs, comparison.reader_a, comparison.reader_b, comparison.max_centroid_distance_mm,
                            chair.strip(), now_utc())


@dataclass(frozen=True)
class ChairChoice:
    """What the chair says about one lesion pair; None leaves that part of an earlier decision as it was.

    The command line (``--choose``, ``--site``, ``--reason``, ``--edited``) and the
    Slicer panel's agreement table both speak through this, so the session is
    updated by one rule and ``build_consensus`` checks every decision once.
    """

    method: str | None = None
    reason: str | None = None
    site: str | None = None
    edited_source: str | None = None


def apply_choices(session: ConsensusSession, comparison: ReaderComparison,
                  choices: Mapping[PairKey, ChairChoice], decided_at: str | None = None) -> ConsensusSession:
    """The session with the chair's choices on top of its earlier decisions.

    A pair without a choice keeps its earlier decision (or stays undecided, which
    ``build_consensus`` reports). A reason, site or edited outline without a
    method amends the earlier decision; without one it is refused. A new method
    drops the earlier reason and edited outline, which belonged to the old method.

    Parameters
    ----------
    session : ConsensusSession
        The session so far.
    comparison : ReaderComparison
        The comparison the session is about; choices may only name its pairs.
    choices : mapping of pair key to ChairChoice
        The chair's choices by pair (A's lesion id, B's); an empty ``ChairChoice`` changes nothing.
    decided_at : str or None
        The time stamp (ISO 8601, UTC) of the new decisions; None: now.

    Returns
    -------
    ConsensusSession
        A new session; the decisions replaced are kept as superseded.

    Raises
    ------
    InputError
        When a choice names a pair not in ``comparison``, or gives a reason, site or edited outline for a pair
        that has no method yet.
    """
    known = {match.key for match in comparison.matches}
    stray = [describe(key) for key in choices if key not in known]
    if stray:
        raise InputError(f"Consensus: choices for lesions that are not in this comparison: {', '.join(stray)}; "
                         "compare the readers again.")
    decided_at = decided_at or now_utc()
    for match in comparison.matches:
        choice = choices.get(match.key)
        if choice is None or choice == ChairChoice():
            continue
        earlier = session.decision_for(match.key)
        method = choice.method or (earlier.method if earlier else None)
        if method is None:
            raise InputError(f"Lesion {describe(match.key)}: a site or reason without a method; choose the method "
                             "(--choose ID=METHOD, or the method column of the agreement table).")
        same_method = earlier is not None and method == earlier.method
        session = session.decide(Decision(
            a=match.key[0], b=match.key[1], method=method, decided_by=session.chair, decided_at=decided_at,
            reason=choice.reason if choice.reason is not None else (earlier.reason if same_method else ""),
            site=choice.site if choice.site is not None else (earlier.site if earlier else None),
            edited_source=(choice.edited_source if choice.edited_source is not None
                           else (earlier.edited_source if same_method and method == "edited" else ""))))
    return session


def session_paths(folder: str | os.PathLike, name: str = DEFAULT_NAME) -> tuple[Path, Path]:
    """The consensus segmentation and its session log in ``folder``.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder.
    name : str
        The files' common name.

    Returns
    -------
    tuple of Path
        ``folder/<name>.seg.nrrd`` and ``folder/<name>.session.json``.
    """
    folder = Path(folder)
    return folder / f"{name}.seg.nrrd", folder / f"{name}.session.json"


def _records(segments: list[ConsensusSegment]) -> tuple[SegmentRecord, ...]:
    return tuple(SegmentRecord(item.segment.segment_id, item.decision.a, item.decision.b, item.decision.method,
                               item.segment.tags.get(SITE_TAG), item.size.voxel_count, item.size.volume_mm3,
                               item.staple.sensitivity if item.staple else None,
                               item.staple.specificity if item.staple else None)
                 for item in segments)


def write_consensus(folder: str | os.PathLike, session: ConsensusSession, segments: list[ConsensusSegment],
                    name: str = DEFAULT_NAME) -> ConsensusSession:
    """Write built consensus segments and the session log into ``folder``; never overwrites either.

    Build the segments with ``build_consensus(..., session_file=session_paths(folder, name)[1].name)``
    so their tags name the log. Returns the session as saved, with its output recorded.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder (must exist).
    session : ConsensusSession
        The session whose decisions built ``segments``.
    segments : list of ConsensusSegment
        The consensus segments, from ``build_consensus``.
    name : str
        The files' common name (``session_paths``).

    Returns
    -------
    ConsensusSession
        ``session`` with its output (file name, SHA-256, one record per segment) as written to the log.

    Raises
    ------
    InputError
        When the segmentation or the log already exists in ``folder``.
    """
    seg_path, log_path = session_paths(folder, name)
    for target in (seg_path, log_path):
        if target.exists():
            raise InputError(f"Output '{target}' already exists; choose a new --out folder (a consensus is never "
                             "overwritten).")
    write_seg_nrrd(seg_path, [item.segment for item in segments])
    saved = replace(session, output=SessionOutput(seg_path.name, file_sha256(seg_path), _records(segments)))
    save_session(log_path, saved)
    return saved


def save_session(path: str | os.PathLike, session: ConsensusSession) -> Path:
    """Write a session log (JSON); an existing log is never replaced.

    Parameters
    ----------
    path : str or os.PathLike
        The log file to write.
    session : ConsensusSession
        The session to record.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    InputError
        When ``path`` exists.
    """
    return write_new_json(path, to_json_dict(session), what="Session log")


def load_session(path: str | os.PathLike) -> ConsensusSession:
    """Read a session log and check that the readers' files are still the ones it compared.

    Parameters
    ----------
    path : str or os.PathLike
        A session log written by ``write_consensus``.

    Returns
    -------
    ConsensusSession
        The session as logged.

    Raises
    ------
    InputError
        When the log cannot be read or parsed, is not a session log of this format, has fields of the wrong
        kind, or a reader's file is gone or has changed (SHA-256).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"Session log '{path}': cannot be read ({error}).") from error
    if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
        raise InputError(f"Session log '{path}': not an abcir consensus session ({SESSION_FORMAT}).")
    session = from_json_dict(ConsensusSession, data, f"Session log '{path}'", InputError)
    for reader, record in (("A", session.inputs.reader_a), ("B", session.inputs.reader_b)):
        if not Path(record.path).is_file():
            raise InputError(f"Session log '{path}': reader {reader}'s file '{record.path}' is gone; restore it to "
                             "reopen the session.")
        if file_sha256(record.path) != record.sha256:
            raise InputError(f"Session log '{path}': reader {reader}'s file '{record.path}' has changed since the "
                             "session (SHA-256 differs); the decisions refer to the old outlines. Start a new "
                             "session with 'abcir consensus'.")
    return session


def edited_outlines(log_path: str | os.PathLike, session: ConsensusSession) -> dict[PairKey, sitk.Image]:
    """The edited outlines of a saved session, read back from the consensus file it wrote.

    The consensus file is checked against the SHA-256 in the log first.

    Parameters
    ----------
    log_path : str or os.PathLike
        The session log; the consensus file is looked for in its folder.
    session : ConsensusSession
        The session read from ``log_path``.

    Returns
    -------
    dict of pair key to sitk.Image
        The edited outline (mask on the CT grid) of each pair decided as ``edited``; empty when there is none.

    Raises
    ------
    InputError
        When edited outlines are recorded but no consensus file was written, that file is missing or changed,
        or a segment recorded as an edited outline is not one.
    """
    edited_keys = {d.key for d in session.decisions if d.method == "edited"}
    if not edited_keys:
        return {}
    if session.output is None:
        raise InputError(f"Session log '{log_path}': edited outlines are recorded but no consensus file was written.")
    seg_path = Path(log_path).parent / session.output.file
    if not seg_path.is_file() or file_sha256(seg_path) != session.output.sha256:
        raise InputError(f"Session log '{log_path}': its consensus file '{seg_path}' is missing or changed; the "
                         "edited outlines cannot be recovered from it.")
    by_id = {segment.segment_id: segment for segment in read_seg_nrrd(seg_path)}
    outlines = {}
    for record in session.output.segments:
        key = (record.a, record.b)
        if key in edited_keys and record.segment_id in by_id:
            segment = by_id[record.segment_id]
            if segment.tags.get(TAG_PREFIX + "Method") != "edited":
                raise InputError(f"Session log '{log_path}': segment '{record.segment_id}' of '{seg_path}' is not "
                                 f"the edited outline of {describe(key)}.")
            outlines[key] = segment.mask
    return outlines


def reopen(log_path: str | os.PathLike, chair: str | None = None) -> tuple[ConsensusSession, dict[PairKey, sitk.Image]]:
    """A new session continuing a saved one: same inputs and decisions, linked to the old log.

    Returns it with the edited outlines the old session wrote, ready for more
    ``decide`` calls and a ``write_consensus`` into a new folder.

    Parameters
    ----------
    log_path : str or os.PathLike
        The saved session log.
    chair : str or None
        Who decides now; None: the old session's chair.

    Returns
    -------
    tuple of (ConsensusSession, dict of pair key to sitk.Image)
        The new session (created now, no output yet, linked to the old log by path and SHA-256) and the edited
        outlines.

    Raises
    ------
    InputError
        As ``load_session`` and ``edited_outlines``.
    """
    old = load_session(log_path)
    outlines = edited_outlines(log_path, old)
    session = replace(old, chair=(chair or old.chair).strip(), created_at=now_utc(), output=None,
                      previous_session=InputFile(str(Path(log_path).resolve()), file_sha256(log_path)),
                      abcir_version=__version__)
    return session, outlines
