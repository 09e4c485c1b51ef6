"""The consensus segmentation: per lesion, the chair's choice turned into a new segment.

Per matched pair the chair takes reader A's outline, reader B's, their union,
their intersection, SimpleITK's STAPLE estimate, or an edited outline; a lesion
only one reader drew is kept (``a``/``b``/``edited``) or left out (``exclude``).
The readers' masks are only read, never changed. Every consensus segment carries
tags saying which readers' lesions it came from, by which method, who decided
and when, so the file explains itself when opened in Slicer.

STAPLE (Warfield et al., IEEE TMI 2004; SimpleITK's ``STAPLEImageFilter``)
estimates each reader's sensitivity and specificity, and the specificity
depends on how much background it sees. It therefore runs on the bounding box
of both outlines grown by ``STAPLE_MARGIN_MM`` on every side (clipped to the
CT), so that the result depends on the lesion, not on how much of the body the
CT covers (and memory stays small on large CTs). A voxel is in the consensus
when its STAPLE probability exceeds 0.5 by more than ``STAPLE_TIE_TOLERANCE``.
With two readers STAPLE gives every voxel where they disagree the same
probability; when one outline contains the other that probability is 0.5 up to
rounding, a tie, which is left out (the result is then the smaller outline).
The estimates are kept with the segment and in the session log.

A consensus segment looks like the reader's segment it came from: its colour and
its tags other than abcir's own (Slicer's terminology entry, a user's notes) are
those of the reader whose outline was taken (``a``: A, ``b``: B; union,
intersection, STAPLE and an edited outline: A, or the only reader who drew the
lesion), the same reader whose lesion id names the segment. When the chair gives
a site that reader did not, the segment takes the look of the other reader if that
reader gave this site, else the site's colour without a terminology entry (the
reader's entry names another anatomy; the Slicer panel sets the site's entry).
Without the readers' looks (label maps, mask files) a segment gets its site's
colour, or grey.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..imaging.segfile import SITE_TAG, Segment
from ..options import CONSENSUS_METHODS, CONSENSUS_PAIR_METHODS
from ..patient.lesions import Lesion, same_grid
from ..patient.measurements import LesionSize, measure_lesion, union_box
from ..patient.sites import SITES
from .matching import LesionMatch

STAPLE_THRESHOLD = 0.5
STAPLE_TIE_TOLERANCE = 1e-6
STAPLE_MARGIN_MM = 10.0
TAG_PREFIX = "ABCImmunoResponse.Consensus."
DEFAULT_COLOR = (0.5, 0.5, 0.5)
ABCIR_TAG_PREFIX = "ABCImmunoResponse."  # abcir's own segment tags (site, include, consensus): set anew, never copied
TERMINOLOGY_TAG = "TerminologyEntry"  # Slicer's terminology tag (vtkSegment::GetTerminologyEntryTagName)

PairKey = tuple[str | None, str | None]


@dataclass(frozen=True)
class Decision:
    """The chair's choice for one lesion pair (``a``/``b`` are the readers' lesion ids, None if absent)."""

    a: str | None
    b: str | None
    method: str
    decided_by: str
    decided_at: str  # ISO 8601, UTC
    reason: str = ""
    site: str | None = None  # the chair's site; None = the chosen reader's, or the readers' common site
    edited_source: str = ""  # for "edited": where the edited outline came from (file, segment)

    @property
    def key(self) -> PairKey:
        """The pair this decision is for: (reader A's lesion id, reader B's), None where a reader has none."""
        return (self.a, self.b)


@dataclass(frozen=True)
class StapleEstimate:
    """STAPLE's estimated sensitivity and specificity of each reader (A, B) for one lesion."""

    sensitivity: tuple[float, float]
    specificity: tuple[float, float]


@dataclass(frozen=True)
class ConsensusSegment:
    """One segment of the consensus, with the decision it came from and its size."""

    segment: Segment
    decision: Decision
    size: LesionSize
    staple: StapleEstimate | None = None

    @property
    def lesion(self) -> Lesion:
        """The segment as a target lesion (for prediction): its name, site and mask on the CT grid."""
        return Lesion(self.segment.name, self.segment.tags.get(SITE_TAG), self.segment.mask, self.size)


