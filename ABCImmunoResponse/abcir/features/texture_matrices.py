"""pyradiomics' GLCM, GLRLM, GLDM and NGTDM matrices computed in numpy, equal to its C code's.

pyradiomics 3.0.1 computes its texture matrices in C (``radiomics._cmatrices``,
``cmatrices.c``): for every voxel of the image it visits the 13 or 26 neighbour
directions one at a time, and recomputes each neighbour's index with integer
divisions. Here the image is padded with one voxel of "outside" on every side,
so that a neighbour in a given direction is always the same offset of the flat
index, and each direction is one operation on the whole array:

* GLCM: per direction, the pairs (gray level, neighbour's gray level) of the
  masked voxels are counted with one ``np.bincount``;
* GLRLM: per direction, the flat array is read along that direction's lines,
  one line after another, and runs are the stretches of one gray level;
* GLDM: per direction, the voxels equal to their neighbour (within ``alpha``)
  are marked at both ends, and the marks add up to each voxel's dependence;
* NGTDM: the count and the sum of each voxel's masked neighbours are a 3x3x3
  box sum (three passes of three terms), packed into one integer.

Every matrix element is a count, exact in a double whatever the order of the
additions. The one sum of non-integers, NGTDM's absolute differences, is added
voxel by voxel in the C code's raster order (``np.bincount`` adds its weights
in input order), and each difference is the C code's expression on the same
doubles, so the matrices are equal to the bit (tested against ``_cmatrices``
on random images and on real organs).

GLSZM stays in C: its zones are the connected components of each gray level,
and neither ``scipy.ndimage.label`` per gray level (a pass over the image per
level), ``scipy.sparse.csgraph.connected_components`` on the same-level
neighbour graph, nor SimpleITK's ``ScalarConnectedComponent`` was faster
than the C code (``Testing/benchmarks/bench_texture_matrices.py``).

The functions take ``_cmatrices``' positional arguments and return its
arrays (dtype, shape, angles). Small masks (``MINIMUM_VOXELS``), where C is
faster, and what they do not reproduce go to ``_cmatrices`` itself: empty
masks, voxel-based kernels, distances other than [1], images that are not
integers or have more than 3 dimensions, gray levels outside 1..Ng in the
mask, GLRLM's ``Nr`` below the image's largest side, images with one voxel,
arguments that C does not read as ints.
"""

from __future__ import annotations

import itertools
import sys
import types
from functools import cache

import numpy as np
from radiomics import cMatrices
from radiomics.glcm import RadiomicsGLCM
from radiomics.gldm import RadiomicsGLDM
from radiomics.glrlm import RadiomicsGLRLM
from radiomics.ngtdm import RadiomicsNGTDM

# Below these numbers of voxels in the mask the C code is faster: numpy's cost per call outweighs its
# cost per voxel (crossovers on textured spheres of 125 to 3,800 voxels at 1 mm: NGTDM ~500, GLDM ~850,
# GLRLM ~1,400, GLCM ~2,500-3,000; bench_texture_matrices.py --spheres ... --every-size).
MINIMUM_VOXELS = {"glcm": 2500, "glrlm": 1500, "gldm": 1000, "ngtdm": 500}
# A voxel has at most 26 neighbours at distance 1 in 3D: the NGTDM box sum packs (sum of the neighbours'
# gray levels, number of neighbours) into one integer, sum * 32 + number.
_COUNT_BITS = 5


