"""Read and write 3D Slicer segmentation files (``.seg.nrrd``) without Slicer.

A ``.seg.nrrd`` is an NRRD labelmap plus ``SegmentN_*`` key/value fields that name
each segment, its label value, layer, colour, extent and tags. Slicer keeps facts
about a segment in its tags, so the lesion's site travels in the tag ``SITE_TAG``
and survives saving and loading in Slicer (checked with slicer-core in the tests).

Three layouts exist, and each is read as Slicer 5.10's
``vtkMRMLSegmentationStorageNode`` reads it (``Libs/MRML/Core/``):

- Slicer 4.11 and later: a 3D labelmap, or 3D plus a list axis of layers when
  segments overlap; ``SegmentN_Layer`` and ``SegmentN_LabelValue`` place each
  segment.
- Slicer 4.6 to 4.10: 3D plus a list axis with one component per segment and no
  ``Layer``/``LabelValue`` fields. Slicer then takes layer = segment index and
  label 1 (``ReadBinaryLabelmapRepresentation``: ``segmentIndexInLayer[segmentIndex]``
  without a ``Layer`` field; ``vtkSegment``'s default ``LabelValue`` is 1).
- Slicer 4.5 with SlicerRT: a 4D image written by ITK (segment = 4th axis),
  without a ``space`` field and with a ``Segmentation_Extent`` field. Slicer reads
  it with ``ReadBinaryLabelmapRepresentation4DSpatial``, taking the header's
  numbers as RAS and the voxel index as file index + the start of
  ``Segmentation_Extent``.

In every layout a segment keeps only the voxels inside ``SegmentN_Extent`` (for
layers, the union of the extents of the layer's segments), as Slicer crops to it.
Header text is UTF-8, as Slicer writes it; a header line that is not valid UTF-8
is read as Latin-1 instead of failing.
"""

from __future__ import annotations

import io
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import nrrd
import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..files import atomic_write
from ..patient.sites import SITE_TAG

__all__ = ["SITE_TAG", "Segment", "read_seg_nrrd", "write_seg_nrrd"]
_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
_LPS_NAMES = ("left-posterior-superior", "lps")
_RAS_NAMES = ("right-anterior-superior", "ras")
# Slicer's segment label value when the file gives none (vtkSegment.cxx: LabelValue = 1).
DEFAULT_LABEL_VALUE = 1
# The legacy (Slicer 4.5) field whose presence sends Slicer to its 4D spatial reader.
LEGACY_EXTENT_FIELD = "Segmentation_Extent"
_EMPTY_EXTENT = (0, -1, 0, -1, 0, -1)


@dataclass
class Segment:
    """One segment of a segmentation: a binary mask with its name, colour and tags."""

    segment_id: str
    name: str
    mask: sitk.Image
    color: tuple[float, float, float] = (0.5, 0.5, 0.5)
    tags: dict[str, str] = field(default_factory=dict)


def _parse_tags(text: str) -> dict[str, str]:
    """Slicer's ``key:value|key:value|`` tag list; an item without ':' is skipped, as Slicer skips it."""
    tags: dict[str, str] = {}
    for item in text.split("|"):
        key, colon, value = item.partition(":")
        if colon:
            tags[key] = value
    return tags


def _format_tags(tags: dict[str, str]) -> str:
    return "".join(f"{key}:{value}|" for key, value in tags.items())


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def _read_nrrd(path: Path) -> tuple[np.ndarray, dict]:
    """Voxels (file axis order, fastest first) and header fields, the header decoded as UTF-8."""
    try:
        with open(path, "rb") as handle:
            lines = [handle.readline()]
            if not lines[0].startswith(b"NRRD"):
                raise nrrd.NRRDError("no NRRD magic line")
            while lines[-1] and lines[-1].strip():
                lines.append(handle.readline())
            header = nrrd.read_header([_decode(line) for line in lines])
            data = nrrd.read_data(header, handle, str(path))
    except (OSError, ValueError, EOFError, zlib.error, nrrd.NRRDError) as error:
        raise InputError(f"Segmentation '{path}': cannot be read as NRRD ({error}). Save it again from Slicer "
                         "as .seg.nrrd.") from error
    return data, dict(header)


