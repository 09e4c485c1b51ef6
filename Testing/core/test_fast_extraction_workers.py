"""Who computes a lesion's pieces: workers that start early, and this process whenever no worker is free.

``extract_lesions(jobs=N)`` gives each lesion's 13 pieces to N - 1 workers,
one to each free worker, and computes, once every lesion is queued, the pieces
no worker has taken.
A command that will extract starts the workers before it reads the CT, and
they import pyradiomics before their first task. Values are stock
pyradiomics' whoever computes them.
"""

from __future__ import annotations

import csv
import logging
import multiprocessing
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import psutil
import pytest
import radiomics
import SimpleITK as sitk
from radiomics.featureextractor import RadiomicsFeatureExtractor

from abcir import cli
from abcir.features import extract, parallel
from abcir.features.extract import extract_lesions
from abcir.features.catalogue import feature_names
from abcir.patient.lesions import Lesion
from abcir.patient.measurements import measure_lesion
from abcir.features.parallel import single_threaded_blas
from abcir.resources import parameter_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from synthetic_ct import add_lesion, synthetic_ct  # noqa: E402

SIZE = (64, 60, 36)
SPACING = (0.7, 0.7, 1.25)
PIECES_PER_LESION = 13  # shape, original, LoG 1/2/3 mm, 8 wavelet bands


@pytest.fixture(scope="module")
def case() -> tuple[sitk.Image, list[Lesion]]:
    ct = synthetic_ct(SIZE, SPACING, seed=3)
    lesions = []
    for index, centre in enumerate(((20, 22, 12), (44, 38, 24))):
        ct, placed = add_lesion(ct, f"L{index}", centre, 5.0, seed=index)
        lesions.append(Lesion(placed.name, None, placed.mask, measure_lesion(placed.mask)))
    return ct, lesions


@pytest.fixture(scope="module")
def stock(case) -> list[np.ndarray]:
    radiomics.setVerbosity(logging.ERROR)
    extractor = RadiomicsFeatureExtractor(str(parameter_file()))
    ct, lesions = case
    with single_threaded_blas():
        results = [extractor.execute(ct, lesion.mask) for lesion in lesions]
    return [np.array([float(result[name]) for name in feature_names()]) for result in results]


def record_computing_threads(monkeypatch, after_each=lambda threads: None) -> list[int]:
    """Patch ``compute_input`` to note the thread that computes each piece (then call ``after_each``)."""
    threads: list[int] = []
    compute = extract.compute_input

    def recorded(piece):
        threads.append(threading.get_ident())
        result = compute(piece)
        after_each(threads)
        return result

    monkeypatch.setattr(extract, "compute_input", recorded)
    return threads


def test_this_process_computes_while_the_worker_is_still_starting(case, stock, monkeypatch):
    ct, lesions = case
    total = PIECES_PER_LESION * len(lesions)
    pool = ThreadPoolExecutor(max_workers=1)
    started = threading.Event()
    pool.submit(started.wait, 120)  # the only worker is busy starting (as a new process importing pyradiomics)
    monkeypatch.setattr(extract, "extraction_pool", lambda jobs, backend: pool)
    me = threading.get_ident()

    def start_when_only_its_piece_is_left(threads: list[int]) -> None:
        if threads.count(me) == total - 1:
            started.set()

    threads = record_computing_threads(monkeypatch, start_when_only_its_piece_is_left)
    try:
        rows = extract_lesions(ct, lesions, "P", jobs=2)
    finally:
        started.set()
        pool.shutdown()
    # The starting worker was given one piece (the first); this process computed all the others meanwhile.
    assert threads.count(me) == total - 1 and threads[-1] != me
    for row, expected in zip(rows, stock):
        np.testing.assert_array_equal(row.values, expected)


