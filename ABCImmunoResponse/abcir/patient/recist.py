"""RECIST 1.1 target-lesion rules, as the paper applied them.

RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009; section 3.1 and 4.2): at most
five target lesions in total and two per organ; a lesion is measurable when its
longest axial diameter is at least 10 mm, a lymph node when its short axis is at
least 15 mm. The paper (Methods, "Tumor segmentation ...") picks targets from
distinct sites first, visceral sites first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Protocol

from ..paper import MAX_TARGETS_PER_SITE, MAX_TARGETS_TOTAL, MIN_LONGEST_DIAMETER_MM, MIN_NODE_SHORT_AXIS_MM
from .sites import SITES, is_visceral

if TYPE_CHECKING:  # measurements imports numpy and SimpleITK; the rules do not need them
    from .measurements import LesionSize


class MeasuredLesion(Protocol):
    """What the rules need to know of a lesion."""

    lesion_id: str
    site: str | None
    longest_axial_diameter_mm: float
    short_axis_mm: float


class SizedTarget:
    """The rules' view of a lesion that has a ``site`` and a RECIST ``size``: declared once for every such type.

    The core's ``Lesion`` and the panel's lesion-table row both derive from it,
    so the sizes the rules read are the measured ones in one way only.
    """

    site: str | None
    size: LesionSize

    @property
    def visceral(self) -> bool | None:
        """Whether the site is visceral; None without a known site."""
        return is_visceral(self.site)

    @property
    def longest_axial_diameter_mm(self) -> float:
        """Longest diameter in an axial slice (mm)."""
        return self.size.longest_axial_diameter_mm

    @property
    def short_axis_mm(self) -> float:
        """Longest diameter perpendicular to it in the same slice (mm), as RECIST measures lymph nodes."""
        return self.size.short_axis_mm


@dataclass(frozen=True)
class Finding:
    """One rule a lesion breaks; errors block prediction, warnings are shown beside it."""

    lesion_id: str
    severity: str  # "error" or "warning"
    rule: str
    message: str


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def is_measurable(lesion: MeasuredLesion) -> bool:
    """RECIST 1.1 measurability from the lesion's size in mm.

    Parameters
    ----------
    lesion : MeasuredLesion
        The lesion with its site and sizes: longest axial diameter and short
        axis, mm.

    Returns
    -------
    bool
        For a lymph-node site, short axis >= 15 mm; otherwise (also for an
        unknown site) longest axial diameter >= 10 mm.
    """
    if lesion.site in SITES and SITES[lesion.site].lymph_node:
        return lesion.short_axis_mm >= MIN_NODE_SHORT_AXIS_MM
    return lesion.longest_axial_diameter_mm >= MIN_LONGEST_DIAMETER_MM


def validate_targets(lesions: Iterable[MeasuredLesion]) -> list[Finding]:
    """Every RECIST 1.1 violation of a set of target lesions, per lesion, in input order.

    Parameters
    ----------
    lesions : iterable of MeasuredLesion
        The chosen target lesions, in the order they are counted (sizes in mm).

    Returns
    -------
    list of Finding
        Errors for the 3rd and later target of one site and the 6th and later
        target overall; warnings for an unknown site and a lesion that is not
        measurable. Empty when the targets follow the rules.
    """
    findings: list[Finding] = []
    per_site: dict[str | None, int] = {}
    for index, lesion in enumerate(lesions, start=1):
        if lesion.site is None or lesion.site not in SITES:
            findings.append(Finding(lesion.lesion_id, "warning", "unknown_site",
                                    f"Lesion '{lesion.lesion_id}': site unknown; RECIST counts targets per organ. "
                                    "Assign a site in the lesion table."))
        else:
            count = per_site.get(lesion.site, 0) + 1
            per_site[lesion.site] = count
            if count > MAX_TARGETS_PER_SITE:
                findings.append(Finding(lesion.lesion_id, "error", "max_per_site",
                                        f"Lesion '{lesion.lesion_id}': {_ordinal(count)} target lesion in site "
                                        f"'{lesion.site}'; RECIST 1.1 allows at most {MAX_TARGETS_PER_SITE} per organ. "
                                        "Untick one in the lesion table."))
        if index > MAX_TARGETS_TOTAL:
            findings.append(Finding(lesion.lesion_id, "error", "max_total",
                                    f"Lesion '{lesion.lesion_id}': {_ordinal(index)} target lesion; RECIST 1.1 allows "
                                    f"at most {MAX_TARGETS_TOTAL} in total. Untick one in the lesion table."))
        if not is_measurable(lesion):
            if lesion.site in SITES and SITES[lesion.site].lymph_node:
                size = f"short axis {lesion.short_axis_mm:.1f} mm < {MIN_NODE_SHORT_AXIS_MM:g} mm"
            else:
                size = f"longest axial diameter {lesion.longest_axial_diameter_mm:.1f} mm < {MIN_LONGEST_DIAMETER_MM:g} mm"
            findings.append(Finding(lesion.lesion_id, "warning", "not_measurable",
                                    f"Lesion '{lesion.lesion_id}': {size}; not measurable by RECIST 1.1. "
                                    "Check the segmentation or choose another target."))
    return findings


def select_targets(candidates: Iterable[MeasuredLesion]) -> list[MeasuredLesion]:
    """Pick at most 5 measurable targets, at most 2 per site, in the paper's order.

    Rounds over sites: the first round takes the largest lesion of each site, so
    distinct sites come first; within a round visceral sites come before
    non-visceral ones, and larger lesions before smaller ones. Lesions with an
    unknown site cannot be counted per organ and are never selected.

    Parameters
    ----------
    candidates : iterable of MeasuredLesion
        Every lesion that may be a target, with its site and sizes (mm).

    Returns
    -------
    list of MeasuredLesion
        The selected targets in selection order; "larger" means a longer axial
        diameter (mm).
    """
    by_site: dict[str, list[MeasuredLesion]] = {}
    for lesion in candidates:
        if lesion.site in SITES and is_measurable(lesion):
            by_site.setdefault(lesion.site, []).append(lesion)
    for lesions in by_site.values():
        lesions.sort(key=lambda item: -item.longest_axial_diameter_mm)
    chosen: list[MeasuredLesion] = []
    for round_index in range(MAX_TARGETS_PER_SITE):
        round_lesions = [lesions[round_index] for lesions in by_site.values() if len(lesions) > round_index]
        round_lesions.sort(key=lambda item: (not SITES[item.site].visceral, -item.longest_axial_diameter_mm))
        chosen.extend(round_lesions)
    return chosen[:MAX_TARGETS_TOTAL]
