"""The vocabulary of metastatic sites a target lesion can be in.

RECIST 1.1 counts target lesions per organ or site, and the paper segments
"visceral sites first" (Methods, "Tumor segmentation and image feature data
extraction"), so every site says whether it is visceral. SNOMED CT codes let the
DICOM export label segments with a standard anatomic region.
"""

from __future__ import annotations

from dataclasses import dataclass

# The segment tag that carries a lesion's site key in Slicer segmentations and .seg.nrrd files.
SITE_TAG = "ABCImmunoResponse.Site"


@dataclass(frozen=True)
class Site:
    """One organ or site in which target lesions are counted."""

    key: str
    label: str
    visceral: bool
    snomed_code: str
    snomed_meaning: str
    color: tuple[float, float, float]
    lymph_node: bool = False


SITES: dict[str, Site] = {
    site.key: site
    for site in (
        Site("liver", "Liver", True, "10200004", "Liver", (0.85, 0.45, 0.25)),
        Site("lung", "Lung", True, "39607008", "Lung", (0.35, 0.65, 0.95)),
        Site("pleura", "Pleura", True, "3120008", "Pleural membrane structure", (0.55, 0.8, 0.95)),
        Site("adrenal", "Adrenal gland", True, "23451007", "Adrenal gland", (0.9, 0.8, 0.3)),
        Site("peritoneum", "Peritoneum", True, "15425007", "Peritoneum", (0.75, 0.55, 0.85)),
        Site("brain", "Brain", True, "12738006", "Brain", (0.95, 0.6, 0.75)),
        Site("lymph_node", "Lymph node", False, "59441001", "Lymph node", (0.3, 0.8, 0.4), lymph_node=True),
        Site("bone", "Bone (soft-tissue component)", False, "272673000", "Bone", (0.95, 0.95, 0.8)),
        Site("breast", "Breast", False, "76752008", "Breast", (0.95, 0.4, 0.55)),
        Site("chest_wall", "Chest wall / soft tissue", False, "78904004", "Chest wall", (0.7, 0.5, 0.35)),
        Site("other", "Other", False, "123037004", "Body structure", (0.6, 0.6, 0.6)),
    )
}

_ALIASES = {
    "lymphnode": "lymph_node",
    "node": "lymph_node",
    "ln": "lymph_node",
    "lymph": "lymph_node",
    "soft_tissue": "chest_wall",
    "chestwall": "chest_wall",
    "adrenal_gland": "adrenal",
}


def normalise_site(text: str | None) -> str | None:
    """Map a user's spelling of a site ("Lymph node", "lymph-node", "LN") to its key, or None if unknown."""
    if text is None:
        return None
    key = text.strip().lower().replace("-", "_").replace(" ", "_").replace("/", "_")
    key = _ALIASES.get(key, key)
    return key if key in SITES else None


def site_from_segment_name(name: str) -> str | None:
    """Guess the site from a segment name such as ``liver_1`` or ``Lymph node 2``."""
    stem = name.strip().lower().replace("-", "_").replace(" ", "_").rstrip("0123456789").rstrip("_")
    return normalise_site(stem)


def is_visceral(site: str | None) -> bool | None:
    """True for a visceral site, None when the site is unknown."""
    return SITES[site].visceral if site in SITES else None
