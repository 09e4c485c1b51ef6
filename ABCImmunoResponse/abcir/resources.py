"""Where the shipped resources (pyradiomics parameter file, feature list, weight bundles) are.

The same ``Resources/`` folder serves three layouts: the source tree
(``Resources/`` beside ``ABCImmunoResponse/``), a pip install (mapped into the
package as ``abcir/_resources`` by pyproject.toml) and a Slicer extension
install (``Resources/`` beside the module's ``abcir`` folder).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def resources_dir() -> Path:
    """The folder holding ``Parameters/`` and ``Weights/``."""
    for candidate in (_PACKAGE / "_resources", _PACKAGE.parent / "Resources", _PACKAGE.parent.parent / "Resources"):
        if (candidate / "Parameters").is_dir():
            return candidate
    raise FileNotFoundError(f"abcir resources not found next to {_PACKAGE}; reinstall the package.")


def parameter_file() -> Path:
    """The pyradiomics parameter file with the paper's settings."""
    return resources_dir() / "Parameters" / "abcir_paper.yaml"


def weights_dir() -> Path:
    """The folder of bundled weight bundles, one sub-folder per model."""
    return resources_dir() / "Weights"
