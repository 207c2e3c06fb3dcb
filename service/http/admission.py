"""Admission control and deadlines for scoring requests, and giving memory back afterwards.

* **Admission**: a request whose body has at least ``heavy_request_bytes`` bytes is
  *heavy*. Each worker process parses and scores at most ``max_heavy_in_flight`` heavy
  requests at once; one more gets a 503 ``overloaded`` problem with ``Retry-After`` as
  soon as its body is read (before it is parsed), instead of sharing the CPU and adding
  its memory. Small requests are never queued behind heavy ones: their cost is a few
  megabytes and milliseconds. The slot is taken in the body check (``service.http.body``)
  and given back when the request ends (``teardown_request``).
* **Deadline**: :class:`Deadline` is the checkpoint the scorer calls between steps. After
  ``request_deadline`` seconds it raises a 503 ``deadline-exceeded`` problem; when the
  client has closed its connection it raises ``client-closed-request`` (logged as 499).
  Either way the remaining steps are not run.
* **Memory**: after a heavy request the C allocator is asked to give freed memory back
  to the system (glibc's ``malloc_trim``), so that a worker returns to about its idle
  size instead of keeping its peak.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import request

from service.http.problems import Problem

OVERLOADED_RETRY_AFTER = 2
"""Seconds a client is told to wait after a 503 ``overloaded``: about one heavy request's time."""


def _load_libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


_LIBC = _load_libc()


_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Make freed memory go back to the system (glibc only; elsewhere nothing).

    glibc raises its mmap threshold each time a large block is freed, so after
    one big request later large arrays come from the heap and stay there; and
    each thread may get its own heap arena. A fixed 128 KiB threshold (large
    numpy arrays are always mapped, and unmapped when freed) and two arenas keep
    a worker near its idle size after a large request. Called by the gunicorn
    config before the workers are forked; they inherit it.
    """
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        _LIBC.mallopt(_M_ARENA_MAX, 2)


def release_memory() -> None:
    """Return freed heap memory to the operating system (glibc only; elsewhere nothing)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class Admission:
    """At most ``capacity`` heavy requests at once in this process."""

    def __init__(self, capacity: int, heavy_bytes: int) -> None:
        self.capacity = capacity
        self.heavy_bytes = heavy_bytes
        self._slots = threading.BoundedSemaphore(capacity)

    def enter(self, size: int) -> bool:
        """Take a slot for a request of ``size`` bytes: False if it is small (it needs none);
        raises ``overloaded`` if none is free. A True answer must be followed by :meth:`leave`."""
        if size < self.heavy_bytes:
            return False
        if not self._slots.acquire(blocking=False):
            raise Problem(
                "overloaded",
                f"This worker is already scoring {self.capacity} large request(s) "
                f"({self.heavy_bytes} bytes or more); retry after the number of seconds in "
                "the Retry-After header, or send smaller batches.",
                headers={"Retry-After": str(OVERLOADED_RETRY_AFTER)},
            )
        return True

    def leave(self) -> None:
        """Give the slot back, and the request's memory to the system."""
        self._slots.release()
        release_memory()

    @contextmanager
    def admit(self, size: int) -> Iterator[None]:
        """Run the block in a slot (none for a small request); raise ``overloaded`` if none is free."""
        entered = self.enter(size)
        try:
            yield
        finally:
            if entered:
                self.leave()


class Deadline:
    """A scoring checkpoint: stops the work past ``seconds`` or once the client has gone.

    The client is seen to have gone when its socket (gunicorn's ``gunicorn.socket``)
    reads as closed: an orderly close or reset. Under a server that does not expose
    the socket only the time is checked.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + seconds
        self._socket: socket.socket | None = request.environ.get("gunicorn.socket")

    def __call__(self) -> None:
        if time.monotonic() > self.ends:
            raise Problem(
                "deadline-exceeded",
                f"Scoring took longer than {self.seconds:g} s and was stopped; retry later or "
                "send a smaller batch.",
                headers={"Retry-After": str(max(1, math.ceil(self.seconds)))},
            )
        if self._socket is not None and _closed(self._socket):
            raise Problem("client-closed-request", "The client closed the connection; the work was stopped.")


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # open, nothing to read
    except OSError:
        return True  # reset, or not a socket any more
