"""The ExtensionsIndex catalog entry, the .s4ext description and CMakeLists.txt say the same thing.

ABCImmunoResponse.json is what the Slicer ExtensionsIndex builds from (category, tier, enabled,
build dependencies, DICOM rule); the EXTENSION_* variables of CMakeLists.txt are what Slicer 5.12+
writes into the generated .s4ext and uploads with the package (depends, recommends, keywords, ...);
ABCImmunoResponse.s4ext is the hand-kept copy of that description. A value changed in one place only
would ship an extension whose catalog page, dependencies or Modules menu disagree.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
NAME = "ABCImmunoResponse"
ENTRY = REPO / f"{NAME}.json"
S4EXT = REPO / f"{NAME}.s4ext"
CMAKELISTS = REPO / "CMakeLists.txt"
SCHEMA_V102 = Path(__file__).with_name("slicer-extension-catalog-entry-schema-v1.0.2.json")
SCHEMA_V101 = Path(__file__).with_name("slicer-extension-catalog-entry-schema-v1.0.1.json")

# The .s4ext keys that Slicer takes from git rather than from an EXTENSION_* variable
# (SlicerExtensionCPack.cmake passes ${EXTENSION_NAME}_WC_TYPE/_WC_URL/_WC_REVISION).
S4EXT_KEYS_FROM_GIT = {"scm", "scmurl", "scmrevision"}


def read_entry() -> dict:
    return json.loads(ENTRY.read_text(encoding="utf-8"))


def read_s4ext() -> dict[str, str]:
    """Keyword -> value; as in Slicer's parser, the first token is the keyword and the rest the value."""
    description = {}
    for line in S4EXT.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        keyword, _, value = line.strip().partition(" ")
        assert keyword not in description, f"{S4EXT.name}: '{keyword}' is given twice"
        description[keyword] = value.strip()
    return description


def read_cmake_extension_variables() -> dict[str, str]:
    """EXTENSION_<NAME> -> value of each one-line set() in the top-level CMakeLists.txt, by <name> in lower case."""
    variables = {}
    one_line_set = re.compile(r'^set\(EXTENSION_(\w+)\s+(?:"([^"]*)"|([^\s)]+))\s*\)', re.MULTILINE)
    for match in one_line_set.finditer(CMAKELISTS.read_text(encoding="utf-8")):
        name, quoted, bare = match.groups()
        variables[name.lower()] = quoted if quoted is not None else bare
    return variables


def words(value: str) -> list[str]:
    """A space-separated list as Slicer writes it; "NA" is its spelling of "none"."""
    return [] if value.strip() in ("", "NA") else value.split()


@pytest.fixture(scope="module")
def jsonschema():
    return pytest.importorskip("jsonschema")


def validation_errors(jsonschema, schema_path: Path, entry: dict) -> list[str]:
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return [error.message for error in validator_class(schema).iter_errors(entry)]


def test_the_entry_is_valid_against_schema_v1_0_2_that_it_names(jsonschema):
    entry = read_entry()
    schema = json.loads(SCHEMA_V102.read_text(encoding="utf-8"))
    assert entry["$schema"] == schema["$id"]
    assert validation_errors(jsonschema, SCHEMA_V102, entry) == []


def test_the_entry_is_also_valid_for_the_5_10_branch_which_checks_with_v1_0_1(jsonschema):
    # ExtensionsIndex's 5.10 branch runs check-jsonschema with schemas/...-v1.0.1.json whatever
    # $schema says, so the same file can be submitted there.
    assert validation_errors(jsonschema, SCHEMA_V101, read_entry()) == []


def test_the_schemas_reject_what_the_entry_leaves_out(jsonschema):
    # Why recommends lives in CMakeLists.txt only, and why an empty DICOM rule is left out rather
    # than written as "": v1.0.2 allows no other keys, and v1.0.1 (5.10 branch) knows no rule.
    entry = read_entry()
    assert validation_errors(jsonschema, SCHEMA_V102, {**entry, "recommends": ["SegmentEditorExtraEffects"]})
    assert validation_errors(jsonschema, SCHEMA_V101, {**entry, "dicom_support_rule": ""})
    assert validation_errors(jsonschema, SCHEMA_V102, {**entry, "tier": 0})


