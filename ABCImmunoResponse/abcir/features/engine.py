"""Radiomics features of one lesion, exactly as stock pyradiomics computes them with the paper's settings.

pyradiomics resamples CT and mask to 1 x 1 x 1 mm with a cubic B-spline and
computes the seven feature classes on the original, LoG (sigma 1, 2, 3 mm) and
wavelet images: 1130 values per lesion (paper, Table S2). The values returned
here are those of ``RadiomicsFeatureExtractor(parameter_file).execute(ct, mask)``
to the last bit; every lesion carries the provenance needed to reproduce them.

How the same values come faster than from ``execute``:

* resampling reads only the lesion's region of the CT (``abcir.features.resampling``),
  not the whole volume that ITK's B-spline prefilter would otherwise process,
  and skips ``getMask``'s cast and ``numpy.unique`` of the whole mask (a
  lesion's mask is binary and non-empty by construction; its bounding box is
  all pyradiomics takes from it);
* the discretised image is computed once per image type and shared by the six
  texture / first-order classes (pyradiomics bins it once per class);
* the shape class's mesh diameters are searched on the convex hull instead of
  over every pair of mesh vertices (``abcir.features.shape_mesh``: same doubles);
* the texture matrices are counted in numpy (``abcir.features.texture_matrices``), and GLCM's
  MCC, sums and cluster features and first order's repeated moments and percentiles do less
  work (``abcir.features.glcm_features``, ``abcir.features.firstorder_features``): the same doubles;
* the work of a lesion is split into independent pieces (shape and each of the
  12 filtered images), which ``jobs`` > 1 shares between worker processes
  (``abcir.features.parallel``), started before the CT is read, and this process, which
  resamples and filters the next lesion meanwhile.

Everything else after resampling is pyradiomics' own code with the same inputs.
Settings outside what this reproduces (see ``fast_path_blocker``) fall back to
stock ``execute``. While these functions run, pyradiomics' logger passes
errors only, and gets its own level back afterwards (``abcir.features.radiomics_log``).
"""


from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import SimpleITK as sitk
from radiomics import cShape, getFeatureClasses, imageoperations
from radiomics.featureextractor import RadiomicsFeatureExtractor
from radiomics.shape import RadiomicsShape

from ..errors import InputError
from ..paper import N_FEATURES
from .catalogue import PINNED_PYRADIOMICS_VERSION, feature_names, pyradiomics_version
from .preparation import (
    PreparedLesion,
    configured_extractor,
    extractor_settings,
    fast_path_blocker,
    filter_arguments,
    prepare_lesion,
)
from .radiomics_log import quiet_radiomics
from .firstorder_features import with_repeated_statistics_once
from .glcm_features import with_fast_glcm
from .shape_mesh import mesh_coefficients
from .texture_matrices import with_numpy_matrices


class _MeshShape(RadiomicsShape):
    """pyradiomics' shape class, its mesh coefficients computed by ``abcir.features.shape_mesh`` (same doubles)."""

    def _initSegmentBasedCalculation(self):  # noqa: N802 (pyradiomics' name)
        # The statements of pyradiomics 3.0.1 RadiomicsShape._initSegmentBasedCalculation; only the call to
        # cShape.calculate_coefficients goes to mesh_coefficients where that reproduces it (unit spacing).
        self.pixelSpacing = np.array(self.inputImage.GetSpacing()[::-1])
        padding = np.tile(1, 3)
        pad = sitk.ConstantPadImageFilter()
        pad.SetPadLowerBound(padding.tolist())
        pad.SetPadUpperBound(padding.tolist())
        self.inputMask = pad.Execute(self.inputMask)
        self.maskArray = (sitk.GetArrayFromImage(self.inputMask) == self.label)
        self.labelledVoxelCoordinates = np.where(self.maskArray != 0)
        coefficients = mesh_coefficients(self.maskArray, self.pixelSpacing)
        if coefficients is None:
            coefficients = cShape.calculate_coefficients(self.maskArray, self.pixelSpacing)
        self.SurfaceArea, self.Volume, self.diameters = coefficients
        voxels = len(self.labelledVoxelCoordinates[0])
        coordinates = np.array(self.labelledVoxelCoordinates, dtype="int").transpose((1, 0))
        physical = coordinates * self.pixelSpacing[None, :]
        physical -= np.mean(physical, axis=0)
        physical /= np.sqrt(voxels)
        covariance = np.dot(physical.T.copy(), physical)
        self.eigenValues = np.linalg.eigvals(covariance)
        machine_errors = np.bitwise_and(self.eigenValues < 0, self.eigenValues > -1e-10)
        if np.sum(machine_errors) > 0:
            self.logger.warning("Encountered %d eigenvalues < 0 and > -1e-10, rounding to 0", np.sum(machine_errors))
            self.eigenValues[machine_errors] = 0
        self.eigenValues.sort()


