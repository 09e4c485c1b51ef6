"""pyradiomics' GLCM features with less work in its slowest steps, to the same doubles.

After the matrix (``abcir.features.texture_matrices``), pyradiomics 3.0.1's
``RadiomicsGLCM`` spends most of its time in steps whose cost grows with the
cube of the number of gray levels Ng, or in ``pow``:

* MCC's Q (``getMCCFeatureValue``): Q[i, j] = sum over k of P[i, k] P[j, k] / (px[i] py[k] + eps), added
  k after k on dense (Nv, Ng, Ng, Nd) arrays, although most terms are 0;
* ``pxAddy`` and ``pxSuby`` (``_calculateCoefficients``): one boolean (Ng, Ng) mask per sum or difference k;
* cluster prominence and shade: ``x ** 4`` and ``x ** 3`` on Ng² Nd elements that hold only
  2 Ng - 1 values per angle.

What is done instead, and why the doubles are the same:

* Q: with P finite and >= +0 (checked), a term is +0.0 wherever P[i, k] or P[j, k] is 0 (0 * x = +0,
  +0 / d = +0 for d >= eps), and adding +0.0 to a double >= +0 leaves it unchanged. For each angle and
  k, the rows with P[i, k] != 0 lie in a band [lo, hi): only that block of Q gets k's term, computed
  with stock's operations on the same doubles (IEEE multiply, add, divide, each correctly rounded), k
  ascending, starting from +0.0 (+0.0 + t == t, as stock starts from the first term). Every element of
  Q thus receives stock's non-zero terms in stock's order. Q goes, in stock's layout, to the same
  ``numpy.linalg.eigvals`` and the statements after it. The bands pay when they are narrow compared
  with Ng (many gray levels); a cost model measured on real lesions picks stock's loop otherwise.
* pxAddy, pxSuby: numpy indexes with stock's boolean (Ng, Ng) mask through its ``nonzero`` rows and
  columns; each group's (i + j == k, |i - j| == k) rows and columns, in that (C) order from one stable
  argsort, index P the same way, making the same array (shape, strides: they follow P's layout,
  values), summed by the same ``numpy.sum(..., 1)``. Only the O(Ng^3) building of the masks goes.
* cluster prominence and shade: (i + j - ux - uy) ** n is computed for each distinct value of i + j,
  with stock's subtractions in stock's order, and spread back onto (i, j). numpy's ``power`` is a
  function of each element alone (SVML or libm per element, chosen by overlap and strides: both arrays
  are new and contiguous), so each element gets stock's value; the product with P and its sum are
  stock's statements on an array of stock's values and layout.

Where the zeros are not exact (NaN angles) Q takes stock's statements. Tested against stock
``RadiomicsGLCM`` on random images and a real organ (``Testing/core/test_glcm_features.py``).
"""

from __future__ import annotations

from functools import cache

import numpy
from radiomics.glcm import RadiomicsGLCM

# Costs (ns) measured on the GLCMs of three real lesions (36 images, Ng 2..141, one core): stock's dense
# loop ~1.5 per element of (Nv, Ng, Ng, Nd) per gray level, ~4,000 per gray level; the banded loop ~3,500
# per (voxel, angle, gray level) column and ~1.6 per element of its blocks. Below MINIMUM_BANDED_LEVELS
# gray levels the bands never paid (Ng 2..53: stock 0.01..2.7 ms, bands 0.08..3.7 ms).
MINIMUM_BANDED_LEVELS = 40
_DENSE_ELEMENT_NS = 1.5
_DENSE_LEVEL_NS = 4000.0
_BANDED_COLUMN_NS = 3500.0
_BANDED_ELEMENT_NS = 1.6


def dense_q(p_glcm: numpy.ndarray, px: numpy.ndarray, py: numpy.ndarray, eps: float) -> numpy.ndarray:
    """Stock's Q of ``getMCCFeatureValue`` (pyradiomics 3.0.1's statements), the reference for ``banded_q``.

    Parameters
    ----------
    p_glcm : numpy.ndarray
        The normalised GLCM, (Nv, Ng, Ng, Nd) (``RadiomicsGLCM.P_glcm``).
    px, py : numpy.ndarray
        Its marginals, (Nv, Ng, 1, Nd) and (Nv, 1, Ng, Nd) (``coefficients['px']``, ``['py']``).
    eps : float
        ``coefficients['eps']`` (``numpy.spacing(1)``).

    Returns
    -------
    numpy.ndarray
        Q, (Nv, Ng, Ng, Nd); its layout follows ``p_glcm``'s (numpy's ufunc rules).
    """
    # pyradiomics 3.0.1 (BSD-3-Clause), RadiomicsGLCM.getMCCFeatureValue: the statements that build Q.
    Q = ((p_glcm[:, :, None, 0, :] * p_glcm[:, None, :, 0, :]) /
         (px[:, :, None, 0, :] * py[:, None, :, 0, :] + eps))
    for gl in range(1, p_glcm.shape[1]):
        Q += ((p_glcm[:, :, None, gl, :] * p_glcm[:, None, :, gl, :]) /
              (px[:, :, None, 0, :] * py[:, None, :, gl, :] + eps))
    return Q


