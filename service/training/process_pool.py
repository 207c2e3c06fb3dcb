"""Running training tasks in parallel processes, one thread each.

Every fit runs with one BLAS and one OpenMP thread, whether in this process or
in a worker: with more threads, the order of floating-point sums (in the
logistic regressions, for one) follows the thread count, so the trained arrays
changed with the machine's cores. One thread per fit and one fit per core also
uses two cores better than one fit's threads do: the small networks gain
nothing from a second thread.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from threadpoolctl import threadpool_limits

Result = TypeVar("Result")


class TrainingProcessError(RuntimeError):
    """A worker process ended without returning its task's result (killed, or out of memory)."""


def run_with_one_thread(task: Callable[[], Result]) -> Result:
    """``task()`` with one BLAS and one OpenMP thread."""
    with threadpool_limits(limits=1):
        return task()


def _start_worker() -> None:
    # threadpool_limits reaches only the libraries already loaded; one that a task loads
    # later reads its thread count from these when it loads.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"


def run_tasks(
    tasks: Sequence[Callable[[], Result]], jobs: int, on_done: Callable[[int, Result], None]
) -> list[Result]:
    """Results of ``tasks`` in task order, computed by up to ``jobs`` processes, one thread each.

    ``on_done(index, result)`` is called in this process as each task finishes,
    in the order they finish. With ``jobs == 1`` (or a single task) the tasks
    run here, one after the other; otherwise each is sent to a worker process,
    so it must be picklable: a module-level function or a
    :func:`functools.partial` of one, not a lambda.

    The first error of a task is raised here, and the other workers are stopped
    at once rather than left to finish; so is Ctrl-C.

    Raises:
        ValueError: if ``jobs`` is less than 1.
        TrainingProcessError: if a worker process died before returning.
    """
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, not {jobs!r}")
    if jobs == 1 or len(tasks) < 2:
        results = []
        for index, task in enumerate(tasks):
            results.append(run_with_one_thread(task))
            on_done(index, results[-1])
        return results
    return _run_in_workers(tasks, min(jobs, len(tasks)), on_done)


def _run_in_workers(
    tasks: Sequence[Callable[[], Result]], workers: int, on_done: Callable[[int, Result], None]
) -> list[Result]:
    results: dict[int, Result] = {}
    waiting: Iterator[tuple[int, Callable[[], Result]]] = iter(enumerate(tasks))
    # Spawned, not forked: a fork of a process whose OpenMP threads have started can hang.
    executor = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )
    running: dict[Future, int] = {}

    def submit_next() -> None:
        # No more tasks in flight than workers, so that none is queued to start after a failure.
        item = next(waiting, None)
        if item is not None:
            index, task = item
            running[executor.submit(run_with_one_thread, task)] = index

    try:
        for _ in range(workers):
            submit_next()
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                results[index] = future.result()
                on_done(index, results[index])
                submit_next()
    except BrokenProcessPool as error:
        _stop(executor)
        raise TrainingProcessError(
            "a training process ended before returning its result (killed, or out of memory: "
            "each needs up to about 1 GiB); try a smaller --jobs"
        ) from error
    except BaseException:
        _stop(executor)
        raise
    executor.shutdown()
    return [results[index] for index in range(len(tasks))]


def _stop(executor: ProcessPoolExecutor) -> None:
    """Shut ``executor`` down without waiting for the tasks still running: end its workers."""
    # Python 3.14 has executor.terminate_workers(); before it, the worker processes are
    # only reachable through this attribute, and shutdown() forgets them.
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
