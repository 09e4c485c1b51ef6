"""How several target lesions become one patient's radiomics vector.

The paper does not say. The default, ``volume_weighted_mean``, averages each
feature over the patient's target lesions weighted by lesion volume: every
target contributes, as every target was segmented, but small lesions (whose
texture is dominated by partial-volume voxels and noise) weigh less, and the
vector follows where the tumour burden is. ``largest`` (the largest lesion only)
and ``mean`` (unweighted) are there for sites that prefer them. The method is
recorded in every weight bundle, since a model is only valid with the
aggregation it was trained with.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..options import AGGREGATIONS, DEFAULT_AGGREGATION


def aggregate(values: np.ndarray, volumes_mm3: np.ndarray, method: str = DEFAULT_AGGREGATION) -> np.ndarray:
    """One vector from a (lesions x features) matrix, by ``method`` (one of ``AGGREGATIONS``).

    Parameters
    ----------
    values : np.ndarray
        Feature values, one row per target lesion (a 1-D array is one lesion).
    volumes_mm3 : np.ndarray
        Each lesion's volume (mm^3), one per row of ``values``.
    method : {"volume_weighted_mean", "largest", "mean"}, default DEFAULT_AGGREGATION
        Mean weighted by volume, the row of the largest lesion, or the plain mean.

    Returns
    -------
    np.ndarray
        One float64 value per feature (a new array).

    Raises
    ------
    InputError
        There are no lesions, the number of volumes differs from the number of
        rows, or ``method`` is unknown.
    """
    values = np.atleast_2d(np.asarray(values, dtype=np.float64))
    volumes = np.asarray(volumes_mm3, dtype=np.float64)
    if values.shape[0] == 0 or values.shape[0] != volumes.shape[0]:
        raise InputError(f"Aggregation: {values.shape[0]} lesion vectors and {volumes.shape[0]} volumes; "
                         "each target lesion needs its features and its volume.")
    if method == "volume_weighted_mean":
        return volumes @ values / volumes.sum()
    if method == "largest":
        return values[int(np.argmax(volumes))].copy()
    if method == "mean":
        return values.mean(axis=0)
    raise InputError(f"Aggregation '{method}' is unknown; use one of {', '.join(AGGREGATIONS)}.")