def _zeros_are_exact(p_glcm: numpy.ndarray) -> bool:
    """Whether every term with a zero factor is +0.0: P finite and >= +0 (no NaN angle, no -0.0)."""
    return bool(numpy.isfinite(p_glcm).all()) and not numpy.signbit(p_glcm).any()


def _bands(p_glcm: numpy.ndarray):
    """P by (voxel, angle, column k, row i), the occupied columns and each one's band [lo, hi) of non-zero rows."""
    columns = numpy.ascontiguousarray(p_glcm.transpose(0, 3, 2, 1))
    nonzero = columns != 0
    occupied = numpy.nonzero(nonzero.any(-1))  # (voxel, angle, k) in lexicographic order: k ascending
    lo = numpy.argmax(nonzero, -1)[occupied]
    hi = p_glcm.shape[1] - numpy.argmax(nonzero[..., ::-1], -1)[occupied]
    return columns, occupied, lo, hi


def banded_q(p_glcm: numpy.ndarray, px: numpy.ndarray, py: numpy.ndarray, eps: float,
             bands=None) -> numpy.ndarray:
    """Stock's Q (``dense_q``), each gray level k's term added only where P[i, k] and P[j, k] can be non-zero.

    Per voxel and angle, k ascending, the block [lo, hi) x [lo, hi) of rows with P[i, k] != 0 gets
    (P[i, k] * P[j, k]) / (px[i] * py[k] + eps), stock's operations on the same doubles; outside it
    stock adds +0.0 (module docstring). Requires P finite and >= +0.

    Parameters
    ----------
    p_glcm : numpy.ndarray
        The normalised GLCM, (Nv, Ng, Ng, Nd), finite, >= +0.
    px, py : numpy.ndarray
        Its marginals, (Nv, Ng, 1, Nd) and (Nv, 1, Ng, Nd).
    eps : float
        ``coefficients['eps']`` (> 0).
    bands : tuple, optional
        ``_bands(p_glcm)`` when already computed.

    Returns
    -------
    numpy.ndarray
        Q, (Nv, Ng, Ng, Nd), equal to ``dense_q``'s to the bit, in its layout.
    """
    nv, ng, _, nd = p_glcm.shape
    columns, occupied, lo, hi = _bands(p_glcm) if bands is None else bands
    # denominators[v, d, k, i] = px[v, i, d] * py[v, k, d] + eps: stock's denominator, element for element.
    denominators = (px[:, :, 0, :].transpose(0, 2, 1)[:, :, None, :]
                    * py[:, 0, :, :].transpose(0, 2, 1)[:, :, :, None] + eps)
    q = numpy.zeros((nv, nd, ng, ng))
    outer = numpy.multiply.outer
    for v, d, k, a, b in zip(*(axis.tolist() for axis in occupied), lo.tolist(), hi.tolist()):
        column = columns[v, d, k, a:b]
        term = outer(column, column)  # [i, j] = P[i, k] * P[j, k]
        term /= denominators[v, d, k, a:b, None]
        q[v, d, a:b, a:b] += term
    # Stock's first statement makes Q's array, whose layout (strides) follows P's; its values are replaced.
    stock_layout = ((p_glcm[:, :, None, 0, :] * p_glcm[:, None, :, 0, :]) /
                    (px[:, :, None, 0, :] * py[:, None, :, 0, :] + eps))
    stock_layout[...] = q.transpose(0, 2, 3, 1)
    return stock_layout