@dataclass(frozen=True)
class SegmentLook:
    """What a reader's segment carries besides its mask: colour (RGB, 0-1) and tags that are not abcir's."""

    color: tuple[float, float, float]
    tags: Mapping[str, str]


def segment_looks(segments: Sequence[Segment]) -> dict[str, SegmentLook]:
    """The looks of a reader's segments by segment name (the lesion id ``load_lesions`` gives each segment).

    Parameters
    ----------
    segments : sequence of Segment
        A reader's segments, as ``read_seg_nrrd`` reads them.

    Returns
    -------
    dict of str to SegmentLook
        Per segment name, its colour (RGB, 0-1) and its tags without abcir's own (``ABCIR_TAG_PREFIX``).
    """
    return {segment.name: SegmentLook(tuple(segment.color),  # type: ignore[arg-type]
                                      {key: value for key, value in segment.tags.items()
                                       if not key.startswith(ABCIR_TAG_PREFIX)})
            for segment in segments}


def describe(key: PairKey) -> str:
    """A pair as people read it: 'A liver_1 / B liver_2', 'A liver_1 (only A)'.

    Parameters
    ----------
    key : tuple of (str or None, str or None)
        Reader A's and reader B's lesion ids; None where that reader has no lesion.

    Returns
    -------
    str
        The pair in words.
    """
    a, b = key
    if a is not None and b is not None:
        return f"A {a} / B {b}"
    return f"A {a} (only A)" if a is not None else f"B {b} (only B)"


def staple_region(mask_a: sitk.Image, mask_b: sitk.Image) -> tuple[list[int], list[int]]:
    """(index, size) in (x, y, z) of the box STAPLE runs on: both outlines plus ``STAPLE_MARGIN_MM``, within the CT.

    Parameters
    ----------
    mask_a, mask_b : sitk.Image
        The two readers' masks of one lesion pair, on the same CT grid (non-zero = lesion); together not empty.

    Returns
    -------
    tuple of (list of int, list of int)
        The box's first voxel index and its size in voxels, both in (x, y, z) order: the bounding box of the
        union grown by ``STAPLE_MARGIN_MM`` (mm, rounded up to whole voxels per axis) and clipped to the grid.
    """
    box = union_box([sitk.GetArrayViewFromImage(mask_a), sitk.GetArrayViewFromImage(mask_b)])  # (z, y, x)
    index, size = [], []
    for axis in range(3):
        along = box[2 - axis]
        margin = int(np.ceil(STAPLE_MARGIN_MM / mask_a.GetSpacing()[axis]))
        low = max(along.start - margin, 0)
        high = min(along.stop + margin, mask_a.GetSize()[axis])
        index.append(low)
        size.append(high - low)
    return index, size


def _staple(mask_a: sitk.Image, mask_b: sitk.Image) -> tuple[sitk.Image, StapleEstimate]:
    index, size = staple_region(mask_a, mask_b)
    staple = sitk.STAPLEImageFilter()
    staple.SetForegroundValue(1.0)
    probability = staple.Execute([sitk.Cast(sitk.RegionOfInterest(mask, size, index), sitk.sitkUInt8)
                                  for mask in (mask_a, mask_b)])
    inside = sitk.GetArrayViewFromImage(probability) > STAPLE_THRESHOLD + STAPLE_TIE_TOLERANCE
    array = np.zeros(sitk.GetArrayViewFromImage(mask_a).shape, dtype=np.uint8)
    array[tuple(slice(i, i + s) for i, s in zip(reversed(index), reversed(size)))] = inside
    mask = sitk.GetImageFromArray(array)
    mask.CopyInformation(mask_a)
    sensitivity, specificity = staple.GetSensitivity(), staple.GetSpecificity()
    return mask, StapleEstimate((float(sensitivity[0]), float(sensitivity[1])),
                                (float(specificity[0]), float(specificity[1])))


