"""Faults: bad files stop start-up; a killed worker costs only its in-flight requests; overload loses nothing.

Every test runs the real Procfile command (gunicorn). A corrupted, truncated,
swapped or missing model file, or a malformed reference file, must stop the
server before it listens: a non-zero exit, a message naming the file, and
``/readyz`` never 200. A worker killed with SIGKILL is replaced and the service
is healthy again within 5 s; only requests in flight on that worker fail. More
concurrent clients than worker threads never get a wrong answer or a 5xx (the
requests queue), and the service recovers at once. For every request answered
200, one result per text, in order, with the ids sent.

The last test runs bench/load_soak.py and bench/fault_kill.py in their reduced
(CI) form.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR, PROJECT_ROOT
from tests.conftest import GunicornServer
from tests.server import free_port, procfile_command, wait_for_cpu

# No rate limit (one client address sends everything), no drain (a quick stop),
# no worker recycling (so that a new worker pid means a replaced, killed one).
ENV = {"DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_DRAIN_SECONDS": "0", "DISCOURSE_MAX_REQUESTS": "0"}
RECOVERY_LIMIT = 5.0

# -- start-up faults ------------------------------------------------------------------------


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _swap(a: Path, b: Path) -> None:
    first, second = a.read_bytes(), b.read_bytes()
    a.write_bytes(second)
    b.write_bytes(first)


def _truncate_arrays_and_rerecord(model: Path) -> None:
    """A truncated arrays.npz whose new sha256 is written into card.json: only the parse can catch it."""
    arrays = model / "arrays.npz"
    _truncate(arrays)
    card = json.loads((model / "card.json").read_text())
    card["files"]["arrays.npz"] = hashlib.sha256(arrays.read_bytes()).hexdigest()
    (model / "card.json").write_text(json.dumps(card))


@dataclass(frozen=True)
class StartupFault:
    """A change to a copy of the model or seeds directory, and the file the error must name."""

    name: str
    damage: Callable[[Path, Path], None]  # (model copy, seeds copy)
    names: Callable[[Path, Path], list[Path]]  # the message must name one of these


def _seed(seeds: Path) -> Path:
    return sorted(seeds.glob("*.toml"))[0]


STARTUP_FAULTS = [
    StartupFault(
        "corrupted arrays.npz",
        lambda m, s: _flip_middle_byte(m / "arrays.npz"),
        lambda m, s: [m / "arrays.npz"],
    ),
    StartupFault(
        "truncated encoder.json",
        lambda m, s: _truncate(m / "encoder.json"),
        lambda m, s: [m / "encoder.json"],
    ),
    StartupFault(
        "arrays.npz and encoder.json swapped",
        lambda m, s: _swap(m / "arrays.npz", m / "encoder.json"),
        lambda m, s: [m / "arrays.npz", m / "encoder.json"],
    ),
    StartupFault(
        "card.json not JSON",
        lambda m, s: (m / "card.json").write_text("{not json"),
        lambda m, s: [m / "card.json"],
    ),
    StartupFault(
        "arrays.npz missing",
        lambda m, s: (m / "arrays.npz").unlink(),
        lambda m, s: [m / "arrays.npz"],
    ),
    StartupFault(
        "truncated arrays.npz with a matching sha256",
        lambda m, s: _truncate_arrays_and_rerecord(m),
        lambda m, s: [m / "arrays.npz"],
    ),
    StartupFault(
        "reference file not TOML",
        lambda m, s: _seed(s).write_text(_seed(s).read_text() + '\nid = "unterminated\n'),
        lambda m, s: [_seed(s)],
    ),
    StartupFault(
        "reference file without a body",
        lambda m, s: _seed(s).write_text('id = "x"\ntitle = "T"\n'),
        lambda m, s: [_seed(s)],
    ),
    StartupFault(
        "reference file not UTF-8",
        lambda m, s: _seed(s).write_bytes(b'id = "x"\ntitle = "\xff\xfe"\nbody = "b"\n'),
        lambda m, s: [_seed(s)],
    ),
]


def run_until_exit(env: dict[str, str], tmp_path: Path, timeout: float = 60.0) -> tuple[int, str, list[int]]:
    """Run the Procfile command until it exits; its exit code, output and every /readyz status seen."""
    port = free_port()
    log_path = tmp_path / "server.log"
    command = procfile_command()
    full_env = {
        **os.environ,
        **ENV,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "DISCOURSE_HOST": "127.0.0.1",
        **env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(requests.ConnectionError):
                seen.append(requests.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code)
            time.sleep(0.05)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    return process.returncode, log_path.read_text(errors="replace"), seen


@pytest.mark.e2e
@pytest.mark.parametrize("fault", STARTUP_FAULTS, ids=[f.name for f in STARTUP_FAULTS])
def test_a_bad_file_stops_start_up_naming_it(tmp_path: Path, fault: StartupFault) -> None:
    """The server exits non-zero before it listens, and says which file is wrong."""
    model, seeds = tmp_path / "model", tmp_path / "seeds"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    shutil.copytree(DEFAULT_SEEDS_DIR, seeds)
    fault.damage(model, seeds)
    env = {"DISCOURSE_MODEL_DIR": str(model), "DISCOURSE_SEEDS_DIR": str(seeds)}
    code, output, readyz = run_until_exit(env, tmp_path)
    assert code != 0, output[-2000:]
    assert 200 not in readyz
    assert any(str(path) in output for path in fault.names(model, seeds)), output[-2000:]


@pytest.mark.e2e
def test_the_intact_copies_start(tmp_path: Path, gunicorn) -> None:
    """Control for the faults above: the undamaged copies serve, so each failure is the damage's."""
    model, seeds = tmp_path / "model", tmp_path / "seeds"
    shutil.copytree(DEFAULT_MODEL_DIR, model)
    shutil.copytree(DEFAULT_SEEDS_DIR, seeds)
    env = {**ENV, "DISCOURSE_MODEL_DIR": str(model), "DISCOURSE_SEEDS_DIR": str(seeds)}
    with gunicorn(workers=1, env=env) as server:
        assert requests.get(server.base_url + "/readyz", timeout=5).status_code == 200


