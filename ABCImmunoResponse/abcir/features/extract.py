"""Features of a patient's lesions: cached ones reused, the others computed by this process and its workers.

Each lesion's work is split into independent pieces (shape and each of the 12
filtered images, ``abcir.features.engine``); with ``jobs`` > 1 the pieces go to
worker processes (``abcir.features.parallel``) as soon as one is free, while this process
resamples and filters the next lesion, then computes what no worker has taken.
``compute_pieces`` is that scheduler, for any groups of pieces: a patient's
lesions here, a lesion's changed outlines in ``abcir.sensitivity``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Hashable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .cache import FeatureCache
from .catalogue import LesionFeatures, Provenance, pyradiomics_version, resampled_spacing_mm
from .engine import FeatureInput, compute_input, engine_values, feature_inputs, ordered_values
from .preparation import check_filter_coverage, fast_path_blocker, prepare_lesion
from .parallel import discard_pool, extraction_pool, extraction_workers, single_threaded_blas, single_threaded_itk
from .radiomics_log import quiet_radiomics
from ..imaging.ct import file_sha256, read_ct, voxel_hash
from ..patient.ids import default_patient_id
from ..patient.lesions import Lesion, load_lesions
from ..resources import parameter_file

# progress(lesion number from 1, number of lesions, lesion id)
ProgressCallback = Callable[[int, int, str], None]
#: What names a group of pieces in ``compute_pieces`` (a lesion's index, an outline's (lesion, perturbation)).
Key = TypeVar("Key", bound=Hashable)

log = logging.getLogger(__name__)


def _provenance_futures(hashing: ThreadPoolExecutor, ct: sitk.Image,
                        lesions: Sequence[Lesion]) -> list[Callable[[], Provenance]]:
    """Start hashing the CT and the masks (SHA-256 releases the GIL); each callable waits for its lesion."""
    parameter_sha = file_sha256(parameter_file())
    ct_sha = hashing.submit(voxel_hash, ct)
    mask_shas = [hashing.submit(voxel_hash, lesion.mask) for lesion in lesions]
    spacing, resampled = tuple(ct.GetSpacing()), resampled_spacing_mm()
    return [lambda mask_sha=mask_sha: Provenance(pyradiomics_version(), parameter_sha, ct_sha.result(),
                                                 mask_sha.result(), spacing, resampled) for mask_sha in mask_shas]


def lesion_provenances(ct: sitk.Image, lesions: Sequence[Lesion]) -> list[Provenance]:
    """What each lesion's values will depend on (hashes of the CT and of each mask, settings).

    Parameters
    ----------
    ct : sitk.Image
        The CT (HU); its voxels and geometry are hashed once, beside the masks (two threads).
    lesions : sequence of Lesion
        The lesions, each a binary mask on ``ct``'s grid.

    Returns
    -------
    list of Provenance
        One per lesion, in order: pyradiomics version, parameter file SHA-256,
        CT and mask voxel SHA-256, the CT's spacing and the resampled spacing (mm).
    """
    with ThreadPoolExecutor(max_workers=2) as hashing:
        return [provenance() for provenance in _provenance_futures(hashing, ct, lesions)]


class SharedPieces:
    """Lesion pieces shared between the workers and this process.

    A piece goes to a worker only when one is free (from the pool's result
    callback, while this process goes on preparing), so none waits in a busy
    worker's queue; the pieces no worker has taken, this process computes, last
    queued first (``results``). So this process never waits while a worker
    starts or is busy, and the last pieces of a patient finish together: a piece
    held back in a worker's queue made a 250 mL lesion finish 1.1 s after this
    process had run out of work. Whoever computes a piece, it is
    ``compute_input`` on the same input.
    """

    def __init__(self, pool: Executor, workers: int):
        """Share pieces between this process and ``workers`` workers of ``pool`` (all free at first)."""
        self.pool = pool
        self.free = workers
        self.lock = threading.Lock()
        self.waiting: deque[tuple[Hashable, FeatureInput]] = deque()  # (group key, piece), no worker has it
        self.given: list[tuple[Hashable, Future]] = []

    def put(self, key: Hashable, piece: FeatureInput) -> None:
        """Queue ``piece`` of group ``key``: to a free worker at once, else for whoever is free first."""
        with self.lock:
            self.waiting.append((key, piece))
        self._give()

    def _give(self) -> None:
        """Hand waiting pieces to free workers (this thread, or the pool's thread when a piece returns)."""
        while True:
            with self.lock:
                if not self.waiting or self.free <= 0:
                    return
                lesion, piece = self.waiting.popleft()
                try:
                    future = self.pool.submit(compute_input, piece)
                except BaseException:  # a broken or closed pool: no more for the workers, this process computes
                    self.waiting.appendleft((lesion, piece))
                    self.free = 0
                    raise
                self.free -= 1
                self.given.append((lesion, future))
            future.add_done_callback(self._returned)  # not under the lock: runs here if already done

    def _returned(self, future: Future) -> None:
        with self.lock:
            self.free += 1
        if not future.cancelled():
            self._give()

    def results(self) -> Iterator[tuple[Hashable, dict]]:
        """(group key, features of one piece) for every piece, as each is computed here or by a worker."""
        while True:
            with self.lock:
                finished = [item for item in self.given if item[1].done()]
                for item in finished:
                    self.given.remove(item)
                taken = self.waiting.pop() if self.waiting and not finished else None
                running = [future for _, future in self.given]
            for lesion, future in finished:
                yield lesion, future.result()
            if taken is not None:
                yield taken[0], compute_input(taken[1])
            elif not finished:
                if not running:
                    return
                wait(running, return_when=FIRST_COMPLETED)

    def cancel(self) -> None:
        """Give no more pieces to the workers and cancel those not started (after an error)."""
        with self.lock:
            self.free = -len(self.given)
            self.waiting.clear()
            given = list(self.given)
        for _, future in given:
            future.cancel()


def compute_pieces(groups: Iterable[tuple[Key, Iterable[FeatureInput]]], jobs: int = 1,
                   backend: str = "process") -> Iterator[tuple[Key, dict]]:
    """The features of groups of pieces, computed by this process and ``jobs - 1`` workers.

    Each piece goes to a free worker as soon as it is made (``SharedPieces``;
    ``groups`` and each group's pieces are consumed lazily, so this process
    prepares the next pieces while the workers compute), and once every group
    is queued this process computes the pieces no worker has taken. With one
    job every piece is computed here, in order. Whoever computes a piece, it
    is ``compute_input`` on the same input, so the values never depend on
    ``jobs``.

    Parameters
    ----------
    groups : iterable of (key, iterable of FeatureInput)
        Each group's key (unique) and its pieces: a lesion's 13 (``feature_inputs``),
        or a changed outline's (``abcir.features.engine.mask_inputs``).
    jobs : int, default 1
        Processes in all, this one included (``abcir.features.parallel.extraction_pool``).
    backend : {"process", "thread"}, default "process"
        What the workers are.

    Yields
    ------
    (key, dict)
        A group's key and pyradiomics' features of all its pieces (name -> value),
        as soon as its last piece is computed; ``ordered_values`` makes the vector.

    Raises
    ------
    BrokenProcessPool
        A worker died; the pool is discarded, so the next call starts a new one.
    """
    pool = extraction_pool(jobs, backend)
    shared = SharedPieces(pool, extraction_workers(jobs)) if pool is not None else None
    features: dict[Key, dict] = {}
    remaining: dict[Key, int] = {}
    try:
        with single_threaded_blas(), single_threaded_itk() if shared is not None else contextlib.nullcontext():
            for key, pieces in groups:
                features[key], remaining[key] = {}, 0
                for piece in pieces:
                    if shared is None:
                        features[key].update(compute_input(piece))
                    else:
                        shared.put(key, piece)
                        remaining[key] += 1
                if remaining[key] == 0:
                    yield key, features.pop(key)
            for key, piece_features in (shared.results() if shared is not None else ()):
                features[key].update(piece_features)
                remaining[key] -= 1
                if remaining[key] == 0:
                    yield key, features.pop(key)
    except BrokenProcessPool:
        discard_pool(pool)
        raise
    finally:
        if shared is not None:
            shared.cancel()


@quiet_radiomics()
def extract_lesions(ct: sitk.Image, lesions: Sequence[Lesion], patient_id: str, jobs: int = 1,
                    progress: ProgressCallback | None = None, cache: FeatureCache | None = None,
                    backend: str = "process") -> list[LesionFeatures]:
    """Features of each lesion of one patient.

    ``jobs`` > 1 computes with that many processes: this one and ``jobs - 1``
    workers (``abcir.features.parallel.extraction_pool``: processes by default;
    ``backend="thread"`` keeps everything in this process). This process
    hashes, resamples and filters each lesion and queues its 13 pieces (shape,
    original, 3 LoG, 8 wavelet bands), each as soon as its filter has run, so
    that the workers compute one lesion while the next is prepared; once every
    lesion is queued it computes the pieces no worker has taken
    (``compute_pieces``). ``cache`` (a ``FeatureCache``; None means
    $ABCIR_FEATURE_CACHE when set) returns lesions extracted before, keyed by
    CT voxels, mask voxels, parameter file and software versions; only the
    others are computed (and added to it).

    Parameters
    ----------
    ct : sitk.Image
        The patient's CT (HU).
    lesions : sequence of Lesion
        The target lesions, each a binary mask on ``ct``'s grid; at least one.
    patient_id : str
        The patient's id, copied into each result and used in error messages.
    jobs : int, default 1
        Processes (or threads) in all, this one included; 1 computes here only.
        Ignored (one process) when ``fast_path_blocker`` says stock ``execute`` is needed.
    progress : callable, optional
        Called as ``progress(lesions done, number of lesions, lesion id)`` after each
        lesion, cached ones included; None reports nothing.
    cache : FeatureCache, optional
        Where earlier lesions' values are reused and new ones stored; None means
        $ABCIR_FEATURE_CACHE, or no cache when it is not set.
    backend : {"process", "thread"}, default "process"
        What the ``jobs - 1`` workers are.

    Returns
    -------
    list of LesionFeatures
        One per lesion, in the order given: 1130 float64 values in
        ``feature_names()`` order and their ``Provenance``.

    Raises
    ------
    InputError
        ``lesions`` is empty, a CT is too thin around a lesion for the LoG filters
        (``check_filter_coverage``), or pyradiomics refuses a lesion (e.g. too small
        after resampling, or an empty mask).
    ValueError
        ``backend`` is not "process" or "thread" (with ``jobs`` > 1).
    RuntimeError
        pyradiomics did not return the 1130 features, or no Python interpreter can
        start worker processes.
    BrokenProcessPool
        A worker process died (the pool is discarded, so the next call starts a new one).
    """
    if cache is None:
        cache = FeatureCache.from_environment()
    if not lesions:
        raise InputError(f"Patient '{patient_id}': no target lesions to extract.")
    check_filter_coverage(ct, lesions)
    blocker = fast_path_blocker()
    if blocker:
        log.info("Stock pyradiomics execute is used: %s.", blocker)
    provenances: dict[int, Provenance] = {}
    values: dict[int, np.ndarray] = {}

    def done(index: int, lesion_values_: np.ndarray, from_cache: bool = False) -> None:
        values[index] = lesion_values_
        if cache is not None and not from_cache:
            cache.put(provenances[index], lesion_values_)
        if progress:
            progress(len(values), len(lesions), lesions[index].lesion_id)

    with ThreadPoolExecutor(max_workers=2) as hashing:
        provenance_of = _provenance_futures(hashing, ct, lesions)

        def lesion_pieces() -> Iterator[tuple[int, Iterator[FeatureInput]]]:
            """The pieces of each lesion not in the cache (stock ``execute`` computes them here when blocked)."""
            for index, lesion in enumerate(lesions):
                if cache is not None:
                    provenances[index] = provenance_of[index]()
                    cached = cache.get(provenances[index])
                    if cached is not None:
                        done(index, cached, from_cache=True)
                        continue
                if blocker:
                    done(index, engine_values(ct, lesion.mask, lesion.lesion_id))
                    continue
                yield index, feature_inputs(prepare_lesion(ct, lesion.mask, lesion.lesion_id))

        for index, features in compute_pieces(lesion_pieces(), 1 if blocker else jobs, backend):
            done(index, ordered_values(features, lesions[index].lesion_id))
        # Without a cache nothing waited for the hashes: SHA-256 of the CT ran beside the extraction.
        provenances.update({index: provenance_of[index]() for index in range(len(lesions))
                            if index not in provenances})
    return [LesionFeatures(patient_id, lesion, values[index], provenances[index])
            for index, lesion in enumerate(lesions)]


def extract_patient(ct_path: str | os.PathLike, lesion_paths: Sequence[str | os.PathLike],
                    patient_id: str | None = None, sites_csv: str | os.PathLike | None = None,
                    jobs: int = 1, progress: ProgressCallback | None = None,
                    series_uid: str | None = None, cache: FeatureCache | None = None) -> list[LesionFeatures]:
    """Features of every lesion of one patient, from a CT path and lesion file(s).

    The patient id defaults to the DICOM series' PatientID, or the CT file's name
    (``patient_ids.default_patient_id``).

    Parameters
    ----------
    ct_path : str or os.PathLike
        A DICOM folder or one image file (NRRD, NIfTI, ...) holding the CT in HU.
    lesion_paths : sequence of str or os.PathLike
        A ``.seg.nrrd``, a DICOM SEG, one label map, or several binary mask files.
    patient_id : str, optional
        The patient's id; None means the series' PatientID, else the folder's or
        file's name.
    sites_csv : str or os.PathLike, optional
        A CSV naming each lesion's site; None means sites come from the lesion files only.
    jobs : int, default 1
        Processes in all for the extraction (``extract_lesions``).
    progress : callable, optional
        Called as ``progress(lesions done, number of lesions, lesion id)``.
    series_uid : str, optional
        Which series of a DICOM folder holding several; None when there is one.
    cache : FeatureCache, optional
        Feature cache; None means $ABCIR_FEATURE_CACHE when set.

    Returns
    -------
    list of LesionFeatures
        One per lesion, in the order the lesion files give them.

    Raises
    ------
    InputError
        The CT cannot be read or is not a 3D CT in HU, a lesion file is missing
        or invalid, or extraction refuses a lesion (see ``extract_lesions``).
    RuntimeError
        pyradiomics did not return the 1130 features, or workers cannot be started.
    """
    ct = read_ct(ct_path, series_uid=series_uid)
    lesions = load_lesions(lesion_paths, ct, sites_csv)
    patient = patient_id or default_patient_id(ct_path, ct)
    return extract_lesions(ct, lesions, patient, jobs=jobs, progress=progress, cache=cache)
