"""The four clinical facts of the paper's clinical model, as the user states them.

The clinical model (paper, Results "Clinical characteristics"; categories of
Table 1) uses four binary facts: prior lines of therapy in the advanced setting
(1 vs >=2), number of metastatic sites (1-2 vs >=3), visceral metastasis (no vs
yes) and molecular subtype (TNBC vs not). They are entered as ``key=value``
words, e.g. ``lines=1 sites=3+ visceral=yes tnbc=no``; only the paper's
categories are accepted, because the model knows nothing else. ``>=2`` needs
quoting in a shell (``>`` redirects), so ``2+`` is the spelling shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import numpy as np

#: Meaning of a 1 in each position of the clinical vector (0 is the other category).
CLINICAL_ENCODING: dict[str, str] = {
    "prior_lines_ge2": "1 = two or more prior lines of therapy in the advanced setting, 0 = one line",
    "metastatic_sites_ge3": "1 = three or more metastatic sites, 0 = one or two",
    "visceral": "1 = visceral metastasis present, 0 = absent",
    "tnbc": "1 = triple-negative breast cancer, 0 = other molecular subtype",
}


@dataclass(frozen=True)
class _Fact:
    """How one fact is typed on the command line."""

    field: str
    label: str
    shown: tuple[str, str]  # the spellings listed in messages: (value for False, value for True)
    false_words: frozenset[str]
    true_words: frozenset[str]


_YES = frozenset({"yes", "y", "true"})
_NO = frozenset({"no", "n", "false"})
_FACTS: dict[str, _Fact] = {
    "lines": _Fact("prior_lines_ge2", "prior lines of therapy in the advanced setting", ("1", "2+"),
                   frozenset({"1"}), frozenset({"2+", ">=2", "≥2", "ge2"})),
    "sites": _Fact("metastatic_sites_ge3", "number of metastatic sites", ("1-2", "3+"),
                   frozenset({"1-2"}), frozenset({"3+", ">=3", "≥3", "ge3"})),
    "visceral": _Fact("visceral", "visceral metastasis", ("no", "yes"), _NO, _YES),
    "tnbc": _Fact("tnbc", "triple-negative breast cancer", ("no", "yes"), _NO, _YES),
}


def clinical_usage() -> str:
    """The accepted words, for help texts and error messages."""
    return " ".join(f"{key}={'|'.join(fact.shown)}" for key, fact in _FACTS.items())


@dataclass(frozen=True)
class ClinicalFacts:
    """The four binary facts of the clinical model; True is the category coded 1."""

    prior_lines_ge2: bool
    metastatic_sites_ge3: bool
    visceral: bool
    tnbc: bool

    def vector(self) -> np.ndarray:
        """The facts as 0/1 in ``CLINICAL_ENCODING`` order, the models' clinical input."""
        import numpy as np  # here, not at the top: the command line reads this module's words before any work

        return np.array([float(getattr(self, name)) for name in CLINICAL_ENCODING])

    def to_tokens(self) -> list[str]:
        """The facts as the ``key=value`` words that ``parse_clinical`` reads back."""
        return [f"{key}={fact.shown[int(getattr(self, fact.field))]}" for key, fact in _FACTS.items()]

    def to_dict(self) -> dict[str, bool]:
        """The facts as a JSON-ready mapping of field name to bool (``from_dict`` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ClinicalFacts:
        """The facts of a ``to_dict`` mapping; a missing field raises KeyError."""
        return cls(**{item.name: bool(data[item.name]) for item in fields(cls)})


def parse_clinical(tokens: Sequence[str]) -> ClinicalFacts:
    """Read ``lines=... sites=... visceral=... tnbc=...``; every fact is required, none is defaulted.

    Parameters
    ----------
    tokens : sequence of str
        ``key=value`` words, in any order and case: ``lines=1|2+`` (prior lines
        of therapy in the advanced setting; also ``>=2``), ``sites=1-2|3+``
        (number of metastatic sites; also ``>=3``), ``visceral=no|yes`` and
        ``tnbc=no|yes`` (also y/n, true/false).

    Returns
    -------
    ClinicalFacts
        The four facts, True for the category coded 1.

    Raises
    ------
    InputError
        If a word has no ``=``, names an unknown fact, gives a fact twice or a
        value outside the paper's categories, or a fact is missing.
    """
    given: dict[str, bool] = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        key = key.strip().lower()
        if not sep:
            raise InputError(f"Clinical fact '{token}': write it as key=value, e.g. {clinical_usage()}.")
        if key not in _FACTS:
            raise InputError(f"Clinical fact '{token}': unknown name '{key}'; the facts are "
                             f"{', '.join(_FACTS)} ({clinical_usage()}).")
        if key in given:
            raise InputError(f"Clinical fact '{key}' is given twice; give each fact once.")
        fact = _FACTS[key]
        word = value.strip().lower()
        if word in fact.true_words:
            given[key] = True
        elif word in fact.false_words:
            given[key] = False
        else:
            raise InputError(f"Clinical fact '{token}': '{value}' is not an allowed value for {fact.label}; "
                             f"allowed values are {', '.join(fact.shown)} (the paper's categories).")
    missing = [key for key in _FACTS if key not in given]
    if missing:
        needed = " ".join(f"{key}={'|'.join(_FACTS[key].shown)}" for key in missing)
        raise InputError(f"Clinical facts: {', '.join(missing)} missing; the model needs all four. Add {needed}.")
    return ClinicalFacts(**{_FACTS[key].field: value for key, value in given.items()})
