"""Tasks for the process-pool tests: module-level, so that worker processes can unpickle them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def wait_for_file(path: Path, value: str, timeout: float = 60.0) -> str:
    """Return ``value`` once ``path`` exists (so this task finishes after the one that writes it)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)
    return value


def write_file(path: Path, value: str) -> str:
    """Create ``path`` and return ``value``."""
    path.write_text(value, encoding="utf-8")
    return value


def sleep_then_return(seconds: float, value: str) -> str:
    """Return ``value`` after ``seconds``."""
    time.sleep(seconds)
    return value


def fail(message: str) -> str:
    """Raise ``ValueError(message)``."""
    raise ValueError(message)


def thread_pools() -> list[dict]:
    """threadpoolctl's report on the numerical libraries a training task uses, once loaded."""
    from threadpoolctl import threadpool_info

    import service.training.trainer  # noqa: F401  (loads numpy, scipy and scikit-learn's OpenMP)

    return threadpool_info()


class TwoArgumentError(Exception):
    """An exception that pickle cannot rebuild: its constructor takes two arguments, ``args`` has one."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


def fail_with_two_arguments() -> str:
    """Raise :class:`TwoArgumentError`."""
    raise TwoArgumentError("the task", "failed")


def write_pid_then_sleep(path: Path, seconds: float) -> str:
    """Write this process's id to ``path``, then sleep ``seconds``."""
    path.write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(seconds)
    return "slept"


def fail_once_file_exists(path: Path, message: str) -> str:
    """Raise ``ValueError(message)`` once ``path`` exists."""
    wait_for_file(path, "")
    raise ValueError(message)


def kill_self(signal_number: int) -> str:
    """End this process with ``signal_number``, as the out-of-memory killer would with SIGKILL."""
    os.kill(os.getpid(), signal_number)
    time.sleep(60)
    return "not reached"


def return_a_lock() -> threading.Lock:
    """A result that pickle cannot send back."""
    return threading.Lock()