def test_a_free_worker_and_this_process_share_the_pieces(case, stock, monkeypatch):
    ct, lesions = case
    pool = ThreadPoolExecutor(max_workers=1)
    monkeypatch.setattr(extract, "extraction_pool", lambda jobs, backend: pool)
    threads = record_computing_threads(monkeypatch)
    progress = []
    try:
        rows = extract_lesions(ct, lesions, "P", jobs=2, progress=lambda *args: progress.append(args))
    finally:
        pool.shutdown()
    assert len(threads) == PIECES_PER_LESION * len(lesions)
    assert threads[0] != threading.get_ident()  # the first piece went to the idle worker at once
    assert sorted(done for done, _, _ in progress) == [1, 2]
    assert sorted(lesion_id for _, _, lesion_id in progress) == ["L0", "L1"]
    for row, expected in zip(rows, stock):
        np.testing.assert_array_equal(row.values, expected)


def test_workers_import_pyradiomics_before_their_first_task():
    parallel.shutdown_pools()
    parallel.extraction_pool(2)
    workers = [psutil.Process(child.pid) for child in multiprocessing.active_children()]
    assert len(workers) == parallel.extraction_workers(2)  # started now, before any task
    deadline = time.monotonic() + 60
    imported: set[int] = set()
    while len(imported) < len(workers) and time.monotonic() < deadline:
        for worker in workers:
            if any("_cmatrices" in mapped.path for mapped in worker.memory_maps()):
                imported.add(worker.pid)
        time.sleep(0.1)
    assert imported == {worker.pid for worker in workers}, "a worker had not imported pyradiomics after 60 s"


def test_blas_loads_single_threaded_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    parallel.single_threaded_blas_from_start()
    assert parallel.os.environ["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    parallel.single_threaded_blas_from_start()
    assert parallel.os.environ["OPENBLAS_NUM_THREADS"] == "3"


def test_workers_run_blas_and_itk_single_threaded(monkeypatch):
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    parallel.shutdown_pools()
    try:
        pool = parallel.extraction_pool(2)
        assert pool.submit(parallel.os.getenv, "OPENBLAS_NUM_THREADS").result(timeout=120) == "1"
        assert pool.submit(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads).result(timeout=120) == 1
    finally:
        parallel.shutdown_pools()


def test_itk_is_single_threaded_beside_workers_only(case, monkeypatch):
    ct, lesions = case
    seen = []
    compute = extract.compute_input
    monkeypatch.setattr(extract, "compute_input",
                        lambda piece: seen.append(sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()) or compute(piece))
    default = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    extract_lesions(ct, lesions[:1], "P", jobs=1)
    assert set(seen) == {default}
    seen.clear()
    extract_lesions(ct, lesions[:1], "P", jobs=2, backend="thread")
    assert set(seen) == {1}
    assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == default


def test_extract_command_starts_the_workers_before_reading_the_ct(case, stock, tmp_path, monkeypatch):
    ct, lesions = case
    sitk.WriteImage(ct, str(tmp_path / "ct.nrrd"))
    for lesion in lesions:
        sitk.WriteImage(lesion.mask, str(tmp_path / f"{lesion.lesion_id}.nrrd"))
    parallel.shutdown_pools()
    workers_when_read = []
    read_ct = extract.read_ct

    def watched(*args, **kwargs):
        workers_when_read.append(len(multiprocessing.active_children()))
        return read_ct(*args, **kwargs)

    monkeypatch.setattr(extract, "read_ct", watched)
    out = tmp_path / "features.csv"
    assert cli.main(["extract", "--ct", str(tmp_path / "ct.nrrd"), "--lesions",
                     *[str(tmp_path / f"{lesion.lesion_id}.nrrd") for lesion in lesions],
                     "--out", str(out), "--jobs", "2"]) == 0
    assert workers_when_read and workers_when_read[0] >= parallel.extraction_workers(2)
    with open(out, newline="", encoding="utf-8") as handle:
        written = {row["lesion_id"]: np.array([float(row[name]) for name in feature_names()])
                   for row in csv.DictReader(handle)}
    for lesion, expected in zip(lesions, stock):
        np.testing.assert_array_equal(written[lesion.lesion_id], expected)
