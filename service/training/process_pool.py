"""Running training tasks in parallel processes, one thread each.

Every fit runs with one BLAS and one OpenMP thread, whether in this process or
in a worker: with more threads, the order of floating-point sums (in the
logistic regressions, for one) follows the thread count, so the trained arrays
changed with the machine's cores. One thread per fit and one fit per core also
uses two cores better than one fit's threads do: the small networks gain
nothing from a second thread.

Each task gets a process of its own (a handful of tasks, each taking a minute
or more, so starting a process costs little), which this module can stop at
once and whose death it sees at once: ``concurrent.futures`` can do neither
reliably on Python 3.11.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TypeVar

from threadpoolctl import threadpool_limits

Result = TypeVar("Result")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class TrainingProcessError(RuntimeError):
    """A worker process ended without returning its task's result (killed, or out of memory)."""


def run_with_one_thread(task: Callable[[], Result]) -> Result:
    """``task()`` with one BLAS and one OpenMP thread."""
    with threadpool_limits(limits=1):
        return task()


def run_tasks(
    tasks: Sequence[Callable[[], Result]], jobs: int, on_done: Callable[[int, Result], None]
) -> list[Result]:
    """Results of ``tasks`` in task order, computed by up to ``jobs`` processes, one thread each.

    ``on_done(index, result)`` is called in this process as each task finishes,
    in the order they finish. With ``jobs == 1`` (or a single task) the tasks
    run here, one after the other; otherwise each runs in a process of its own,
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


def _work(results: Connection, pickled_task: bytes) -> None:
    """A worker's whole life: run one task and send back ("ok", result) or ("error", exception)."""
    # Set before the task is unpickled (which imports numpy, scipy and scikit-learn): a
    # library reads these when it loads, and threadpool_limits reaches only loaded ones.
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    try:
        message = ("ok", run_with_one_thread(pickle.loads(pickled_task)))
    except BaseException as error:  # every failure, Ctrl-C included, goes back to the parent
        error.add_note(f"in the training worker process:\n{traceback.format_exc()}")
        message = ("error", error)
    try:
        results.send(message)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        results.send(("error", RuntimeError(f"the training worker could not send back its result: {error}")))
    finally:
        results.close()


def _run_in_workers(
    tasks: Sequence[Callable[[], Result]], workers: int, on_done: Callable[[int, Result], None]
) -> list[Result]:
    # Spawned, not forked: a fork of a process whose OpenMP threads have started can hang.
    context = multiprocessing.get_context("spawn")
    waiting: Iterator[tuple[int, Callable[[], Result]]] = iter(enumerate(tasks))
    running: dict[Connection, tuple[int, BaseProcess]] = {}
    results: dict[int, Result] = {}

    def start_next() -> None:
        item = next(waiting, None)
        if item is None:
            return
        index, task = item
        receiver, sender = context.Pipe(duplex=False)
        # The task goes pickled (the same IPC a process pool uses) so that the worker
        # unpickles it, and so imports the numerical libraries, after its thread settings.
        worker = context.Process(
            target=_work, args=(sender, pickle.dumps(task)), name=f"training-task-{index}", daemon=True
        )
        worker.start()
        sender.close()  # the worker's copy is the only one left: its end means the worker's end
        running[receiver] = (index, worker)

    try:
        for _ in range(workers):
            start_next()
        while running:
            for receiver in wait(list(running)):
                index, worker = running.pop(receiver)
                try:
                    status, payload = receiver.recv()
                except EOFError:
                    worker.join()
                    raise TrainingProcessError(
                        f"a training process ended before returning its result (exit code "
                        f"{worker.exitcode}: killed, or out of memory? each needs up to about 1 GiB); "
                        "try a smaller --jobs"
                    ) from None
                finally:
                    receiver.close()
                worker.join()
                if status == "error":
                    raise payload
                results[index] = payload
                on_done(index, payload)
                start_next()
    except BaseException:
        _stop([worker for _index, worker in running.values()])
        raise
    return [results[index] for index in range(len(tasks))]


def _stop(workers: list[BaseProcess]) -> None:
    """End the workers still running, without waiting for their tasks."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join()