def consensus_mask(match: LesionMatch, decision: Decision,
                   edited: sitk.Image | None = None) -> tuple[sitk.Image | None, StapleEstimate | None]:
    """The mask a decision makes of a pair (None for ``exclude``), and STAPLE's estimates when used.

    Parameters
    ----------
    match : LesionMatch
        One lesion pair, or a lesion only one reader drew.
    decision : Decision
        The chair's decision for it; its ``method`` is one of ``CONSENSUS_METHODS``.
    edited : sitk.Image or None
        The chair's edited outline on the CT grid, needed for method ``edited``; None otherwise.

    Returns
    -------
    tuple of (sitk.Image or None, StapleEstimate or None)
        The consensus mask on the CT grid (None for ``exclude``), and STAPLE's estimates for method ``staple``
        (else None).

    Raises
    ------
    InputError
        When the method is unknown, needs both readers' outlines but one reader has none, takes the outline of
        a reader without this lesion, or is ``edited`` without an edited outline or with one off the CT grid.
    """
    where = describe(match.key)
    method = decision.method
    if method not in CONSENSUS_METHODS:
        raise InputError(f"Lesion {where}: method '{method}' is unknown; use one of {', '.join(CONSENSUS_METHODS)}.")
    if method in CONSENSUS_PAIR_METHODS and (match.a is None or match.b is None):
        raise InputError(f"Lesion {where}: '{method}' needs both readers' outlines, but only one reader has this "
                         "lesion; choose a, b, edited or exclude.")
    if method == "exclude":
        return None, None
    if method == "a" or method == "b":
        lesion = match.a if method == "a" else match.b
        if lesion is None:
            raise InputError(f"Lesion {where}: reader {method.upper()} has no such lesion; choose the other "
                             "reader, edited or exclude.")
        return sitk.Image(lesion.mask), None
    if method == "edited":
        if edited is None:
            raise InputError(f"Lesion {where}: 'edited' needs the edited outline; give it (--edited ID=FILE).")
        if not same_grid(edited, (match.a or match.b).mask):
            raise InputError(f"Lesion {where}: the edited outline is not on the CT's grid; align it first "
                             "(lesions.align_to_ct).")
        return sitk.Cast(sitk.NotEqual(edited, 0), sitk.sitkUInt8), None
    if method == "union":
        return sitk.Or(match.a.mask, match.b.mask), None
    if method == "intersection":
        return sitk.And(match.a.mask, match.b.mask), None
    return _staple(match.a.mask, match.b.mask)


def _site(match: LesionMatch, decision: Decision) -> str | None:
    if decision.site is not None:
        if decision.site not in SITES:
            raise InputError(f"Lesion {describe(match.key)}: site '{decision.site}' is unknown; use one of "
                             f"{', '.join(SITES)}.")
        return decision.site
    if decision.method in ("a", "b"):
        return (match.a if decision.method == "a" else match.b).site
    sites = {lesion.site for lesion in (match.a, match.b) if lesion is not None and lesion.site is not None}
    if len(sites) > 1:
        raise InputError(f"Lesion {describe(match.key)}: the readers gave different sites "
                         f"({' vs '.join(sorted(sites))}); the chair must state the site (--site ID=SITE, or the site "
                         "column of the agreement table).")
    return next(iter(sites), None)


def _look(match: LesionMatch, source: Lesion, site: str | None, chair_site: str | None,
          looks: Mapping[str, Mapping[str, SegmentLook]]) -> SegmentLook:
    """The colour and non-abcir tags of a consensus segment (the module docstring gives the rule)."""
    def look_of(lesion: Lesion | None) -> SegmentLook | None:
        return None if lesion is None else looks["a" if lesion is match.a else "b"].get(lesion.lesion_id)

    other = match.b if source is match.a else match.a
    if chair_site is None or source.site == chair_site:
        taken = look_of(source)
    else:
        taken = look_of(other) if other is not None and other.site == chair_site else None
    if taken is not None:
        return taken
    known = look_of(source)
    tags = {key: value for key, value in known.tags.items() if key != TERMINOLOGY_TAG} if known else {}
    return SegmentLook(SITES[site].color if site in SITES else DEFAULT_COLOR, tags)


def _tag_value(text: str) -> str:
    """Segment tags are stored as 'key:value|'; a '|' inside a value would split it."""
    return text.replace("|", "/")


