"""DICOM series for the DICOM tests: small synthetic CTs and copies of the real series damaged on purpose.

Synthetic slices are uncompressed, so the expected Hounsfield units are computed
here from the stored values (stored x slope + intercept), independently of GDCM.
Damaged copies of the real series change headers only; their JPEG 2000 pixel
data stay as the scanner wrote them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def uid(*words: str) -> str:
    """A reproducible UID for a test object."""
    return generate_uid(entropy_srcs=["abcir dicom test", *words])


def synthetic_series(folder: Path, *, slices: int = 8, rows: int = 24, columns: int = 20,
                     pixel_spacing: tuple[float, float] = (0.8, 0.7), step: float = 2.5,
                     origin: Sequence[float] = (-10.0, -20.0, 100.0),
                     orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
                     in_plane_shift_mm: Sequence[float] = (0.0, 0.0, 0.0),
                     slope: float = 1.0, intercept: float = -1024.0, modality: str = "CT",
                     image_type: str = "ORIGINAL\\PRIMARY\\AXIAL", series: str = "ct", description: str = "Body 1.25",
                     thickness: float = 1.25, kernel: str = "B30f", series_number: int = 2,
                     sop_class: str = CTImageStorage, patient_id: str = "ABC-001", seed: int = 0,
                     names: Callable[[int], str] | None = None, first_instance: int = 1) -> np.ndarray:
    """Write one series (slice k at origin + k*step along the normal + k*in_plane_shift_mm); return its HU.

    The returned array is (slices, rows, columns) in slice order along the normal. Slice k has
    instance number ``first_instance + k``, which also makes its SOPInstanceUID.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 2000, size=(slices, rows, columns)).astype(np.int16)
    stored[:, :2, :] = 0  # a band of air
    row_dir, col_dir = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row_dir, col_dir)
    for k in range(slices):
        position = np.array(origin, float) + k * step * normal + k * np.array(in_plane_shift_mm, float)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = uid(series, str(first_instance + k))
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("study"), uid(series)
        ds.FrameOfReferenceUID = uid("frame")
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", patient_id, "19700101", "F"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240102", "101500", "1", "A1"
        ds.ReferringPhysicianName = ""
        ds.Modality, ds.SeriesNumber, ds.SeriesDescription = modality, series_number, description
        ds.Manufacturer = "Test"
        ds.ImageType = image_type.split("\\")
        ds.InstanceNumber = first_instance + k
        ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in orientation]
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness, ds.ConvolutionKernel = thickness, kernel
        ds.PositionReferenceIndicator = ""
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, intercept, "HU"
        ds.KVP = 120
        ds.PixelData = stored[k].tobytes()
        name = names(k) if names else f"IM{k:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
    return stored.astype(np.float64) * slope + intercept


def copy_series(source: Path, target: Path, edit: Callable[[int, Dataset], None] | None = None,
                drop: Sequence[int] = (), restore_uids: bool = False) -> list[Path]:
    """Copy the real series, slice k = k-th by instance number; ``edit(k, dataset)`` changes headers.

    ``restore_uids`` gives the copy what the anonymiser removed (Study/Series/SOP UIDs), as a
    UID-remapping anonymiser would have kept them.
    """
    target.mkdir(parents=True, exist_ok=True)
    files = sorted(source.iterdir(), key=lambda p: int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber))
    written = []
    for k, path in enumerate(files):
        if k in drop:
            continue
        ds = pydicom.dcmread(path)
        if restore_uids:
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID = uid("real study"), uid("real series")
        if edit:
            edit(k, ds)
        ds.save_as(target / path.name)
        written.append(target / path.name)
    return written
