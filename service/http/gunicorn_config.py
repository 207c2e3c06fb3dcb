"""gunicorn settings for the Procfile's ``web`` process.

Read by gunicorn itself (``--config python:service.http.gunicorn_config``);
the platform conventions ``PORT`` and ``WEB_CONCURRENCY`` set the bind port
and the number of worker processes, ``DISCOURSE_*`` variables the rest
(docs/operations.md lists them). ``GUNICORN_CMD_ARGS`` still overrides any
value set here, as gunicorn applies it after this file.

gunicorn imports this module before it loads the application (``preload_app``),
so the environment prepared here is what numpy, prometheus_client and the
app's :meth:`Settings.from_env` see, in the master and in every forked worker.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, NoReturn

# One BLAS/OpenMP thread per worker: the parallelism is the worker processes (and their threads);
# a BLAS pool per worker would oversubscribe the CPUs W-fold. OpenBLAS and OpenMP read these once,
# when numpy is first imported, which is after this point (nothing above imports numpy).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from service.config import Settings, SettingsError, bind_address, platform_int  # noqa: E402 (no numpy yet)
from service.http import shared_state  # noqa: E402 (standard library only; mapped here, before any fork)


def _stop_on_bad_setting(message: str) -> NoReturn:
    """Stop before listening with one line naming the variable (gunicorn would print a traceback)."""
    print(f"discourse-compare: configuration error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


try:
    _settings = Settings.from_env()
    # The platform conventions: worker processes (0 would listen and never answer) and the port.
    _workers = platform_int(os.environ, "WEB_CONCURRENCY")
    _port = platform_int(os.environ, "PORT")
except SettingsError as _error:
    _stop_on_bad_setting(str(_error))

# Large requests must not leave workers at their peak size (service.http.admission explains how).
from service.http.admission import tune_allocator  # noqa: E402 (ctypes and Flask only)

tune_allocator()

# --- State shared by the master and the workers: metrics files and the drain flag -------------------

# A private directory for this server's lifetime. gunicorn calls on_exit only after a normal stop,
# not when the app fails to load, so the removal is also registered with atexit; forked workers
# inherit atexit handlers, hence the check that the exiting process is the one that made it.
_runtime_dir = Path(tempfile.mkdtemp(prefix="discourse-gunicorn-"))
_MASTER_PID = os.getpid()


def _remove_runtime_dir() -> None:
    if os.getpid() == _MASTER_PID:
        shutil.rmtree(_runtime_dir, ignore_errors=True)


atexit.register(_remove_runtime_dir)

# prometheus_client's multiprocess mode: every process writes its samples to files here and /metrics
# sums them, so counts are right whichever worker answers a scrape. It must be set before
# prometheus_client is first imported (the app is imported after this module).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    METRICS_DIR = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
else:
    METRICS_DIR = _runtime_dir / "metrics"
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)
try:
    METRICS_DIR.mkdir(parents=True, exist_ok=True)
    # Files left by an earlier run would be added to this run's counters.
    for _stale in METRICS_DIR.glob("*.db"):
        _stale.unlink()
except OSError as _error:
    # Telemetry never stops the service: it starts, and /readyz and the log say metrics are broken.
    print(f"discourse-compare: metrics directory {METRICS_DIR}: {_error.strerror}", file=sys.stderr)


# Space the metric files of one process take when created: three 64 KiB files (counters, histograms,
# gauges), allocated up front (service.http.telemetry). Dead workers' files are folded into two
# archive files, so the need does not grow with recycled workers.
_PROCESS_METRICS_BYTES = 3 * 64 * 1024


def _report_metrics_space() -> None:
    """One start-up line (JSON, as the app's): the metrics directory's free space and what is needed.

    The master, each worker and one replacement worker each need their files,
    plus the two archives: too little space is a warning, not a stop, as the
    service scores without metrics (/readyz and /metrics then say telemetry is degraded).
    """
    needed = (_workers + 2) * _PROCESS_METRICS_BYTES + 2 * 64 * 1024
    try:
        stats = os.statvfs(METRICS_DIR)
        free: int | None = stats.f_bavail * stats.f_frsize
    except OSError:
        free = None
    enough = free is not None and free >= needed
    record = {
        "level": "INFO" if enough else "WARNING",
        "logger": "discourse.telemetry",
        "message": (
            f"metrics directory {METRICS_DIR}: "
            + (f"{free // 1024} KiB free" if free is not None else "not usable")
            + f", {needed // 1024} KiB needed for {_workers} workers"
            + ("" if enough else "; metrics will be incomplete, requests are still served and logged")
        ),
        "metrics_dir": str(METRICS_DIR),
        "free_bytes": free,
        "needed_bytes": needed,
    }
    print(json.dumps(record), file=sys.stderr, flush=True)


_report_metrics_space()

# Exists while draining after SIGTERM; /readyz answers 503 while it does. Workers learn its path
# from the environment through Settings.draining_flag.
DRAINING_FLAG = _settings.draining_flag or _runtime_dir / "draining"
os.environ["DISCOURSE_DRAINING_FLAG"] = str(DRAINING_FLAG)
# Left behind by a server that was killed while draining, it would keep the new one "not ready".
DRAINING_FLAG.unlink(missing_ok=True)

# --- Server -------------------------------------------------------------------------------------------

bind = bind_address(_settings.host, _port)
# Scoring is CPU-bound: about one worker per CPU core gives the throughput.
workers = _workers

# gthread rather than sync. The GIL means threads add no scoring throughput, but with sync workers a
# worker scoring a 256-text batch (seconds) cannot answer anything else: probes time out and the
# orchestrator restarts or unroutes a healthy instance, and a slow client uploading a 2 MiB body
# holds the whole worker. Threads keep /livez, /readyz and /metrics answering and let keep-alive
# work. A thread reading a slow upload is blocked on its socket, so many threads (32): a few slow
# uploaders cannot take them all, and the app ends a body that crawls below DISCOURSE_BODY_MIN_RATE
# (408). Threads cost no CPU or memory while they wait; what they could cost when busy is bounded
# by the app's admission control (DISCOURSE_MAX_HEAVY_IN_FLIGHT large requests per worker).
worker_class = "gthread"
threads = _settings.worker_threads

# A thread waiting for the GIL gets it only when the holder has run for the switch interval: with
# the default 5 ms a small request sharing a worker with a large batch waits that long at every
# hand-over (each NumPy call that releases the GIL, each socket operation), hundreds of ms in all.
# 1 ms cuts that wait; the large batch loses little (its work is in long NumPy calls).
sys.setswitchinterval(0.001)

# With gthread this is a hang detector, not a request deadline: the worker's main loop heartbeats
# while threads score, so only a process stuck as a whole (not a long batch) gets killed.
timeout = _settings.worker_timeout

# After the drain period, how long workers get to finish requests in flight before SIGKILL. The drain
# plus this must stay under the platform's own stop grace period (30 s on Heroku and by default on
# Kubernetes), otherwise the platform kills the processes first.
graceful_timeout = _settings.graceful_timeout

# Restart each worker after this many requests, so that memory fragmentation or a slow leak in a
# native library cannot grow without bound; the jitter staggers restarts so that the workers do
# not all restart at once. A restart is cheap with preload_app (a fork of the loaded master).
# 0 disables it.
max_requests = _settings.max_requests
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0

# Load and verify the model once in the master, before forking: workers share its memory pages
# (copy on write), start in milliseconds, and a bad artifact stops the server before it listens
# instead of crash-looping workers.
preload_app = True

# The app writes one JSON line per request itself (service.http.observability); gunicorn's own
# access log stays off so that requests are not logged twice. Lifecycle messages go to stderr.
accesslog = None
errorlog = "-"

# gunicorn 25+ opens a control socket (for gunicornc) at one fixed path per user by default, so two
# servers on one host would contend for it: each server gets its own, in its private directory.
control_socket = str(_runtime_dir / "gunicorn.ctl")

# Worker heartbeats are file timestamp updates; on a container's overlay disk these can stall and
# get healthy workers killed, so they go to memory (tmpfs) where available.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"


# --- Hooks --------------------------------------------------------------------------------------------


def when_ready(server: Any) -> None:
    """Make SIGTERM drain first: ``/readyz`` fails for ``drain_seconds``, then a graceful stop.

    A load balancer stops routing to an instance only after its readiness
    probe fails; stopping at once would refuse the requests it still sends
    meanwhile. So the first SIGTERM creates the drain flag (every worker's
    ``/readyz`` then answers 503) while the workers keep serving, and after
    the drain period the master carries on with gunicorn's own SIGTERM
    handling: close the listeners and let each worker finish the requests it
    has within ``graceful_timeout``. A second SIGTERM ends the drain early;
    SIGINT and SIGQUIT still stop at once.
    """
    stop = server.handle_term
    drain_seconds = _settings.drain_seconds
    draining = threading.Event()

    def handle_term() -> None:
        if draining.is_set() or drain_seconds <= 0:
            server.log.info(
                "drain over: stopping workers, %s s for requests in flight", server.cfg.graceful_timeout
            )
            stop()
            return
        draining.set()
        try:
            # Workers' /readyz reads the shared page: the drain works even if no file can be made.
            shared_state.set_draining()
            _create_drain_flag(server)
            server.log.info("SIGTERM: /readyz answers 503; serving %s s more before stopping", drain_seconds)
            # The master's loop keeps running meanwhile (reaping and supervising workers). The timer
            # re-sends SIGTERM to this process, which brings gunicorn's queue back to this handler.
            timer = threading.Timer(drain_seconds, os.kill, args=(os.getpid(), signal.SIGTERM))
            timer.daemon = True
            timer.start()
        except Exception:
            # Anything raised here would kill the master mid-loop ("Unhandled exception in main loop")
            # and reset every request in flight: stop gracefully instead.
            server.log.exception("drain could not start; stopping gracefully at once")
            stop()

    # gunicorn looks the handler up by name for each signal, so an instance attribute replaces it.
    server.handle_term = handle_term


def _create_drain_flag(server: Any) -> None:
    """Create the drain flag for other readers (its folder is re-made if a temp cleaner removed it)."""
    try:
        DRAINING_FLAG.parent.mkdir(parents=True, exist_ok=True)
        DRAINING_FLAG.touch()
    except OSError as error:
        server.log.warning(
            "could not create the drain flag %s (%s); draining through shared memory only",
            DRAINING_FLAG,
            error.strerror,
        )


def on_reload(server: Any) -> None:
    """SIGHUP: load seeds/ and the model again in the master before the new workers fork.

    A broken file keeps the old, working set (logged and counted; see service.http.reloading).
    """
    from service.http.reloading import reload_runtime

    reload_runtime(server.app.wsgi())


def child_exit(server: Any, worker: Any) -> None:
    """Fold the dead worker's metric files into the archive files, so the directory does not grow.

    Its counters and histograms are added to ``counter_archive.db`` and
    ``histogram_archive.db`` (totals must not go down), its gauge files are
    removed, then its own files are deleted. A failure is logged, never raised:
    gunicorn's master must keep supervising.
    """
    from service.http.telemetry import archive_dead_process

    try:
        archive_dead_process(str(METRICS_DIR), worker.pid)
    except OSError as error:  # no space, folder gone or read-only: the files stay, scrapes still count them
        server.log.warning("could not archive the metric files of worker %s: %s", worker.pid, error)
    except Exception:
        server.log.exception("could not archive the metric files of worker %s", worker.pid)


def on_exit(server: Any) -> None:
    """Remove the drain flag and this server's private directory."""
    try:
        DRAINING_FLAG.unlink(missing_ok=True)
    except OSError as error:
        server.log.warning("could not remove the drain flag %s: %s", DRAINING_FLAG, error.strerror)
    _remove_runtime_dir()