_MeshShape.__module__ = RadiomicsShape.__module__


def _shape_features(extractor: RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image,
                    bounding_box: np.ndarray) -> dict:
    """``RadiomicsFeatureExtractor.computeShape`` (3D shape class only) with ``_MeshShape``."""
    settings = extractor.settings.copy()
    if "shape2D" in extractor.enabledFeatures or mask.GetDimension() != 3:
        return extractor.computeShape(image, mask, bounding_box, **settings)
    features = {}
    if "shape" in extractor.enabledFeatures:
        cropped, cropped_mask = imageoperations.cropToTumorMask(image, mask, bounding_box)
        instance = _MeshShape(cropped, cropped_mask, **settings)
        for name in extractor.enabledFeatures["shape"] or ():
            instance.enableFeatureByName(name)
        for name, value in instance.execute().items():
            features[f"original_shape_{name}"] = value
    return features


def _discretise(matrix: np.ndarray, mask: np.ndarray, settings: dict) -> np.ndarray:
    """``imageoperations.binImage`` for a fixed bin width, with numpy's min and max of the ROI.

    pyradiomics' ``getBinEdges`` takes Python's built-in ``min``/``max`` over the
    ROI's values, one element at a time; numpy's give the same value (no NaN
    can occur in these images; for a float minimum of zero the sign of the
    zero may differ, which changes neither the edges' values nor any bin).
    """
    if settings.get("binCount") is not None:
        return imageoperations.binImage(matrix, mask, **settings)[0]
    bin_width = settings.get("binWidth", 25)
    values = matrix[mask]
    minimum, maximum = values.min(), values.max()
    low = minimum - (minimum % bin_width)
    edges = np.arange(low, maximum + 2 * bin_width, bin_width)
    if len(edges) == 1:  # flat region: one bin
        edges = [edges[0] - .5, edges[0] + .5]
    discretised = np.zeros(matrix.shape, dtype="int")
    discretised[mask] = np.digitize(values, edges)
    return discretised


def _shared_binning(feature_class: type, shared: dict) -> type:
    """``feature_class`` whose discretisation is computed once and shared by every class of one image.

    All six classes bin the same image array with the same mask and settings
    in ``__init__`` (``RadiomicsFeaturesBase._applyBinning``); each gets its
    own copy, so no class can change what another sees.
    """
    def _applyBinning(self, matrix):  # noqa: N802 (pyradiomics' name)
        if "matrix" not in shared:
            binned = _discretise(matrix, self.maskArray, self.settings)
            gray_levels = np.unique(binned[self.maskArray])
            shared.update(matrix=binned, grayLevels=gray_levels, Ng=int(np.max(gray_levels)))
        self.coefficients["grayLevels"] = shared["grayLevels"].copy()
        self.coefficients["Ng"] = shared["Ng"]
        return shared["matrix"].copy()

    return type(feature_class.__name__, (feature_class,),
                {"_applyBinning": _applyBinning, "__module__": feature_class.__module__})


def _image_type_features(extractor: RadiomicsFeatureExtractor, image: sitk.Image, mask: sitk.Image,
                         image_type_name: str, **kwargs) -> dict:
    """``RadiomicsFeatureExtractor.computeFeatures`` with one discretisation for all classes.

    GLCM, GLRLM, GLDM and NGTDM compute their matrices in numpy (``abcir.features.texture_matrices``,
    the same matrices as pyradiomics' C code, faster); GLCM's slowest features and first order's
    repeated statistics do less work for the same doubles (``abcir.features.glcm_features``,
    ``abcir.features.firstorder_features``).
    """
    features = {}
    classes = getFeatureClasses()
    shared: dict = {}
    for class_name, names in extractor.enabledFeatures.items():
        if class_name.startswith("shape") or class_name not in classes:
            continue
        feature_class = with_repeated_statistics_once(with_fast_glcm(with_numpy_matrices(classes[class_name])))
        instance = _shared_binning(feature_class, shared)(image, mask, **kwargs)
        for name in names or ():
            instance.enableFeatureByName(name)
        for name, value in instance.execute().items():
            features[f"{image_type_name}_{class_name}_{name}"] = value
    return features


