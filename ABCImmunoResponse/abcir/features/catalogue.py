"""What a lesion's features are: the 1130 names, the software that computes them, and their provenance.

Every cached value and every prediction refers to these: the names in the fixed
column order of ``Resources/Parameters/feature_names.txt``, the versions of the
packages whose code computes them (part of every cache key), and a lesion's
``Provenance`` (hashes of its CT and mask voxels, the parameter file, spacings).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Sequence

import numpy as np
import SimpleITK as sitk
import yaml

from .. import __version__
from ..paper import N_FEATURES
from ..resources import parameter_file, resources_dir

if TYPE_CHECKING:  # a type only: reading a prediction or a bundle needs no lesion loading (SciPy)
    from ..patient.lesions import Lesion

PINNED_PYRADIOMICS_VERSION = "3.0.1"
# Raised whenever a change to this engine could change a value (part of every cache key).
ENGINE_VERSION = "2"


@lru_cache(maxsize=None)
def feature_names() -> tuple[str, ...]:
    """The 1130 feature names in the fixed column order (Resources/Parameters/feature_names.txt)."""
    path = resources_dir() / "Parameters" / "feature_names.txt"
    lines = path.read_text(encoding="utf-8").splitlines()
    names = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
    if len(names) != N_FEATURES:
        raise RuntimeError(f"{path} lists {len(names)} features, not {N_FEATURES}; the installation is damaged.")
    return names


def feature_names_sha256(names: Sequence[str] | None = None) -> str:
    """SHA-256 of the feature list, one name per line: weight bundles pin it.

    Parameters
    ----------
    names : sequence of str, optional
        The feature names in column order. None (or an empty sequence) means the
        installed 1130 names of ``feature_names()``.

    Returns
    -------
    str
        64 lowercase hex digits of the UTF-8 names joined by newlines (no trailing newline).

    Raises
    ------
    RuntimeError
        ``names`` is not given and the installed feature list does not hold 1130 names.
    """
    return hashlib.sha256("\n".join(names or feature_names()).encode()).hexdigest()


def pyradiomics_version() -> str:
    """The installed pyradiomics version without the leading 'v'."""
    import radiomics  # here, not at the top: a bundle or a prediction is read (in Slicer's GUI too) without it

    return str(radiomics.__version__).lstrip("v")


@lru_cache(maxsize=None)
def resampled_spacing_mm() -> tuple[float, ...]:
    """The isotropic spacing the parameter file resamples to (mm)."""
    settings = yaml.safe_load(parameter_file().read_text(encoding="utf-8"))["setting"]
    return tuple(float(s) for s in settings["resampledPixelSpacing"])


def software_versions() -> dict[str, str]:
    """Every package whose version can change a feature value (resampling, filters, features)."""
    import pywt

    return {"pyradiomics": pyradiomics_version(), "SimpleITK": sitk.Version_VersionString(),
            "PyWavelets": pywt.__version__, "numpy": np.__version__, "abcir_engine": ENGINE_VERSION}


@dataclass(frozen=True)
class Provenance:
    """What a lesion's feature values depend on: enough to recompute and compare them."""

    pyradiomics_version: str
    parameter_file_sha256: str
    ct_sha256: str
    mask_sha256: str
    spacing_original_mm: tuple[float, float, float]
    spacing_resampled_mm: tuple[float, float, float]
    abcir_version: str = __version__

    def to_dict(self) -> dict:
        """The fields as a plain dict (for JSON): hashes, versions and spacings (mm)."""
        return asdict(self)


@dataclass
class LesionFeatures:
    """The 1130 feature values of one lesion (``feature_names()`` order) with its provenance."""

    patient_id: str
    lesion: Lesion
    values: np.ndarray
    provenance: Provenance

