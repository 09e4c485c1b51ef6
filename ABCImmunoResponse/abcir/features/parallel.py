"""Where extraction work runs in parallel: worker processes that also start from inside 3D Slicer.

pyradiomics computes its texture matrices and the shape mesh in C extensions
that hold the GIL, so threads help only with the SimpleITK / numpy parts
(resampling, filters); worker processes use every core. Two details make a
process pool work from any host application:

* ``spawn``, not ``fork``: forking a process that runs threads (Slicer's Qt and
  ITK's thread pool) can copy a held lock into the child and hang it;
* a real Python interpreter to spawn. Inside Slicer ``sys.executable`` is the
  ``PythonSlicer`` launcher; a spawned child started through the launcher never
  reads its start-up data and the parent blocks (Slicer/Slicer#7445). The
  interpreter that the launcher wraps is ``python-real`` beside it; the child
  inherits the launcher's environment from the parent, so it imports the same
  packages.

The pool is created on first use and kept for the life of the process: starting
a worker costs about half a second of CPU (importing pyradiomics), paid once per
session. Its workers start at once, not at the first task, each importing the
modules it will need (``warm_up``): a command that knows it will extract starts
them before it reads the CT (``extraction_pool``), so that they are ready when
the first lesion is.

BLAS runs single-threaded during extraction. pyradiomics' only BLAS/LAPACK call
is ``numpy.linalg.eigvals`` on the small GLCM matrices of the Maximal
Correlation Coefficient; OpenBLAS' threads gain nothing there and, while they
busy-wait for each other on a loaded two-core machine, the same call took 5 to
20 times longer (0.13 s single-threaded, 0.5 to 3 s threaded, same values).
ITK, too, runs on one thread in a worker, and in the process that shares the
cores with its workers (``single_threaded_itk``): a process per core already
uses them all.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib
import multiprocessing
import os
import sys
import threading
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import ContextManager, Iterator, Sequence

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # Slicer before the first Predict: BLAS keeps its thread count (slower; last bits may differ)
    threadpool_limits = None

BACKENDS = ("process", "thread")
# What extraction workers run (``abcir.features.engine.compute_input``): named, not imported, so that a command can
# start the workers before it imports anything heavy itself.
EXTRACTION_MODULE = "abcir.features.engine"

_lock = threading.Lock()
_pools: dict[tuple[str, int], Executor] = {}


def available_cores() -> int:
    """Cores this process may use (the affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def python_executable() -> str:
    """An interpreter that can run ``multiprocessing`` spawn children of this process."""
    executable = Path(sys.executable or "")
    if executable.name.lower().startswith("python") and not executable.name.lower().startswith("pythonslicer"):
        return str(executable)
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [executable.with_name("python-real"), executable.with_name("python-real.exe"),
                  Path(sys.prefix) / "bin" / f"python{version}", Path(sys.prefix) / "bin" / "python3",
                  Path(sys.prefix) / "python.exe"]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RuntimeError(f"No Python interpreter found for worker processes (sys.executable is {sys.executable!r}); "
                       "run with jobs=1.")


def single_threaded_blas() -> ContextManager:
    """Limit BLAS/LAPACK to one thread for the duration of a ``with`` block."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def single_threaded_itk() -> Iterator[None]:
    """Make the ITK filters created inside a ``with`` block run on one thread (the previous default after).

    For a process that shares the cores with extraction workers, each of which
    runs ITK on one thread too (``_start_worker``): with one process per core,
    ITK's own threads only compete with the other processes. On the real
    3-lesion case of ``bench_whole_process.py`` (2 cores, ``jobs=2``, warm),
    extraction took 0.75-0.79 s with one ITK thread per process and 0.84-0.85 s
    with ITK's default, three alternating runs each; LoG, whose Gaussian runs
    line by line, gives the same doubles either way, and every other ITK filter
    of the extraction (crop, cast, pad, nearest-neighbour resampling, label
    statistics for bounding boxes) computes each voxel on its own.
    """
    import SimpleITK as sitk

    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def single_threaded_blas_from_start() -> None:
    """Load BLAS single-threaded in this process and the processes it starts, unless the user chose a number.

    Call it in a process that will extract, before it imports numpy. OpenBLAS
    starts a thread per core when it loads, and those threads spin while the
    process imports: importing what ``abcir extract`` needs took 0.48 s of CPU
    in 0.31 s, and 0.32 s with one thread. On two cores that spinning competes
    with the worker importing the same modules beside it: a whole
    ``abcir extract --jobs 2`` of three lesions took 1.73-1.94 s with OpenBLAS'
    default and 1.59-1.69 s with ``OPENBLAS_NUM_THREADS=1`` (six alternating
    runs each). Extraction runs BLAS on one thread anyway (``single_threaded_blas``,
    which also limits a BLAS loaded before this call, where this call has no effect).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def skip_garbage_collection_at_exit() -> None:
    """Let this process exit without the cyclic garbage collector's passes over every object it holds.

    Call it in a process that ends when its work does (a command, a worker).
    At exit Python collects garbage several times while it tears the modules
    down; with numpy, SciPy, SimpleITK and pyradiomics loaded (about 100,000
    objects) that took 0.2 s, a tenth of a whole ``abcir extract``, and 0.06 s
    with the objects frozen (``gc.freeze``, the first handler ``atexit`` runs,
    as it runs them last registered first). Nothing is lost: what Python
    flushes at exit (standard streams, logging) it still does, objects are
    still freed as the modules are cleared, and every file abcir writes is
    closed (and renamed into place) before the command returns; only garbage
    in reference cycles is left to the operating system with the process.
    """
    atexit.unregister(gc.freeze)  # once, however often a process calls this
    atexit.register(gc.freeze)


_worker_blas_limit = None


def _start_worker(warm_up: Sequence[str] = ()) -> None:
    """Limit BLAS and ITK to one thread in a new worker, as the parent limits its own extraction; import ``warm_up``.

    threadpoolctl limits only the BLAS libraries loaded when it is called, and a
    spawned worker may not have imported numpy and SciPy yet (it imports the
    parent's main module, which need not). Loaded here first, so the limit holds:
    on some CPUs threaded BLAS changes the last bit of eigenvalue-based features
    (GLCM MCC), and every worker must compute what stock pyradiomics computes on
    one thread.
    """
    global _worker_blas_limit
    skip_garbage_collection_at_exit()  # a worker lives as long as its pool
    single_threaded_blas_from_start()  # a spawned worker has not loaded numpy yet, unless its parent's main module did
    import numpy.linalg  # noqa: F401 (loads numpy's BLAS)
    import scipy.linalg  # noqa: F401 (loads SciPy's BLAS)

    _worker_blas_limit = single_threaded_blas()
    _worker_blas_limit.__enter__()
    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # one process per core (single_threaded_itk)
    for name in warm_up:
        importlib.import_module(name)


def _process_pool(workers: int, warm_up: Sequence[str]) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("spawn")
    executable = python_executable()
    if executable != sys.executable:
        # Global to multiprocessing, but only set where spawn cannot work without it (Slicer's launcher).
        context.set_executable(executable)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                               initargs=(tuple(warm_up),))
    # The executor starts a worker per task submitted while none is idle: one no-op each starts them all now.
    for _ in range(workers):
        pool.submit(os.getpid)
    return pool