@dataclass
class FeatureInput:
    """One piece of a lesion's extraction, ready for pyradiomics' feature classes.

    ``image_type`` is the parameter file's key (``Original``, ``LoG``,
    ``Wavelet``) or ``shape``; ``name`` is pyradiomics' prefix of the feature
    names (``wavelet-LLH``). Images are cropped to the lesion's bounding box,
    except for ``shape`` and for a LoG piece (``sigma`` set), which get the
    padded region and its box: a LoG image serves one piece only, so it is
    computed by whoever computes that piece.
    """

    lesion_id: str
    image_type: str
    name: str
    image: sitk.Image
    mask: sitk.Image
    bounding_box: np.ndarray | None = None
    sigma: float | None = None


def feature_inputs(prepared: PreparedLesion) -> Iterator[FeatureInput]:
    """Shape, the LoG sigmas, then every other filtered image cropped to the lesion (``execute`` steps 4, 6).

    Filters shared by several pieces (the wavelet bands) run here, once, when
    their pieces are asked for, so that workers compute the first pieces
    meanwhile; the pieces are independent and can be computed in any order.

    Parameters
    ----------
    prepared : PreparedLesion
        The lesion's resampled, padded region from ``prepare_lesion``.

    Yields
    ------
    FeatureInput
        The ``shape`` piece, one piece per LoG sigma (mm; padded region, filtered
        by whoever computes it), then one piece per other filtered image
        (Original, each wavelet band) cropped to the lesion's bounding box. The
        mask is sent as uint8 when its labels fit.
    """
    extractor = configured_extractor()
    image, mask, box = prepared.image, prepared.mask, prepared.bounding_box
    if int(sitk.GetArrayViewFromImage(mask).max()) <= 255:
        # The classes only compare the mask with the label: uint8 says the same in a quarter of the bytes
        # sent to a worker.
        mask = sitk.Cast(mask, sitk.sitkUInt8)
    yield FeatureInput(prepared.lesion_id, "shape", "shape", image, mask, box)
    for image_type, custom in extractor.enabledImagetypes.items():
        if image_type == "LoG":
            for sigma in (custom or {}).get("sigma", []):
                yield FeatureInput(prepared.lesion_id, image_type, f"LoG sigma {sigma}", image, mask, box, sigma)
            continue
        generator = getattr(imageoperations, f"get{image_type}Image")
        for filtered, name, _ in generator(image, mask, **filter_arguments(extractor, image_type)):
            yield _cropped_input(prepared.lesion_id, image_type, name, filtered, mask, box)


def _cropped_input(lesion_id: str, image_type: str, name: str, filtered: sitk.Image, mask: sitk.Image,
                   box: np.ndarray) -> FeatureInput:
    """A filtered image's piece: image and mask cropped to the mask's bounding box, as ``execute`` crops them."""
    cropped, cropped_mask = imageoperations.cropToTumorMask(filtered, mask, box, padDistance=0)
    return FeatureInput(lesion_id, image_type, name, cropped, cropped_mask)


def mask_inputs(lesion_id: str, image: sitk.Image, filtered: Iterable[tuple[str, str, sitk.Image]],
                mask: sitk.Image) -> list[FeatureInput]:
    """The pieces of another mask on a prepared region whose filters have run (``filtered_images``).

    Gives, for the lesion's own mask, the pieces ``feature_inputs`` gives (same
    values; the LoG images filtered once here instead of by each piece).

    Parameters
    ----------
    lesion_id : str
        The lesion's name, for pieces and messages.
    image : SimpleITK.Image
        The prepared region (``PreparedLesion.image``), resampled CT (HU).
    filtered : iterable of (str, str, SimpleITK.Image)
        That region's filtered images (``filtered_images``).
    mask : SimpleITK.Image
        The mask on ``image``'s grid (label 1).

    Returns
    -------
    list of FeatureInput
        The shape piece, then each filtered image cropped to ``mask``.

    Raises
    ------
    InputError
        pyradiomics' ``checkMask`` refuses the mask (too few voxels or dimensions).
    """
    try:
        box, _ = imageoperations.checkMask(image, mask, **extractor_settings())
    except ValueError as error:
        raise InputError(f"Lesion '{lesion_id}': pyradiomics refused the outline ({error}).") from error
    mask = sitk.Cast(mask, sitk.sitkUInt8)
    return [FeatureInput(lesion_id, "shape", "shape", image, mask, box),
            *(_cropped_input(lesion_id, image_type, name, filtered_image, mask, box)
              for image_type, name, filtered_image in filtered)]


