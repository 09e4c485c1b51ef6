"""Read and write 3D Slicer segmentation files (``.seg.nrrd``) without Slicer.

A ``.seg.nrrd`` is an NRRD labelmap (3D, or 4D with one layer per slice of the
first axis when segments overlap) plus ``SegmentN_*`` key/value fields that name
each segment, its label value, layer, colour and tags. Slicer keeps facts about a
segment in its tags, so the lesion's site travels in the tag ``SITE_TAG`` and
survives saving and loading in Slicer (checked with slicer-core in the tests).
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import nrrd
import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .files import atomic_write
from .sites import SITE_TAG

__all__ = ["SITE_TAG", "Segment", "read_seg_nrrd", "write_seg_nrrd"]
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


@dataclass
class Segment:
    """One segment of a segmentation: a binary mask with its name, colour and tags."""

    segment_id: str
    name: str
    mask: sitk.Image
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    tags: dict[str, str] = field(default_factory=dict)


def _parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for item in text.split("|"):
        if item:
            key, _, value = item.partition(":")
            tags[key] = value
    return tags


def _format_tags(tags: dict[str, str]) -> str:
    return "".join(f"{key}:{value}|" for key, value in tags.items())


def _geometry(header: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Origin (LPS, mm) and a 3x3 matrix whose columns are the voxel axes (LPS, mm)."""
    space = str(header.get("space", "left-posterior-superior")).lower()
    directions = np.asarray(header["space directions"], dtype=float)
    directions = directions[~np.isnan(directions).any(axis=1)]  # drop the 'none' row of a 4D list axis
    origin = np.asarray(header.get("space origin", [0.0, 0.0, 0.0]), dtype=float)
    if space in ("right-anterior-superior", "ras"):
        directions = directions @ _RAS_TO_LPS
        origin = _RAS_TO_LPS @ origin
    elif space not in ("left-posterior-superior", "lps"):
        raise InputError(f"Segmentation '{path}': NRRD space '{space}' is not supported; "
                         "save it from Slicer as .seg.nrrd (LPS or RAS).")
    return origin, directions.T


def _image(array_zyx: np.ndarray, origin: np.ndarray, axes: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in (axes / spacing).ravel()))
    return image


def read_seg_nrrd(path: str | os.PathLike) -> list[Segment]:
    """All segments of a ``.seg.nrrd``, each as a binary uint8 mask on the file's grid."""
    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except (OSError, nrrd.NRRDError) as error:
        raise InputError(f"Segmentation '{path}': cannot be read as NRRD ({error}).") from error
    if data.ndim == 3:
        data = data[np.newaxis]
    elif data.ndim != 4:
        raise InputError(f"Segmentation '{path}': a {data.ndim}D array; a .seg.nrrd holds a 3D labelmap "
                         "or a 4D stack of layers.")
    indices = sorted({int(key[7:].split("_")[0]) for key in header if key.startswith("Segment") and key[7:8].isdigit()})
    if not indices:
        raise InputError(f"Segmentation '{path}': no SegmentN_ fields; it is a plain labelmap, not a Slicer "
                         "segmentation. Pass it as a label map instead.")
    if "space directions" not in header:
        raise InputError(f"Segmentation '{path}': no 'space directions' field, so its position in the patient is "
                         "unknown. Save it again from Slicer.")
    origin, axes = _geometry(header, path)
    segments = []
    for index in indices:
        prefix = f"Segment{index}_"
        layer = int(header.get(prefix + "Layer", 0))
        label = int(header.get(prefix + "LabelValue", 1))
        mask_xyz = data[layer] == label
        color = tuple(float(c) for c in str(header.get(prefix + "Color", "0.5 0.5 0.5")).split())
        segments.append(Segment(
            segment_id=str(header.get(prefix + "ID", f"Segment_{index + 1}")),
            name=str(header.get(prefix + "Name", f"Segment_{index + 1}")),
            mask=_image(np.transpose(mask_xyz, (2, 1, 0)), origin, axes),
            color=color,  # type: ignore[arg-type]
            tags=_parse_tags(str(header.get(prefix + "Tags", ""))),
        ))
    return segments