def _vectorised(matrix: str, image: np.ndarray, mask: np.ndarray, distances, ng: int, force2d: bool,
                force2d_dimension: int, voxel_args: tuple, *integers) -> bool:
    """Whether numpy computes these ``_cmatrices`` arguments: in what it reproduces, and faster than C.

    ``integers``: the other arguments that C reads as ints (GLRLM's ``Nr``, GLDM's ``alpha``).
    """
    if voxel_args or not isinstance(image, np.ndarray) or not isinstance(mask, np.ndarray):
        return False
    if mask.shape != image.shape or np.count_nonzero(mask) < max(MINIMUM_VOXELS[matrix], 1):
        return False  # first, as it is all that a small mask needs
    c_int = np.iinfo(np.intc)
    if not all(isinstance(number, (int, np.integer)) and c_int.min <= number <= c_int.max
               for number in (ng, force2d, force2d_dimension, *integers)):
        return False  # C raises TypeError or OverflowError
    if image.ndim > 3 or ng < 1 or not np.issubdtype(image.dtype, np.integer):
        return False
    if np.asarray(distances).tolist() != [1]:
        return False
    if len(neighbour_angles(image.shape, False, _force2d_axis(force2d, force2d_dimension, image.ndim))) == 0:
        return False  # C raises "Error getting angle count."
    inside = mask.astype(bool, copy=False)
    # The C code reads gray levels as C ints and indexes its matrices with them; only 1..Ng are valid.
    lowest = np.min(image, where=inside, initial=np.iinfo(image.dtype).max)
    highest = np.max(image, where=inside, initial=np.iinfo(image.dtype).min)
    return 1 <= int(lowest) and int(highest) <= ng


def _force2d_axis(force2d: bool, force2d_dimension: int, ndim: int) -> int | None:
    """The axis whose neighbours the C code leaves out (``force2D``); it leaves out none for other numbers."""
    return force2d_dimension if force2d and 0 <= force2d_dimension < ndim else None


def neighbour_angles(shape: tuple[int, ...], bidirectional: bool, force2d_axis: int | None) -> np.ndarray:
    """The C code's neighbour offsets at distance 1 (``build_angles``), int32 (``Na``, ndim), in its order.

    Offsets run from +1 down to -1, the last axis fastest; an axis of size 1 and
    the ``force2D`` axis do not move. One direction of each pair (the first
    half: each offset's first non-zero step is +1) unless ``bidirectional``.

    Parameters
    ----------
    shape : tuple of int
        The image's shape (voxels per axis, numpy order).
    bidirectional : bool
        Both directions of each pair (26 in 3D) instead of one (13).
    force2d_axis : int or None
        An axis whose neighbours are left out; None leaves out none.

    Returns
    -------
    np.ndarray
        int32 offsets (voxels), one row per direction, one column per axis; a new copy.
    """
    return _neighbour_angles(tuple(size > 1 and axis != force2d_axis for axis, size in enumerate(shape)),
                             bidirectional).copy()


