"""Running training tasks in parallel processes, one thread each, on joblib's loky backend.

Every fit runs with one BLAS and one OpenMP thread, whether in this process or
in a worker: with more threads, the order of floating-point sums (in the
logistic regressions, for one) follows the thread count, so the trained arrays
changed with the machine's cores. One thread per fit and one fit per core also
uses two cores better than one fit's threads do: the small networks gain
nothing from a second thread.

joblib runs the tasks, stops the running ones at the first failure and sees a
worker die at once. What it does not do, this module adds: loky's reusable
workers are shut down when the call ends (so no process outlives it), a worker
ends with this process however it ended (loky would leave it running its task,
then idle for minutes), and a worker's death becomes a message that names the
signal or exit code and what to change.
"""

from __future__ import annotations

import os
import pickle
import re
import signal
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

from joblib import Parallel, delayed, parallel_config
from joblib.externals.loky import get_reusable_executor
from joblib.externals.loky.process_executor import TerminatedWorkerError
from threadpoolctl import threadpool_limits

from service.domain.errors import DiscourseError

Result = TypeVar("Result")


class TrainingProcessError(DiscourseError, RuntimeError):
    """A worker process ended without returning its task's result (killed, perhaps for memory)."""


def run_with_one_thread(task: Callable[[], Result]) -> Result:
    """``task()`` with one BLAS and one OpenMP thread."""
    with threadpool_limits(limits=1):
        return task()


def run_tasks(
    tasks: Sequence[Callable[[], Result]], jobs: int, on_done: Callable[[int, Result], None]
) -> list[Result]:
    """Results of ``tasks`` in task order, computed by up to ``jobs`` processes, one thread each.

    ``on_done(index, result)`` is called in this process as each task finishes.
    With ``jobs == 1`` (or a single task) the tasks run here, one after the other;
    otherwise in worker processes, so each must be picklable (by cloudpickle).

    The first error of a task (or of ``on_done``) is raised here, and the other
    workers are stopped at once rather than left to finish; so is Ctrl-C. No
    worker process outlives the call.

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
    # inner_max_num_threads puts the thread variables in a worker's environment before it
    # starts, so the numerical libraries read them as they load (threadpool_limits reaches
    # only loaded ones). With pre_dispatch = n_jobs a task is handed to loky only when a
    # worker is free, so after a failure no queued task starts.
    with parallel_config(
        backend="loky", inner_max_num_threads=1, initializer=_exit_with_parent, initargs=(os.getpid(),)
    ):
        outputs = Parallel(
            n_jobs=workers, return_as="generator_unordered", pre_dispatch="n_jobs", batch_size=1
        )(delayed(_run_indexed)(index, task) for index, task in enumerate(tasks))
        try:
            for index, result in outputs:
                results[index] = result
                on_done(index, result)
        except TerminatedWorkerError as error:
            raise TrainingProcessError(_death_message(str(error))) from None
        finally:
            with warnings.catch_warnings():  # that the other tasks were cancelled is the point
                warnings.filterwarnings("ignore", "[0-9]+ tasks which were still being processed")
                outputs.close()  # stops the workers if the loop did not finish
            get_reusable_executor(reuse=True).shutdown(wait=True, kill_workers=True)
    return [results[index] for index in range(len(tasks))]


def _exit_with_parent(parent: int) -> None:
    """In a new worker: end it when the process ``parent`` ends, however it ended (even by SIGKILL)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _run_indexed(index: int, task: Callable[[], Result]) -> tuple[int, Result]:
    """In a worker: ``(index, task())``, or an error this process can unpickle, raised.

    Raised rather than returned, so that joblib hands out no further task.
    """
    try:
        result = run_with_one_thread(task)
    except BaseException as error:  # every failure, Ctrl-C included, goes back to the parent
        error.add_note(f"in the training worker process:\n{traceback.format_exc()}")
        raise _sendable(error) from None
    try:
        pickle.loads(pickle.dumps(result))
    except Exception as error:
        raise RuntimeError(f"the training worker could not send back its result ({error!r})") from None
    return index, result


def _sendable(error: BaseException) -> BaseException:
    """``error``, or if pickle cannot rebuild it (its constructor, say), a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception as reason:
        replacement = RuntimeError(
            f"the training worker could not send back its error {type(error).__name__}: {error} ({reason!r})"
        )
        for note in getattr(error, "__notes__", []):
            replacement.add_note(note)
        return replacement


def _death_message(loky_message: str) -> str:
    """Why a worker gave no result, for someone who must decide what to change.

    loky names the dead workers' exit codes only in its message ("... are {SIGKILL(-9)}");
    tests/test_process_pool.py fails if a joblib upgrade changes that.
    """
    codes = re.search(r"exit codes of the workers are \{([^}]*)\}", loky_message)
    numbers = [int(code) for code in re.findall(r"\((-?\d+)\)", codes.group(1))] if codes else []
    if not numbers:
        return f"a training process ended before returning its result; try a smaller --jobs ({loky_message})"
    exit_code = numbers[0]
    if exit_code < 0:
        cause = f"was killed by signal {-exit_code}"
        if -exit_code == signal.SIGKILL:
            cause += " (usually the system running out of memory: each process needs up to about 1 GiB)"
        return f"a training process {cause} before returning its result; try a smaller --jobs"
    return (
        f"a training process exited with code {exit_code} before returning its result "
        "(its error, if any, is above)"
    )