def build_consensus(matches: Sequence[LesionMatch], decisions: Sequence[Decision], reader_a: str, reader_b: str,
                    edited: Mapping[PairKey, sitk.Image] | None = None,
                    session_file: str = "", looks_a: Mapping[str, SegmentLook] | None = None,
                    looks_b: Mapping[str, SegmentLook] | None = None) -> list[ConsensusSegment]:
    """The consensus segments of one patient, in the order of ``matches``.

    Every match needs exactly one decision; ``edited`` holds the edited outline
    (on the CT grid) of each pair decided as "edited"; ``session_file`` is the
    log's file name, written into every segment's tags; ``looks_a``/``looks_b``
    are the readers' segment looks by lesion id (``segment_looks``), carried over
    as the module docstring says.

    Parameters
    ----------
    matches : sequence of LesionMatch
        The patient's lesion pairs and unmatched lesions, as ``match_lesions`` gives them.
    decisions : sequence of Decision
        One decision per match, found by its ``key``.
    reader_a, reader_b : str
        The readers' names, written into each segment's tags.
    edited : mapping of pair key to sitk.Image, or None
        The edited outline (on the CT grid) of each pair decided as ``edited``; None: none.
    session_file : str
        The session log's file name for the segments' tags; empty: no such tag.
    looks_a, looks_b : mapping of str to SegmentLook, or None
        The readers' segment looks by lesion id; None: none (label maps, mask files).

    Returns
    -------
    list of ConsensusSegment
        The segments that are not excluded, each with its decision, size and STAPLE estimates (if used).

    Raises
    ------
    InputError
        When a decision names a lesion not in ``matches``, a match has no decision, a method cannot be applied
        (see ``consensus_mask``), a method leaves no voxels, the readers' sites differ and the chair gave none
        (or gave an unknown one), or every lesion is excluded.
    """
    edited = edited or {}
    looks = {"a": looks_a or {}, "b": looks_b or {}}
    by_key = {decision.key: decision for decision in decisions}
    known = {match.key for match in matches}
    stray = [describe(key) for key in by_key if key not in known]
    if stray:
        raise InputError(f"Consensus: decisions for lesions that are not in this comparison: {', '.join(stray)}. "
                         "Name lesions by their ids in the agreement table.")
    missing = [describe(match.key) for match in matches if match.key not in by_key]
    if missing:
        raise InputError(f"Consensus: no decision yet for {', '.join(missing)}; decide every lesion "
                         "(--method for all pairs, --unmatched for lesions only one reader has, --choose ID=METHOD; in "
                         "Slicer, the method column of the agreement table).")
    built: list[ConsensusSegment] = []
    names: set[str] = set()
    for match in matches:
        decision = by_key[match.key]
        mask, staple = consensus_mask(match, decision, edited.get(match.key))
        if mask is None:
            continue
        size = measure_lesion(mask)
        if size.voxel_count == 0:
            raise InputError(f"Lesion {describe(match.key)}: '{decision.method}' leaves no voxels (the readers' "
                             "outlines do not overlap); choose a, b, union or edited.")
        site = _site(match, decision)
        source = match.b if decision.method == "b" or match.a is None else match.a
        name = source.lesion_id
        if name in names:  # an unmatched lesion of B named like one of A
            name = f"{name}_{'b' if source is match.b else 'a'}"
        names.add(name)
        look = _look(match, source, site, decision.site, looks)
        tags = {**look.tags,
                TAG_PREFIX + "Method": decision.method,
                TAG_PREFIX + "ReaderA": _tag_value(f"{reader_a}: {match.a.lesion_id}" if match.a else "-"),
                TAG_PREFIX + "ReaderB": _tag_value(f"{reader_b}: {match.b.lesion_id}" if match.b else "-"),
                TAG_PREFIX + "DecidedBy": _tag_value(decision.decided_by),
                TAG_PREFIX + "DecidedAt": decision.decided_at}
        if site is not None:
            tags[SITE_TAG] = site
        if session_file:
            tags[TAG_PREFIX + "Session"] = _tag_value(session_file)
        segment = Segment(segment_id=name, name=name, mask=mask, color=look.color, tags=tags)
        built.append(ConsensusSegment(segment, decision, size, staple))
    if not built:
        raise InputError("Consensus: every lesion is excluded; a consensus segmentation needs at least one lesion.")
    return built
