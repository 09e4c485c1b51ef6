"""NIfTI files whose two geometries disagree: which one was read, and how far apart they put the voxels.

A NIfTI header places the voxels twice: the qform (a rotation stored as a
quaternion, the pixel spacing and an offset) and the sform (a 3 x 4 matrix).
Writers are meant to keep them consistent, but edited, registered or converted
files often are not. ITK, and so SimpleITK, Slicer and abcir, then reads one of
them by its own rule (``NiftiImageIO::SetImageIOOrientationFromNIfTI``: the
sform when it is a rotation with the pixel spacing and labelled scanner
anatomical, or when it is very close to the qform; else the qform), while other
software (FSL, nibabel) prefers the sform whenever its code is set. Nothing
says the image is read differently elsewhere, so a lesion drawn in another
program may not lie where abcir reads it.

The header is parsed here (NIfTI-1 and NIfTI-2, either byte order, gzipped or
not) to build both matrices exactly as ``nifti1_io`` does; which one ITK used
is found by comparing them with the geometry SimpleITK returned, so ITK's rule
is not re-implemented. The header also says how many bytes the voxels take:
ITK reads a file cut short without an error, ``voxel_data_problem`` tells.
"""

from __future__ import annotations

import gzip
import logging
import math
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

log = logging.getLogger(__name__)

# The two geometries must place every voxel within this distance of each other (mm); below it they are the
# same placement written with float32 rounding (a quaternion is stored to ~1e-7, offsets to ~1e-4 mm).
QFORM_SFORM_TOLERANCE_MM = 0.1
# How close the image SimpleITK returned must be to a geometry to be called read with it (mm, cosines).
READ_WITH_TOLERANCE = 1e-3
NIFTI_SUFFIXES = (".nii", ".nii.gz")

# Byte offsets and formats of the fields used (NIfTI-1: nifti1.h, 348-byte header; NIfTI-2: nifti2.h, 540).
_LAYOUTS = {
    348: {"dim": (40, "8h"), "bitpix": (72, "h"), "pixdim": (76, "8f"), "vox_offset": (108, "f"),
          "codes": (252, "2h"), "quatern": (256, "6f"), "srow": (280, "12f")},
    540: {"bitpix": (14, "h"), "dim": (16, "8q"), "pixdim": (104, "8d"), "vox_offset": (168, "q"),
          "codes": (344, "2i"), "quatern": (352, "6d"), "srow": (400, "12d")},
}


@dataclass(frozen=True)
class NiftiGeometry:
    """Both placements of a NIfTI header, as 4 x 4 voxel-index-to-RAS matrices (mm), with their codes."""

    size: tuple[int, int, int]
    qform_code: int
    sform_code: int
    qform: np.ndarray
    sform: np.ndarray


