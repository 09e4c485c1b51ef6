""".seg.nrrd files in the layouts older Slicer versions wrote, built here byte by byte from the format.

Nothing is copied from another project: the NRRD header follows the NRRD0004
specification (teem.sourceforge.net/nrrd/format.html: header lines, a blank line,
then the voxels, fastest axis first), and the segmentation fields follow what each
Slicer version's ``vtkMRMLSegmentationStorageNode`` writes:

- Slicer 4.6 to 4.10 (``v4.10.2``, ``WriteBinaryLabelmapRepresentation``): 3D plus a
  ``list`` axis with one component per segment, ``SegmentN_ID/Name/Color/Extent/Tags``,
  ``Segmentation_ReferenceImageExtentOffset``, no ``Layer`` or ``LabelValue``.
- Slicer 4.5 with SlicerRT (``SlicerRt/SlicerRT`` ``Segmentations/MRML``): a 4D
  ``itk::Image`` written by ITK's NRRD writer, so ``space dimension: 4`` and no
  ``space`` field, Slicer's RAS numbers written unchanged, the segment on the 4th
  (slowest) axis, and ``Segmentation_Extent`` holding the common extent whose start
  offsets the voxel index.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: A terminology entry as Slicer serialises it (vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry):
#: context ~ category ~ type ~ type modifier ~ anatomic context ~ anatomic region ~ region modifier.
TERMINOLOGY = "{context}~{category}~{type}~{modifier}~Anatomic codes - DICOM master list~{region}~^^"
GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
DICOM_MASTER = "Segmentation category and type - DICOM master list"


def terminology(type_code: str, category: str = "SCT^123037004^Anatomical Structure", modifier: str = "^^",
                region: str = "^^", context: str = GENERAL_ANATOMY) -> str:
    """A serialised terminology entry; codes as ``scheme^value^meaning``."""
    return TERMINOLOGY.format(context=context, category=category, type=type_code, modifier=modifier, region=region)


def _vector(values: Sequence[float]) -> str:
    return "(" + ",".join(repr(float(v)) for v in values) + ")"


def write_nrrd(path: Path, data: np.ndarray, fields: Sequence[tuple[str, str]], key_values: dict[str, str],
               encoding: str = "gzip") -> Path:
    """An NRRD file: ``data`` indexed fastest axis first (x, y, z, ...), header fields then ``key:=value`` pairs.

    The header is UTF-8, as Slicer writes it.
    """
    lines = ["NRRD0004", "type: unsigned char", f"dimension: {data.ndim}",
             "sizes: " + " ".join(str(size) for size in data.shape), *(f"{key}: {value}" for key, value in fields),
             f"encoding: {encoding}", *(f"{key}:={value}" for key, value in key_values.items())]
    voxels = np.asarray(data, dtype=np.uint8).tobytes(order="F")
    body = gzip.compress(voxels) if encoding == "gzip" else voxels
    path.write_bytes(("\n".join(lines) + "\n\n").encode("utf-8") + body)
    return path


def extent_of(mask_xyz: np.ndarray, start: Sequence[int] = (0, 0, 0)) -> str:
    """A segment's ``Extent`` field: its bounding box in voxel indices (plus ``start``), or empty ``0 -1 ...``."""
    if not mask_xyz.any():
        return "0 -1 0 -1 0 -1"
    indices = np.nonzero(mask_xyz)
    return " ".join(f"{int(indices[axis].min()) + start[axis]} {int(indices[axis].max()) + start[axis]}"
                    for axis in range(3))


def _segment_fields(index: int, name: str, mask_xyz: np.ndarray, tags: dict[str, str], start=(0, 0, 0),
                    color_key: str = "Color") -> dict[str, str]:
    prefix = f"Segment{index}_"
    return {prefix + "ID": f"Segment_{index + 1}", prefix + "Name": name,
            prefix + color_key: f"{0.1 * (index + 1):g} 0.5 0.5", prefix + "Extent": extent_of(mask_xyz, start),
            prefix + "Tags": "".join(f"{key}:{value}|" for key, value in tags.items())}


