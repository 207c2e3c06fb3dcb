"""A few numbers shared by the gunicorn master and all its workers, in anonymous shared memory.

The page is mapped (``MAP_SHARED``, no file) when this module is first
imported; the gunicorn config imports it in the master before any worker is
forked, so every worker sees the same page. Being anonymous, it cannot fail
for want of disk, tmpfs space or a writable folder, which is the point: it
holds what must keep working when files do not.

* the drain state, set by the master on SIGTERM and read by ``/readyz``
  (the drain flag file is kept for operators and other processes, but the
  drain no longer depends on it);
* the count of failed telemetry writes (metric files, log lines) and the time
  of the last one. Each process adds to the cell picked by its pid, so
  concurrent increments from two processes almost never share a cell (and
  the total is the sum of all cells).

Standard library only: the gunicorn config imports it before numpy.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

_CELLS = 1024
_DRAINING = 0  # offset of the drain byte
_LAST_FAILURE = 8  # offset of a double: time.time() of the last telemetry failure
_COUNTS = 16  # offset of _CELLS unsigned 64-bit counters
_SIZE = _COUNTS + 8 * _CELLS

_page = mmap.mmap(-1, _SIZE, flags=mmap.MAP_SHARED)


def set_draining() -> None:
    """Mark the server as draining (every process sees it at once)."""
    _page[_DRAINING] = 1


def draining() -> bool:
    """Whether the master has started draining."""
    return _page[_DRAINING] == 1


def count_telemetry_failure() -> None:
    """Add one failed telemetry write (by this process) and remember when it happened."""
    offset = _COUNTS + 8 * (os.getpid() % _CELLS)
    (count,) = struct.unpack_from("Q", _page, offset)
    struct.pack_into("Q", _page, offset, count + 1)
    struct.pack_into("d", _page, _LAST_FAILURE, time.time())


def telemetry_failures() -> int:
    """Failed telemetry writes of all processes since the server started."""
    return sum(struct.unpack_from(f"{_CELLS}Q", _page, _COUNTS))


def last_telemetry_failure() -> float | None:
    """``time.time()`` of the latest failed telemetry write, or ``None`` if none failed."""
    (when,) = struct.unpack_from("d", _page, _LAST_FAILURE)
    return when or None
