"""run_tasks: order, one thread per fit, and stopping at the first failure, without Flask."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import pytest

from service.training.process_pool import TrainingProcessError, run_tasks
from tests.process_tasks import fail, sleep_then_return, thread_pools, wait_for_file, write_file


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_task_order_and_each_is_reported_once_as_it_finishes(
    jobs: int, tmp_path: Path
) -> None:
    signal = tmp_path / "second-done"
    # With two workers the first task waits for the second, so it must finish last.
    first = partial(wait_for_file, signal, "first") if jobs > 1 else partial(sleep_then_return, 0.0, "first")
    done: list[tuple[int, str]] = []
    results = run_tasks(
        [first, partial(write_file, signal, "second")], jobs, lambda i, r: done.append((i, r))
    )
    assert results == ["first", "second"]
    expected_order = [(1, "second"), (0, "first")] if jobs > 1 else [(0, "first"), (1, "second")]
    assert done == expected_order


@pytest.mark.parametrize("jobs", [1, 2])
def test_every_task_runs_with_one_blas_and_one_openmp_thread(jobs: int) -> None:
    for libraries in run_tasks([thread_pools, thread_pools], jobs, lambda _i, _r: None):
        assert {library["user_api"] for library in libraries} >= {"blas", "openmp"}
        assert [library["num_threads"] for library in libraries] == [1] * len(libraries)


def test_a_failing_task_stops_the_others_at_once(tmp_path: Path) -> None:
    never_started = tmp_path / "third-ran"
    tasks = [
        partial(sleep_then_return, 60.0, "slow"),
        partial(fail, "the second task failed"),
        partial(write_file, never_started, "third"),
    ]
    started = time.monotonic()
    with pytest.raises(ValueError, match="the second task failed"):
        run_tasks(tasks, 2, lambda _i, _r: None)
    # Not the 60 s of the slow task: it was stopped, and the third was never sent.
    assert time.monotonic() - started < 30.0
    assert not never_started.exists()


def test_a_worker_that_dies_is_a_training_process_error() -> None:
    tasks = [partial(os._exit, 3), partial(sleep_then_return, 60.0, "slow")]
    started = time.monotonic()
    with pytest.raises(TrainingProcessError, match="try a smaller --jobs"):
        run_tasks(tasks, 2, lambda _i, _r: None)
    assert time.monotonic() - started < 30.0


def test_an_in_process_task_error_is_raised_as_is() -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        run_tasks([partial(int, "7"), partial(int, "seven")], 1, lambda _i, _r: None)


def test_fewer_than_one_job_is_refused() -> None:
    with pytest.raises(ValueError, match="jobs must be at least 1, not 0"):
        run_tasks([partial(int, "7")], 0, lambda _i, _r: None)