def slicer_410_file(path: Path, masks_xyz: Sequence[np.ndarray], names: Sequence[str], origin: Sequence[float],
                    axes: np.ndarray, space: str = "left-posterior-superior",
                    tags: Sequence[dict[str, str]] | None = None) -> Path:
    """The Slicer 4.6-4.10 layout: one list component per segment (values 0/1), no Layer or LabelValue fields.

    ``axes`` holds the voxel axes as columns (mm, in ``space``).
    """
    tags = tags or [{} for _ in masks_xyz]
    data = np.stack([np.asarray(mask, dtype=np.uint8) for mask in masks_xyz])  # list axis first (fastest)
    fields = [("space", space), ("space directions", "none " + " ".join(_vector(axes[:, a]) for a in range(3))),
              ("kinds", "list domain domain domain"), ("endian", "little"), ("space origin", _vector(origin))]
    key_values = {"Segmentation_MasterRepresentation": "Binary labelmap",
                  "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
                  "Segmentation_ReferenceImageExtentOffset": "0 0 0"}
    for index, (mask, name, segment_tags) in enumerate(zip(masks_xyz, names, tags, strict=True)):
        key_values.update(_segment_fields(index, name, mask, segment_tags))
        key_values[f"Segment{index}_NameAutoGenerated"] = "0"
        key_values[f"Segment{index}_ColorAutoGenerated"] = "0"
    return write_nrrd(path, data, fields, key_values)


def slicer_45_file(path: Path, masks_xyz: Sequence[np.ndarray], names: Sequence[str], origin_ras: Sequence[float],
                   axes_ras: np.ndarray, start: Sequence[int], tags: Sequence[dict[str, str]] | None = None) -> Path:
    """The Slicer 4.5 (SlicerRT) layout: a 4D image, segment = 4th axis, RAS numbers, no ``space`` field.

    Voxel i of the file is at RAS ``origin_ras + axes_ras @ (i + start)``; ``axes_ras`` holds axes as columns.
    """
    tags = tags or [{} for _ in masks_xyz]
    data = np.stack([np.asarray(mask, dtype=np.uint8) for mask in masks_xyz], axis=-1)  # segment slowest
    directions = [list(axes_ras[:, a]) + [0.0] for a in range(3)] + [[0.0, 0.0, 0.0, 1.0]]
    shape = masks_xyz[0].shape
    fields = [("space dimension", "4"), ("space directions", " ".join(_vector(d) for d in directions)),
              ("kinds", "domain domain domain domain"), ("endian", "little"),
              ("space origin", _vector(list(origin_ras) + [0.0]))]
    common = " ".join(f"{start[axis]} {start[axis] + shape[axis] - 1}" for axis in range(3))
    key_values = {"Segmentation_Extent": common, "Segmentation_MasterRepresentation": "Binary labelmap",
                  "Segmentation_ContainedRepresentationNames": "Binary labelmap|"}
    for index, (mask, name, segment_tags) in enumerate(zip(masks_xyz, names, tags, strict=True)):
        key_values.update(_segment_fields(index, name, mask, segment_tags, start, color_key="DefaultColor"))
    return write_nrrd(path, data, fields, key_values)


def overlapping_masks(shape_xyz: tuple[int, int, int] = (14, 12, 7)) -> list[np.ndarray]:
    """Three boxes (x, y, z index order), the first two overlapping, so that reading every segment from one
    component would give the wrong voxels."""
    masks = [np.zeros(shape_xyz, dtype=bool) for _ in range(3)]
    masks[0][2:7, 2:6, 1:4] = True
    masks[1][4:10, 3:9, 2:6] = True
    masks[2][10:13, 8:11, 0:3] = True
    return masks
