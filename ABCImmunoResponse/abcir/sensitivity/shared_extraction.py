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

Everything here is the engine's public API: ``features.engine.filtered_images``
and ``mask_inputs`` for the pieces, ``features.extract.compute_pieces`` (the
scheduler ``extract_lesions`` uses) to compute them. An outline that
reaches the region's outer face (only a change larger than the padding could)
is computed from scratch, through the engine, instead. Settings the fast engine
does not reproduce (``features.fast_path_blocker``) share nothing: the analysis
then calls ``features.engine_values`` per outline.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..features.engine import FeatureInput, feature_inputs, mask_inputs, ordered_values
from ..features.extract import compute_pieces
from ..features.preparation import PreparedLesion, filtered_images, prepare_lesion
from ..features.radiomics_log import quiet_radiomics
from ..features.resampling import resample_nearest
from ..features.resampling_grid import OutputGrid


@dataclass
class SharedRegion:
    """One lesion's resampled, padded CT region and its filtered images (``image_type``, name, image)."""

    lesion_id: str
    prepared: PreparedLesion
    filtered: list[tuple[str, str, sitk.Image]]

    @property
    def grid(self) -> OutputGrid:
        """The grid of the resampled region (size in voxels; origin, spacing in mm; direction)."""
        image = self.prepared.image
        return OutputGrid(tuple(image.GetSize()), tuple(image.GetOrigin()), tuple(image.GetSpacing()),
                          tuple(image.GetDirection()))


@quiet_radiomics()
def share_region(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> SharedRegion:
    """Resample and filter the region of the unperturbed ``mask`` once (what ``extract_lesions`` does first).

    The filters run on the whole padded region, as pyradiomics runs them
    (``features.engine.filtered_images``).

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU).
    mask : sitk.Image
        The lesion's unperturbed binary mask on the CT's grid.
    lesion_id : str
        The lesion's name, used in error messages.

    Returns
    -------
    SharedRegion
        The prepared (resampled, padded) region and its Original, LoG (per sigma,
        mm) and wavelet images, uncropped.

    Raises
    ------
    InputError
        pyradiomics refuses the lesion (``prepare_lesion``).
    """
    prepared = prepare_lesion(ct, mask, lesion_id)
    return SharedRegion(lesion_id, prepared, list(filtered_images(prepared)))


def _touches_outer_face(mask: np.ndarray) -> bool:
    return any(np.take(mask, index, axis=axis).any() for axis in range(3) for index in (0, -1))


@quiet_radiomics()
def outline_pieces(region: SharedRegion, ct: sitk.Image, mask: sitk.Image) -> list[FeatureInput]:
    """The pieces (``features.compute_input``'s inputs) of a changed outline of ``region``'s lesion.

    Raises InputError, naming the lesion, when pyradiomics refuses the outline
    (too few voxels or dimensions after resampling).

    Parameters
    ----------
    region : SharedRegion
        The unperturbed lesion's shared region (``share_region``).
    ct : sitk.Image
        The CT (HU), used only when the outline leaves the shared region.
    mask : sitk.Image
        The changed outline (binary) on the CT's grid.

    Returns
    -------
    list of FeatureInput
        The shape piece and one piece per filtered image, cropped to the outline
        resampled (nearest neighbour) onto the shared grid; or, for an outline
        empty on that grid or touching its outer face, the engine's own pieces
        (``prepare_lesion`` then ``feature_inputs``).

    Raises
    ------
    InputError
        pyradiomics refuses the outline.
    """
    resampled = resample_nearest(mask, region.grid, sitk.sitkUInt32)
    array = sitk.GetArrayViewFromImage(resampled)
    if not array.any() or _touches_outer_face(array):  # outside the shared region: the engine's own path
        return list(feature_inputs(prepare_lesion(ct, mask, region.lesion_id)))
    return mask_inputs(region.lesion_id, region.prepared.image, region.filtered, resampled)


def compute_outlines(outlines: Iterable[tuple[Hashable, str, list[FeatureInput]]], jobs: int = 1,
                     done: Callable[[Hashable], None] | None = None) -> dict[Hashable, np.ndarray]:
    """The 1130 values of each outline, from its pieces: (key, lesion id, pieces) -> {key: values}.

    The pieces are computed by ``features.extract.compute_pieces``, the
    scheduler of ``extract_lesions``: with ``jobs`` > 1 each goes to a free
    extraction worker as soon as it is made (``outlines`` is consumed lazily, so
    this process prepares the next outline while they compute), and this
    process computes the pieces no worker has taken.

    Parameters
    ----------
    outlines : iterable of (hashable, str, list of FeatureInput)
        Per outline: a key, the lesion's id (for error messages), and its pieces
        (``outline_pieces``); consumed once, lazily.
    jobs : int, default 1
        Processes in all, this one included; 1 computes everything here.
    done : callable, optional
        Called with an outline's key as soon as its values are complete (for progress).

    Returns
    -------
    dict
        Key to 1130 float64 values in ``feature_names()`` order, for every
        outline that had pieces.

    Raises
    ------
    RuntimeError
        pyradiomics did not return the 1130 features of an outline
        (``ordered_values``), or no Python interpreter can start workers.
    """
    lesion_of: dict[Hashable, str] = {}

    def groups() -> Iterator[tuple[Hashable, list[FeatureInput]]]:
        for key, lesion_id, pieces in outlines:
            lesion_of[key] = lesion_id
            yield key, pieces

    values = {}
    for key, features in compute_pieces(groups(), jobs):
        values[key] = ordered_values(features, lesion_of[key])
        if done is not None:
            done(key)
    return values
