"""pyradiomics' mesh coefficients of a mask (surface area, volume, maximum diameters), computed in numpy.

pyradiomics 3.0.1 computes them in C (``cshape.c``, ``calculate_coefficients``):
it walks the marching cubes of the padded mask in raster order, adds up each
triangle's area and signed volume, and stores up to three mesh vertices per
cube; the four maximum diameters then compare *every pair* of vertices. That
pair loop grows with the square of the lesion's surface and is most of the
shape class's time for large lesions.

Here the triangles' terms use the C code's statements, in the same order, and
are added up strictly left to right (``np.add.accumulate``), so surface and
volume are the same doubles. A pair of points at maximum distance is a pair of
vertices of their convex hull (the squared distance is convex), so the 3D
diameter is searched among the hull's vertices, and each in-plane diameter
among the points that are first or last on their line of that plane. With unit
spacing (pyradiomics' resampled grid) every coordinate is a multiple of 1/2 and
every squared distance is exact (whatever the order of the sums), so the
maxima are the C code's to the bit;
for other spacings ``mesh_coefficients`` returns None and pyradiomics' C code
is used.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import cdist

# The eight corners of a marching cube (z, y, x offsets) and the midpoints of its twelve edges, as cshape.c.
GRID_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0))
EDGE_POINTS = np.array([(0, 0, 0.5), (0, 0.5, 1), (0, 1, 0.5), (0, 0.5, 0), (1, 0, 0.5), (1, 0.5, 1),
                        (1, 1, 0.5), (1, 0.5, 0), (0.5, 0, 0), (0.5, 0, 1), (0.5, 1, 1), (0.5, 1, 0)])
# Vertices stored per cube for the diameters: on edge 6, 7, 11 when corner 6, 4, 3 is inside (cshape.c).
DIAMETER_VERTICES = ((6, 6), (4, 7), (3, 11))
# The triangles of cube configurations 0..127 (Lorensen & Cline's table as pyradiomics 3.0.1's cshape.c
# holds it; configurations >= 128 are their complement): three hexadecimal edge numbers per triangle.
TRIANGLES = (
    '', '083', '190', '183198', '12a', '08312a', '92a029', '2832a8a98', 'b23', 'b2008b', '190b23', 'b2119b98b',
    '3a1ba3', 'a1008a8ba', '9033b9ba9', '98aba8', '478', '043473', '190478', '194147173', '12a478', '34730412a',
    '92a902478', '2a9297273479', '478b23', 'b47b24204', '190478b23', '47b94bb29192', '3a1ba3478', 'ba114b10447b',
    '4789033b9ba9', '47b4b99ba', '954', '954083', '054015', '854835315', '12a954', '08312a954', '2a5542240',
    '2a5325354834', '954b23', 'b2008b954', '054015b23', '215258b28548', '3a1ba3954', '549a1008a8ba', '54050ba5bb03',
    '548a58ba8', '789579', '309539357', '780017715', '157173', '78957912a', '12a309395357', '0288258572a5',
    '2a5253357', '579789b23', '579972209b27', 'b23018178157', '21b17b157', '7895793a1ba3', '5705097b0a10ba0',
    'ba003ba50078570', 'ba557b', '65a', '08365a', '19065a', '18319865a', '165126', '165126083', '965906026',
    '598582526832', 'b2365a', 'b2008b65a', '190b2365a', 'b2119b98b65a', '63b653513', '08b0b50515b6', '63b036065059',
    '65969bb98', '47865a', '04347365a', '19047865a', '19414717365a', '478165126', '043473165126', '478965906026',
    '739479329596269', 'b2347865a', 'b47b2420465a', '190b2347865a', '47b94bb2919265a', '47863b653513',
    '51b5b610b47b04b', '47863b036065059', '65969b4797b9', 'a4964a', 'a4964a083', '01aa60640', '18316886461a',
    '149124264', '149124264083', '024426', '832824426', 'b23a4964a', 'b2008ba4964a', 'b2301aa60640',
    '64161a148b2118b', '964369139b63', '18b081b61149641', '63b036640', '86468b', '67a78a89a', '67a0a709a073',
    '67a1a7178018', '67a1a7173', '126168189678', '269129679309739', '078706602', '273267', 'b2367a78a89a',
    '207b2709767a9a7', '67a1a7178018b23', 'b2117ba61167', '896678169b63136', '09167b', '07870603bb60', '67b',
)
_COUNTS = np.array([len(code) // 3 for code in TRIANGLES])
_EDGES = np.full((128, 5, 3), -1, dtype=np.int64)
for _config, _code in enumerate(TRIANGLES):
    for _triangle in range(len(_code) // 3):
        _EDGES[_config, _triangle] = [int(digit, 16) for digit in _code[3 * _triangle:3 * _triangle + 3]]
# Squared-distance pairs compared per block when searching a maximum by brute force.
PAIR_BLOCK = 1 << 22


def _cube_configurations(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Configuration (0..127) and volume sign (+-1) of every marching cube, as cshape.c folds them."""
    nz, ny, nx = mask.shape
    inside = mask.astype(np.uint8)
    configuration = np.zeros((nz - 1, ny - 1, nx - 1), dtype=np.uint8)
    for bit, (dz, dy, dx) in enumerate(GRID_CORNERS):
        configuration |= inside[dz:dz + nz - 1, dy:dy + ny - 1, dx:dx + nx - 1] << np.uint8(bit)
    flipped = configuration >= 128
    configuration[flipped] ^= 0xFF
    return configuration, np.where(flipped, -1, 1)