def _header_bytes(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        return handle.read(540)


def _header_fields(raw: bytes) -> Callable[[str], tuple] | None:
    """A reader of the named fields of NIfTI-1/-2 header bytes ``raw`` (either byte order), or None when ``raw``
    is not one; the reader raises ValueError for a field beyond the bytes given."""
    for order in ("<", ">"):
        if len(raw) >= 4 and struct.unpack(order + "i", raw[:4])[0] in _LAYOUTS:
            layout = _LAYOUTS[struct.unpack(order + "i", raw[:4])[0]]
            break
    else:
        return None

    def field(name: str) -> tuple:
        offset, form = layout[name]
        size = struct.calcsize(order + form)
        if len(raw) < offset + size:
            raise ValueError("short header")
        return struct.unpack(order + form, raw[offset:offset + size])
    return field


def read_nifti_geometry(path: str | os.PathLike) -> NiftiGeometry | None:
    """The qform and sform of a NIfTI-1/-2 header, or None when the file is not one (or is cut short).

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii`` or ``.nii.gz`` file (gzip when the name ends in ``.gz``); either byte order.

    Returns
    -------
    NiftiGeometry or None
        Image size, qform and sform codes and both voxel-index-to-RAS matrices
        (mm); None when the header size field is not NIfTI-1 or -2 or the
        header is shorter than its fields.

    Raises
    ------
    OSError
        If the file cannot be opened, or a ``.gz`` file is not gzip.
    EOFError
        If a gzip file ends before its stream does.
    """
    field = _header_fields(_header_bytes(Path(path)))
    if field is None:
        return None
    try:
        dim, pixdim, (qform_code, sform_code) = field("dim"), field("pixdim"), field("codes")
        quatern, srow = field("quatern"), field("srow")
    except ValueError:
        return None
    sform = np.vstack([np.array(srow, dtype=np.float64).reshape(3, 4), [0.0, 0.0, 0.0, 1.0]])
    size = tuple(int(d) for d in (list(dim[1:4]) + [1, 1, 1])[:3])
    return NiftiGeometry(size, int(qform_code), int(sform_code), _qform(quatern, pixdim), sform)


def _stored_bytes(path: Path) -> int:
    """The bytes of the file, uncompressed when its name ends in .gz; raises EOFError when a gzip stream is cut
    short, OSError (``gzip.BadGzipFile``) or zlib.error when it is damaged.

    The whole stream is decompressed, which takes about as long as ITK's own read (0.49 s against 0.44 s for a
    512 x 512 x 300 int16 CT): ITK reads a damaged stream without an error too, and only the CRC at its end
    tells; the uncompressed size in its last four bytes would only tell a file cut short.
    """
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            total += len(chunk)
    return total


def voxel_data_problem(path: str | os.PathLike) -> str | None:
    """What is wrong with the voxel data of the NIfTI file ``path``, or None when they are whole.

    ITK reads a ``.nii`` or ``.nii.gz`` file that was cut short (an interrupted copy or download) without an
    error, leaving the missing voxels at 0 or undefined; the header says how many bytes the voxels take.

    Parameters
    ----------
    path : str or os.PathLike
        An image file; only names ending in a NIfTI extension are examined (gzip when the name ends in .gz).

    Returns
    -------
    str or None
        The problem, e.g. "the file ends after 1.2 MB of the 2.7 MB of voxel data its header announces", or
        "its gzip data are damaged (...)"; None when the voxel data are whole, the file is not NIfTI or its
        header cannot be read (the reader reports those).
    """
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        return None
    try:
        field = _header_fields(_header_bytes(path))
        if field is None:
            return None
        dim, (bitpix,), (vox_offset,) = field("dim"), field("bitpix"), field("vox_offset")
    except (OSError, EOFError, ValueError):
        return None
    axes = min(max(int(dim[0]), 1), 7)
    needed = int(vox_offset) + math.prod(int(d) for d in dim[1:axes + 1]) * int(bitpix) // 8
    try:
        stored = _stored_bytes(path)
    except EOFError:
        return "the file is cut short: its gzip data end before their end marker"
    except (OSError, zlib.error) as error:
        return f"its gzip data are damaged ({error})"
    if stored < needed:
        return (f"the file is cut short: it ends after {stored} of the {needed} bytes its header announces "
                "(header and voxel data)")
    return None


def _qform(quatern: tuple, pixdim: tuple) -> np.ndarray:
    """``nifti_quatern_to_mat44`` (nifti1_io.c) in float64: rotation from (b, c, d), spacing, qfac, offset."""
    b, c, d, qx, qy, qz = (float(v) for v in quatern)
    a = 1.0 - (b * b + c * c + d * d)
    if a < 1e-7:  # a 180-degree rotation stored with rounding: renormalise (b, c, d), a = 0
        norm = 1.0 / np.sqrt(b * b + c * c + d * d)
        a, b, c, d = 0.0, b * norm, c * norm, d * norm
    else:
        a = float(np.sqrt(a))
    spacing = [float(p) if p > 0 else 1.0 for p in pixdim[1:4]]
    if pixdim[0] < 0:  # qfac: the third axis is mirrored
        spacing[2] = -spacing[2]
    rotation = np.array([[a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
                         [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
                         [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * np.array(spacing)
    matrix[:3, 3] = (qx, qy, qz)
    return matrix


def _corners(size: tuple[int, int, int]) -> np.ndarray:
    """Homogeneous voxel indices of the image's 8 corner voxels (4 x 8)."""
    last = [max(n - 1, 0) for n in size]
    corners = [(i, j, k) for i in (0, last[0]) for j in (0, last[1]) for k in (0, last[2])]
    return np.vstack([np.array(corners, dtype=np.float64).T, np.ones(8)])


def _axes_angle_degrees(first: np.ndarray, second: np.ndarray) -> float | None:
    """The rotation between two matrices' voxel axes (degrees), None when one is the other's mirror image."""
    unit = [m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0) for m in (first, second)]
    relative = unit[0].T @ unit[1]
    if np.linalg.det(relative) < 0:
        return None
    return float(np.degrees(np.arccos(np.clip((np.trace(relative) - 1.0) / 2.0, -1.0, 1.0))))


def _matches(matrix: np.ndarray, image: sitk.Image) -> bool:
    """Whether ``image`` (LPS, as ITK returns it) has ``matrix``'s origin and axes (RAS)."""
    lps = np.diag([-1.0, -1.0, 1.0])
    origin = lps @ matrix[:3, 3]
    axes = lps @ (matrix[:3, :3] / np.linalg.norm(matrix[:3, :3], axis=0))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return (np.allclose(origin, image.GetOrigin(), atol=READ_WITH_TOLERANCE)
            and np.allclose(axes, direction, atol=READ_WITH_TOLERANCE))


def qform_sform_warning(path: str | os.PathLike, image: sitk.Image) -> str | None:
    """A warning when the NIfTI file ``path`` (read as ``image``) holds a qform and an sform that disagree.

    Both must be set (code > 0); they disagree when they place some voxel of the
    image more than ``QFORM_SFORM_TOLERANCE_MM`` apart (the largest distance is at
    a corner, the difference being affine). The warning says which one the image
    was read with and how far apart they are (mm, and the rotation between their
    axes in degrees). Anything else (not NIfTI, one form only) gives None.

    Parameters
    ----------
    path : str or os.PathLike
        The image file; only names ending in a NIfTI extension are examined.
    image : SimpleITK.Image
        The image SimpleITK read from ``path`` (LPS), to tell which form it used.

    Returns
    -------
    str or None
        A one-sentence warning for the user, or None when there is nothing to
        warn about or the header cannot be read.
    """
    path = Path(path)
    if not path.name.lower().endswith(NIFTI_SUFFIXES):
        return None
    try:
        geometry = read_nifti_geometry(path)
    except (OSError, EOFError):  # SimpleITK read it; a header this module cannot open gives no warning
        return None
    if geometry is None or geometry.qform_code <= 0 or geometry.sform_code <= 0:
        return None
    corners = _corners(geometry.size)
    distance = float(np.linalg.norm((geometry.qform @ corners - geometry.sform @ corners)[:3], axis=0).max())
    if distance <= QFORM_SFORM_TOLERANCE_MM:
        return None
    used = [name for name, matrix in (("sform", geometry.sform), ("qform", geometry.qform)) if _matches(matrix, image)]
    angle = _axes_angle_degrees(geometry.qform, geometry.sform)
    axes = "one is the other's mirror image" if angle is None else f"their axes differ by {angle:.2f} degrees"
    read_with = (f"it was read with the {used[0]} (ITK's rule)" if used else
                 "it was read with neither exactly (ITK corrected a skewed sform)")
    return (f"NIfTI '{path.name}': its qform and sform disagree, placing voxels up to {distance:.1f} mm apart "
            f"({axes}); {read_with}. Software that uses the other one puts the image elsewhere: check that the "
            "lesions were drawn on this placement, or save the file again with one geometry.")
