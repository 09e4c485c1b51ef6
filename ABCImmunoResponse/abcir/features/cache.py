"""Content-addressed cache of lesion features: each lesion is extracted once per CT, mask and software.

A lesion's 1130 values depend on the CT's voxels and geometry, the mask's,
the parameter file and the software that computes them (pyradiomics,
SimpleITK, PyWavelets, numpy, this engine). The key is a SHA-256 over all of
them, so editing one lesion and predicting again recomputes that lesion only.

Each entry is one JSON file ``<folder>/<key[:2]>/<key>.json`` holding the key,
every input it was computed from, the values as exact hexadecimal floats and a
SHA-256 of the values. An entry is used only if it parses, names the same key
and inputs as the request, and its checksum matches; anything else (a
truncated file, an edited value, an entry left by other software) is logged,
removed and recomputed, never used. Entries are written to a temporary name
and renamed, so a killed run never leaves a half-written entry under a key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from ..files import atomic_write_text
from ..paper import N_FEATURES
from .catalogue import Provenance, feature_names_sha256, software_versions

CACHE_ENVIRONMENT_VARIABLE = "ABCIR_FEATURE_CACHE"
ENTRY_SCHEMA = "abcir.lesion_features"
ENTRY_SCHEMA_VERSION = 1

log = logging.getLogger(__name__)


def _request(provenance: Provenance) -> dict:
    """Everything an entry must match: the inputs (not the abcir version, which changes no value)."""
    return {
        "ct_sha256": provenance.ct_sha256,
        "mask_sha256": provenance.mask_sha256,
        "parameter_file_sha256": provenance.parameter_file_sha256,
        "spacing_original_mm": [float(s) for s in provenance.spacing_original_mm],
        "spacing_resampled_mm": [float(s) for s in provenance.spacing_resampled_mm],
        "software": software_versions(),
        "feature_names_sha256": feature_names_sha256(),
    }


def cache_key(provenance: Provenance) -> str:
    """SHA-256 of everything a lesion's values depend on.

    Parameters
    ----------
    provenance : Provenance
        The lesion's CT and mask voxel hashes, parameter file hash and spacings
        (mm); its ``abcir_version`` is not part of the key (it changes no value).

    Returns
    -------
    str
        64 lowercase hex digits over the inputs, the installed software versions
        (``software_versions``) and the feature list (``feature_names_sha256``).
    """
    return hashlib.sha256(json.dumps(_request(provenance), sort_keys=True).encode()).hexdigest()


def _values_sha256(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype="<f8").tobytes()).hexdigest()


class FeatureCache:
    """A folder of lesion feature entries (safe to share between processes writing the same keys)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)

    @classmethod
    def from_environment(cls) -> FeatureCache | None:
        """The cache named by $ABCIR_FEATURE_CACHE, or None when it is not set."""
        folder = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
        return cls(folder) if folder else None

    def path(self, key: str) -> Path:
        """Where the entry for ``key`` lives: ``<folder>/<key[:2]>/<key>.json`` (it may not exist)."""
        return self.folder / key[:2] / f"{key}.json"

    def get(self, provenance: Provenance) -> np.ndarray | None:
        """The cached values for this lesion, or None (absent, or an entry that cannot be trusted)."""
        key = cache_key(provenance)
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as error:
            log.warning("Feature cache entry %s cannot be read (%s); recomputing.", path, error)
            return None
        problem, values = self._check(text, key, provenance)
        if problem:
            log.warning("Feature cache entry %s is not used: %s; recomputing.", path, problem)
            path.unlink(missing_ok=True)
            return None
        return values

    @staticmethod
    def _check(text: str, key: str, provenance: Provenance) -> tuple[str | None, np.ndarray | None]:
        try:
            entry = json.loads(text)
            values = np.array([float.fromhex(v) for v in entry["values"]], dtype=np.float64)
        except (ValueError, TypeError, KeyError) as error:
            return f"unreadable ({type(error).__name__})", None
        if entry.get("schema") != ENTRY_SCHEMA or entry.get("schema_version") != ENTRY_SCHEMA_VERSION:
            return "another schema", None
        if entry.get("key") != key or entry.get("inputs") != _request(provenance):
            return "computed from other inputs or software (stale)", None
        if values.shape != (N_FEATURES,) or entry.get("values_sha256") != _values_sha256(values):
            return "values do not match their checksum (corrupt)", None
        return None, values

    def put(self, provenance: Provenance, values: np.ndarray) -> Path:
        """Store a lesion's values (atomically: a reader sees the old entry, the new one, or none)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (N_FEATURES,):
            raise ValueError(f"A cache entry holds {N_FEATURES} values, not {values.shape}.")
        key = cache_key(provenance)
        path = self.path(key)
        entry = {"schema": ENTRY_SCHEMA, "schema_version": ENTRY_SCHEMA_VERSION, "key": key,
                 "inputs": _request(provenance), "values_sha256": _values_sha256(values),
                 "values": [float(v).hex() for v in values]}

        atomic_write_text(path, json.dumps(entry))
        return path
