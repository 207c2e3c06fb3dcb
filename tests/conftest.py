"""Shared fixtures: the app and client from the factory, the shipped runtime, a real gunicorn."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR, PROJECT_ROOT, Settings
from service.http.app import create_app
from service.loaders.runtime import Runtime, load_runtime


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    """The shipped model and seed references, loaded once per test session."""
    return load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR)


@pytest.fixture
def settings() -> Settings:
    """Default settings with rate limiting off, so contract tests are not throttled."""
    return Settings(rate_limit_enabled=False)


@pytest.fixture
def app(settings: Settings, runtime: Runtime):
    """An app built by the factory around the shared runtime."""
    application = create_app(settings, runtime=runtime)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def client(app):
    """A Flask test client."""
    return app.test_client()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def procfile_command() -> list[str]:
    """The ``web:`` command of the Procfile, split into arguments, run by this interpreter's environment."""
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            command = shlex.split(line[len("web:") :].strip())
            # `python` / `gunicorn` of the Procfile: the ones of this virtual environment.
            command[0] = (
                sys.executable if command[0] == "python" else str(Path(sys.executable).with_name(command[0]))
            )
            return command
    raise AssertionError("Procfile has no web: line")


class GunicornServer:
    """A running Procfile command on a loopback port."""

    def __init__(self, process: subprocess.Popen, port: int, log_path: Path) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)


@contextmanager
def run_gunicorn(
    tmp_path: Path, env: dict[str, str] | None = None, workers: int = 2, ready_timeout: float = 30.0
) -> Iterator[GunicornServer]:
    """Start the Procfile's web command with ``workers`` workers; stop it afterwards."""
    port = free_port()
    log_path = tmp_path / f"gunicorn-{port}.log"
    full_env = {
        **os.environ,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        # Loopback only.
        "DISCOURSE_HOST": "127.0.0.1",
        # No readiness drain on the fixture's own SIGTERM; drain tests set it explicitly.
        "DISCOURSE_DRAIN_SECONDS": "0",
        **(env or {}),
    }
    command = procfile_command()
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=full_env, stdout=log_file, stderr=subprocess.STDOUT
        )
    server = GunicornServer(process, port, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
            try:
                if requests.get(server.base_url + "/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"gunicorn not ready after {ready_timeout} s:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def gunicorn(tmp_path: Path) -> Callable[..., object]:
    """Factory fixture: ``with gunicorn(workers=3, env={...}) as server: ...``."""

    def start(**kwargs):
        return run_gunicorn(tmp_path, **kwargs)

    return start
