"""Reading a CT and checking that it is one: 3D, one component, Hounsfield units.

A DICOM folder goes through ``dicom.series`` (series choice and slice checks);
NRRD, NIfTI and MetaImage files are read with SimpleITK. Voxel data are never
changed here: resampling belongs to feature extraction, where pyradiomics does it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..files import as_typed, itk_path
from .nifti import qform_sform_warning, voxel_data_problem

log = logging.getLogger(__name__)

CT_FILE_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")
# Any body CT holds air (-1000 HU) or at least fat (-100 HU); an image whose
# minimum is above this is not in Hounsfield units.
MAX_PLAUSIBLE_CT_MINIMUM_HU = -100.0


def has_suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Case-insensitive test of a file name's ending, for double endings such as .nii.gz.

    Parameters
    ----------
    path : pathlib.Path
        The file; only its name is looked at.
    suffixes : tuple of str
        Lower-case endings with their dot, e.g. ``CT_FILE_SUFFIXES``.

    Returns
    -------
    bool
        True when the name ends with one of ``suffixes``.
    """
    name = path.name.lower()
    return any(name.endswith(suffix) for suffix in suffixes)


def file_stem(path: str | os.PathLike) -> str:
    """A file's name without its image extension ('P 1.2.nii.gz' -> 'P 1.2', 'A.seg.nrrd' -> 'A').

    Not ``name.split('.')[0]``: TCIA names such as ``1.000000-P4P113 Gated 40.0B`` hold dots.
    Names with another ending are returned whole.

    Parameters
    ----------
    path : str or os.PathLike
        The file (or folder); only its last name is used.

    Returns
    -------
    str
        The name without the longest matching image extension (``.seg.nrrd`` or
        one of ``CT_FILE_SUFFIXES``, any case); the whole name when none
        matches or the name is nothing but the extension. It names a patient or
        lesion in files, so bytes an ASCII locale could not decode are read as
        UTF-8 (``files.as_typed``).
    """
    name = as_typed(Path(path).name)
    suffix = max((s for s in (".seg.nrrd", *CT_FILE_SUFFIXES) if name.lower().endswith(s)), key=len, default="")
    return name[:len(name) - len(suffix)] if len(name) > len(suffix) else name


def read_image_file(path: Path, what: str) -> tuple[sitk.Image, str | None]:
    """One image file read with SimpleITK, and the NIfTI geometry warning if its qform and sform disagree.

    Parameters
    ----------
    path : pathlib.Path
        An existing NRRD, NIfTI or MetaImage file.
    what : str
        How a message names the input ("CT", "Lesions").

    Returns
    -------
    tuple of (SimpleITK.Image, str or None)
        The image as stored, and ``nifti.qform_sform_warning``'s text (None when there is nothing to say).

    Raises
    ------
    InputError
        If SimpleITK cannot read the file (the message ends with ITK's own last line), the file's name is not
        UTF-8 (``itk_path``), or it is a NIfTI file cut short or damaged (``nifti.voxel_data_problem``), which
        ITK reads without an error.
    """
    try:
        image = sitk.ReadImage(itk_path(path, what))
    except RuntimeError as error:
        raise InputError(f"{what} '{path}': cannot be read ({_itk_reason(error)}); give a whole image file "
                         f"({', '.join(CT_FILE_SUFFIXES)}), copied again if it may have been cut short.") from error
    problem = voxel_data_problem(path)
    if problem:
        raise InputError(f"{what} '{path}': {problem}. Copy the file again from where it came from.")
    return image, qform_sform_warning(path, image)


def _itk_reason(error: RuntimeError) -> str:
    """The line of an ITK exception that says what is wrong: its last, unless that is a leftover errno
    ('Reason: No such file or directory' for a MetaImage cut short), without ITK's object address."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    line = lines[-2] if len(lines) > 1 and lines[-1].startswith("Reason:") else lines[-1]
    return re.sub(r"^ITK ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", line)


def read_image_with_warnings(path: str | os.PathLike,
                             series_uid: str | None = None) -> tuple[sitk.Image, tuple[str, ...]]:
    """A volume from a DICOM folder or one NRRD/NIfTI/MetaImage file, as stored (no checks), and what the
    reader noticed on the way (DICOM: tilt resampled, anonymised UIDs; NIfTI: a qform and an sform that
    disagree) for the result to carry.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM series folder, or one file ending in one of ``CT_FILE_SUFFIXES``.
    series_uid : str or None, optional
        For a folder holding several series, the SeriesInstanceUID to read;
        None lets ``dicom.series.read_dicom_ct`` choose. Ignored for a file.

    Returns
    -------
    tuple of (SimpleITK.Image, tuple of str)
        The volume as stored (voxel values unchanged) and the reader's
        warnings, empty when there were none.

    Raises
    ------
    InputError
        If ``path`` does not exist, is a file of an unsupported type, cannot be
        read, or is a DICOM folder that ``read_dicom_ct`` refuses.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"CT '{path}': no such file or folder.")
    if path.is_dir():
        from ..dicom.series import read_dicom_ct

        dicom = read_dicom_ct(path, series_uid=series_uid)
        return dicom.image, tuple(dicom.warnings)
    if not has_suffix(path, CT_FILE_SUFFIXES):
        raise InputError(f"CT '{path}': unsupported file type; give a DICOM series folder or one "
                         f"{', '.join(CT_FILE_SUFFIXES)} file.")
    image, warning = read_image_file(path, "CT")
    if warning:
        log.warning("CT: %s", warning)
    return image, (warning,) if warning else ()


