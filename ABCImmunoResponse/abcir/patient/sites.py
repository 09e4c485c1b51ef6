"""The vocabulary of metastatic sites a target lesion can be in.

RECIST 1.1 counts target lesions per organ or site, and the paper segments
"visceral sites first" (Methods, "Tumor segmentation and image feature data
extraction"), so every site says whether it is visceral. SNOMED CT codes let the
DICOM export label segments with a standard anatomic region, and let a segment's
Slicer terminology entry (anatomic region or type, coded in SNOMED) give its site.
"""

from __future__ import annotations

from dataclasses import dataclass

# The segment tag that carries a lesion's site key in Slicer segmentations and .seg.nrrd files.
SITE_TAG = "ABCImmunoResponse.Site"
# The segment tag in which Slicer keeps a segment's terminology entry (vtkSegment::GetTerminologyEntryTagName).
TERMINOLOGY_TAG = "TerminologyEntry"

# Where a lesion's site came from, as the lesion table and the features CSV (column site_source) say it.
SITE_FROM_TAG = "tag"  # the segment tag SITE_TAG
SITE_FROM_SITES_FILE = "sites_file"  # a row of the --sites table
SITE_FROM_NAME = "name"  # the segment's (or mask file's) name, such as liver_1
# The SNOMED code of a segment's anatomic region or type: its Slicer terminology entry, or a DICOM SEG segment's codes.
SITE_FROM_TERMINOLOGY = "terminology"
SITE_SOURCES = (SITE_FROM_TAG, SITE_FROM_SITES_FILE, SITE_FROM_NAME, SITE_FROM_TERMINOLOGY)


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
    """Map a user's spelling of a site ("Lymph node", "lymph-node", "LN") to its key, or None if unknown.

    Parameters
    ----------
    text : str or None
        The site as written; case, surrounding spaces and the separators
        space, '-' and '/' do not matter. None gives None.

    Returns
    -------
    str or None
        A key of ``SITES`` (e.g. "lymph_node"), or None when the spelling is
        not a known site or alias.
    """
    if text is None:
        return None
    key = text.strip().lower().replace("-", "_").replace(" ", "_").replace("/", "_")
    key = _ALIASES.get(key, key)
    return key if key in SITES else None


def site_from_segment_name(name: str) -> str | None:
    """Guess the site from a segment name such as ``liver_1`` or ``Lymph node 2``.

    Parameters
    ----------
    name : str
        A segment or mask-file name; a trailing number and separator are dropped.

    Returns
    -------
    str or None
        The site key, or None when the rest of the name is no known site.
    """
    stem = name.strip().lower().replace("-", "_").replace(" ", "_").rstrip("0123456789").rstrip("_")
    return normalise_site(stem)


def site_from_code(scheme: str, value: str) -> str | None:
    """The site whose SNOMED CT code this is, or None.

    ``scheme`` is the DICOM coding scheme designator: ``SCT`` (SNOMED CT) or ``SRT`` (SNOMED RT, as Slicer
    4.10's terminologies and older DICOM files code anatomy, e.g. T-62000 for the liver). SNOMED RT codes are
    compared through DICOM's SNOMED RT to SNOMED CT mapping (PS3.16), which pydicom's ``Code`` applies.

    Parameters
    ----------
    scheme : str
        Coding scheme designator, e.g. "SCT" or "SRT" (case-insensitive).
    value : str
        Code value, e.g. "10200004" or "T-62000".

    Returns
    -------
    str or None
        The key of the site with that code; None when either part is blank, the
        code is not a valid DICOM code, or no site has it.
    """
    from pydicom.sr.coding import Code

    if not scheme.strip() or not value.strip():
        return None
    try:
        code = Code(value.strip(), scheme.strip().upper(), value.strip())
    except ValueError:  # not a valid DICOM code value, so no site's code
        return None
    for site in SITES.values():
        if code == Code(site.snomed_code, "SCT", site.snomed_meaning):
            return site.key
    return None


def site_from_terminology(entry: str | None) -> str | None:
    """The site a Slicer terminology entry codes: its anatomic region if that is a site, else its type.

    ``entry`` is Slicer's serialised form (the ``TerminologyEntry`` tag, Slicer 4.10 to 5.12): seven parts
    separated by '~' (context ~ category ~ type ~ type modifier ~ anatomic context ~ anatomic region ~ region
    modifier), each code as ``scheme^value^meaning`` (vtkSlicerTerminologiesModuleLogic::
    DeserializeTerminologyEntry). A lesion is coded as type "Neoplasm" in an anatomic region; an organ
    segment such as "right lung" as type "Lung". Only codes, never meanings, are compared.

    Parameters
    ----------
    entry : str or None
        The serialised terminology entry; None or a string without seven parts
        gives None.

    Returns
    -------
    str or None
        The site key, or None when neither region nor type codes a site.
    """
    parts = (entry or "").split("~")
    if len(parts) != 7:
        return None
    for part in (parts[5], parts[2]):
        code = part.split("^")
        if len(code) == 3 and (site := site_from_code(code[0], code[1])):
            return site
    return None


@dataclass(frozen=True)
class SiteChoice:
    """A lesion's site key (None if unknown) and where it came from (one of SITE_SOURCES; None if unknown)."""

    site: str | None
    source: str | None


def choose_site(name: str, tag: str | None = None, listed: str | None = None,
                terminology: str | None = None) -> SiteChoice:
    """A lesion's site from what is known about it, in this order: the site tag, the ``--sites`` row, the
    name (``liver_1``), the terminology entry (SNOMED code of its anatomic region or type).

    A tag or row is the user's explicit statement, so a value outside the site list gives no site (the caller
    warns) rather than a guess. The name comes before the terminology: the reader sees and edits names in
    the segment list, while the terminology entry sits in a separate dialog and stays behind when a segment
    is copied and renamed (a new segment's default entry, "Tissue", is no site).

    Parameters
    ----------
    name : str
        The segment's (or mask file's) name.
    tag : str or None, optional
        The value of the segment tag ``SITE_TAG``; None or blank when absent.
    listed : str or None, optional
        The site given for this lesion in the ``--sites`` table; None or blank when absent.
    terminology : str or None, optional
        The segment's serialised Slicer terminology entry; None when absent.

    Returns
    -------
    SiteChoice
        The site key and its source (one of ``SITE_SOURCES``); both None when
        no source names a known site.
    """
    for given, source in ((tag, SITE_FROM_TAG), (listed, SITE_FROM_SITES_FILE)):
        if given and given.strip():
            site = normalise_site(given)
            return SiteChoice(site, source if site else None)
    for site, source in ((site_from_segment_name(name), SITE_FROM_NAME),
                         (site_from_terminology(terminology), SITE_FROM_TERMINOLOGY)):
        if site:
            return SiteChoice(site, source)
    return SiteChoice(None, None)


def is_visceral(site: str | None) -> bool | None:
    """True for a visceral site, None when the site is unknown.

    Parameters
    ----------
    site : str or None
        A site key of ``SITES``, or None.

    Returns
    -------
    bool or None
        Whether the site is visceral; None when ``site`` is None or not a key.
    """
    return SITES[site].visceral if site in SITES else None
