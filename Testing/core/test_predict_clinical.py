"""Clinical facts: the paper's four categories, each wrong or missing value named with the allowed ones."""

from __future__ import annotations

import numpy as np
import pytest
from abcir.patient.clinical_facts import CLINICAL_ENCODING, ClinicalFacts, parse_clinical
from abcir.errors import InputError


def test_facts_become_the_models_zero_one_vector():
    facts = parse_clinical(["lines=1", "sites=1-2", "visceral=yes", "tnbc=yes"])
    assert facts == ClinicalFacts(prior_lines_ge2=False, metastatic_sites_ge3=False, visceral=True, tnbc=True)
    np.testing.assert_array_equal(facts.vector(), [0, 0, 1, 1])
    assert list(CLINICAL_ENCODING) == ["prior_lines_ge2", "metastatic_sites_ge3", "visceral", "tnbc"]
    other = parse_clinical(["tnbc=No", "visceral=no", "sites=3+", "lines=2+"])
    np.testing.assert_array_equal(other.vector(), [1, 1, 0, 0])


@pytest.mark.parametrize("tokens", [["lines=>=2", "sites=>=3"], ["lines=≥2", "sites=≥3"], ["lines=ge2", "sites=ge3"]])
def test_other_spellings_of_the_upper_categories(tokens):
    facts = parse_clinical([*tokens, "visceral=true", "tnbc=false"])
    assert facts.prior_lines_ge2 and facts.metastatic_sites_ge3 and facts.visceral and not facts.tnbc


def test_tokens_round_trip():
    facts = ClinicalFacts(True, False, True, False)
    assert facts.to_tokens() == ["lines=2+", "sites=1-2", "visceral=yes", "tnbc=no"]
    assert parse_clinical(facts.to_tokens()) == facts
    assert ClinicalFacts.from_dict(facts.to_dict()) == facts


@pytest.mark.parametrize("token, allowed", [
    ("lines=0", "allowed values are 1, 2+"),
    ("sites=7", "allowed values are 1-2, 3+"),
    ("visceral=maybe", "allowed values are no, yes"),
    ("tnbc=unknown", "allowed values are no, yes"),
])
def test_values_outside_the_categories_are_refused_listing_the_allowed_ones(token, allowed):
    tokens = {"lines": "lines=1", "sites": "sites=1-2", "visceral": "visceral=no", "tnbc": "tnbc=no"}
    tokens[token.split("=")[0]] = token
    with pytest.raises(InputError, match=f"Clinical fact '{token}': .* {allowed}"):
        parse_clinical(list(tokens.values()))


def test_missing_facts_are_an_error_not_a_default():
    with pytest.raises(InputError, match=r"sites, tnbc missing; the model needs all four\. "
                                         r"Add sites=1-2\|3\+ tnbc=no\|yes"):
        parse_clinical(["lines=1", "visceral=no"])


@pytest.mark.parametrize("tokens, message", [
    (["lines1"], "write it as key=value"),
    (["age=50"], "unknown name 'age'"),
    (["lines=1", "lines=2+"], "'lines' is given twice"),
])
def test_malformed_facts_are_refused(tokens, message):
    with pytest.raises(InputError, match=message):
        parse_clinical(tokens)