# -- load helpers ---------------------------------------------------------------------------


@dataclass
class Sent:
    """One request: when it started and ended (monotonic), and what it got."""

    started: float
    ended: float
    status: int | None  # None: transport error
    error: str | None = None
    wrong: str | None = None  # why the answer is wrong, if it is


def batch(n: int, size: int = 1) -> dict:
    """Request ``n``: ``size`` texts with ids unique to it (the second without id: its index)."""
    texts = [
        {"id": f"q{n}-{i}", "text": f"NATO expansion {n} {i} and Eurasian security."} for i in range(size)
    ]
    if size > 1:
        del texts[1]["id"]
    return {"texts": texts}


def expected_ids(body: dict) -> list[str]:
    """The ids the results must carry, in order."""
    return [t.get("id", str(i)) for i, t in enumerate(body["texts"])]


def send(session: requests.Session, server: GunicornServer, body: dict, timeout: float = 60.0) -> Sent:
    """POST ``body``; check the answer: a 200 with every result in order, or a problem document."""
    started = time.monotonic()
    try:
        response = session.post(server.base_url + "/v1/score", json=body, timeout=timeout)
    except requests.RequestException as error:
        return Sent(started, time.monotonic(), None, type(error).__name__)
    sent = Sent(started, time.monotonic(), response.status_code)
    if response.status_code == 200:
        ids = [r["id"] for r in response.json()["results"]]
        if ids != expected_ids(body):
            sent.wrong = f"ids {ids[:5]}… for {expected_ids(body)[:5]}…"
    elif response.headers.get("Content-Type", "") != "application/problem+json":
        sent.wrong = f"status {response.status_code} without a problem document"
    return sent


