"""Features of a lesion's changed outlines, computed on the lesion's own resampled CT region and filters.

pyradiomics resamples the CT onto a 1 mm grid around each mask's bounding box
and filters that region (LoG sigma 1/2/3 mm, 8 wavelet bands); the feature
classes then read the filtered images inside the mask. A changed outline of a
lesion lies inside the unperturbed lesion's padded region (5 mm of padding;
the changes are 1 mm or one voxel), so its features are computed here on the
*unperturbed* lesion's resampled region and filtered images: the outline is
resampled onto that grid by nearest neighbour and only the feature classes run
again. Besides saving the resampling and the 11 filters per outline, this keeps
the grid fixed, so the spread of the probability measures the outline and not
also where pyradiomics' 1 mm grid happens to start (which moves with the
bounding box by a fraction of a voxel). For the unperturbed mask these
functions give the engine's values bit for bit (tested).

Everything here is the engine's public API (``abcir.features``,
``abcir.features.resampling``) and pyradiomics' own ``imageoperations``. An outline that
reaches the region's outer face (only a change larger than the padding could)
is computed from scratch, through the engine, instead. Settings the fast engine
does not reproduce (``features.fast_path_blocker``) share nothing: the analysis
then calls ``features.engine_values`` per outline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import SimpleITK as sitk
from radiomics import imageoperations
from radiomics.featureextractor import RadiomicsFeatureExtractor

from ..errors import InputError
from ..features.engine import (
    FeatureInput,
    PreparedLesion,
    compute_input,
    feature_inputs,
    ordered_values,
    prepare_lesion,
)
from ..features.parallel import extraction_pool, single_threaded_blas
from ..features.radiomics_log import quiet_radiomics
from ..features.resampling import OutputGrid, resample_nearest
from ..resources import parameter_file


@lru_cache(maxsize=1)
def _mask_settings() -> dict:
    """The parameter file's settings, for ``checkMask`` (label, minimum ROI dimensions and size)."""
    with quiet_radiomics():
        return RadiomicsFeatureExtractor(str(parameter_file())).settings.copy()


@dataclass
class SharedRegion:
    """One lesion's resampled, padded CT region and its filtered images (``image_type``, name, image)."""

    lesion_id: str
    prepared: PreparedLesion
    filtered: list[tuple[str, str, sitk.Image]]

    @property
    def grid(self) -> OutputGrid:
        image = self.prepared.image
        return OutputGrid(tuple(image.GetSize()), tuple(image.GetOrigin()), tuple(image.GetSpacing()),
                          tuple(image.GetDirection()))


@quiet_radiomics()
def share_region(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> SharedRegion:
    """Resample and filter the region of the unperturbed ``mask`` once (what ``extract_lesions`` does first).

    The filters run on the whole padded region, as pyradiomics runs them; asking
    ``feature_inputs`` for pieces with the region's full extent as bounding box
    returns them uncropped.
    """
    prepared = prepare_lesion(ct, mask, lesion_id)
    size = np.array(prepared.image.GetSize())
    whole = np.ravel(np.column_stack([np.zeros(3, dtype=int), size - 1]))  # checkMask's (Lx, Ux, Ly, Uy, Lz, Uz)
    filtered = []
    for piece in feature_inputs(PreparedLesion(lesion_id, prepared.image, prepared.mask, whole)):
        if piece.image_type == "shape":
            continue
        if piece.sigma is None:
            filtered.append((piece.image_type, piece.name, piece.image))
            continue
        for image, name, _ in imageoperations.getLoGImage(piece.image, piece.mask, sigma=[piece.sigma]):
            filtered.append((piece.image_type, name, image))
    return SharedRegion(lesion_id, prepared, filtered)


def _touches_outer_face(mask: np.ndarray) -> bool:
    return any(np.take(mask, index, axis=axis).any() for axis in range(3) for index in (0, -1))


@quiet_radiomics()
def outline_pieces(region: SharedRegion, ct: sitk.Image, mask: sitk.Image) -> list[FeatureInput]:
    """The pieces (``features.compute_input``'s inputs) of a changed outline of ``region``'s lesion.

    Raises InputError, naming the lesion, when pyradiomics refuses the outline
    (too few voxels or dimensions after resampling).
    """
    resampled = resample_nearest(mask, region.grid, sitk.sitkUInt32)
    array = sitk.GetArrayViewFromImage(resampled)
    if not array.any() or _touches_outer_face(array):  # outside the shared region: the engine's own path
        return list(feature_inputs(prepare_lesion(ct, mask, region.lesion_id)))
    try:
        box, _ = imageoperations.checkMask(region.prepared.image, resampled, **_mask_settings())
    except ValueError as error:
        raise InputError(f"Lesion '{region.lesion_id}': pyradiomics refused the changed outline ({error}).") from error
    outline = sitk.Cast(resampled, sitk.sitkUInt8)
    pieces = [FeatureInput(region.lesion_id, "shape", "shape", region.prepared.image, outline, box)]
    for image_type, name, image in region.filtered:
        cropped, cropped_mask = imageoperations.cropToTumorMask(image, outline, box, padDistance=0)
        pieces.append(FeatureInput(region.lesion_id, image_type, name, cropped, cropped_mask))
    return pieces


def compute_outlines(outlines: Iterable[tuple[Hashable, str, list[FeatureInput]]], jobs: int = 1
                     ) -> dict[Hashable, np.ndarray]:
    """The 1130 values of each outline, from its pieces: (key, lesion id, pieces) -> {key: values}.

    With ``jobs`` > 1 every piece goes to the engine's extraction workers as soon
    as it is made (``outlines`` is consumed lazily, so this process prepares the
    next outline while they compute); then this process takes the pieces no
    worker has started, from the last one back, and computes them itself.
    """
    pool = extraction_pool(jobs)
    queued: list[tuple[Hashable, FeatureInput, object]] = []
    lesion_of: dict[Hashable, str] = {}
    results: dict[Hashable, dict] = defaultdict(dict)
    with single_threaded_blas():
        for key, lesion_id, pieces in outlines:
            lesion_of[key] = lesion_id
            for piece in pieces:
                queued.append((key, piece, pool.submit(compute_input, piece) if pool is not None else None))
        for key, piece, future in reversed(queued):
            # A piece a worker has started cannot be cancelled; the workers take pieces in order, so every
            # earlier one is started too.
            if future is not None and not future.cancel():
                break
            results[key].update(compute_input(piece))
        for key, piece, future in queued:
            if future is not None and not future.cancelled():
                results[key].update(future.result())
    return {key: ordered_values(result, lesion_of[key]) for key, result in results.items()}