def read_image(path: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read a volume from a DICOM folder or one NRRD/NIfTI/MetaImage file, as stored (no checks).

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM series folder, or one file ending in one of ``CT_FILE_SUFFIXES``.
    series_uid : str or None, optional
        SeriesInstanceUID to read from a folder with several series; None lets the reader choose.

    Returns
    -------
    SimpleITK.Image
        The volume as stored; the reader's warnings are logged or dropped
        (``read_image_with_warnings`` returns them).

    Raises
    ------
    InputError
        As ``read_image_with_warnings``.
    """
    return read_image_with_warnings(path, series_uid)[0]


def read_ct_with_warnings(path: str | os.PathLike,
                          series_uid: str | None = None) -> tuple[sitk.Image, tuple[str, ...]]:
    """``read_ct`` plus the reader's warnings.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM series folder, or one file ending in one of ``CT_FILE_SUFFIXES``.
    series_uid : str or None, optional
        SeriesInstanceUID to read from a folder with several series; None lets the reader choose.

    Returns
    -------
    tuple of (SimpleITK.Image, tuple of str)
        The CT (HU) and the reader's warnings.

    Raises
    ------
    InputError
        If the image cannot be read (see ``read_image_with_warnings``) or is not
        a 3-D CT in HU (see ``check_ct``).
    """
    image, warnings = read_image_with_warnings(path, series_uid)
    check_ct(image, str(path))
    return image, warnings


def read_ct(path: str | os.PathLike, series_uid: str | None = None) -> sitk.Image:
    """Read a CT from a DICOM folder or one image file, and check it is a 3D CT in HU.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM series folder, or one file ending in one of ``CT_FILE_SUFFIXES``.
    series_uid : str or None, optional
        SeriesInstanceUID to read from a folder with several series; None lets the reader choose.

    Returns
    -------
    SimpleITK.Image
        The CT, voxel values in HU as stored.

    Raises
    ------
    InputError
        If the image cannot be read or is not a 3-D CT in HU.
    """
    return read_ct_with_warnings(path, series_uid)[0]


def check_ct(image: sitk.Image, name: str) -> None:
    """Refuse images that cannot be a CT volume in Hounsfield units, saying what is wrong.

    Parameters
    ----------
    image : SimpleITK.Image
        The image to check.
    name : str
        How messages name it, e.g. its path.

    Raises
    ------
    InputError
        If the image is not 3-D, has more than one component per voxel, is a
        single slice along some axis, or its minimum is above -100 HU (so it is
        not in Hounsfield units).
    """
    if image.GetDimension() != 3:
        raise InputError(f"CT '{name}': a {image.GetDimension()}D image; a CT volume is 3D. "
                         "Give the whole series, not a single slice.")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f"CT '{name}': {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(colour or vector image); a CT has one intensity per voxel.")
    if min(image.GetSize()) < 2:
        raise InputError(f"CT '{name}': size {image.GetSize()} is a single slice; a CT volume has several slices.")
    array = sitk.GetArrayViewFromImage(image)
    low, high = float(array.min()), float(array.max())
    if low > MAX_PLAUSIBLE_CT_MINIMUM_HU:
        raise InputError(f"CT '{name}': intensities range {low:g}..{high:g}, which does not look like CT in "
                         "Hounsfield units (air -1000, fat -100, liver +60 HU). Give the original CT in HU, "
                         "not a screenshot or a rescaled export.")


def voxel_hash(image: sitk.Image) -> str:
    """SHA-256 of an image's voxels and geometry: the identity of what was measured.

    Parameters
    ----------
    image : SimpleITK.Image
        The image; its voxel bytes, pixel type, size, spacing (mm), origin (mm)
        and direction are hashed, geometry rounded to 9 decimals.

    Returns
    -------
    str
        The hex digest (64 characters).
    """
    digest = hashlib.sha256()
    digest.update(memoryview(np.ascontiguousarray(sitk.GetArrayViewFromImage(image))).cast("B"))
    digest.update(image.GetPixelIDTypeAsString().encode())
    for values in (image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()):
        # 9 decimals: header rounding (0.9765625 read as 0.9765625000000001) must not change the identity.
        digest.update(np.asarray(values, dtype=float).round(9).tobytes())
    return digest.hexdigest()


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a DICOM Part 10 file (the 'DICM' marker after the 128-byte preamble), whatever its name.

    Parameters
    ----------
    path : str or os.PathLike
        Any path.

    Returns
    -------
    bool
        False as well when the path cannot be opened (missing, a folder, no permission).
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes.

    Parameters
    ----------
    path : str or os.PathLike
        The file, read in 1 MiB blocks.

    Returns
    -------
    str
        The hex digest (64 characters).

    Raises
    ------
    OSError
        If the file cannot be opened or read.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