@dataclass
class Clients:
    """Client threads sending requests until stopped, and the log of what they got."""

    log: list[Sent]
    threads: list[threading.Thread]
    stop: threading.Event

    def join(self) -> list[Sent]:
        """Stop the clients, wait for them, and return the log."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return self.log


def start_clients(server: GunicornServer, count: int, pause: float, size_of: Callable[[int], int]) -> Clients:
    """Start ``count`` clients; request ``n`` has ``size_of(n)`` texts, and each client pauses ``pause`` s."""
    log: list[Sent] = []
    stop = threading.Event()
    counter = iter(range(10**9))
    lock = threading.Lock()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                log.append(send(session, server, batch(n, size_of(n))))
                time.sleep(pause)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return Clients(log, threads, stop)


def healthy(server: GunicornServer) -> bool:
    """/readyz is 200 and a request is scored correctly, quickly."""
    try:
        if requests.get(server.base_url + "/readyz", timeout=1).status_code != 200:
            return False
        return send(requests.Session(), server, batch(-1, 2), timeout=1.0).wrong is None
    except requests.RequestException:
        return False


def heavy_batch() -> dict:
    """A batch at the limits (256 texts, just under 2 MiB, with evidence): 1 s or more of scoring."""
    text = ("NATO expansion and the Eurasian security architecture were discussed in Moscow. " * 100)[:7800]
    return {"texts": [{"id": f"h{i}", "text": f"{i} {text}"} for i in range(256)], "explain": True}


def open_connection(server: GunicornServer) -> tuple[http.client.HTTPConnection, int]:
    """A connection to the server, opened now, and its local port."""
    connection = http.client.HTTPConnection(server.base_url.split("//")[1], timeout=60)
    connection.connect()
    return connection, connection.sock.getsockname()[1]


def post_on(connection: http.client.HTTPConnection, body: dict) -> Sent:
    """POST ``body`` on an open connection: a :class:`Sent` with the status, or the transport error."""
    started = time.monotonic()
    try:
        connection.request("POST", "/v1/score", json.dumps(body), {"Content-Type": "application/json"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as error:
        return Sent(started, time.monotonic(), None, type(error).__name__)
    return Sent(started, time.monotonic(), status)


# -- a worker killed ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_a_killed_worker_costs_only_its_requests_in_flight(gunicorn) -> None:
    """SIGKILL the worker scoring a heavy batch under light load: only its requests fail; healthy in 5 s."""
    with gunicorn(workers=2, env=ENV) as server:
        before = server.wait_for_workers(2)
        light = start_clients(server, 3, pause=0.05, size_of=lambda n: 1 + n % 4)
        heavy: dict[str, object] = {}
        connection, client_port = open_connection(server)

        def send_heavy() -> None:
            heavy["sent"] = post_on(connection, heavy_batch())

        thread = threading.Thread(target=send_heavy)
        time.sleep(1.0)
        thread.start()
        victim = server.worker_serving(client_port)
        wait_for_cpu(victim, seconds=0.3)  # scoring, not only reading the body
        busiest = victim.pid
        killed_at = time.monotonic()
        os.kill(busiest, signal.SIGKILL)
        recovered_at = None
        while time.monotonic() - killed_at < 3 * RECOVERY_LIMIT:
            pids = server.worker_set()
            if busiest not in pids and len(pids) == 2 and healthy(server):
                recovered_at = time.monotonic()
                break
            time.sleep(0.05)
        thread.join(timeout=60)
        time.sleep(1.0)  # light load after the recovery too
        log = light.join()
        after = server.worker_set()
        server_log = server.log()

    assert recovered_at is not None and recovered_at - killed_at < RECOVERY_LIMIT
    assert after - before and busiest in before and busiest not in after  # replaced, not restarted in place
    assert f"pid:{busiest}" in server_log  # gunicorn reports the killed worker
    # The heavy batch was in flight on the killed worker: it fails, without a status.
    heavy_sent = heavy["sent"]
    assert isinstance(heavy_sent, Sent) and heavy_sent.status is None, heavy_sent
    # Light load: no 5xx, no wrong answer; a failure only for a request in flight at the kill.
    assert len(log) > 30
    assert all(s.wrong is None for s in log), [s.wrong for s in log if s.wrong]
    assert all(s.status is None or s.status == 200 for s in log)
    failed = [s for s in log if s.status is None]
    # 50 ms of grace: a request sent to the killed worker in the instant before the client saw it close.
    assert all(s.started <= killed_at + 0.05 and killed_at <= s.ended <= killed_at + 1.0 for s in failed), (
        failed
    )
    assert len(failed) <= 3  # at most one per client
    assert any(s.started > recovered_at and s.status == 200 for s in log)


# -- overload -------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_overload_queues_without_wrong_answers_and_recovers(gunicorn) -> None:
    """48 clients against 2 workers (2 cores): every answer right (200 or a 503 problem); quick again."""
    with gunicorn(workers=2, env=ENV) as server:
        crowd = start_clients(server, 48, pause=0.0, size_of=lambda n: 1 if n % 3 else 24)
        time.sleep(6.0)
        log = crowd.join()
        ended = time.monotonic()
        while not healthy(server):
            assert time.monotonic() - ended < RECOVERY_LIMIT, "not healthy after the overload"
            time.sleep(0.1)
        recovery = time.monotonic() - ended
        started = time.monotonic()
        assert healthy(server) and time.monotonic() - started < 1.0
        server_log = server.log()

    assert len(log) > 100
    assert all(s.status in (200, 503) for s in log), sorted({str(s.status) for s in log})
    assert all(s.wrong is None for s in log), [s.wrong for s in log if s.wrong]
    assert "unhandled error" not in server_log
    assert recovery < RECOVERY_LIMIT


# -- the bench scripts, reduced ------------------------------------------------------------------


def _run_script(args: list[str], tmp_path: Path, timeout: float) -> dict:
    """Run a bench script with ``--json``; its summary (the output is shown if it fails)."""
    out = tmp_path / "summary.json"
    completed = subprocess.run(
        [sys.executable, *args, "--json", str(out)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    return json.loads(out.read_text())


@pytest.mark.e2e
@pytest.mark.slow
def test_load_soak_reduced(tmp_path: Path) -> None:
    """bench/load_soak.py for 15 s at 80% of the measured saturation: zero 5xx, every answer valid."""
    summary = _run_script(
        ["bench/load_soak.py", "--duration", "15", "--ramp-seconds", "2", "--ramp-levels", "2,8"],
        tmp_path,
        180,
    )
    assert summary["ok"] and summary["requests"] > 100
    assert summary["server_errors"] == summary["transport_errors"] == summary["invalid_responses"] == 0
    assert {"single", "batch"} <= set(summary["by_kind"])
    assert (
        summary["rss"]["drift"]["workers_in_both"] == 2
        and summary["rss"]["drift"]["total_percent"] is not None
    )


@pytest.mark.e2e
@pytest.mark.slow
def test_fault_kill_reduced(tmp_path: Path) -> None:
    """bench/fault_kill.py with two kills and a short overload: every check passes."""
    summary = _run_script(
        ["bench/fault_kill.py", "--kills", "2", "--interval", "2", "--overload-seconds", "5"], tmp_path, 180
    )
    assert summary["ok"]
    assert (
        all(k["recovered_after"] <= RECOVERY_LIMIT for k in summary["kills"]) and len(summary["kills"]) == 2
    )
    assert not summary["unexplained_failures"] and summary["overload"]["server_errors"] == 0
