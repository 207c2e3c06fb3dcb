"""Metrics that cannot take the service down: allocated metric files, archived dead workers, health.

prometheus_client's multiprocess mode keeps each process's samples in
memory-mapped files that it grows with ``ftruncate``: on a full tmpfs (such as
a container's 64 MiB ``/dev/shm``) the file is sparse, and the first write to a
page that cannot be backed kills the process with SIGBUS. This module

* makes those files take their blocks up front (``posix_fallocate``), so a
  full filesystem is an ``OSError`` that the request hook catches, counts and
  logs, never a signal (:func:`install_allocation_guard`);
* folds a dead worker's counters and histograms into two archive files and
  deletes its files, so the directory does not grow with every recycled
  worker (:func:`archive_dead_process`);
* reads the files for a scrape one by one, skipping (and reporting) any that
  cannot be read, so one bad file or a deleted directory never makes
  ``/metrics`` fail (:class:`FileCollector`);
* gives ``process_*`` series for the gunicorn master and every live worker
  (:class:`ProcessesCollector`), and the telemetry health that ``/readyz``
  and ``/metrics`` report (:func:`telemetry_problems`).
"""

from __future__ import annotations

import errno
import fcntl
import glob
import logging
import mmap
import os
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import _INITIAL_MMAP_SIZE, MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector

from service.http import shared_state

log = logging.getLogger("discourse.telemetry")

FILES_PER_PROCESS = 3
"""Metric files each process writes: counters, histograms and the ``max`` gauges."""
PROCESS_BYTES = FILES_PER_PROCESS * _INITIAL_MMAP_SIZE
"""Space the files of one process take when created (each file doubles when it fills)."""
RECENT_FAILURE_SECONDS = 300.0
"""A telemetry failure this recent makes the telemetry check report ``degraded``."""
_LOG_INTERVAL = 60.0


# --- Allocated metric files -------------------------------------------------------------------------


class AllocatedMmapedDict(MmapedDict):
    """prometheus_client's mmapped dict, with every block allocated before it is mapped or grown.

    When the file cannot be created or grown (no space, folder unwritable or
    removed), the dict carries on in anonymous memory: the process keeps
    working, its later samples are missing from ``/metrics``, and every write
    that misses the file is counted and logged (:func:`report_failure`).
    """

    def __init__(self, filename: str, read_mode: bool = False) -> None:
        self._memory_only = False
        if read_mode:
            super().__init__(filename, read_mode)
            return
        try:
            _allocate_new(filename)
            super().__init__(filename, read_mode)
        except OSError as error:
            report_failure(f"metric file {filename} cannot be created", error)
            self._fname = filename
            self._f = None
            self._m = None
            self._capacity = _INITIAL_MMAP_SIZE
            self._used = 8
            self._positions = {}
            self._to_memory(b"")

    def _to_memory(self, content: bytes) -> None:
        """Continue in an anonymous mapping holding ``content`` (the used part of the file so far)."""
        memory = mmap.mmap(-1, self._capacity)
        memory[: len(content)] = content
        if self._m is not None:
            self._m.close()
        if self._f is not None:
            self._f.close()
        self._m, self._f, self._memory_only = memory, None, True
        memory[0:4] = struct.pack("i", self._used)

    def _init_value(self, key: str) -> None:
        # The same entry size as the parent's: length, key padded to 8 bytes, value and timestamp.
        encoded = len(key.encode("utf-8"))
        needed = self._used + 4 + encoded + (8 - (encoded + 4) % 8) + 16
        capacity = self._capacity
        while needed > capacity:
            capacity *= 2
        if capacity > self._capacity and not self._memory_only:
            try:
                # Raises OSError (ENOSPC) here instead of SIGBUS on the first write to a sparse page.
                os.posix_fallocate(self._f.fileno(), 0, capacity)
            except OSError as error:
                report_failure(f"metric file {self._fname} cannot grow", error)
                self._to_memory(bytes(self._m[: self._used]))
        if capacity > self._capacity and self._memory_only:
            content = bytes(self._m[: self._used])
            self._capacity = capacity
            self._to_memory(content)
        super()._init_value(key)

    def write_value(self, key: str, value: float, timestamp: float) -> None:
        """Write one sample; in memory only, count it as a telemetry write that failed."""
        super().write_value(key, value, timestamp)
        if self._memory_only:
            report_failure(f"metric file {self._fname} is not written", OSError("kept in memory only"))

    def close(self) -> None:
        """Unmap and close (the anonymous mapping too)."""
        if self._memory_only and self._m is not None:
            self._m.close()
            self._m = None
            return
        super().close()