@quiet_radiomics()
def compute_input(piece: FeatureInput) -> dict:
    """The features of one piece (any process; a pure function of its input).

    Parameters
    ----------
    piece : FeatureInput
        One piece from ``feature_inputs``.

    Returns
    -------
    dict
        pyradiomics' feature names (e.g. ``wavelet-LLH_glcm_Contrast``) mapped to
        their values, for the piece's image only; a LoG piece is filtered here first.
    """
    extractor = configured_extractor()
    if piece.image_type == "shape":
        return _shape_features(extractor, piece.image, piece.mask, piece.bounding_box)
    arguments = filter_arguments(extractor, piece.image_type)
    if piece.sigma is None:
        return _image_type_features(extractor, piece.image, piece.mask, piece.name, **arguments)
    features = {}
    log_arguments = dict(arguments, sigma=[piece.sigma])
    for filtered, name, _ in imageoperations.getLoGImage(piece.image, piece.mask, **log_arguments):
        cropped, cropped_mask = imageoperations.cropToTumorMask(filtered, piece.mask, piece.bounding_box, padDistance=0)
        features.update(_image_type_features(extractor, cropped, cropped_mask, name, **arguments))
    return features


def ordered_values(result: dict, lesion_id: str) -> np.ndarray:
    """pyradiomics' result as a float vector in the fixed order; anything but the 1130 names is an error.

    Parameters
    ----------
    result : dict
        Feature name to value, as ``execute`` or the pieces return them;
        ``diagnostics_*`` entries are ignored.
    lesion_id : str
        The lesion's name, used in the error message.

    Returns
    -------
    np.ndarray
        1130 float64 values in ``feature_names()`` order.

    Raises
    ------
    RuntimeError
        The names (without diagnostics) are not exactly the 1130 of the paper
        (e.g. another pyradiomics version than 3.0.1).
    """
    computed = {name: value for name, value in result.items() if not name.startswith("diagnostics_")}
    expected = feature_names()
    if set(computed) != set(expected):
        missing = sorted(set(expected) - set(computed))
        extra = sorted(set(computed) - set(expected))
        raise RuntimeError(f"Lesion '{lesion_id}': pyradiomics {pyradiomics_version()} returned {len(computed)} "
                           f"features, not the {N_FEATURES} of the paper (missing {missing[:3]}, extra {extra[:3]}). "
                           f"Install pyradiomics=={PINNED_PYRADIOMICS_VERSION}.")
    return np.array([float(computed[name]) for name in expected], dtype=np.float64)


@quiet_radiomics()
def lesion_values(prepared: PreparedLesion) -> np.ndarray:
    """All 1130 values of one prepared lesion, in this process (one task per lesion for a cluster).

    Parameters
    ----------
    prepared : PreparedLesion
        The lesion's resampled region from ``prepare_lesion``.

    Returns
    -------
    np.ndarray
        1130 float64 values in ``feature_names()`` order.

    Raises
    ------
    RuntimeError
        pyradiomics did not return exactly the 1130 features (``ordered_values``).
    """
    result: dict = {}
    for piece in feature_inputs(prepared):
        result.update(compute_input(piece))
    return ordered_values(result, prepared.lesion_id)


@quiet_radiomics()
def stock_values(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> np.ndarray:
    """The values from stock ``RadiomicsFeatureExtractor.execute`` (reference, and fallback path).

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU).
    mask : sitk.Image
        The lesion's binary mask on the CT's grid.
    lesion_id : str
        The lesion's name, used in error messages.

    Returns
    -------
    np.ndarray
        1130 float64 values in ``feature_names()`` order.

    Raises
    ------
    InputError
        pyradiomics refuses the lesion (its ValueError, e.g. too small after resampling).
    RuntimeError
        pyradiomics did not return exactly the 1130 features (``ordered_values``).
    """
    try:
        result = configured_extractor().execute(ct, mask)
    except ValueError as error:  # pyradiomics' own checks (e.g. ROI too small after resampling)
        raise InputError(f"Lesion '{lesion_id}': pyradiomics refused it ({error}).") from error
    return ordered_values(result, lesion_id)


def engine_values(ct: sitk.Image, mask: sitk.Image, lesion_id: str) -> np.ndarray:
    """One lesion's values in this process, the way ``extract_lesions`` computes them with one worker.

    The fast engine, or stock ``execute`` where ``fast_path_blocker`` says the
    fast engine does not reproduce the settings or the installed pyradiomics.

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU).
    mask : sitk.Image
        The lesion's binary mask on the CT's grid.
    lesion_id : str
        The lesion's name, used in error messages.

    Returns
    -------
    np.ndarray
        1130 float64 values in ``feature_names()`` order, bit-identical to stock ``execute``.

    Raises
    ------
    InputError
        pyradiomics refuses the lesion (e.g. too small after resampling).
    RuntimeError
        pyradiomics did not return exactly the 1130 features (``ordered_values``).
    """
    if fast_path_blocker():
        return stock_values(ct, mask, lesion_id)
    return lesion_values(prepare_lesion(ct, mask, lesion_id))
