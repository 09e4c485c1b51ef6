"""Which Python packages the prediction needs inside Slicer, and which of them are missing or too old.

Checked when Predict is first pressed, not at import: the panel (lesion table,
clinical facts) works without them. Slicer ships numpy, scipy and SimpleITK;
pyradiomics comes from the SlicerRadiomics extension (``EXTENSION_DEPENDS``),
which may install a newer version than the one the core pins: the version is
recorded with every result and compared with the weights' (a warning, not a
refusal). The rest is installed with the user's consent, by the panel.
The minimum versions are those of ``pyproject.toml`` (a test keeps them equal).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

try:
    from packaging.requirements import Requirement
except ImportError:  # Slicer always has pip, which vendors packaging
    from pip._vendor.packaging.requirements import Requirement

#: What the prediction path imports beyond the standard library, as pip requirements.
PREDICTION_REQUIREMENTS = (
    "numpy>=1.24",
    "scipy>=1.10",
    "SimpleITK>=2.2",
    "pandas>=2.0",
    "pynrrd>=1.0",
    "pyyaml>=6",
    "safetensors>=0.4",
    # One BLAS thread per extraction worker: without it, some CPUs change the last bit of eigenvalue features.
    "threadpoolctl>=3.1",
)
RADIOMICS_MODULE = "radiomics"
RADIOMICS_EXTENSION = "SlicerRadiomics"


@dataclass(frozen=True)
class Unmet:
    """A requirement that is not met: ``installed`` is None when the package is missing."""

    requirement: str
    installed: str | None

    def describe(self) -> str:
        return f"{self.requirement} (missing)" if self.installed is None else \
            f"{self.requirement} (installed: {self.installed})"


def installedVersion(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def unmetRequirements(requirements: tuple[str, ...] = PREDICTION_REQUIREMENTS) -> list[Unmet]:
    """The requirements whose package is missing or whose installed version is outside the specifier."""
    unmet = []
    for text in requirements:
        requirement = Requirement(text)
        version = installedVersion(requirement.name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            unmet.append(Unmet(text, version))
    return unmet


def radiomicsAvailable() -> bool:
    """Whether pyradiomics can be imported (inside Slicer: the SlicerRadiomics extension is installed)."""
    return importlib.util.find_spec(RADIOMICS_MODULE) is not None