@cache
def _neighbour_angles(moves: tuple[bool, ...], bidirectional: bool) -> np.ndarray:
    offsets = np.array(list(itertools.product((1, 0, -1), repeat=len(moves))), dtype=np.intc)
    valid = offsets[np.all((offsets == 0) | np.array(moves), axis=1) & np.any(offsets != 0, axis=1)]
    return valid if bidirectional else valid[:len(valid) // 2]


def _padded(image: np.ndarray, mask: np.ndarray, ng: int, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """The image padded by one voxel on every side, flat: gray level in the mask, 0 elsewhere.

    Returns the flat array and, per axis, the offset of the next voxel along that
    axis in it. Every voxel of the image has all its neighbours in the padded
    array, so a neighbour is ``index + offsets @ direction`` with no bounds to check.
    """
    if dtype is None:
        dtype = np.uint8 if ng <= np.iinfo(np.uint8).max else np.uint16 if ng <= np.iinfo(np.uint16).max else np.int64
    padded = np.zeros(tuple(size + 2 for size in image.shape), dtype=dtype)
    np.copyto(padded[(slice(1, -1),) * image.ndim], image, casting="unsafe", where=mask.astype(bool, copy=False))
    steps = np.array(padded.strides, dtype=np.intp) // padded.itemsize
    return padded.ravel(), steps


def calculate_glcm(image, mask, distances, Ng, force2D, force2Ddimension, *voxel_args):
    """``_cmatrices.calculate_glcm``: (1, Ng, Ng, Na) co-occurrence counts of (voxel, neighbour) and the angles.

    Parameters
    ----------
    image : np.ndarray
        Discretised gray levels (integers 1..Ng in the mask), numpy (z, y, x) order.
    mask : np.ndarray
        The region of interest, same shape (non-zero inside).
    distances : sequence of int
        Neighbour distances (voxels); only [1] is computed here.
    Ng : int
        Number of gray levels.
    force2D : bool
        Leave out the neighbours along ``force2Ddimension``.
    force2Ddimension : int
        The axis left out when ``force2D`` (an axis outside the image leaves out none).
    *voxel_args
        Voxel-based kernel arguments; any given sends the call to ``_cmatrices``.

    Returns
    -------
    tuple of (np.ndarray, np.ndarray)
        The float64 GLCM and the int32 angles (``neighbour_angles``, one direction
        per pair), as ``_cmatrices`` returns them; from ``_cmatrices`` itself
        where numpy does not reproduce it or is slower (module docstring).
    """
    if not _vectorised("glcm", image, mask, distances, Ng, force2D, force2Ddimension, voxel_args):
        return cMatrices.calculate_glcm(image, mask, distances, Ng, force2D, force2Ddimension, *voxel_args)
    flat, steps = _padded(image, mask, Ng)
    directions = neighbour_angles(image.shape, False, _force2d_axis(force2D, force2Ddimension, image.ndim))
    voxels = np.flatnonzero(flat)
    rows = flat[voxels].astype(np.intp) * (Ng + 1)
    glcm = np.empty((1, Ng, Ng, len(directions)))
    for a, step in enumerate(directions @ steps):
        pairs = np.bincount(rows + flat[voxels + step], minlength=(Ng + 1) ** 2).reshape(Ng + 1, Ng + 1)
        glcm[0, :, :, a] = pairs[1:, 1:]  # row and column 0: the neighbour (or voxel) is outside the mask
    return glcm, directions


def _along(flat: np.ndarray, step: int) -> np.ndarray:
    """``flat`` read along the lines of a direction whose flat offset is ``step`` > 0, one line after another.

    Index ``i`` is followed by ``i + step`` (its neighbour in that direction) up to
    the end of the array, then comes ``i + 1``'s residue class. Each line starts and
    ends at a padding voxel, so lines never run into each other.
    """
    if step == 1:
        return flat
    length = -(-flat.size // step) * step
    lines = np.zeros(length, dtype=flat.dtype)
    lines[:flat.size] = flat
    return lines.reshape(-1, step).T.ravel()


def _line_with_two_voxels(mask: np.ndarray, step: int) -> bool:
    """Whether a line of this direction holds two voxels of the mask (C's ``multiElement``)."""
    marks = np.zeros(tuple(size + 2 for size in mask.shape), dtype=np.uint8)  # 0 outside the image
    marks[(slice(1, -1),) * mask.ndim] = np.where(mask, 2, 1)
    lines = _along(marks.ravel(), step)
    line = np.cumsum(lines == 0)[lines == 2]
    return bool(np.any(line[1:] == line[:-1]))


def calculate_glrlm(image, mask, Ng, Nr, force2D, force2Ddimension, *voxel_args):
    """``_cmatrices.calculate_glrlm``: (1, Ng, Nr, Na) counts of runs (gray level, length) and the angles.

    As in C, a direction whose lines all hold at most one voxel of the mask
    counts no runs at all.

    Parameters
    ----------
    image : np.ndarray
        Discretised gray levels (integers 1..Ng in the mask), numpy (z, y, x) order.
    mask : np.ndarray
        The region of interest, same shape (non-zero inside).
    Ng : int
        Number of gray levels.
    Nr : int
        Longest run counted (voxels); below the image's largest side, ``_cmatrices`` computes.
    force2D : bool
        Leave out the neighbours along ``force2Ddimension``.
    force2Ddimension : int
        The axis left out when ``force2D`` (an axis outside the image leaves out none).
    *voxel_args
        Voxel-based kernel arguments; any given sends the call to ``_cmatrices``.

    Returns
    -------
    tuple of (np.ndarray, np.ndarray)
        The float64 GLRLM and the int32 angles, as ``_cmatrices`` returns them.
    """
    vectorised = _vectorised("glrlm", image, mask, [1], Ng, force2D, force2Ddimension, voxel_args, Nr)
    if not vectorised or Nr < max(image.shape):
        return cMatrices.calculate_glrlm(image, mask, Ng, Nr, force2D, force2Ddimension, *voxel_args)
    flat, steps = _padded(image, mask, Ng)
    directions = neighbour_angles(image.shape, False, _force2d_axis(force2D, force2Ddimension, image.ndim))
    glrlm = np.empty((1, Ng, Nr, len(directions)))
    for a, step in enumerate(np.abs(directions @ steps)):
        lines = _along(flat, int(step))
        starts = np.flatnonzero(lines[1:] != lines[:-1]) + 1  # lines[0] is padding: a run of 0 starts there
        lengths = np.diff(starts, append=lines.size)
        levels = lines[starts].astype(np.intp)
        inside = levels > 0
        levels, lengths = levels[inside], lengths[inside]
        runs = np.bincount((levels - 1) * Nr + lengths - 1, minlength=Ng * Nr)
        glrlm[0, :, :, a] = runs.reshape(Ng, Nr)
        if not np.any(lengths > 1) and not _line_with_two_voxels(mask.astype(bool, copy=False), int(step)):
            glrlm[0, :, :, a] = 0
    return glrlm, directions


def calculate_gldm(image, mask, distances, Ng, alpha, force2D, force2Ddimension, *voxel_args):
    """``_cmatrices.calculate_gldm``: (1, Ng, 2 Na + 1) counts of (gray level, number of dependent neighbours).

    A neighbour is dependent when it is in the mask and its gray level differs by at most ``alpha``.

    Parameters
    ----------
    image : np.ndarray
        Discretised gray levels (integers 1..Ng in the mask), numpy (z, y, x) order.
    mask : np.ndarray
        The region of interest, same shape (non-zero inside).
    distances : sequence of int
        Neighbour distances (voxels); only [1] is computed here.
    Ng : int
        Number of gray levels.
    alpha : int
        Largest gray-level difference of a dependent neighbour (gray levels).
    force2D : bool
        Leave out the neighbours along ``force2Ddimension``.
    force2Ddimension : int
        The axis left out when ``force2D`` (an axis outside the image leaves out none).
    *voxel_args
        Voxel-based kernel arguments; any given sends the call to ``_cmatrices``.

    Returns
    -------
    np.ndarray
        The float64 GLDM, as ``_cmatrices`` returns it.
    """
    if not _vectorised("gldm", image, mask, distances, Ng, force2D, force2Ddimension, voxel_args, alpha):
        return cMatrices.calculate_gldm(image, mask, distances, Ng, alpha, force2D, force2Ddimension, *voxel_args)
    flat, steps = _padded(image, mask, Ng)
    axis = _force2d_axis(force2D, force2Ddimension, image.ndim)
    n_dependences = 2 * len(neighbour_angles(image.shape, True, axis)) + 1
    inside = flat > 0
    signed = flat.astype(np.int64) if alpha != 0 else None
    dependence = np.zeros(flat.size, dtype=np.uint8)
    for step in np.abs(neighbour_angles(image.shape, False, axis) @ steps):
        if signed is None:
            similar = flat[step:] == flat[:-step]
        else:
            similar = np.abs(signed[step:] - signed[:-step]) <= alpha
        similar &= inside[step:] & inside[:-step]
        dependence[step:] += similar
        dependence[:-step] += similar
    voxels = np.flatnonzero(inside)
    counts = np.bincount((flat[voxels].astype(np.intp) - 1) * n_dependences + dependence[voxels],
                         minlength=Ng * n_dependences)
    return counts.reshape(1, Ng, n_dependences).astype(np.float64)


def calculate_ngtdm(image, mask, distances, Ng, force2D, force2Ddimension, *voxel_args):
    """``_cmatrices.calculate_ngtdm``: (1, Ng, 3) per gray level: voxels, sum of |level - neighbours' mean|, level.

    The absolute differences are added in raster order as the C code adds
    them; a voxel without masked neighbours adds 0.

    Parameters
    ----------
    image : np.ndarray
        Discretised gray levels (integers 1..Ng in the mask), numpy (z, y, x) order.
    mask : np.ndarray
        The region of interest, same shape (non-zero inside).
    distances : sequence of int
        Neighbour distances (voxels); only [1] is computed here.
    Ng : int
        Number of gray levels.
    force2D : bool
        Leave out the neighbours along ``force2Ddimension``.
    force2Ddimension : int
        The axis left out when ``force2D`` (an axis outside the image leaves out none).
    *voxel_args
        Voxel-based kernel arguments; any given sends the call to ``_cmatrices``.

    Returns
    -------
    np.ndarray
        The float64 NGTDM, as ``_cmatrices`` returns it.
    """
    if not _vectorised("ngtdm", image, mask, distances, Ng, force2D, force2Ddimension, voxel_args):
        return cMatrices.calculate_ngtdm(image, mask, distances, Ng, force2D, force2Ddimension, *voxel_args)
    # Packed sums of up to 27 voxels need 5 + log2(27 Ng) bits.
    flat, steps = _padded(image, mask, Ng, dtype=np.int32 if Ng < 2 ** 20 else np.int64)
    axis = _force2d_axis(force2D, force2Ddimension, image.ndim)
    packed = (flat << _COUNT_BITS) | (flat > 0)
    total = packed
    for moving, step in enumerate(steps):
        if moving == axis or image.shape[moving] == 1:
            continue
        # Box sum along one axis. The first and last ``step`` entries lie on this axis' padding, which no
        # later pass reads for a voxel of the image (later passes move along other axes), and stay 0.
        summed = np.zeros_like(total)
        inner = summed[step:-step]
        np.add(total[:-2 * step], total[step:-step], out=inner)
        inner += total[2 * step:]
        total = summed
    voxels = np.flatnonzero(flat)
    neighbours = total[voxels] - packed[voxels]
    count = neighbours & ((1 << _COUNT_BITS) - 1)
    levels = flat[voxels]
    with np.errstate(invalid="ignore", divide="ignore"):
        difference = np.where(count > 0, np.abs(levels - (neighbours >> _COUNT_BITS) / count), 0.0)
    ngtdm = np.empty((1, Ng, 3))
    ngtdm[0, :, 0] = np.bincount(levels - 1, minlength=Ng)
    ngtdm[0, :, 1] = np.bincount(levels - 1, weights=difference, minlength=Ng)
    ngtdm[0, :, 2] = np.arange(1, Ng + 1)
    return ngtdm


# What the feature classes' own code calls ``cMatrices`` (see ``with_numpy_matrices``).
_MATRICES = types.SimpleNamespace(calculate_glcm=calculate_glcm, calculate_glrlm=calculate_glrlm,
                                  calculate_gldm=calculate_gldm, calculate_ngtdm=calculate_ngtdm)
_CLASSES = (RadiomicsGLCM, RadiomicsGLRLM, RadiomicsGLDM, RadiomicsNGTDM)


@cache
def with_numpy_matrices(feature_class: type) -> type:
    """``feature_class`` computing its matrix with this module: GLCM, GLRLM, GLDM, NGTDM; others unchanged.

    The subclass's ``_calculateMatrix`` is pyradiomics' own function (its code
    object, so every statement of it, before and after the matrix, is pyradiomics
    3.0.1's), run with the name ``cMatrices`` bound to this module's functions
    instead of the C extension.

    Parameters
    ----------
    feature_class : type
        A pyradiomics feature class (e.g. ``RadiomicsGLCM``).

    Returns
    -------
    type
        A subclass of the same name and module for GLCM, GLRLM, GLDM and NGTDM
        (one per class: the result is cached); ``feature_class`` itself otherwise.
    """
    if feature_class not in _CLASSES:
        return feature_class
    stock = feature_class._calculateMatrix
    namespace = dict(vars(sys.modules[stock.__module__]), cMatrices=_MATRICES)
    method = types.FunctionType(stock.__code__, namespace, stock.__name__, stock.__defaults__, stock.__closure__)
    # pyradiomics names each class's logger after its module.
    return type(feature_class.__name__, (feature_class,),
                {"_calculateMatrix": method, "__module__": feature_class.__module__})
