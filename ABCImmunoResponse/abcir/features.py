"""Radiomics features per lesion, exactly as stock pyradiomics computes them with the paper's settings.

pyradiomics resamples CT and mask to 1 x 1 x 1 mm with a cubic B-spline and
computes the seven feature classes on the original, LoG (sigma 1, 2, 3 mm) and
wavelet images: 1130 values per lesion (paper, Table S2). The values returned
here are those of ``RadiomicsFeatureExtractor(parameter_file).execute(ct, mask)``;
every lesion carries the provenance needed to reproduce them.
"""

from __future__ import annotations

import hashlib
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import radiomics
import SimpleITK as sitk
import yaml
from radiomics.featureextractor import RadiomicsFeatureExtractor

from . import __version__
from .errors import InputError
from .imaging import file_sha256, voxel_hash
from .lesions import Lesion
from .resources import parameter_file, resources_dir

PINNED_PYRADIOMICS_VERSION = "3.0.1"
N_FEATURES = 1130  # paper, Table S2

# progress(lesion number from 1, number of lesions, lesion id)
ProgressCallback = Callable[[int, int, str], None]


@lru_cache(maxsize=None)
def feature_names() -> tuple[str, ...]:
    """The 1130 feature names in the fixed column order (Resources/Parameters/feature_names.txt)."""
    path = resources_dir() / "Parameters" / "feature_names.txt"
    names = tuple(line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#"))
    if len(names) != N_FEATURES:
        raise RuntimeError(f"{path} lists {len(names)} features, not {N_FEATURES}; the installation is damaged.")
    return names


def feature_names_sha256(names: Sequence[str] | None = None) -> str:
    """SHA-256 of the feature list, one name per line: weight bundles pin it."""
    return hashlib.sha256("\n".join(names or feature_names()).encode()).hexdigest()


def pyradiomics_version() -> str:
    """The installed pyradiomics version without the leading 'v'."""
    return str(radiomics.__version__).lstrip("v")


@lru_cache(maxsize=None)
def resampled_spacing_mm() -> tuple[float, ...]:
    """The isotropic spacing the parameter file resamples to (mm)."""
    settings = yaml.safe_load(parameter_file().read_text())["setting"]
    return tuple(float(s) for s in settings["resampledPixelSpacing"])


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
        return asdict(self)


@dataclass
class LesionFeatures:
    """The 1130 feature values of one lesion (``feature_names()`` order) with its provenance."""

    patient_id: str
    lesion: Lesion
    values: np.ndarray
    provenance: Provenance


@lru_cache(maxsize=1)
def _extractor() -> RadiomicsFeatureExtractor:
    radiomics.setVerbosity(logging.ERROR)
    # pyradiomics logs every step at INFO and propagates to the root logger; keep only errors.
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return RadiomicsFeatureExtractor(str(parameter_file()))


def ordered_values(result: dict, lesion_id: str) -> np.ndarray:
    """pyradiomics' result as a float vector in the fixed order; anything but the 1130 names is an error."""
    computed = {name: value for name, value in result.items() if not name.startswith("diagnostics_")}
    expected = feature_names()
    if set(computed) != set(expected):
        missing = sorted(set(expected) - set(computed))
        extra = sorted(set(computed) - set(expected))
        raise RuntimeError(f"Lesion '{lesion_id}': pyradiomics {pyradiomics_version()} returned {len(computed)} "
                           f"features, not the {N_FEATURES} of the paper (missing {missing[:3]}, extra {extra[:3]}). "
                           f"Install pyradiomics=={PINNED_PYRADIOMICS_VERSION}.")
    return np.array([float(computed[name]) for name in expected], dtype=np.float64)


def _compute(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> np.ndarray:
    try:
        result = _extractor().execute(ct, mask)
    except ValueError as error:  # pyradiomics' own checks (e.g. ROI too small after resampling)
        raise InputError(f"Lesion '{lesion_id}': pyradiomics refused it ({error}).") from error
    return ordered_values(result, lesion_id)


def extract_lesions(ct: sitk.Image, lesions: Sequence[Lesion], patient_id: str, jobs: int = 1,
                    progress: ProgressCallback | None = None) -> list[LesionFeatures]:
    """Features of each lesion of one patient; ``jobs`` > 1 runs lesions in parallel processes."""
    if not lesions:
        raise InputError(f"Patient '{patient_id}': no target lesions to extract.")
    parameter_sha = file_sha256(parameter_file())
    ct_sha = voxel_hash(ct)
    results: list[LesionFeatures] = []

    def record(index: int, values: np.ndarray) -> None:
        lesion = lesions[index]
        provenance = Provenance(pyradiomics_version(), parameter_sha, ct_sha, voxel_hash(lesion.mask),
                                tuple(ct.GetSpacing()), resampled_spacing_mm())
        results.append(LesionFeatures(patient_id, lesion, values, provenance))

    if jobs <= 1 or len(lesions) == 1:
        for index, lesion in enumerate(lesions):
            if progress:
                progress(index + 1, len(lesions), lesion.lesion_id)
            record(index, _compute(ct, lesion.mask, lesion.lesion_id))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(lesions), os.cpu_count() or 1)) as pool:
            futures = [pool.submit(_compute, ct, lesion.mask, lesion.lesion_id) for lesion in lesions]
            for index, future in enumerate(futures):
                record(index, future.result())
                if progress:
                    progress(index + 1, len(lesions), lesions[index].lesion_id)
    return results