def _surface_and_volume(configuration: np.ndarray, sign: np.ndarray, spacing: np.ndarray) -> tuple[float, float]:
    cubes = np.flatnonzero(configuration)  # raster order, as the C loops
    configs = configuration.ravel()[cubes]
    counts = _COUNTS[configs]
    cube_of_triangle = np.repeat(cubes, counts)
    first = np.cumsum(counts) - counts
    triangle_in_cube = np.arange(counts.sum()) - np.repeat(first, counts)
    edges = _EDGES[np.repeat(configs, counts), triangle_in_cube]  # (triangles, 3 points)
    corner = np.stack(np.unravel_index(cube_of_triangle, configuration.shape), axis=1).astype(np.float64)
    # a[d] = iz; a[d] += vertList[edge][d]; a[d] *= spacing[d]
    a, b, c = ((corner + EDGE_POINTS[edges[:, k]]) * spacing for k in range(3))

    def cross(u, v):
        return np.stack([(u[:, 1] * v[:, 2]) - (v[:, 1] * u[:, 2]), (u[:, 2] * v[:, 0]) - (v[:, 2] * u[:, 0]),
                         (u[:, 0] * v[:, 1]) - (v[:, 0] * u[:, 1])], axis=1)

    ab = cross(a, b)
    signs = np.repeat(sign.ravel()[cubes], counts)
    volume_terms = signs * (ab[:, 0] * c[:, 0] + ab[:, 1] * c[:, 1] + ab[:, 2] * c[:, 2])
    ab = cross(a - c, b - c)
    ab *= ab
    area_terms = 0.5 * np.sqrt(ab[:, 0] + ab[:, 1] + ab[:, 2])
    # *surfaceArea = 0; *surfaceArea += term, one triangle after the other
    area = np.add.accumulate(np.concatenate([[0.0], area_terms]))[-1]
    volume = np.add.accumulate(np.concatenate([[0.0], volume_terms]))[-1]
    return float(area), float(volume / 6)


def _diameter_vertices(configuration: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The mesh vertices cshape.c stores for the diameters (their order does not matter for a maximum)."""
    points = []
    for corner, edge in DIAMETER_VERTICES:
        cubes = np.flatnonzero((configuration >> corner) & 1)
        corner_index = np.stack(np.unravel_index(cubes, configuration.shape), axis=1).astype(np.float64)
        points.append((corner_index + EDGE_POINTS[edge]) * spacing)
    return np.concatenate(points)


def _max_squared_distance(points: np.ndarray) -> float:
    """Largest squared distance over all pairs (exact here: coordinates are multiples of 1/2)."""
    if len(points) < 2:
        return 0.0
    best = 0.0
    step = max(1, PAIR_BLOCK // len(points))
    for start in range(0, len(points), step):
        best = max(best, float(cdist(points[start:start + step], points, "sqeuclidean").max()))
    return best


def _line_extremes(points: np.ndarray, along: int) -> np.ndarray:
    """The first and last point on each line parallel to axis ``along``: no other point can be extreme."""
    others = [axis for axis in range(points.shape[1]) if axis != along]
    order = np.lexsort((points[:, along], *(points[:, axis] for axis in others[::-1])))
    ordered = points[order]
    keys = ordered[:, others]
    new_line = np.ones(len(ordered), dtype=bool)
    new_line[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    last = np.roll(new_line, -1)
    return ordered[new_line | last]


def _max_3d(points: np.ndarray) -> float:
    candidates = _line_extremes(points, 2)
    try:
        candidates = candidates[ConvexHull(candidates).vertices]
    except (QhullError, ValueError):  # fewer than 4 points, or all in one plane: compare them all
        pass
    return _max_squared_distance(candidates)


def _max_in_planes(points: np.ndarray, axis: int) -> float:
    """Largest squared distance between two points with the same coordinate along ``axis``."""
    best = 0.0
    order = np.argsort(points[:, axis], kind="stable")
    ordered = points[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:, axis] != ordered[:-1, axis]]))
    ends = np.concatenate([starts[1:], [len(ordered)]])
    in_plane = [a for a in range(3) if a != axis]
    for start, end in zip(starts, ends):
        if end - start > 1:
            plane = ordered[start:end]
            best = max(best, _max_squared_distance(_line_extremes(plane, in_plane[1])))
    return best


def mesh_coefficients(mask: np.ndarray, spacing: np.ndarray) -> tuple[float, float, tuple[float, ...]] | None:
    """``cShape.calculate_coefficients(mask, spacing)``: surface area, volume and the four maximum diameters.

    ``mask`` is pyradiomics' padded boolean mask (z, y, x) and ``spacing`` its
    (z, y, x) spacing. Returns None unless the spacing is 1 in every direction.

    Parameters
    ----------
    mask : np.ndarray
        Boolean 3D mask in numpy (z, y, x) order, padded by one voxel as pyradiomics pads it.
    spacing : np.ndarray
        Voxel spacing (mm) in (z, y, x) order.

    Returns
    -------
    tuple of (float, float, tuple of float) or None
        Surface area (mm^2), volume (mm^3) and the maximum 2D diameters of the
        slice (z), column (y) and row (x) planes then the maximum 3D diameter
        (mm), as ``cShape`` returns them; all diameters 0 for fewer than two mesh
        vertices. None when ``mask`` is not 3D or the spacing is not 1 mm
        everywhere (the caller then uses ``cShape``).
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    if mask.ndim != 3 or not np.all(spacing == 1.0):
        return None
    configuration, sign = _cube_configurations(mask)
    area, volume = _surface_and_volume(configuration, sign, spacing)
    vertices = _diameter_vertices(configuration, spacing)
    if len(vertices) < 2:
        return area, volume, (0.0, 0.0, 0.0, 0.0)
    diameters = (_max_in_planes(vertices, 0), _max_in_planes(vertices, 1), _max_in_planes(vertices, 2),
                 _max_3d(vertices))
    return area, volume, tuple(float(np.sqrt(d)) for d in diameters)
