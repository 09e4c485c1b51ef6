"""pyradiomics' first-order class with each statistic it needs twice computed once: the same doubles, less work.

In pyradiomics 3.0.1 ``RadiomicsFirstOrder`` computes the second central moment
in both Skewness and Kurtosis, and the 10th and 90th percentiles both as features
and again inside Robust Mean Absolute Deviation: a sixth of its time on the real
organs of ``Testing/benchmarks/bench_whole_process.py``, where ``numpy.power``
and ``numpy.nanpercentile`` over every voxel of the region dominate the class.
Here each of these is computed by pyradiomics' own expression on the first
call and handed out again, as a copy (Skewness and Kurtosis change their ``m2``
in place), for the rest of the region's features. Nothing else changes, so
every value is stock's to the bit (``Testing/core/test_firstorder_features.py``).
"""

from __future__ import annotations

import numpy as np
from radiomics.firstorder import RadiomicsFirstOrder


class _RepeatedStatistics(RadiomicsFirstOrder):
    """``RadiomicsFirstOrder`` remembering, per region, the moments and percentiles that several features read."""

    def _initCalculation(self, voxelCoordinates=None):  # noqa: N802, N803 (pyradiomics' names)
        self._computed: dict[tuple[str, int], np.ndarray] = {}
        super()._initCalculation(voxelCoordinates)

    def _once(self, key: tuple[str, int], compute) -> np.ndarray:
        """``compute()`` on the first call for ``key``, a copy of that result on every call."""
        if key not in self._computed:
            self._computed[key] = compute()
        return self._computed[key].copy()

    def _moment(self, a, moment=1):
        # Stock's staticmethod, called as self._moment(self.targetVoxelArray, n) by Skewness and Kurtosis.
        if moment == 1 or self.voxelBased or a is not self.targetVoxelArray:
            return RadiomicsFirstOrder._moment(a, moment)
        return self._once(("moment", moment), lambda: RadiomicsFirstOrder._moment(a, moment))

    def get10PercentileFeatureValue(self):  # noqa: N802 (pyradiomics' name)
        return self._once(("percentile", 10), super().get10PercentileFeatureValue)

    def get90PercentileFeatureValue(self):  # noqa: N802 (pyradiomics' name)
        return self._once(("percentile", 90), super().get90PercentileFeatureValue)


_RepeatedStatistics.__name__ = RadiomicsFirstOrder.__name__
_RepeatedStatistics.__qualname__ = RadiomicsFirstOrder.__qualname__
_RepeatedStatistics.__module__ = RadiomicsFirstOrder.__module__  # pyradiomics names each class's logger after it


def with_repeated_statistics_once(feature_class: type) -> type:
    """``feature_class`` computing each repeated first-order statistic once; any other class unchanged.

    Parameters
    ----------
    feature_class : type
        A pyradiomics feature class (e.g. ``RadiomicsFirstOrder``).

    Returns
    -------
    type
        For ``RadiomicsFirstOrder``, a subclass of the same name whose second, third and
        fourth central moments and 10th and 90th percentiles of a region are computed
        once (the same doubles); ``feature_class`` itself otherwise.
    """
    return _RepeatedStatistics if feature_class is RadiomicsFirstOrder else feature_class