def mcc_q(p_glcm: numpy.ndarray, px: numpy.ndarray, py: numpy.ndarray, eps: float,
          method: str = "auto") -> numpy.ndarray:
    """MCC's Q, by ``banded_q`` where the cost model says it is faster and it applies, else by ``dense_q``.

    Parameters
    ----------
    p_glcm : numpy.ndarray
        The normalised GLCM, (Nv, Ng, Ng, Nd).
    px, py : numpy.ndarray
        Its marginals, (Nv, Ng, 1, Nd) and (Nv, 1, Ng, Nd).
    eps : float
        ``coefficients['eps']``.
    method : {"auto", "banded", "dense"}
        "banded" forces the bands wherever they apply (tests); "dense" is stock's loop.

    Returns
    -------
    numpy.ndarray
        Q, (Nv, Ng, Ng, Nd), equal to stock's to the bit, in stock's layout.
    """
    nv, ng, _, nd = p_glcm.shape
    if method == "dense" or (method == "auto" and ng < MINIMUM_BANDED_LEVELS) or not _zeros_are_exact(p_glcm):
        return dense_q(p_glcm, px, py, eps)
    bands = _bands(p_glcm)
    if method == "auto":
        block_elements = int(numpy.sum(numpy.square(bands[3] - bands[2], dtype=numpy.int64)))
        banded = _BANDED_COLUMN_NS * len(bands[2]) + _BANDED_ELEMENT_NS * block_elements
        if banded >= _DENSE_ELEMENT_NS * nv * ng ** 3 * nd + _DENSE_LEVEL_NS * ng:
            return dense_q(p_glcm, px, py, eps)
    return banded_q(p_glcm, px, py, eps, bands)