def _allocate_new(filename: str) -> None:
    fd = os.open(filename, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if os.fstat(fd).st_size == 0:
            try:
                os.posix_fallocate(fd, 0, _INITIAL_MMAP_SIZE)
            except OSError:
                # An empty file would break every scrape that reads it.
                os.unlink(filename)
                raise
    finally:
        os.close(fd)


def install_allocation_guard() -> None:
    """Make prometheus_client create its multiprocess files with :class:`AllocatedMmapedDict`."""
    values.MmapedDict = AllocatedMmapedDict  # type: ignore[misc]


# --- Dead workers ---------------------------------------------------------------------------------


ARCHIVE_LOCK = ".archive.lock"
"""Lock file in the metrics directory (not ``*.db``, so never read as metrics): archiving a dead
process holds it exclusively, a scrape shared."""


@contextmanager
def archive_lock(directory: str, *, exclusive: bool) -> Iterator[None]:
    """Hold the metrics directory's archive lock (``flock``), exclusively or shared.

    Archiving replaces the archive file, then deletes the dead process's files. A scrape
    reading the directory in between would count that process twice (the new archive and
    its own files) or not at all (the old archive, its files gone), and a counter that
    jumps up and back looks like a reset to Prometheus. Without a lock file (directory
    gone or read-only) nothing is locked: telemetry never stops the service.
    """
    try:
        descriptor = os.open(os.path.join(directory, ARCHIVE_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def archive_dead_process(directory: str, pid: int) -> None:
    """Add the counters and histograms of dead process ``pid`` to the archives; delete its files.

    Done under :func:`archive_lock` (exclusive), so no scrape sees the new archive beside
    the dead files or the old one without them. The archive is written to a temporary
    name (not ``*.db``, so no scrape reads it half-written) and renamed over the old one
    before the dead files are deleted; a crash between the two would count that worker
    twice, never lose it. Without room for the archive, OSError is raised and the dead
    files are kept. Gauge files of ``pid`` are deleted: the live processes hold the same values.
    """
    with archive_lock(directory, exclusive=True):
        mark_process_dead(pid, directory)
        dead = glob.glob(os.path.join(directory, f"*_{pid}.db"))
        for kind in ("counter", "histogram"):
            sources = [f for f in dead if os.path.basename(f).startswith(kind + "_")]
            if not sources:
                continue
            archive = os.path.join(directory, f"{kind}_archive.db")
            totals: dict[str, float] = defaultdict(float)
            for path in [*sources, archive] if os.path.exists(archive) else sources:
                for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(path):
                    totals[key] += value
            temporary = os.path.join(directory, f".{kind}_archive.tmp")
            if os.path.exists(temporary):
                os.unlink(temporary)
            merged = AllocatedMmapedDict(temporary)
            try:
                for key, value in totals.items():
                    merged.write_value(key, value, 0.0)
                complete = not merged._memory_only
            finally:
                merged.close()
            if not complete:
                # No room for the archive: the dead files stay (scrapes still count them) until there is.
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise OSError(errno.ENOSPC, f"no room to archive the metric files of process {pid}")
            os.replace(temporary, archive)
        for path in dead:
            os.unlink(path)


# --- Scrapes ----------------------------------------------------------------------------------------


class FileCollector:
    """The multiprocess files' samples, read file by file: unreadable files are skipped and reported."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.unreadable: list[str] = []

    def collect(self) -> Iterator[Metric]:
        """Merged samples of every readable ``*.db`` file of the directory (none if it is missing).

        Read under :func:`archive_lock` (shared), so a dead worker being archived meanwhile is
        counted exactly once.
        """
        with archive_lock(self.directory, exclusive=False):
            metrics = list(self._merged())
        yield from metrics

    def _merged(self) -> Iterator[Metric]:
        readable = []
        for path in glob.glob(os.path.join(self.directory, "*.db")):
            try:
                for _ in MmapedDict.read_all_values_from_file(path):
                    pass
            except FileNotFoundError:
                continue  # a dead worker's file, archived since the directory was listed
            except Exception as error:
                self.unreadable.append(os.path.basename(path))
                report_failure(f"metric file {path} is unreadable", error)
                continue
            readable.append(path)
        try:
            yield from MultiProcessCollector.merge(readable, accumulate=True)
        except FileNotFoundError:
            # Archived between the check and the merge: read again without it.
            yield from MultiProcessCollector.merge([p for p in readable if os.path.exists(p)])


def _proc_stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), int(fields[19])


def live_children(parent: int) -> list[int]:
    """Pids of the live children of ``parent``, oldest first."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _proc_stat(entry)
            if stat is not None and stat[0] == parent:
                children.append((stat[1], int(entry)))
    return [pid for _start, pid in sorted(children)]


class ProcessesCollector:
    """``process_*`` series (memory, CPU, file descriptors, start time) of the master and each worker.

    Labels are bounded: ``process="master"`` and ``process="worker-<n>"`` where
    ``n`` is the worker's rank by age among the live workers (0 is the oldest),
    so there are never more series than workers, however many have been recycled.
    """

    def __init__(self, master_pid: int) -> None:
        self.master_pid = master_pid

    def collect(self) -> Iterator[Metric]:
        """One family per process metric, with one sample set per live process."""
        processes = [("master", self.master_pid)]
        processes += [(f"worker-{n}", pid) for n, pid in enumerate(live_children(self.master_pid))]
        families: dict[str, Metric] = {}
        for label, pid in processes:
            collector = ProcessCollector(pid=_returning(pid), registry=None)
            for metric in collector.collect():
                family = families.setdefault(
                    metric.name, Metric(metric.name, metric.documentation, metric.type)
                )
                for sample in metric.samples:
                    family.add_sample(sample.name, {**sample.labels, "process": label}, sample.value)
        yield from families.values()


# --- Health -------------------------------------------------------------------------------------------

_last_logged = 0.0
_suppressed = 0
_log_lock = threading.Lock()


def report_failure(what: str, error: BaseException) -> None:
    """Count a failed telemetry write; log it, at most once a minute per process (with the count skipped)."""
    global _last_logged, _suppressed
    shared_state.count_telemetry_failure()
    with _log_lock:
        now = time.monotonic()
        if now - _last_logged < _LOG_INTERVAL and _last_logged:
            _suppressed += 1
            return
        skipped, _suppressed, _last_logged = _suppressed, 0, now
    log.error(
        "telemetry failed: %s: %s: %s (%d more failures not logged in the last minute); "
        "requests are still answered and logged",
        what,
        type(error).__name__,
        error,
        skipped,
    )


def free_bytes(directory: str) -> int | None:
    """Bytes free for unprivileged writers on the filesystem of ``directory`` (None if unknown)."""
    try:
        stats = os.statvfs(directory)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def telemetry_problems(directory: str | None) -> list[str]:
    """What is wrong with telemetry now (empty when nothing is): directory, space, recent failures."""
    problems = []
    if directory is not None:
        if not os.path.isdir(directory):
            problems.append(f"metrics directory {directory} is missing")
        elif not os.access(directory, os.W_OK | os.X_OK):
            problems.append(f"metrics directory {directory} is not writable")
        else:
            free = free_bytes(directory)
            if free is not None and free < PROCESS_BYTES:
                problems.append(
                    f"metrics directory {directory} has {free // 1024} KiB free, "
                    f"a new worker needs {PROCESS_BYTES // 1024} KiB"
                )
    last = shared_state.last_telemetry_failure()
    if last is not None and time.time() - last < RECENT_FAILURE_SECONDS:
        problems.append(
            f"{shared_state.telemetry_failures()} telemetry writes failed since start, "
            f"the last {time.time() - last:.0f} s ago"
        )
    return problems


class HealthCollector:
    """``discourse_telemetry_healthy`` (1 or 0) and ``discourse_telemetry_failures_total``, per scrape."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        """Two families, read from the shared page and the metrics directory at scrape time."""
        healthy = GaugeMetricFamily(
            "discourse_telemetry_healthy",
            "1 if metrics and request logging work (see /readyz checks.telemetry), else 0.",
        )
        healthy.add_metric([], 0.0 if telemetry_problems(self.directory) else 1.0)
        yield healthy
        failures = CounterMetricFamily(
            "discourse_telemetry_failures",
            "Telemetry writes (metric files, log lines) that failed, all processes, since start.",
        )
        failures.add_metric([], float(shared_state.telemetry_failures()))
        yield failures


def _returning(pid: int) -> Callable[[], int]:
    """A function that returns ``pid`` (ProcessCollector asks for the pid through one)."""
    return lambda: pid
