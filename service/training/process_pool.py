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
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import TypeVar

from threadpoolctl import threadpool_limits

from service.domain.errors import DiscourseError

Result = TypeVar("Result")

_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


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

    ``on_done(index, result)`` is called in this process as each task finishes
    (tasks that finish together in task order). With ``jobs == 1`` (or a single task) the tasks
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
    # Only this process may hold the pipe's write end: its closing is how the parent
    # learns that the worker died.
    os.set_inheritable(results.fileno(), False)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()
    # Set before the task is unpickled (which imports numpy, scipy and scikit-learn): a
    # library reads these when it loads, and threadpool_limits reaches only loaded ones.
    for variable in _THREAD_VARIABLES:
        os.environ[variable] = "1"
    try:
        message: tuple[str, object] = ("ok", run_with_one_thread(pickle.loads(pickled_task)))
    except BaseException as error:  # every failure, Ctrl-C included, goes back to the parent
        error.add_note(f"in the training worker process:\n{traceback.format_exc()}")
        message = ("error", error)
    try:
        results.send_bytes(_pickled_message(message))
    finally:
        results.close()


def _exit_with_parent() -> None:
    """End this worker when the parent process ends, however it ended (even by SIGTERM)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os._exit(1)


def _pickled_message(message: tuple[str, object]) -> bytes:
    """``message`` as bytes the parent can unpickle, or an error message that says why not."""
    try:
        data = pickle.dumps(message)
        pickle.loads(data)  # an exception whose constructor pickle cannot call again fails here
        return data
    except Exception as error:
        status, payload = message
        what = "result" if status == "ok" else f"error {type(payload).__name__}: {payload}"
        replacement = RuntimeError(f"the training worker could not send back its {what} ({error!r})")
        for note in getattr(payload, "__notes__", []):
            replacement.add_note(note)
        return pickle.dumps(("error", replacement))


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
                    data = receiver.recv_bytes()
                except (EOFError, OSError):  # nothing, or part of a message: the worker died
                    data = None
                finally:
                    receiver.close()
                exit_code = _finish(worker)
                if data is None:
                    raise TrainingProcessError(_death_message(exit_code))
                status, payload = pickle.loads(data)
                if status == "error":
                    raise payload
                results[index] = payload
                on_done(index, payload)
                start_next()
    except BaseException:
        for receiver, (_index, worker) in running.items():
            receiver.close()
            worker.terminate()
        for _index, worker in running.values():
            _finish(worker)
        raise
    return [results[index] for index in range(len(tasks))]


def _finish(worker: BaseProcess) -> int | None:
    """Wait for ``worker`` to exit (ending it if a thread it left keeps it alive), free it; its exit code."""
    worker.join(timeout=10)
    if worker.is_alive():
        worker.kill()
        worker.join()
    exit_code = worker.exitcode
    worker.close()
    return exit_code


def _death_message(exit_code: int | None) -> str:
    """Why a worker gave no result, for someone who must decide what to change."""
    if exit_code is not None and exit_code < 0:
        cause = f"was killed by signal {-exit_code}"
        if -exit_code == signal.SIGKILL:
            cause += " (usually the system running out of memory: each process needs up to about 1 GiB)"
        return f"a training process {cause} before returning its result; try a smaller --jobs"
    return (
        f"a training process exited with code {exit_code} before returning its result "
        "(its error, if any, is above)"
    )
