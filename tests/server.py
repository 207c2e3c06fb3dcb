"""The one launcher of a real server, shared by the tests and the bench scripts.

It runs the Procfile's ``web`` command (gunicorn, as production does) on a free loopback
port, waits for ``/readyz`` (and, if asked, every worker), and stops it with SIGTERM when
the block ends. The tests wrap it in :func:`tests.conftest.run_gunicorn`; the bench scripts
import it through ``bench/common.py``.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def serve_script_env(port: int) -> dict[str, str]:
    """The environment a new user's ``bash scripts/serve.sh`` starts with here: this process's,
    without any ``DISCOURSE_*`` or ``PROMETHEUS_*`` setting, one worker on 127.0.0.1:``port``
    and no drain period (so a stop is immediate)."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DISCOURSE_", "PROMETHEUS_"))},
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "DISCOURSE_HOST": HOST,
        "DISCOURSE_DRAIN_SECONDS": "0",
    }


def procfile_command(repo: Path = PROJECT_ROOT) -> list[str]:
    """The ``web:`` command of ``repo``'s Procfile, its program taken from this interpreter's venv."""
    for line in (repo / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = shlex.split(line[len("web:") :].strip())
            # `python` / `gunicorn` of the Procfile: the ones of this virtual environment.
            command[0] = (
                sys.executable if command[0] == "python" else str(Path(sys.executable).with_name(command[0]))
            )
            return command
    raise RuntimeError(f"{repo}/Procfile has no web: line")


@dataclass
class Server:
    """A running Procfile ``web`` command on a loopback port."""

    process: subprocess.Popen
    port: int
    log_path: Path
    started: float = 0.0  # time.monotonic() just before the process started
    ready_after: float = 0.0  # seconds from the start to the first /readyz 200

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    def log(self) -> str:
        """Everything the server wrote so far."""
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the gunicorn master."""
        self.process.send_signal(sig)

    def worker_pids(self) -> list[int]:
        """PIDs of the gunicorn workers (the children of the master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return [int(p) for p in children.read_text().split()]
        except OSError:
            return []

    def worker_set(self) -> set[int]:
        """The pids of the current workers, as psutil sees the master's children."""
        return {worker.pid for worker in self.workers()}

    def wait_for_workers(self, count: int, timeout: float = 10.0) -> set[int]:
        """The worker pids once exactly ``count`` workers run (the server is ready with the first)."""
        deadline = time.monotonic() + timeout
        while len(pids := self.worker_set()) != count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(pids)} workers, expected {count}")
            time.sleep(0.05)
        return pids

    def workers(self) -> list[Any]:
        """The worker processes as ``psutil.Process`` objects."""
        import psutil

        try:
            return psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return []

    def worker_serving(self, client_port: int, timeout: float = 10.0) -> Any:
        """The worker (``psutil.Process``) holding the connection from ``client_port``, once one
        has accepted it.

        Found from the workers' own sockets, not from which looks busiest: on a loaded machine
        the worker scoring a heavy request need not be the one using the most CPU. Raises
        :class:`AssertionError` if no worker holds it within ``timeout`` seconds.
        """
        import psutil

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in self.workers():
                with suppress(psutil.NoSuchProcess):
                    if any(c.raddr and c.raddr.port == client_port for c in worker.net_connections("tcp")):
                        return worker
            time.sleep(0.02)
        raise AssertionError(f"no worker accepted the connection from port {client_port}")


def wait_for_cpu(process: Any, seconds: float, timeout: float = 5.0) -> None:
    """Return once ``process`` (a ``psutil.Process``) has used ``seconds`` of CPU from now, or
    after ``timeout`` seconds."""
    start = sum(process.cpu_times()[:2])
    deadline = time.monotonic() + timeout
    while sum(process.cpu_times()[:2]) - start < seconds and time.monotonic() < deadline:
        time.sleep(0.02)


@contextmanager
def run_server(
    log_path: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    repo: Path = PROJECT_ROOT,
    base_env: Mapping[str, str] | None = None,
    ready_timeout: float = 60.0,
    poll_seconds: float = 0.05,
    wait_for_workers: bool = True,
    preexec_fn: Callable[[], None] | None = None,
    stop_signal: int = signal.SIGTERM,
) -> Iterator[Server]:
    """Run ``repo``'s Procfile command with ``workers`` workers on 127.0.0.1 until the block ends.

    ``base_env`` (default: this process's environment) plus the port, the worker count and a
    loopback bind (``GUNICORN_CMD_ARGS``, which every revision's config honours), then ``env``.
    Waits for the first ``/readyz`` 200 (polling every ``poll_seconds``) and, with
    ``wait_for_workers``, for every worker to be forked. Raises :class:`RuntimeError` with the
    end of the log if the server exits or is not ready within ``ready_timeout`` seconds.
    ``stop_signal`` ends it: SIGTERM drains first (as a platform stops it), SIGINT stops at once.
    """
    port = free_port()
    full_env = {
        **(os.environ if base_env is None else base_env),
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "GUNICORN_CMD_ARGS": f"--bind {HOST}:{port}",
        **(env or {}),
    }
    with open(log_path, "wb") as log_file:
        started = time.monotonic()
        process = subprocess.Popen(
            procfile_command(repo),
            cwd=repo,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    server = Server(process, port, log_path, started)
    session = requests.Session()
    try:
        deadline = started + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()[-3000:]}")
            with suppress(requests.ConnectionError):
                if session.get(server.base_url + "/readyz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout} s:\n{server.log()[-3000:]}")
            time.sleep(poll_seconds)
        server.ready_after = time.monotonic() - started
        # The first /readyz answer may come before every worker is forked.
        while wait_for_workers and len(server.worker_pids()) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{len(server.worker_pids())} of {workers} workers after {ready_timeout} s"
                )
            time.sleep(0.01)
        yield server
    finally:
        session.close()
        if process.poll() is None:
            process.send_signal(stop_signal)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
