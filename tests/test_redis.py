"""Rate limits shared through a real Redis (the Debian redis-server, started here on a free port).

With per-worker memory storage each gunicorn worker counts on its own, so the
limit is multiplied by the worker count (before: 8 of 14 requests passed a
5/minute limit with 2 workers). With Redis storage the workers share one count.

If Redis goes away while the server runs, the documented behaviour is to
fail OPEN: requests are still answered (never a 500), and the limits are
counted in each worker's memory until Redis answers again (flask-limiter's
in-memory fallback); flask-limiter logs the outage.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.server import free_port

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server (apt)")

LIMIT = 5
SENT = 14


class RedisServer:
    """A redis-server process on a loopback port, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _statuses(base_url: str, count: int) -> list[int]:
    # A new connection per request, so the requests are spread over the workers.
    return [requests.get(base_url + "/v1/models", timeout=30).status_code for _ in range(count)]


def _env(storage: str) -> dict[str, str]:
    return {"DISCOURSE_RATE_LIMIT": f"{LIMIT}/minute", "DISCOURSE_RATE_LIMIT_STORAGE": storage}


def _until_both_workers_answered(server, limit: int = 200) -> list[int]:
    """Send requests (two at a time, new connections) until both workers have answered one.

    The kernel may hand many connections in a row to one worker; the request
    log's ``pid`` tells which worker answered. Returns the statuses sent here.
    """
    statuses: list[int] = []
    for _ in range(limit // 2):
        with ThreadPoolExecutor(2) as pool:
            statuses += list(
                pool.map(
                    lambda _: requests.get(server.base_url + "/v1/models", timeout=30).status_code, range(2)
                )
            )
        pids = {r["pid"] for r in json_lines(server.log()) if r.get("route") == "/v1/models"}
        if len(pids) >= 2:
            return statuses
    raise AssertionError(f"one worker answered all {len(statuses)} requests")


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.e2e
def test_memory_storage_multiplies_the_limit_by_the_workers(gunicorn) -> None:
    """The control: what Redis fixes. Once both workers have answered, more than 5 were admitted."""
    with gunicorn(workers=2, env=_env("memory://")) as server:
        statuses = _statuses(server.base_url, SENT)
        statuses += _until_both_workers_answered(server)
    assert statuses.count(200) > LIMIT


@pytest.mark.e2e
def test_redis_storage_admits_exactly_the_limit_across_workers(gunicorn, redis_server: RedisServer) -> None:
    with gunicorn(workers=2, env=_env(redis_server.url)) as server:
        statuses = _statuses(server.base_url, SENT)
        # Both workers answered, and neither admitted one more: they share the count.
        more = _until_both_workers_answered(server)
        refused = requests.get(server.base_url + "/v1/models", timeout=30)
    assert statuses.count(200) == LIMIT, statuses
    assert statuses[:LIMIT] == [200] * LIMIT
    assert statuses.count(429) == SENT - LIMIT
    assert set(more) == {429}
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.mark.e2e
def test_redis_going_away_fails_open_without_errors(gunicorn, redis_server: RedisServer) -> None:
    with gunicorn(workers=2, env=_env(redis_server.url)) as server:
        before = _statuses(server.base_url, 3)
        redis_server.stop()
        during = _statuses(server.base_url, 20)
        probes = [
            requests.get(server.base_url + path, timeout=30).status_code for path in ("/livez", "/readyz")
        ]
        log = server.log()
    assert before == [200] * 3
    # Fail open: answered, never a 5xx; limits now counted per worker in memory (at most 5 each).
    assert set(during) <= {200, 429}, during
    assert 1 <= during.count(200) <= 2 * LIMIT
    assert probes == [200, 200]
    assert "unhandled error" not in log and '"status": 500' not in log
    # The outage is logged (flask-limiter's warning, in the service's JSON format).
    assert "Rate limit storage unreachable - falling back to in-memory storage" in log
