"""Shared fixtures: the app and client from the factory, the shipped runtime, a real gunicorn."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR, Settings
from service.http.app import create_app
from service.loaders.runtime import Runtime, load_runtime
from tests.server import Server, run_server


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


GunicornServer = Server
"""A running Procfile command on a loopback port (:class:`tests.server.Server`)."""


@contextmanager
def run_gunicorn(
    tmp_path: Path, env: dict[str, str] | None = None, workers: int = 2, ready_timeout: float = 30.0
) -> Iterator[Server]:
    """Start the Procfile's web command with ``workers`` workers; stop it afterwards."""
    settings = {
        # Loopback only.
        "DISCOURSE_HOST": "127.0.0.1",
        # No readiness drain on the fixture's own SIGTERM; drain tests set it explicitly.
        "DISCOURSE_DRAIN_SECONDS": "0",
        **(env or {}),
    }
    log_path = tmp_path / f"gunicorn-{time.monotonic_ns()}.log"
    with ExitStack() as stack:
        try:
            server = stack.enter_context(
                run_server(
                    log_path,
                    workers=workers,
                    env=settings,
                    ready_timeout=ready_timeout,
                    wait_for_workers=False,
                )
            )
        except RuntimeError as error:  # "gunicorn exited with 3" / "not ready after", with the whole log
            what = str(error).splitlines()[0].removeprefix("server ")
            raise AssertionError(f"gunicorn {what}:\n{log_path.read_text(errors='replace')}") from None
        yield server


@pytest.fixture
def gunicorn(tmp_path: Path) -> Callable[..., object]:
    """Factory fixture: ``with gunicorn(workers=3, env={...}) as server: ...``."""

    def start(**kwargs):
        return run_gunicorn(tmp_path, **kwargs)

    return start
