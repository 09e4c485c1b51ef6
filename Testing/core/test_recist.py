"""RECIST 1.1 target rules as tables: each row is a case a reader meets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from abcir.patient.recist import select_targets, validate_targets


@dataclass
class L:
    lesion_id: str
    site: str | None
    longest_axial_diameter_mm: float = 20.0
    short_axis_mm: float = 16.0


@pytest.mark.parametrize("lesions, expected", [
    ([L("liver_1", "liver"), L("liver_2", "liver")], []),
    ([L("liver_1", "liver"), L("liver_2", "liver"), L("liver_3", "liver")], [("liver_3", "error", "max_per_site")]),
    ([L(f"l{i}", site) for i, site in enumerate(["liver", "lung", "breast", "bone", "adrenal", "pleura"])],
     [("l5", "error", "max_total")]),
    ([L("liver_1", "liver", longest_axial_diameter_mm=9.9)], [("liver_1", "warning", "not_measurable")]),
    ([L("liver_1", "liver", longest_axial_diameter_mm=10.0)], []),
    ([L("node", "lymph_node", longest_axial_diameter_mm=30.0, short_axis_mm=14.9)],
     [("node", "warning", "not_measurable")]),
    ([L("node", "lymph_node", longest_axial_diameter_mm=16.0, short_axis_mm=15.0)], []),
    ([L("x", None)], [("x", "warning", "unknown_site")]),
])
def test_validate_targets(lesions, expected):
    findings = validate_targets(lesions)
    assert [(f.lesion_id, f.severity, f.rule) for f in findings] == expected


def test_third_lesion_message_names_lesion_site_and_fix():
    finding = validate_targets([L("liver_1", "liver"), L("liver_2", "liver"), L("liver_3", "liver")])[0]
    assert finding.message == ("Lesion 'liver_3': 3rd target lesion in site 'liver'; RECIST 1.1 allows at most 2 "
                               "per organ. Untick one in the lesion table.")


@pytest.mark.parametrize("candidates, expected", [
    # distinct sites first: the second liver lesion waits for the second round
    ([L("liver_big", "liver", 50), L("liver_2", "liver", 40), L("node", "lymph_node", 30)],
     ["liver_big", "node", "liver_2"]),
    # visceral sites first within a round, whatever the size
    ([L("breast", "breast", 60), L("lung", "lung", 12)], ["lung", "breast"]),
    # at most two per site and five in total; unmeasurable and unknown-site lesions are never chosen
    ([L(f"liver_{i}", "liver", 20 + i) for i in range(4)] + [L("small", "lung", 5), L("u", None, 80)],
     ["liver_3", "liver_2"]),
    ([L(s, s, 20) for s in ["liver", "lung", "adrenal", "pleura", "breast", "bone"]]
     + [L("liver_b", "liver", 30)], ["liver_b", "lung", "adrenal", "pleura", "breast"]),
])
def test_select_targets(candidates, expected):
    assert [lesion.lesion_id for lesion in select_targets(candidates)] == expected