def _extent(header: dict, key: str) -> tuple[int, ...] | None:
    """An extent field (i min, i max, j min, j max, k min, k max); None when absent, empty when unreadable."""
    if key not in header:
        return None
    try:
        values = tuple(int(v) for v in str(header[key]).split())
    except ValueError:
        return _EMPTY_EXTENT  # Slicer's GetImageExtentFromString leaves the extent empty
    return values if len(values) == 6 else _EMPTY_EXTENT


def _crop_to_extent(volume_xyz: np.ndarray, extent: tuple[int, ...] | None) -> np.ndarray:
    """The volume with every voxel outside ``extent`` (file index, inclusive) set to 0; None keeps all."""
    if extent is None:
        return volume_xyz
    cropped = np.zeros_like(volume_xyz)
    if all(extent[2 * axis] <= extent[2 * axis + 1] for axis in range(3)):
        box = tuple(slice(max(extent[2 * axis], 0), max(extent[2 * axis + 1] + 1, 0)) for axis in range(3))
        cropped[box] = volume_xyz[box]
    return cropped


def _union(extents: list[tuple[int, ...] | None]) -> tuple[int, ...] | None:
    """Slicer's layer extent: the union of its segments' extents, or the whole image (None) if one has none."""
    if any(extent is None for extent in extents):
        return None
    filled = [e for e in extents if all(e[2 * axis] <= e[2 * axis + 1] for axis in range(3))]
    if not filled:
        return _EMPTY_EXTENT
    union: list[int] = []
    for axis in range(3):
        union += [min(e[2 * axis] for e in filled), max(e[2 * axis + 1] for e in filled)]
    return tuple(union)


def _lps(origin: np.ndarray, axes: np.ndarray, space: str) -> tuple[np.ndarray, np.ndarray]:
    """Origin and axis columns in LPS from a header in ``space`` (LPS or RAS)."""
    return (origin, axes) if space in _LPS_NAMES else (_RAS_TO_LPS @ origin, _RAS_TO_LPS @ axes)