def level_groups(keys: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The flat (C-order) positions of ``keys`` grouped by value, each group in C order, and the sorted keys.

    Parameters
    ----------
    keys : numpy.ndarray
        (Ng, Ng) floats, e.g. i + j or |i - j| of gray levels (no NaN).

    Returns
    -------
    tuple of numpy.ndarray
        The stable argsort of ``keys.ravel()`` and the keys in that order.
    """
    order = numpy.argsort(keys, axis=None, kind="stable")
    return order, keys.ravel()[order]


def grouped_sums(p_glcm: numpy.ndarray, groups: tuple[numpy.ndarray, numpy.ndarray],
                 k_values: numpy.ndarray) -> numpy.ndarray:
    """``numpy.array([numpy.sum(p_glcm[:, keys == k, :], 1) for k in k_values])`` without a mask per k.

    numpy indexes with a boolean (Ng, Ng) mask by turning it into its ``nonzero`` row and column
    indices; here each group's rows and columns, in the same (C) order, index ``p_glcm`` the same way,
    which makes the same array (shape, strides, values), summed by the same ``numpy.sum``.

    Parameters
    ----------
    p_glcm : numpy.ndarray
        The GLCM, (Nv, Ng, Ng, Nd), any layout.
    groups : tuple of numpy.ndarray
        ``level_groups(keys)``.
    k_values : numpy.ndarray
        The keys summed over (e.g. ``kValuesSum``); a key absent from ``keys`` gives zeros.

    Returns
    -------
    numpy.ndarray
        (len(k_values), Nv, Nd), as stock's ``numpy.array`` of the list.
    """
    order, sorted_keys = groups
    starts = numpy.searchsorted(sorted_keys, k_values, "left").tolist()
    ends = numpy.searchsorted(sorted_keys, k_values, "right").tolist()
    rows, columns = numpy.divmod(order, p_glcm.shape[2])
    return numpy.array([numpy.sum(p_glcm[:, rows[start:end], columns[start:end], :], 1)
                        for start, end in zip(starts, ends)])


def cluster_power(groups: tuple[numpy.ndarray, numpy.ndarray], ux: numpy.ndarray, uy: numpy.ndarray,
                  exponent: int, shape: tuple[int, ...]) -> numpy.ndarray:
    """Stock's ``((i + j)[None, :, :, None] - ux - uy) ** exponent``, powered once per distinct i + j.

    Parameters
    ----------
    groups : tuple of numpy.ndarray
        ``level_groups(i + j)`` of the coefficients' ``i`` and ``j``.
    ux, uy : numpy.ndarray
        ``coefficients['ux']``, ``['uy']``, (Nv, 1, 1, Nd).
    exponent : int
        The power (3: cluster shade, 4: cluster prominence).
    shape : tuple of int
        The GLCM's shape (Nv, Ng, Ng, Nd).

    Returns
    -------
    numpy.ndarray
        (Nv, Ng, Ng, Nd), C-contiguous, equal to stock's array to the bit.
    """
    order, sorted_keys = groups
    new = numpy.empty(sorted_keys.shape, dtype=bool)
    new[:1] = True
    numpy.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    inverse = numpy.empty(order.shape, dtype=numpy.intp)
    inverse[order] = numpy.cumsum(new) - 1  # position -> index of its value among the distinct ones
    values = sorted_keys[new]
    powered = (values[None, :, None, None] - ux - uy) ** exponent  # stock: ((i + j) - ux) - uy, then ** n
    return numpy.take(powered, inverse, axis=1).reshape(shape)


class _FastGLCM:
    """The methods that replace stock's (``with_fast_glcm``); every other statement is pyradiomics'."""

    def _calculateCoefficients(self):  # noqa: N802 (pyradiomics' name)
        # pyradiomics 3.0.1 (BSD-3-Clause), RadiomicsGLCM._calculateCoefficients: every statement but the
        # two list comprehensions of pxAddy and pxSuby, which grouped_sums reproduces.
        self.logger.debug('Calculating GLCM coefficients')
        Ng = self.coefficients['Ng']
        eps = numpy.spacing(1)
        NgVector = self.coefficients['grayLevels'].astype('float')
        i, j = numpy.meshgrid(NgVector, NgVector, indexing='ij', sparse=True)
        kValuesSum = numpy.arange(2, (Ng * 2) + 1, dtype='float')
        kValuesDiff = numpy.arange(0, Ng, dtype='float')
        px = self.P_glcm.sum(2, keepdims=True)
        py = self.P_glcm.sum(1, keepdims=True)
        ux = numpy.sum(i[None, :, :, None] * self.P_glcm, (1, 2), keepdims=True)
        uy = numpy.sum(j[None, :, :, None] * self.P_glcm, (1, 2), keepdims=True)
        self._sum_groups = level_groups(i + j)
        pxAddy = grouped_sums(self.P_glcm, self._sum_groups, kValuesSum).transpose((1, 0, 2))
        pxSuby = grouped_sums(self.P_glcm, level_groups(numpy.abs(i - j)),
                              kValuesDiff).transpose((1, 0, 2))
        HXY = (-1) * numpy.sum((self.P_glcm * numpy.log2(self.P_glcm + eps)), (1, 2))
        self.coefficients['eps'] = eps
        self.coefficients['i'] = i
        self.coefficients['j'] = j
        self.coefficients['kValuesSum'] = kValuesSum
        self.coefficients['kValuesDiff'] = kValuesDiff
        self.coefficients['px'] = px
        self.coefficients['py'] = py
        self.coefficients['ux'] = ux
        self.coefficients['uy'] = uy
        self.coefficients['pxAddy'] = pxAddy
        self.coefficients['pxSuby'] = pxSuby
        self.coefficients['HXY'] = HXY

    def getClusterProminenceFeatureValue(self):  # noqa: N802 (pyradiomics' name)
        """Cluster prominence, as pyradiomics 3.0.1 computes it (``cluster_power`` with exponent 4)."""
        power = cluster_power(self._sum_groups, self.coefficients['ux'], self.coefficients['uy'], 4,
                              self.P_glcm.shape)
        cp = numpy.sum((self.P_glcm * power), (1, 2))
        return numpy.nanmean(cp, 1)

    def getClusterShadeFeatureValue(self):  # noqa: N802 (pyradiomics' name)
        """Cluster shade, as pyradiomics 3.0.1 computes it (``cluster_power`` with exponent 3)."""
        power = cluster_power(self._sum_groups, self.coefficients['ux'], self.coefficients['uy'], 3,
                              self.P_glcm.shape)
        cs = numpy.sum((self.P_glcm * power), (1, 2))
        return numpy.nanmean(cs, 1)

    def getMCCFeatureValue(self):  # noqa: N802 (pyradiomics' name)
        """Maximal correlation coefficient, as pyradiomics 3.0.1 computes it (Q from ``mcc_q``)."""
        # pyradiomics 3.0.1 (BSD-3-Clause), RadiomicsGLCM.getMCCFeatureValue: every statement but the loop
        # building Q, which mcc_q reproduces.
        px = self.coefficients['px']
        py = self.coefficients['py']
        eps = self.coefficients['eps']
        Q = mcc_q(self.P_glcm, px, py, eps)
        Q_eigenValue = numpy.linalg.eigvals(Q.transpose((0, 3, 1, 2)))
        Q_eigenValue.sort()  # sorts along last axis --> eigenvalues, low to high
        if Q_eigenValue.shape[2] < 2:
            return 1  # flat region
        MCC = numpy.sqrt(Q_eigenValue[:, :, -2])  # 2nd highest eigenvalue
        return numpy.nanmean(MCC, 1).real


@cache
def with_fast_glcm(feature_class: type) -> type:
    """``feature_class`` with MCC's Q, pxAddy/pxSuby and cluster prominence/shade done with less work.

    For pyradiomics' GLCM class or a subclass of it (e.g. ``with_numpy_matrices(RadiomicsGLCM)``):
    the same doubles (module docstring), in less time with many gray levels.

    Parameters
    ----------
    feature_class : type
        A pyradiomics feature class.

    Returns
    -------
    type
        For a GLCM class, a subclass of the same name and module (pyradiomics names its logger after
        the module; one per class: the result is cached); ``feature_class`` itself otherwise.
    """
    if not issubclass(feature_class, RadiomicsGLCM):
        return feature_class
    return type(feature_class.__name__, (_FastGLCM, feature_class), {"__module__": feature_class.__module__})
