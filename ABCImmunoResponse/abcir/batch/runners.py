"""Where a batch's patients are computed: in this process, in a local process pool, or on a Dask cluster.

Each runner calls ``finished(spec, record, error)`` once per patient, in this process, as patients
finish (in any order); the caller writes every output. A patient's failure, whatever it is, stops
only that patient.
"""

from __future__ import annotations

from concurrent.futures import as_completed
from pathlib import Path
from typing import Callable, Sequence

from ..cohort.table import CohortRow
from ..errors import InputError
from ..features.parallel import worker_pool
from .sensitivity import SensitivitySettings, analyse_patient
from .store import PatientRecord
from .work import (
    ModelChoice,
    compute_lesion,
    compute_patient,
    finish_patient,
    input_bytes,
    model_bundles,
    plan_work,
    work_lesion,
    work_todo,
)


def run_local(todo: list[tuple[CohortRow, str]], cache: Path, models: Sequence[ModelChoice], jobs: int,
              finished: Callable[[CohortRow, PatientRecord | None, BaseException | None], None],
              sensitivity: SensitivitySettings | None = None) -> None:
    """Compute the patients here: one after the other, or ``jobs`` at a time in worker processes.

    Parameters
    ----------
    todo : list of (CohortRow, str)
        The patients to compute, each with its fingerprint (SHA-256, hex).
    cache : Path
        The batch's feature cache folder.
    models : sequence of ModelChoice
        The models to predict with.
    jobs : int
        Worker processes; 1 (or a single patient) computes in this process.
    finished : callable
        Called with the patient's row and either its record or the exception that stopped it.
    sensitivity : SensitivitySettings, optional
        The outline sensitivity to add to each record; None adds none.
    """
    if jobs <= 1 or len(todo) <= 1:
        for spec, fingerprint in todo:
            try:
                record = compute_patient(spec, fingerprint, cache, models, sensitivity)
            except Exception as error:  # noqa: BLE001 (one patient's failure, whatever it is, stops only it)
                finished(spec, None, error)
            else:
                finished(spec, record, None)
        return
    pool = worker_pool(jobs, "process")
    # Largest inputs first, so that no worker is left alone with a big patient at the end.
    ordered = sorted(todo, key=lambda item: -input_bytes(item[0]))
    futures = {pool.submit(compute_patient, spec, fingerprint, cache, models, sensitivity): spec
               for spec, fingerprint in ordered}
    for future in as_completed(futures):
        error = future.exception()
        finished(futures[future], None if error else future.result(), error)


def run_dask(todo: list[tuple[CohortRow, str]], cache: Path, models: Sequence[ModelChoice], scheduler: str,
             finished: Callable[[CohortRow, PatientRecord | None, BaseException | None], None],
             sensitivity: SensitivitySettings | None = None) -> None:
    """Compute the patients on an existing Dask distributed cluster: per patient a plan, its lesions, a finish
    (and with ``sensitivity`` one task for the outline sensitivity).

    Parameters
    ----------
    todo : list of (CohortRow, str)
        The patients to compute, each with its fingerprint (SHA-256, hex).
    cache : Path
        The batch's feature cache folder, on storage the workers share (they read it).
    models : sequence of ModelChoice
        The models to predict with.
    scheduler : str
        The scheduler's address, e.g. ``tcp://host:8786``.
    finished : callable
        Called with the patient's row and either its record or the exception that stopped it.
    sensitivity : SensitivitySettings, optional
        The outline sensitivity to add to each record; None adds none.

    Raises
    ------
    InputError
        The ``distributed`` package is missing, ``scheduler`` is not an address, or the scheduler cannot be
        reached within 30 s.
    """
    try:
        from distributed import Client
        from distributed import as_completed as dask_completed
    except ImportError as error:
        raise InputError("--scheduler needs the 'distributed' package (pip install \"dask[distributed]\").") from error
    try:
        client = Client(scheduler, timeout="30s")
    except ValueError as error:  # refused before any connection: no port, an unknown protocol
        raise InputError(f"Dask scheduler '{scheduler}': not a scheduler address ({error}); give it as "
                         "tcp://HOST:PORT, as the scheduler prints it when it starts.") from error
    except (OSError, TimeoutError) as error:
        raise InputError(f"Dask scheduler '{scheduler}': cannot connect ({error}). Start the cluster first, or "
                         "run without --scheduler.") from error
    with client:
        # At most a few patients per worker thread in flight: a patient's work holds its lesions' full-size masks.
        window = max(2, 2 * sum(client.nthreads().values()))
        waiting = list(todo)
        # future -> (stage, patient, the patient's work future); stages: plan, todo, finish, sensitivity
        stages: dict = {}
        pending = dask_completed()

        def start_next() -> None:
            if waiting:
                spec, fingerprint = waiting.pop(0)
                work = client.submit(plan_work, spec, fingerprint, cache, pure=False)
                stages[work] = ("plan", spec, work)
                pending.add(work)

        for _ in range(window):
            start_next()
        for future in pending:
            stage, spec, work = stages.pop(future)
            if future.status == "error":
                finished(spec, None, future.exception())
                start_next()
                continue
            if stage == "plan":
                following = client.submit(work_todo, work, pure=False)
                stages[following] = ("todo", spec, work)
            elif stage == "todo":
                values = {index: client.submit(compute_lesion, client.submit(work_lesion, work, index, pure=False),
                                               pure=False) for index in future.result()}
                following = client.submit(finish_patient, work, values, models, pure=False)
                stages[following] = ("finish", spec, work)
            elif stage == "finish" and sensitivity is not None:
                following = client.submit(analyse_patient, spec, future, cache, model_bundles(models), sensitivity,
                                          pure=False)
                stages[following] = ("sensitivity", spec, work)
            else:
                finished(spec, future.result(), None)
                start_next()
                continue
            pending.add(following)
