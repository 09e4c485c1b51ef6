"""Does the installed extraction engine give the values the weights were trained on? Checked on values, not versions.

A version string says little about values: SlicerRadiomics builds pyradiomics
from a commit after 3.1.0 whose feature code differs from 3.0.1 only in
docstrings and casts, so its values are 3.0.1's, while a different SimpleITK,
numpy or PyWavelets under the same "3.0.1" could change them. So abcir ships an
*engine reference* (``Resources/Parameters/engine_reference/``): a generated
CT with one textured lesion (``ct.nrrd``, ``mask.nrrd``, made by
``Testing/fixtures/engine_reference/make_engine_reference.py``) and its 1130
feature values as stock pyradiomics 3.0.1 computed them (``values.json``,
exact: JSON numbers round-trip doubles). On first use in a process,
``check_engine`` recomputes them along the path every extraction here takes
(``features.engine_values``: abcir's fast engine, or stock ``execute`` where the
fast path does not apply) and compares them bit for bit, NaN equal to NaN. The
reference exercises the B-spline resampling, all 12 image types (Original, LoG
sigma 1, 2, 3 mm, 8 wavelet bands) and all seven feature classes; it takes
about 0.1 s, once per process. A command that predicts with workers has one of
them compute it (``start_engine_check``) while this process reads the CT.

Bit for bit is too strict across CPUs. pyradiomics takes eigenvalues with
``numpy.linalg.eigvals`` (shape axis lengths, elongation, flatness; GLCM MCC),
and numpy's OpenBLAS picks its kernels by CPU: with the reference made on
OpenBLAS' Haswell kernels, its Sandybridge and SkylakeX kernels change 10 and
11 of the 1130 values, by at most 4.7e-16 relative (2 ulp). So an engine whose
largest relative difference stays within ``ROUNDING_LIMIT`` reproduces the
reference (``EngineCheck.reproduced``), up to rounding; a different computation
(another interpolation, float32 somewhere, another algorithm) differs by 1e-7
or more. Every value of the reference that depends on eigenvalues is above 0.19,
so rounding stays small relative to it.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import CancelledError, Executor, Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..imaging.ct import file_sha256
from ..records import from_json_dict
from ..resources import resources_dir
from .catalogue import feature_names, pyradiomics_version
from .engine import engine_values

CT_FILE = "ct.nrrd"
MASK_FILE = "mask.nrrd"
VALUES_FILE = "values.json"
#: Largest relative difference on the reference read as floating-point rounding of another BLAS (measured:
#: 4.7e-16, module docstring); 2000 times that, and far below what any different computation gives (1e-7).
ROUNDING_LIMIT = 1e-12
#: How values.json writes what a JSON number cannot hold (JavaScript's names, which ``float`` reads back).
NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def reference_dir() -> Path:
    """The folder of the engine reference: ``ct.nrrd``, ``mask.nrrd`` and ``values.json``."""
    return resources_dir() / "Parameters" / "engine_reference"


def encode_value(value: float) -> float | str:
    """A feature value for values.json: the double itself (``repr`` round-trips it), or NaN/Infinity as a string.

    Parameters
    ----------
    value : float
        One feature value (its unit is the feature's own).

    Returns
    -------
    float or str
        ``float(value)`` when finite, else "NaN", "Infinity" or "-Infinity".
    """
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def decode_value(value: float | str, name: str) -> float:
    """The double that ``encode_value`` wrote for feature ``name``.

    Parameters
    ----------
    value : float or str
        A number from values.json, or "NaN", "Infinity" or "-Infinity".
    name : str
        The feature's name, used in the error message.

    Returns
    -------
    float
        The value as a double (NaN or an infinity for those strings).

    Raises
    ------
    RuntimeError
        ``value`` is a string other than those three (a damaged installation).
    """
    if isinstance(value, str):
        if value not in NON_FINITE:
            raise RuntimeError(f"{reference_dir() / VALUES_FILE}: feature '{name}' is {value!r}, neither a number "
                               f"nor one of {', '.join(NON_FINITE)}; the installation is damaged, reinstall abcir.")
        return NON_FINITE[value]
    return float(value)


@dataclass(frozen=True)
class EngineReference:
    """values.json: the reference lesion's 1130 values and what computed them.

    ``values`` maps every feature name to its value (``encode_value``);
    ``ct_sha256`` and ``mask_sha256`` are the SHA-256 of the two files' bytes,
    ``parameter_file_sha256`` that of the parameter file the values were
    computed with.
    """

    description: str
    generator: str
    computed_with: str
    pyradiomics_version: str
    software: dict[str, str]
    parameter_file_sha256: str
    ct_sha256: str
    mask_sha256: str
    values: dict[str, float | str]

    def value_array(self) -> np.ndarray:
        """The values in ``feature_names()`` order (float64)."""
        return np.array([decode_value(self.values[name], name) for name in feature_names()], dtype=np.float64)


def load_reference(folder: Path | None = None) -> EngineReference:
    """Read and check the engine reference: its images are the ones its values were computed from.

    The parameter file is not compared by hash: the recomputed values show
    whether it still gives the reference's values (a line-ending change does).

    Parameters
    ----------
    folder : Path, optional
        A folder holding ``ct.nrrd``, ``mask.nrrd`` and ``values.json``. None
        means the installed reference (``reference_dir()``).

    Returns
    -------
    EngineReference
        The reference's values and what computed them.

    Raises
    ------
    RuntimeError
        values.json cannot be read or parsed, lacks or adds fields, does not list
        the 1130 features in ``feature_names()`` order, or the SHA-256 of
        ``ct.nrrd`` or ``mask.nrrd`` is not the one it records (a damaged installation).
    """
    folder = folder or reference_dir()
    path = folder / VALUES_FILE
    damaged = "the installation is damaged, reinstall abcir"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise RuntimeError(f"{path}: cannot read the engine reference ({error}); {damaged}.") from error
    reference = from_json_dict(EngineReference, data, str(path), RuntimeError)
    if list(reference.values) != list(feature_names()):
        raise RuntimeError(f"{path}: the reference lists {len(reference.values)} features, not the "
                           f"{len(feature_names())} of feature_names.txt in its order; {damaged}.")
    for name, expected in ((CT_FILE, reference.ct_sha256), (MASK_FILE, reference.mask_sha256)):
        if file_sha256(folder / name) != expected:
            raise RuntimeError(f"{folder / name}: not the file the engine reference values were computed from "
                               f"(SHA-256 differs); {damaged}.")
    return reference


@dataclass(frozen=True)
class EngineCheck:
    """Whether this process' engine reproduced the engine reference bit for bit.

    ``pyradiomics_version`` is the installed one, ``reference_pyradiomics_version``
    the one whose stock values the reference holds. When not identical,
    ``largest_difference_feature`` is the feature with the largest relative
    difference |computed - reference| / max(|computed|, |reference|) (between 0
    and 2; infinite when one side is NaN; 0 when only the sign of a zero
    differs) and ``largest_relative_difference`` that difference.
    """

    identical: bool
    pyradiomics_version: str
    reference_pyradiomics_version: str
    largest_difference_feature: str | None = None
    largest_relative_difference: float | None = None

    @property
    def reproduced(self) -> bool:
        """Identical, or different only by floating-point rounding (at most ``ROUNDING_LIMIT`` relative)."""
        return self.identical or self.largest_relative_difference <= ROUNDING_LIMIT


def relative_differences(computed: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|computed - reference| / max(|computed|, |reference|) per value.

    0 where the values are equal (NaN and NaN too), inf for NaN against a number.

    Parameters
    ----------
    computed : np.ndarray
        Float values, e.g. the 1130 features recomputed here.
    reference : np.ndarray
        The reference values, same shape.

    Returns
    -------
    np.ndarray
        Relative differences (dimensionless, between 0 and 2, or inf), same shape.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.maximum(np.abs(computed), np.abs(reference))
        difference = np.abs(computed - reference) / scale
    difference[~np.isfinite(difference)] = np.inf  # NaN against a number, or an infinity against a number
    difference[(np.isnan(computed) & np.isnan(reference)) | (computed == reference)] = 0.0
    return difference


def compare_values(computed: np.ndarray, reference: np.ndarray) -> tuple[bool, str | None, float | None]:
    """(identical bit for bit with NaN equal to NaN, feature with the largest relative difference, that difference).

    Parameters
    ----------
    computed : np.ndarray
        1130 float64 values in ``feature_names()`` order, as this installation computes them.
    reference : np.ndarray
        The reference's 1130 float64 values, same order.

    Returns
    -------
    tuple of (bool, str or None, float or None)
        ``(True, None, None)`` when every value has the same bits (any NaN equal
        to any NaN); otherwise False, the name of the differing feature with the
        largest relative difference (``relative_differences``) and that difference.
    """
    differs = computed.view(np.uint64) != reference.view(np.uint64)
    differs &= ~(np.isnan(computed) & np.isnan(reference))
    if not differs.any():
        return True, None, None
    ranked = np.where(differs, relative_differences(computed, reference), -1.0)
    worst = int(np.argmax(ranked))
    return False, feature_names()[worst], float(ranked[worst])


_in_worker: Future | None = None  # the check a worker computes for this process (start_engine_check)


def start_engine_check(pool: Executor | None) -> None:
    """Have a worker of ``pool`` compute ``check_engine`` now; ``check_engine()`` here then takes its result.

    A command that predicts starts its extraction workers before it reads the
    CT, and they wait 0.2-0.3 s for the first resampled lesion: time enough for
    the check (0.08 s), which this process would otherwise compute alone after
    the extraction while the workers exit. A worker runs this installation's
    interpreter and packages and computes the way extraction does (BLAS on one
    thread), so its check is this process' check. Does nothing without a pool
    or once a check is known.

    Parameters
    ----------
    pool : Executor or None
        The extraction workers' pool; None (one worker, no pool) does nothing.
    """
    global _in_worker
    if pool is not None and _in_worker is None and check_engine.cache_info().currsize == 0:
        _in_worker = pool.submit(_check_here)


def _check_here() -> EngineCheck:
    """``check_engine`` computed in this process (what a worker runs for ``start_engine_check``)."""
    reference = load_reference()
    folder = reference_dir()
    computed = engine_values(sitk.ReadImage(str(folder / CT_FILE)), sitk.ReadImage(str(folder / MASK_FILE)),
                             "engine reference")
    identical, feature, difference = compare_values(computed, reference.value_array())
    return EngineCheck(identical, pyradiomics_version(), reference.pyradiomics_version, feature, difference)


@cache
def check_engine() -> EngineCheck:
    """Recompute the engine reference with this installation and compare (once per process; about 0.1 s).

    Takes the result of a check started in a worker (``start_engine_check``), or
    computes it here when none was started, or its pool broke or was shut down
    before the worker began it.
    """
    global _in_worker
    started, _in_worker = _in_worker, None
    if started is not None:
        try:
            return started.result()
        except (BrokenProcessPool, CancelledError):
            pass
    return _check_here()
