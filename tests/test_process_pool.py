"""run_tasks: order, one thread per fit, and stopping at the first failure, without Flask."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import psutil
import pytest

from service.training.process_pool import TrainingProcessError, run_tasks
from tests.process_tasks import (
    fail_once_file_exists,
    fail_with_two_arguments,
    kill_self,
    return_a_lock,
    sleep_then_return,
    thread_pools,
    wait_for_file,
    write_file,
    write_pid_then_sleep,
)


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_task_order_and_each_is_reported_once_as_it_finishes(
    jobs: int, tmp_path: Path
) -> None:
    reported = tmp_path / "second-reported"
    # With two workers the first task waits until the second has been reported, so it is
    # reported last (tasks that finish together would be reported in task order).
    first = (
        partial(wait_for_file, reported, "first") if jobs > 1 else partial(sleep_then_return, 0.0, "first")
    )
    done: list[tuple[int, str]] = []

    def on_done(index: int, result: str) -> None:
        done.append((index, result))
        if index == 1:
            reported.touch()

    results = run_tasks([first, partial(sleep_then_return, 0.0, "second")], jobs, on_done)
    assert results == ["first", "second"]
    expected_order = [(1, "second"), (0, "first")] if jobs > 1 else [(0, "first"), (1, "second")]
    assert done == expected_order
    assert multiprocessing.active_children() == []


@pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < 2, reason="with one CPU the libraries start with one thread anyway"
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_every_task_runs_with_one_blas_and_one_openmp_thread(jobs: int) -> None:
    for libraries in run_tasks([thread_pools, thread_pools], jobs, lambda _i, _r: None):
        assert {library["user_api"] for library in libraries} >= {"blas", "openmp"}
        assert [library["num_threads"] for library in libraries] == [1] * len(libraries)


def _has_ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_failing_task_stops_the_others_at_once(tmp_path: Path) -> None:
    pid_file, never_started = tmp_path / "slow.pid", tmp_path / "third-ran"
    tasks = [
        partial(write_pid_then_sleep, pid_file, 60.0),
        partial(fail_once_file_exists, pid_file, "the second task failed"),
        partial(write_file, never_started, "third"),
    ]
    with pytest.raises(ValueError, match="the second task failed"):
        run_tasks(tasks, 2, lambda _i, _r: None)
    assert _has_ended(int(pid_file.read_text(encoding="utf-8")))
    assert multiprocessing.active_children() == []
    assert not never_started.exists()


def test_an_error_in_on_done_stops_the_other_workers(tmp_path: Path) -> None:
    pid_file = tmp_path / "slow.pid"

    def on_done(_index: int, _result: str) -> None:
        raise RuntimeError("the caller's callback failed")

    tasks = [partial(write_pid_then_sleep, pid_file, 60.0), partial(wait_for_file, pid_file, "fast")]
    with pytest.raises(RuntimeError, match="the caller's callback failed"):
        run_tasks(tasks, 2, on_done)
    assert _has_ended(int(pid_file.read_text(encoding="utf-8")))
    assert multiprocessing.active_children() == []


def test_a_worker_killed_by_a_signal_is_a_training_process_error_that_names_it() -> None:
    tasks = [partial(kill_self, signal.SIGKILL), partial(sleep_then_return, 60.0, "slow")]
    with pytest.raises(
        TrainingProcessError, match=r"killed by signal 9 .*out of memory.*try a smaller --jobs"
    ):
        run_tasks(tasks, 2, lambda _i, _r: None)
    assert multiprocessing.active_children() == []


def test_a_worker_that_exits_without_a_result_is_a_training_process_error() -> None:
    with pytest.raises(TrainingProcessError, match="exited with code 3 before returning its result"):
        run_tasks([partial(os._exit, 3), partial(sleep_then_return, 60.0, "slow")], 2, lambda _i, _r: None)


def test_a_result_that_cannot_be_sent_back_is_an_error_that_says_so() -> None:
    tasks = [return_a_lock, partial(sleep_then_return, 0.0, "fine")]
    with pytest.raises(RuntimeError, match="could not send back its result"):
        run_tasks(tasks, 2, lambda _i, _r: None)


def test_an_error_that_cannot_be_unpickled_still_arrives_with_its_text() -> None:
    tasks = [partial(fail_with_two_arguments), partial(sleep_then_return, 0.0, "fine")]
    with pytest.raises(RuntimeError, match="TwoArgumentError: the task: failed") as raised:
        run_tasks(tasks, 2, lambda _i, _r: None)
    assert any("in the training worker process" in note for note in raised.value.__notes__)


def test_an_in_process_task_error_is_raised_as_is() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        run_tasks([partial(int, "7"), partial(int, "seven")], 1, lambda _i, _r: None)


def test_fewer_than_one_job_is_refused() -> None:
    with pytest.raises(ValueError, match="jobs must be at least 1, not 0"):
        run_tasks([partial(int, "7")], 0, lambda _i, _r: None)


def _is_running(pid: int) -> bool:
    """Whether process ``pid`` exists and has not ended (a zombie has ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


_CALLER = """
import sys
from functools import partial
from pathlib import Path

from service.training.process_pool import run_tasks
from tests.process_tasks import write_pid_then_sleep

run_tasks([partial(write_pid_then_sleep, Path(name), 60.0) for name in sys.argv[1:]], 2, print)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGKILL])
def test_workers_end_with_the_process_that_runs_the_tasks(signal_number: int, tmp_path: Path) -> None:
    pid_files = [tmp_path / "first.pid", tmp_path / "second.pid"]
    caller = subprocess.Popen(
        [sys.executable, "-c", _CALLER, *map(str, pid_files)], cwd=Path(__file__).resolve().parent.parent
    )
    try:
        deadline = time.monotonic() + 60
        while not all(path.exists() and path.read_text(encoding="utf-8") for path in pid_files):
            assert time.monotonic() < deadline and caller.poll() is None, "the workers did not start"
            time.sleep(0.05)
    finally:
        caller.send_signal(signal_number)
        caller.wait()
    workers = [int(path.read_text(encoding="utf-8")) for path in pid_files]
    deadline = time.monotonic() + 10
    while any(_is_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _is_running(pid)]
    for pid in left:  # not to leave them behind when this fails
        os.kill(pid, signal.SIGKILL)
    assert left == []
