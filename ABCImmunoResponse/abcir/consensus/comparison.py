"""Two readers' lesions of one patient side by side: matched pairs, what differs, by how much.

The table is what the chair looks at before deciding: for every matched pair
Dice, surface distances (``metrics``), volume and diameter differences and each
reader's RECIST status; for every unmatched lesion, which reader has it; for
every pair, whether the readers gave the same site. Differences are B minus A;
the volume difference is in percent of the two readers' mean volume.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ..errors import InputError
from ..patient.lesions import Lesion
from ..patient.recist import is_measurable, validate_targets
from .matching import DEFAULT_MAX_CENTROID_DISTANCE_MM, LesionMatch, match_lesions
from .metrics import SURFACE_CONVENTION, dice, surface_distances
from .predictions import ReaderPredictions

AGREEMENT_FILE = "agreement.json"
SUMMARY_FILE = "agreement.txt"
FORMAT = "abcir.agreement/1"


@dataclass(frozen=True)
class InputFile:
    """A file a result was made from, with the SHA-256 of its bytes (for readers' files) or voxels (for the CT)."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ComparedInputs:
    """The CT and the two readers' segmentation files of one comparison."""

    ct: InputFile
    reader_a: InputFile
    reader_b: InputFile


@dataclass(frozen=True)
class RecistStatus:
    """A lesion's standing as a RECIST 1.1 target within its reader's set of lesions."""

    measurable: bool
    findings: tuple[str, ...]  # rules broken (recist.Finding.rule), empty when it is a valid target

    def text(self) -> str:
        """The status in words: 'measurable' or 'not measurable', and the rules broken."""
        broken = f"; breaks {', '.join(self.findings)}" if self.findings else ""
        return ("measurable" if self.measurable else "not measurable") + broken


@dataclass(frozen=True)
class LesionAgreement:
    """One row of the agreement table: a matched pair, or a lesion only one reader has."""

    a: str | None
    b: str | None
    site_a: str | None
    site_b: str | None
    match: str
    centroid_distance_mm: float | None
    dice: float | None
    hd95_mm: float | None
    hausdorff_mm: float | None
    volume_a_mm3: float | None
    volume_b_mm3: float | None
    volume_diff_percent: float | None
    diameter_a_mm: float | None
    diameter_b_mm: float | None
    diameter_diff_mm: float | None
    short_axis_diff_mm: float | None
    recist_a: RecistStatus | None
    recist_b: RecistStatus | None
    note: str = ""

    @property
    def matched(self) -> bool:
        """Whether both readers have this lesion."""
        return self.a is not None and self.b is not None

    @property
    def site_agrees(self) -> bool:
        """Whether the readers gave the same site; True for a lesion only one reader has."""
        return not self.matched or self.site_a == self.site_b

    def to_dict(self) -> dict:
        """The row as ``agreement.json`` holds it (mm, mm3, percent; None where not defined)."""
        return {
            "a": self.a, "b": self.b, "site_a": self.site_a, "site_b": self.site_b,
            "site_agrees": self.site_agrees, "match": self.match,
            "centroid_distance_mm": self.centroid_distance_mm, "dice": self.dice, "hd95_mm": self.hd95_mm,
            "hausdorff_mm": self.hausdorff_mm, "volume_a_mm3": self.volume_a_mm3, "volume_b_mm3": self.volume_b_mm3,
            "volume_diff_percent": self.volume_diff_percent, "diameter_a_mm": self.diameter_a_mm,
            "diameter_b_mm": self.diameter_b_mm, "diameter_diff_mm": self.diameter_diff_mm,
            "short_axis_diff_mm": self.short_axis_diff_mm,
            "recist_a": None if self.recist_a is None else {"measurable": self.recist_a.measurable,
                                                            "findings": list(self.recist_a.findings)},
            "recist_b": None if self.recist_b is None else {"measurable": self.recist_b.measurable,
                                                            "findings": list(self.recist_b.findings)},
            "note": self.note,
        }


@dataclass
class ReaderComparison:
    """Everything known about two readers' segmentations of one patient."""

    reader_a: str
    reader_b: str
    max_centroid_distance_mm: float
    matches: list[LesionMatch]
    lesions: list[LesionAgreement]
    predictions: ReaderPredictions = field(default_factory=ReaderPredictions)

    def unmatched(self, side: str) -> list[str]:
        """Lesion ids only reader ``side`` ("a" or "b") segmented."""
        other = "b" if side == "a" else "a"
        return [getattr(row, side) for row in self.lesions if getattr(row, other) is None]

    def site_disagreements(self) -> list[LesionAgreement]:
        """The matched pairs whose readers gave different sites."""
        return [row for row in self.lesions if not row.site_agrees]

    def to_dict(self) -> dict:
        """The ``agreement.json`` content."""
        return {
            "format": FORMAT,
            "readers": {"a": self.reader_a, "b": self.reader_b},
            "lesion_ids": "segment names (the lesion ids abcir extract writes)",
            "differences": "B minus A; volume_diff_percent relative to the mean of both volumes",
            "surface_distances": SURFACE_CONVENTION,
            "matching": {"order": "overlap (largest summed Dice), then centroid distance",
                         "max_centroid_distance_mm": self.max_centroid_distance_mm},
            "lesions": [row.to_dict() for row in self.lesions],
            "unmatched": {"a": self.unmatched("a"), "b": self.unmatched("b")},
            "site_disagreements": [{"a": row.a, "b": row.b, "site_a": row.site_a, "site_b": row.site_b}
                                   for row in self.site_disagreements()],
            "predictions": self.predictions.to_dict(),
        }

    def summary_text(self) -> str:
        """A few lines a reader can take in at a glance (the ``agreement.txt`` content)."""
        lines = [f"Readers: A = {self.reader_a}, B = {self.reader_b}"]
        matched = [row for row in self.lesions if row.matched]
        lines.append(f"{len(matched)} matched lesion pairs, {len(self.unmatched('a'))} only in A, "
                     f"{len(self.unmatched('b'))} only in B.")
        for row in self.lesions:
            if row.matched:
                site = row.site_a if row.site_agrees else f"SITE DIFFERS: A {row.site_a}, B {row.site_b}"
                lines.append(
                    f"  {row.a} <-> {row.b} ({site}; matched by {row.match}): Dice {row.dice:.3f}, "
                    f"HD95 {row.hd95_mm:.1f} mm, Hausdorff {row.hausdorff_mm:.1f} mm, "
                    f"volume {row.volume_diff_percent:+.1f}%, longest diameter {row.diameter_diff_mm:+.1f} mm; "
                    f"RECIST A {row.recist_a.text()}, B {row.recist_b.text()}")
            else:
                side, lesion_id, site = ("A", row.a, row.site_a) if row.a else ("B", row.b, row.site_b)
                note = f"; {row.note}" if row.note else ""
                lines.append(f"  only in {side}: {lesion_id} ({site}){note}")
        lines.extend(self.predictions.summary_lines())
        return "\n".join(lines) + "\n"


def _recist(lesions: Sequence[Lesion]) -> dict[str, RecistStatus]:
    findings: dict[str, list[str]] = {}
    for finding in validate_targets(lesions):
        findings.setdefault(finding.lesion_id, []).append(finding.rule)
    return {lesion.lesion_id: RecistStatus(is_measurable(lesion), tuple(findings.get(lesion.lesion_id, ())))
            for lesion in lesions}


def _row(match: LesionMatch, recist_a: dict[str, RecistStatus], recist_b: dict[str, RecistStatus]) -> LesionAgreement:
    a, b = match.a, match.b
    common = dict(a=a.lesion_id if a else None, b=b.lesion_id if b else None,
                  site_a=a.site if a else None, site_b=b.site if b else None, match=match.method,
                  centroid_distance_mm=match.centroid_distance_mm,
                  volume_a_mm3=a.size.volume_mm3 if a else None, volume_b_mm3=b.size.volume_mm3 if b else None,
                  diameter_a_mm=a.longest_axial_diameter_mm if a else None,
                  diameter_b_mm=b.longest_axial_diameter_mm if b else None,
                  recist_a=recist_a[a.lesion_id] if a else None, recist_b=recist_b[b.lesion_id] if b else None,
                  note=match.note)
    if a is None or b is None:
        return LesionAgreement(dice=None, hd95_mm=None, hausdorff_mm=None, volume_diff_percent=None,
                               diameter_diff_mm=None, short_axis_diff_mm=None, **common)
    distances = surface_distances(a.mask, b.mask)
    mean_volume = (a.size.volume_mm3 + b.size.volume_mm3) / 2
    return LesionAgreement(
        dice=dice(a.mask, b.mask), hd95_mm=distances.hd95_mm, hausdorff_mm=distances.hausdorff_mm,
        volume_diff_percent=100.0 * (b.size.volume_mm3 - a.size.volume_mm3) / mean_volume,
        diameter_diff_mm=b.longest_axial_diameter_mm - a.longest_axial_diameter_mm,
        short_axis_diff_mm=b.short_axis_mm - a.short_axis_mm, **common)


def compare_readers(lesions_a: Sequence[Lesion], lesions_b: Sequence[Lesion], reader_a: str = "A",
                    reader_b: str = "B",
                    max_centroid_distance_mm: float = DEFAULT_MAX_CENTROID_DISTANCE_MM) -> ReaderComparison:
    """Match two readers' lesions (masks on one CT grid) and measure how each pair differs.

    Parameters
    ----------
    lesions_a, lesions_b : sequence of Lesion
        Reader A's and reader B's lesions, masks on the same CT grid; one of them may be empty.
    reader_a, reader_b : str
        The readers' names.
    max_centroid_distance_mm : float
        Lesions that do not overlap are matched when their centroids are at most this far apart (mm).

    Returns
    -------
    ReaderComparison
        The matches and one agreement row per match (differences B minus A), without predictions.

    Raises
    ------
    InputError
        When neither reader has a lesion, or as ``match_lesions``.
    """
    if not lesions_a and not lesions_b:
        raise InputError("Reader comparison: neither reader has any lesion; there is nothing to compare.")
    matches = match_lesions(lesions_a, lesions_b, max_centroid_distance_mm)
    recist_a, recist_b = _recist(lesions_a), _recist(lesions_b)
    rows = [_row(match, recist_a, recist_b) for match in matches]
    return ReaderComparison(reader_a, reader_b, max_centroid_distance_mm, matches, rows)


def json_ready(value):
    """``value`` with NaN and infinity replaced by null, at any depth: JSON has no such numbers.

    Parameters
    ----------
    value : object
        A float, dict, list, tuple or anything else, nested freely.

    Returns
    -------
    object
        A copy with non-finite floats as None and tuples as lists; other values unchanged.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def write_agreement(folder: str | os.PathLike, comparison: ReaderComparison, inputs: ComparedInputs) -> Path:
    """Write ``agreement.json`` (with ``inputs``: the files compared and their SHA-256) and ``agreement.txt``.

    Neither is ever overwritten: an existing agreement in ``folder`` is an error.

    Parameters
    ----------
    folder : str or os.PathLike
        The output folder; created if needed.
    comparison : ReaderComparison
        The comparison, with its predictions.
    inputs : ComparedInputs
        The CT and the readers' files, with their SHA-256.

    Returns
    -------
    Path
        The ``agreement.json`` written.

    Raises
    ------
    InputError
        When ``folder`` already holds ``agreement.json`` or ``agreement.txt``.
    """
    folder = Path(folder)
    targets = (folder / AGREEMENT_FILE, folder / SUMMARY_FILE)
    for target in targets:
        if target.exists():
            raise InputError(f"Output '{target}' already exists; choose a new --out folder (results are never "
                             "overwritten).")
    folder.mkdir(parents=True, exist_ok=True)
    content = {**comparison.to_dict(), "inputs": asdict(inputs)}
    targets[0].write_text(json.dumps(json_ready(content), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    targets[1].write_text(comparison.summary_text(), encoding="utf-8")
    return targets[0]