def test_the_entry_is_formatted_as_the_extensions_index_wants():
    # ExtensionsIndex's pre-commit runs prettier with multiline arrays, end-of-file-fixer and
    # checks LF line endings: json.dumps(indent=2) writes exactly that for this flat object.
    raw = ENTRY.read_bytes()
    assert b"\r" not in raw
    text = raw.decode("utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_the_names_agree():
    # The Index checks that the top-level project() is named like the .json file.
    project = re.search(r"^project\((\w+)", CMAKELISTS.read_text(encoding="utf-8"), re.MULTILINE).group(1)
    assert project == ENTRY.stem == S4EXT.stem == NAME


def test_every_cmake_extension_variable_is_in_the_s4ext_with_the_same_value():
    cmake = read_cmake_extension_variables()
    s4ext = read_s4ext()
    # Slicer 5.12's description spec: the .s4ext keyword is the variable's name in lower case.
    assert set(cmake) == set(s4ext) - S4EXT_KEYS_FROM_GIT
    for name, value in cmake.items():
        assert s4ext[name] == value, f"EXTENSION_{name.upper()} in CMakeLists.txt and '{name}' in the .s4ext differ"


def test_the_entry_and_the_s4ext_agree():
    entry = read_entry()
    s4ext = read_s4ext()
    assert entry["scm_type"] == s4ext["scm"]
    assert entry["scm_url"] == s4ext["scmurl"]
    assert entry["scm_revision"] == s4ext["scmrevision"]
    assert entry["category"] == s4ext["category"]
    assert entry["build_dependencies"] == words(s4ext["depends"])
    assert entry["build_subdirectory"] == s4ext["build_subdirectory"]
    assert entry["tier"] == int(s4ext["tier"])
    assert entry["enabled"] == (s4ext["enabled"] == "1")
    assert entry.get("dicom_support_rule", "") == s4ext["dicom_support_rule"]


def test_the_extension_depends_on_slicer_radiomics_recommends_extra_effects_and_claims_no_dicom():
    entry = read_entry()
    cmake = read_cmake_extension_variables()
    assert entry["build_dependencies"] == words(cmake["depends"]) == ["SlicerRadiomics"]
    assert words(cmake["recommends"]) == ["SegmentEditorExtraEffects"]
    assert entry["category"] == cmake["category"] == "Quantification"
    assert entry["tier"] == int(cmake["tier"]) == 1
    assert entry["enabled"] is True and cmake["enabled"] == "1"
    assert "dicom_support_rule" not in entry
    assert cmake["dicom_support_rule"] == ""


def test_icon_and_screenshots_are_files_of_this_repository_at_the_catalog_revision():
    entry = read_entry()
    cmake = read_cmake_extension_variables()
    repository = urlsplit(entry["scm_url"]).path.removesuffix(".git").strip("/")
    for url in [cmake["iconurl"], *words(cmake["screenshoturls"])]:
        prefix = f"https://raw.githubusercontent.com/{repository}/{entry['scm_revision']}/"
        assert url.startswith(prefix), f"{url} is not a file of {entry['scm_url']} at {entry['scm_revision']}"
        assert (REPO / url.removeprefix(prefix)).is_file(), f"{url} points to a file missing from this checkout"


def test_the_extensions_index_checker_finds_icon_and_screenshots_in_cmakelists():
    # The patterns of check_cmakelists_content() in ExtensionsIndex's scripts/check_description_files.py:
    # each value must sit on one set() line, in double quotes.
    text = CMAKELISTS.read_text(encoding="utf-8")
    assert re.findall(r'set\s*\(EXTENSION_ICONURL\s*"([^"]+)"[ ]*\)', text, re.IGNORECASE | re.MULTILINE)
    assert re.findall(r'set\s*\(EXTENSION_SCREENSHOTURLS\s*"([^"]+)"\)', text, re.IGNORECASE | re.MULTILINE)