def _geometry(header: dict, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Origin (LPS, mm) and a 3x3 matrix whose columns are the voxel axes (LPS, mm)."""
    # Without a 'space' field ITK, and so Slicer, takes the numbers as LPS.
    space = str(header.get("space", "left-posterior-superior")).lower()
    if space not in _LPS_NAMES + _RAS_NAMES:
        raise InputError(f"Segmentation '{path}': NRRD space '{space}' is not supported; "
                         "save it from Slicer as .seg.nrrd (LPS or RAS).")
    if "space directions" not in header:
        raise InputError(f"Segmentation '{path}': no 'space directions' field, so its position in the patient is "
                         "unknown. Save it again from Slicer.")
    directions = np.asarray(header["space directions"], dtype=float)
    directions = directions[~np.isnan(directions).any(axis=1)]  # drop the 'none' row of a list axis
    origin = np.asarray(header.get("space origin", [0.0, 0.0, 0.0]), dtype=float)
    if directions.shape != (3, 3) or origin.shape != (3,):
        raise InputError(f"Segmentation '{path}': its header places {directions.shape[0]} spatial axes in a "
                         f"{origin.size}D space; a .seg.nrrd has 3. Save it again from Slicer.")
    return _lps(origin, directions.T, space)


def _image(array_zyx: np.ndarray, origin: np.ndarray, axes: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx.astype(np.uint8))
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    image.SetDirection(tuple(float(d) for d in (axes / spacing).ravel()))
    return image


def _segment_fields(header: dict, index: int) -> tuple[str, str, tuple[float, float, float], dict[str, str]]:
    """ID, name, colour and tags of segment ``index``, with Slicer's fallbacks for missing fields."""
    prefix = f"Segment{index}_"
    segment_id = str(header.get(prefix + "ID", f"Segment_{index + 1}"))
    color_text = str(header.get(prefix + "Color", header.get(prefix + "DefaultColor", "0.5 0.5 0.5")))
    try:
        color = tuple(float(c) for c in color_text.split()[:3])
    except ValueError:
        color = ()
    return (segment_id, str(header.get(prefix + "Name", segment_id)),
            color if len(color) == 3 else (0.5, 0.5, 0.5),  # type: ignore[return-value]
            _parse_tags(str(header.get(prefix + "Tags", ""))))


def _whole_number(header: dict, key: str, default: int, path: Path) -> int:
    try:
        return int(str(header.get(key, default)).strip())
    except ValueError as error:
        raise InputError(f"Segmentation '{path}': field {key} is '{header[key]}', not a whole number; the file is "
                         "damaged. Save it again from Slicer.") from error


def _labelmap_segments(path: Path, data: np.ndarray, header: dict) -> list[Segment]:
    """Segments of a Slicer 4.6+ file: a 3D labelmap or 3D plus a list axis (layers, or one per segment)."""
    directions = np.asarray(header.get("space directions", []), dtype=float)
    if data.ndim == 3:
        layers = data[np.newaxis]
    elif data.ndim == 4 and directions.ndim == 2 and len(directions) == 4 and np.isnan(directions[0]).all():
        layers = data  # the list axis comes first (fastest) in the file
    else:
        raise InputError(f"Segmentation '{path}': a {data.ndim}D image without a leading list axis; a .seg.nrrd "
                         "holds a 3D labelmap or a 3D labelmap with a list of layers. Save it again from Slicer.")
    count = 0
    while f"Segment{count}_ID" in header:  # Slicer counts segments as long as SegmentN_ID exists
        count += 1
    origin, axes = _geometry(header, path)
    # Slicer 4.11+ names each segment's layer; before, every segment had its own component, in segment order.
    placement = [(_whole_number(header, f"Segment{index}_Layer", index, path),
                  _whole_number(header, f"Segment{index}_LabelValue", DEFAULT_LABEL_VALUE, path))
                 for index in range(count)]
    if layers.shape[1:] == (1, 1, 1):
        layers = np.zeros_like(layers)  # Slicer's marker of a segmentation without voxels
    segments = []
    for index, (layer, label) in enumerate(placement):
        segment_id, name, color, tags = _segment_fields(header, index)
        if not 0 <= layer < len(layers):
            raise InputError(f"Segmentation '{path}': segment '{name}' is in layer {layer}, but the file holds "
                             f"{len(layers)} layer(s); it is damaged or was cut. Save it again from Slicer.")
        extent = _union([_extent(header, f"Segment{other}_Extent")
                         for other in range(count) if placement[other][0] == layer])
        mask_xyz = _crop_to_extent(layers[layer], extent) == label
        segments.append(Segment(segment_id, name, _image(np.transpose(mask_xyz, (2, 1, 0)), origin, axes),
                                color, tags))
    return segments


def _legacy_segments(path: Path, data: np.ndarray, header: dict) -> list[Segment]:
    """Segments of a Slicer 4.5 (SlicerRT) file: a 4D ITK image, segment = 4th axis, numbers in RAS."""
    directions = np.asarray(header.get("space directions", []), dtype=float)
    origin = np.asarray(header.get("space origin", [0.0, 0.0, 0.0, 0.0]), dtype=float)
    spatial = (data.ndim == 4 and "space" not in header and directions.shape == (4, 4)
               and not np.isnan(directions).any() and origin.shape == (4,)
               and not directions[:3, 3].any() and not directions[3, :3].any())
    if not spatial:
        raise InputError(f"Segmentation '{path}': a '{LEGACY_EXTENT_FIELD}' field (Slicer 4.5) on an image that is "
                         "not Slicer 4.5's 4D layout; its voxels cannot be placed. Open it in Slicer, check it, "
                         "and save it again as .seg.nrrd.")
    # ITK wrote Slicer's RAS numbers as they were (no 'space' field); Slicer's 4D reader reads them back as RAS
    # and puts file voxel i at index i + the start of Segmentation_Extent.
    axes_ras = directions[:3, :3].T
    start = np.array((_extent(header, LEGACY_EXTENT_FIELD) or _EMPTY_EXTENT)[::2], dtype=float)
    origin_lps, axes = _lps(origin[:3] + axes_ras @ start, axes_ras, "ras")
    segments = []
    for index in range(data.shape[3]):
        segment_id, name, color, tags = _segment_fields(header, index)
        extent = _extent(header, f"Segment{index}_Extent") or _EMPTY_EXTENT  # Slicer keeps nothing without one
        in_file = tuple(value - int(start[position // 2]) for position, value in enumerate(extent))
        mask_xyz = _crop_to_extent(data[..., index], in_file) == DEFAULT_LABEL_VALUE
        segments.append(Segment(segment_id, name, _image(np.transpose(mask_xyz, (2, 1, 0)), origin_lps, axes),
                                color, tags))
    return segments


def read_seg_nrrd(path: str | os.PathLike) -> list[Segment]:
    """All segments of a ``.seg.nrrd`` (any Slicer version), each as a binary uint8 mask on the file's grid.

    Parameters
    ----------
    path : str or os.PathLike
        A Slicer segmentation file (Slicer 4.5 to 5.x layouts).

    Returns
    -------
    list of Segment
        One per ``SegmentN_`` entry in file order: ID, name, colour, tags and a
        uint8 0/1 mask in LPS with the file's spacing (mm), cropped to the
        segment's extent as Slicer does.

    Raises
    ------
    InputError
        If the file cannot be read as NRRD, has no ``SegmentN_`` fields (a plain
        labelmap), or its geometry or segment fields cannot be placed (an
        unsupported space, no ``space directions``, a non-integer layer or label,
        a layer the file does not hold).
    """
    path = Path(path)
    data, header = _read_nrrd(path)
    if "Segment0_ID" not in header:
        raise InputError(f"Segmentation '{path}': no SegmentN_ fields; it is a plain labelmap, not a Slicer "
                         "segmentation. Pass it as a label map instead.")
    if LEGACY_EXTENT_FIELD in header:  # Slicer's own test for the 4.5 layout
        return _legacy_segments(path, data, header)
    return _labelmap_segments(path, data, header)


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
    Overlapping segments go into separate layers (Slicer 4.11+ layout).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write; missing parent folders are created.
    segments : list of Segment
        The segments, masks non-zero inside, all with the same size, origin,
        spacing (mm) and direction.
    overwrite : bool, optional
        Replace an existing file at ``path`` (default False: refuse).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        If ``segments`` is empty, ``path`` exists and ``overwrite`` is False,
        two segments' grids differ, or a name or tag contains a line break.
    OSError
        If the file cannot be written.
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
    }
    if stacked.shape[0] == 1:
        data = stacked[0]
        header["kinds"] = ["domain", "domain", "domain"]
        header["space directions"] = axes.T
    else:
        data = stacked
        header["kinds"] = ["list", "domain", "domain", "domain"]
        header["space directions"] = np.vstack([np.full(3, np.nan), axes.T])
    fields = {
        "Segmentation_MasterRepresentation": "Binary labelmap",
        "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
        "Segmentation_ReferenceImageExtentOffset": "0 0 0",
    }
    for index, (segment, (layer, label)) in enumerate(zip(segments, placement)):
        mask = sitk.GetArrayViewFromImage(segment.mask) != 0
        nonzero = np.nonzero(mask)
        extent = " ".join(f"{int(nonzero[axis].min())} {int(nonzero[axis].max())}" if mask.any() else "0 -1"
                          for axis in (2, 1, 0))
        prefix = f"Segment{index}_"
        fields.update({
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
    for key, value in fields.items():
        if "\n" in value or "\r" in value:
            raise InputError(f"Segmentation '{path}': {key} contains a line break, which would end the NRRD "
                             "header line; remove it from the segment's name or tags.")
    buffer = io.BytesIO()
    nrrd.write(buffer, data, header)
    # pynrrd writes ASCII only, so the segment fields (UTF-8, as Slicer writes them) go in after its own fields,
    # before the blank line that ends the header; its time-stamp comment is left out so the same segments give
    # the same bytes.
    standard, body = buffer.getvalue().split(b"\n\n", 1)
    standard = re.sub(rb"\n# on [^\n]*\(GMT\)\.", b"", standard, count=1)
    segment_lines = "".join(f"{key}:={value}\n" for key, value in fields.items()).encode("utf-8")
    content = standard + b"\n" + segment_lines + b"\n" + body
    return atomic_write(path, lambda name: Path(name).write_bytes(content))