def _layers(segments: list[Segment]) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Pack masks into as few labelmap layers as overlaps allow: (layers, x, y, z), (layer, label) per segment."""
    shape_xyz = segments[0].mask.GetSize()
    layers: list[np.ndarray] = []
    placement = []
    for segment in segments:
        mask = np.transpose(sitk.GetArrayViewFromImage(segment.mask) != 0, (2, 1, 0))
        for layer_index, layer in enumerate(layers):
            if not np.any(layer[mask]):
                break
        else:
            layers.append(np.zeros(shape_xyz, dtype=np.uint8))
            layer_index = len(layers) - 1
        label = int(layers[layer_index].max()) + 1
        layers[layer_index][mask] = label
        placement.append((layer_index, label))
    return np.stack(layers), placement


def write_seg_nrrd(path: str | os.PathLike, segments: list[Segment], overwrite: bool = False) -> Path:
    """Write segments (all on one grid) as a ``.seg.nrrd`` that Slicer opens.

    Written to a temporary name and renamed, so a failed write never leaves a
    half file; refuses to replace an existing file unless ``overwrite``.
    """
    path = Path(path)
    if not segments:
        raise InputError(f"Segmentation '{path}': nothing to write; there are no segments.")
    if path.exists() and not overwrite:
        raise InputError(f"Segmentation '{path}' already exists; choose another name (it is not overwritten).")
    reference = segments[0].mask
    for segment in segments[1:]:
        same = (segment.mask.GetSize() == reference.GetSize()
                and np.allclose(segment.mask.GetOrigin(), reference.GetOrigin(), atol=1e-4)
                and np.allclose(segment.mask.GetSpacing(), reference.GetSpacing(), atol=1e-6)
                and np.allclose(segment.mask.GetDirection(), reference.GetDirection(), atol=1e-6))
        if not same:
            raise InputError(f"Segment '{segment.name}': its grid differs from segment '{segments[0].name}'; "
                             "resample all segments onto one grid before writing.")
    stacked, placement = _layers(segments)
    spacing = np.array(reference.GetSpacing())
    axes = np.array(reference.GetDirection()).reshape(3, 3) * spacing
    header: dict = {
        "type": "unsigned char",
        "encoding": "gzip",
        "space": "left-posterior-superior",
        "space origin": np.array(reference.GetOrigin(), dtype=float),
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    if stacked.shape[0] == 1:
        data = stacked[0]
        header["kinds"] = ["domain", "domain", "domain"]
        header["space directions"] = axes.T
    else:
        data = stacked
        header["kinds"] = ["list", "domain", "domain", "domain"]
        header["space directions"] = np.vstack([np.full(3, np.nan), axes.T])
    for index, (segment, (layer, label)) in enumerate(zip(segments, placement)):
        mask = sitk.GetArrayViewFromImage(segment.mask) != 0
        nonzero = np.nonzero(mask)
        extent = " ".join(f"{int(nonzero[axis].min())} {int(nonzero[axis].max())}" if mask.any() else "0 -1"
                          for axis in (2, 1, 0))
        prefix = f"Segment{index}_"
        header.update({
            prefix + "ID": segment.segment_id,
            prefix + "Name": segment.name,
            prefix + "NameAutoGenerated": "0",
            prefix + "Color": " ".join(f"{c:.6g}" for c in segment.color),
            prefix + "ColorAutoGenerated": "0",
            prefix + "LabelValue": str(label),
            prefix + "Layer": str(layer),
            prefix + "Extent": extent,
            prefix + "Tags": _format_tags(segment.tags),
        })
    buffer = io.BytesIO()
    nrrd.write(buffer, data, header)
    # pynrrd stamps the time in a comment line; without it the same segments give the same bytes.
    content = re.sub(rb"# on [^\n]*\(GMT\)\.\n", b"", buffer.getvalue(), count=1)
    return atomic_write(path, lambda name: Path(name).write_bytes(content))