def pool_size(jobs: int) -> int:
    """Workers of a pool asked for ``jobs``: at least one, at most the available cores.

    Parameters
    ----------
    jobs : int
        Workers asked for (any int; 0 or less counts as 1).

    Returns
    -------
    int
        ``jobs`` clipped to [1, available cores].
    """
    return max(1, min(jobs, available_cores()))


def worker_pool(jobs: int, backend: str = "process", warm_up: Sequence[str] = ()) -> Executor:
    """A shared pool of ``pool_size(jobs)`` workers of the given backend.

    A new process pool starts its workers at once; each imports the modules
    named in ``warm_up`` before it takes a task (a pool that exists already is
    returned as it is).

    Parameters
    ----------
    jobs : int
        Workers asked for; clipped by ``pool_size``.
    backend : {"process", "thread"}, default "process"
        Spawned worker processes, or threads of this process.
    warm_up : sequence of str, default ()
        Modules each new worker process imports before its first task.

    Returns
    -------
    Executor
        The pool for this backend and size, created now if none exists or the
        existing one broke; kept until ``discard_pool`` or ``shutdown_pools``.

    Raises
    ------
    ValueError
        ``backend`` is not "process" or "thread".
    RuntimeError
        No Python interpreter is found to spawn worker processes.
    """
    if backend not in BACKENDS:
        raise ValueError(f"Unknown parallel backend '{backend}'; use one of {', '.join(BACKENDS)}.")
    workers = pool_size(jobs)
    with _lock:
        pool = _pools.get((backend, workers))
        if pool is None or getattr(pool, "_broken", False):
            pool = (_process_pool(workers, warm_up) if backend == "process"
                    else ThreadPoolExecutor(max_workers=workers))
            _pools[(backend, workers)] = pool
        return pool


def extraction_workers(jobs: int) -> int:
    """Workers beside this process when it extracts with ``jobs`` processes in all (0 for one job).

    This process computes too: on two cores, one worker beside it did the work
    of two with 0.5 s less CPU (a worker's start) and 0.25 GB less memory.

    Parameters
    ----------
    jobs : int
        Processes in all, this one included.

    Returns
    -------
    int
        0 when ``jobs`` <= 1, else ``jobs - 1`` clipped to [1, available cores].
    """
    return pool_size(jobs - 1) if jobs > 1 else 0


def extraction_pool(jobs: int, backend: str = "process") -> Executor | None:
    """The ``extraction_workers(jobs)`` workers that extract lesions with this process, started now (or None).

    Call it as soon as a command knows it will extract with ``jobs`` > 1, before
    reading the CT: the workers import pyradiomics while this process reads.
    ``abcir.features.extract.extract_lesions`` calls it again and gets the same pool.

    Parameters
    ----------
    jobs : int
        Processes in all, this one included.
    backend : {"process", "thread"}, default "process"
        What the workers are.

    Returns
    -------
    Executor or None
        The shared pool of ``extraction_workers(jobs)`` workers, each having
        imported ``abcir.features.engine``; None when ``jobs`` <= 1.

    Raises
    ------
    ValueError
        ``backend`` is not "process" or "thread" (only when ``jobs`` > 1).
    RuntimeError
        No Python interpreter is found to spawn worker processes.
    """
    workers = extraction_workers(jobs)
    return worker_pool(workers, backend, warm_up=(EXTRACTION_MODULE,)) if workers else None


def discard_pool(pool: Executor) -> None:
    """Forget and stop a pool (after a worker died, so that the next call starts a fresh one).

    Parameters
    ----------
    pool : Executor
        The pool; its tasks not yet started are cancelled and this call does not
        wait for its workers.
    """
    with _lock:
        for key, known in list(_pools.items()):
            if known is pool:
                del _pools[key]
    pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def shutdown_pools(wait: bool = True) -> None:
    """Stop every shared pool (at exit, or when a host application unloads abcir).

    ``wait=False`` returns at once: a command done with its workers lets them
    exit (0.1 s each, tearing down their interpreter) while it writes its output.

    Parameters
    ----------
    wait : bool, default True
        Wait until every worker has exited; tasks not yet started are cancelled either way.
    """
    with _lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=wait, cancel_futures=True)
