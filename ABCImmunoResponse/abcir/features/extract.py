"""Features of a patient's lesions: cached ones reused, the others computed by this process and its workers.

Each lesion's work is split into independent pieces (shape and each of the 12
filtered images, ``abcir.features.engine``); with ``jobs`` > 1 the pieces go to
worker processes (``abcir.features.parallel``) as soon as one is free, while this process
resamples and filters the next lesion, then computes what no worker has taken.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, Sequence

import numpy as np
import SimpleITK as sitk

from abcir.errors import InputError
from abcir.features.cache import FeatureCache
from abcir.features.catalogue import LesionFeatures, Provenance, pyradiomics_version, resampled_spacing_mm
from abcir.features.engine import (
    FeatureInput,
    check_filter_coverage,
    compute_input,
    engine_values,
    fast_path_blocker,
    feature_inputs,
    ordered_values,
    prepare_lesion,
)
from abcir.features.parallel import discard_pool, extraction_pool, extraction_workers, single_threaded_blas
from abcir.features.radiomics_log import quiet_radiomics
from abcir.imaging.ct import file_sha256, read_ct, voxel_hash
from abcir.patient.ids import default_patient_id
from abcir.patient.lesions import Lesion, load_lesions
from abcir.resources import parameter_file

# progress(lesion number from 1, number of lesions, lesion id)
ProgressCallback = Callable[[int, int, str], None]

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
    """What each lesion's values will depend on (hashes of the CT and of each mask, settings)."""
    with ThreadPoolExecutor(max_workers=2) as hashing:
        return [provenance() for provenance in _provenance_futures(hashing, ct, lesions)]


class _SharedPieces:
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
        self.pool = pool
        self.free = workers
        self.lock = threading.Lock()
        self.waiting: deque[tuple[int, FeatureInput]] = deque()  # (lesion index, piece), no worker has it
        self.given: list[tuple[int, Future]] = []

    def put(self, lesion: int, piece: FeatureInput) -> None:
        with self.lock:
            self.waiting.append((lesion, piece))
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

    def results(self) -> Iterator[tuple[int, dict]]:
        """(lesion index, features of one piece) for every piece, as each is computed here or by a worker."""
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
    (``_SharedPieces``). ``cache`` (a ``FeatureCache``; None means
    $ABCIR_FEATURE_CACHE when set) returns lesions extracted before, keyed by
    CT voxels, mask voxels, parameter file and software versions; only the
    others are computed (and added to it).
    """
    if cache is None:
        cache = FeatureCache.from_environment()
    if not lesions:
        raise InputError(f"Patient '{patient_id}': no target lesions to extract.")
    check_filter_coverage(ct, lesions)
    blocker = fast_path_blocker()
    if blocker:
        log.info("Stock pyradiomics execute is used: %s.", blocker)
    pool = extraction_pool(jobs, backend) if not blocker else None
    shared = _SharedPieces(pool, extraction_workers(jobs)) if pool is not None else None
    provenances: dict[int, Provenance] = {}
    values: dict[int, np.ndarray] = {}
    computed: dict[int, dict] = {}
    piece_counts: dict[int, int] = {}

    def done(index: int, lesion_values_: np.ndarray, from_cache: bool = False) -> None:
        values[index] = lesion_values_
        if cache is not None and not from_cache:
            cache.put(provenances[index], lesion_values_)
        if progress:
            progress(len(values), len(lesions), lesions[index].lesion_id)

    try:
        with ThreadPoolExecutor(max_workers=2) as hashing, single_threaded_blas():
            provenance_of = _provenance_futures(hashing, ct, lesions)
            for index, lesion in enumerate(lesions):
                if cache is not None:
                    provenances[index] = provenance_of[index]()
                    cached = cache.get(provenances[index])
                    if cached is not None:
                        done(index, cached, from_cache=True)
                        continue
                if shared is None:  # one job, or settings the fast engine does not reproduce
                    done(index, engine_values(ct, lesion.mask, lesion.lesion_id))
                    continue
                computed[index], piece_counts[index] = {}, 0
                for piece in feature_inputs(prepare_lesion(ct, lesion.mask, lesion.lesion_id)):
                    shared.put(index, piece)
                    piece_counts[index] += 1
            for index, features in (shared.results() if shared is not None else ()):
                computed[index].update(features)
                piece_counts[index] -= 1
                if piece_counts[index] == 0:
                    done(index, ordered_values(computed.pop(index), lesions[index].lesion_id))
            # Without a cache nothing waited for the hashes: SHA-256 of the CT ran beside the extraction.
            provenances.update({index: provenance_of[index]() for index in range(len(lesions))
                                if index not in provenances})
    except BrokenProcessPool:
        discard_pool(pool)
        raise
    finally:
        if shared is not None:
            shared.cancel()
    return [LesionFeatures(patient_id, lesion, values[index], provenances[index])
            for index, lesion in enumerate(lesions)]


def extract_patient(ct_path: str | os.PathLike, lesion_paths: Sequence[str | os.PathLike],
                    patient_id: str | None = None, sites_csv: str | os.PathLike | None = None,
                    jobs: int = 1, progress: ProgressCallback | None = None,
                    series_uid: str | None = None, cache: FeatureCache | None = None) -> list[LesionFeatures]:
    """Features of every lesion of one patient, from a CT path and lesion file(s).

    The patient id defaults to the DICOM series' PatientID, or the CT file's name
    (``patient_ids.default_patient_id``).
    """
    ct = read_ct(ct_path, series_uid=series_uid)
    lesions = load_lesions(lesion_paths, ct, sites_csv)
    patient = patient_id or default_patient_id(ct_path, ct)
    return extract_lesions(ct, lesions, patient, jobs=jobs, progress=progress, cache=cache)
