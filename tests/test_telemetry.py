"""Telemetry never takes the service down nor hides a request (real gunicorn, real filesystems).

A full tmpfs is a small tmpfs this test mounts itself (root with CAP_SYS_ADMIN;
skipped otherwise) and fills; the same behaviour of the metric files is also
checked everywhere with a file-size limit (RLIMIT_FSIZE) in a subprocess. An
unwritable directory is a read-only bind mount (as root) or a chmod (as
another user).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from service.http.telemetry import FileCollector, archive_dead_process
from tests.test_observability import metric_value

ENV = {"DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_DRAIN_SECONDS": "0"}
PATHS = ["/v1/models", "/v1/references", "/livez", "/readyz", "/nope"]
SCORE = {"texts": [{"text": "A meteorite crater was reported at the market in Managua."}]}


def json_lines(log: str) -> list[dict]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def request_lines(log: str) -> list[dict]:
    return [r for r in json_lines(log) if r.get("logger") == "discourse.access"]


def traffic(base_url: str, count: int, ids: list[str] | None = None) -> list[int]:
    """``count`` requests over the routes (a new connection each, so both workers answer); statuses.

    The X-Request-ID of each answer is appended to ``ids`` when given.
    """
    statuses = []
    for n in range(count):
        if n % 6 == 5:
            response = requests.post(base_url + "/v1/score", json=SCORE, timeout=30)
        else:
            response = requests.get(base_url + PATHS[n % 6 % len(PATHS)], timeout=30)
        statuses.append(response.status_code)
        if ids is not None:
            ids.append(response.headers["X-Request-ID"])
    return statuses


@contextlib.contextmanager
def mounted(args: list[str], target: Path) -> Iterator[None]:
    """``mount args target`` for the block, or skip the test when mounting is not permitted here."""
    result = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here ({result.stderr.strip() or result.returncode}): needs root")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def fill(directory: Path, leave: int) -> None:
    """Write a file that leaves ``leave`` bytes free on ``directory``'s filesystem."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    (directory / "filler").write_bytes(b"\0" * max(0, free - leave))


# --- A full tmpfs -------------------------------------------------------------------------------


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_full_tmpfs_costs_metrics_not_requests(gunicorn, tmp_path: Path) -> None:
    """Before: every worker died of SIGBUS on its first metric write (a crash loop, nothing answered)."""
    shm = tmp_path / "shm"
    shm.mkdir()
    with mounted(["-t", "tmpfs", "-o", "size=1m", "tmpfs"], shm):
        (shm / "metrics").mkdir()
        fill(shm, leave=16 * 1024)  # room for a few pages, not for one process's files
        env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(shm / "metrics")}
        with gunicorn(workers=2, env=env) as server:
            ids: list[str] = []
            statuses = traffic(server.base_url, 120, ids)
            assert requests.get(server.base_url + "/livez", timeout=5).status_code == 200
            ready = requests.get(server.base_url + "/readyz", timeout=5)
            scrape = requests.get(server.base_url + "/metrics", timeout=5)
            pids_before = {p for p in _worker_pids(server.process.pid)}
            log = server.log()
        assert statuses.count(404) == 20 and statuses.count(200) == 100
        # Served, not ready to lie about it: ready (scoring works) but telemetry reported degraded.
        assert ready.status_code == 200
        assert ready.json()["checks"]["telemetry"].startswith("degraded: metrics directory")
        assert scrape.status_code == 200
        assert metric_value(scrape.text, "discourse_telemetry_healthy") == 0
        assert metric_value(scrape.text, "discourse_telemetry_failures_total") > 0
        # Process series are still there (they are read from /proc, not from the files).
        assert metric_value(scrape.text, "process_resident_memory_bytes", process="master") > 0
        # No worker died, every request has its log line, the failure was logged, without tracebacks.
        assert "SIGBUS" not in log and "Worker (pid" not in log
        assert len(pids_before) == 2
        assert set(ids) <= {r["request_id"] for r in request_lines(log)}
        start_line = next(r for r in json_lines(log) if r.get("logger") == "discourse.telemetry")
        assert start_line["level"] == "WARNING" and start_line["free_bytes"] < start_line["needed_bytes"]
        failures = [r for r in json_lines(log) if r.get("message", "").startswith("telemetry failed")]
        # Logged once a minute per process at most (the master and two workers).
        assert 1 <= len(failures) <= 3
        assert "Traceback" not in log


def _worker_pids(master: int) -> set[int]:
    from service.http.telemetry import live_children

    return set(live_children(master))


_RLIMIT_PROBE = """
import os, resource, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, 32 * 1024))  # below one 64 KiB metric file
from service.http import observability, shared_state  # installs the allocation guard
from prometheus_client import Counter
counter = Counter("probe_total", "probe", ["n"])
for n in range(50):
    counter.labels(n=str(n)).inc()
print(shared_state.telemetry_failures(), sorted(os.listdir(sys.argv[1])))
"""


def test_metric_files_that_cannot_be_allocated_are_an_error_not_a_signal(tmp_path: Path) -> None:
    """With files capped below one metric file's size: no SIGBUS/SIGXFSZ, no empty file, writes counted."""
    result = subprocess.run(
        [sys.executable, "-c", _RLIMIT_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    failures, files = result.stdout.split(" ", 1)
    assert int(failures) >= 50
    assert files.strip() == "[]"
    # One log line for all those failures (rate-limited), naming the file and the error.
    logged = [line for line in result.stderr.splitlines() if "telemetry failed" in line]
    assert len(logged) == 1 and "File too large" in logged[0]


# --- The metrics directory changed under a running server ----------------------------------------


@pytest.mark.e2e
@pytest.mark.parametrize("change", ["unwritable", "deleted"])
def test_a_broken_metrics_directory_hides_no_request(gunicorn, tmp_path: Path, change: str) -> None:
    """Before: new workers' requests vanished from the log (20 of 45 logged), /metrics 500 once deleted."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # Workers restart every 5-6 requests, so new workers start after the change.
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DISCOURSE_MAX_REQUESTS": "5"}
    with gunicorn(workers=2, env=env) as server:
        ids: list[str] = []
        traffic(server.base_url, 12, ids)
        with contextlib.ExitStack() as stack:
            if change == "deleted":
                # As a temp cleaner would; moved away first, as the workers may be writing in it.
                metrics_dir.rename(tmp_path / "removed")
                shutil.rmtree(tmp_path / "removed")
            elif os.geteuid() == 0:
                stack.enter_context(mounted(["-o", "bind,ro", str(metrics_dir)], metrics_dir))
            else:
                metrics_dir.chmod(0o555)
                stack.callback(metrics_dir.chmod, 0o755)
            statuses = traffic(server.base_url, 45, ids)
            scrape = requests.get(server.base_url + "/metrics", timeout=5)
            ready = requests.get(server.base_url + "/readyz", timeout=5)
        log = server.log()
    assert sorted(set(statuses)) == [200, 404]
    assert "Autorestarting worker" in log  # new workers did start after the change
    # Every request answered has its line, found by the request id it was answered with.
    logged = {r["request_id"] for r in request_lines(log)}
    assert len(ids) == 57 and set(ids) <= logged
    assert scrape.headers["X-Request-ID"] in logged
    assert scrape.status_code == 200
    assert metric_value(scrape.text, "discourse_telemetry_healthy") == 0
    assert metric_value(scrape.text, "discourse_telemetry_failures_total") > 0
    assert ready.status_code == 200
    expected = "is missing" if change == "deleted" else "is not writable"
    assert expected in ready.json()["checks"]["telemetry"]
    assert "Traceback" not in log


# --- Dead workers' files, process series, route labels ----------------------------------------


@pytest.mark.e2e
def test_recycled_workers_leave_no_files_and_their_counts_stay(gunicorn, tmp_path: Path) -> None:
    """Before: each recycled worker left its files (about 21 KiB of data each) for the server's lifetime."""
    metrics_dir = tmp_path / "metrics"
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DISCOURSE_MAX_REQUESTS": "4"}
    sent = 60
    with gunicorn(workers=2, env=env) as server:
        for _ in range(sent):
            assert requests.get(server.base_url + "/v1/models", timeout=30).status_code == 200
        time.sleep(0.5)  # the last recycled worker is reaped
        files = sorted(p.name for p in metrics_dir.glob("*.db"))
        scrape = requests.get(server.base_url + "/metrics", timeout=5).text
        ready = requests.get(server.base_url + "/readyz", timeout=5).json()
        log = server.log()
    restarts = log.count("Autorestarting worker")
    assert restarts >= 10
    # The master's and the live workers' files (3 kinds at most each) and the two archives.
    assert "counter_archive.db" in files and "histogram_archive.db" in files
    per_pid = {name.rsplit("_", 1)[1] for name in files if "archive" not in name}
    assert len(per_pid) <= 3 + 1, files  # master, 2 workers, at most one being replaced
    assert metric_value(
        scrape, "discourse_http_requests_total", route="/v1/models", status="200"
    ) == pytest.approx(sent)
    assert metric_value(scrape, "discourse_http_request_duration_seconds_count", route="/v1/models") == sent
    assert ready["checks"]["telemetry"] == "ok"


def _resident_memory_labels(text: str) -> set[str]:
    """The ``process`` labels of ``process_resident_memory_bytes`` in a scrape, each value
    checked to be a plausible resident size (over 1 MB)."""
    labels = set()
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes{"):
            labels.add(line.split('process="', 1)[1].split('"', 1)[0])
            assert float(line.rsplit(" ", 1)[1]) > 1_000_000
    return labels


@pytest.mark.e2e
def test_process_series_for_the_master_and_each_worker(gunicorn) -> None:
    """Before: no process_* series at all under gunicorn."""
    with gunicorn(workers=2, env={**ENV, "DISCOURSE_MAX_REQUESTS": "3"}) as server:
        for _ in range(20):  # several recycles: labels must stay bounded
            requests.get(server.base_url + "/livez", timeout=10)
        # The last request may have recycled a worker: its successor has series once it has
        # booted, so scrape until both slots show (or the deadline), then check the bounds.
        deadline = time.monotonic() + 30
        while True:
            text = requests.get(server.base_url + "/metrics", timeout=10).text
            labels = _resident_memory_labels(text)
            if {"worker-0", "worker-1"} <= labels or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert {"master", "worker-0", "worker-1"} <= labels <= {"master", "worker-0", "worker-1", "worker-2"}
    for name in ("process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds"):
        for process in ("master", "worker-0", "worker-1"):
            assert f'{name}{{process="{process}"}}' in text, (name, process)
    assert metric_value(text, "process_open_fds", process="worker-1") > 3


def test_405_on_a_real_route_is_labelled_with_the_route(client) -> None:
    """Before: route="unmatched", the label of URLs that match nothing."""
    assert client.post("/livez").status_code == 405
    assert client.delete("/v1/score").status_code == 405
    assert client.get("/no/such/path").status_code == 404
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        metric_value(text, "discourse_http_requests_total", route="/livez", method="POST", status="405") == 1
    )
    assert metric_value(text, "discourse_http_requests_total", route="/v1/score", method="DELETE") == 1
    assert metric_value(text, "discourse_http_requests_total", route="unmatched", status="404") == 1


def test_a_failing_metric_write_is_logged_once_and_the_log_line_is_still_written(app, monkeypatch) -> None:
    """A metric whose write raises: every request answered and logged, one error line, failures counted."""
    from service.http import shared_state
    from service.http.observability import EXTENSION_KEY
    from tests.test_observability import capture_log, log_records

    metrics = app.extensions[EXTENSION_KEY]

    def broken(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metrics.requests, "labels", broken)
    client = app.test_client()
    stream = capture_log()
    before = shared_state.telemetry_failures()
    statuses = [client.get("/v1/models").status_code for _ in range(5)]
    assert statuses == [200] * 5
    records = log_records(stream)
    assert len([r for r in records if r["logger"] == "discourse.access"]) == 5
    assert shared_state.telemetry_failures() - before == 5
    assert client.get("/readyz").json["checks"]["telemetry"].startswith("degraded")


def test_scrapes_count_a_dead_worker_once_while_it_is_archived(tmp_path: Path) -> None:
    """Archiving replaces the archive and then deletes the dead worker's files: a scrape in
    between must not count the worker twice or lose it (Prometheus would see a reset)."""
    key = mmap_key("jobs", "jobs_total", [], [], "Jobs.")
    totals: list[float] = []
    stop = threading.Event()

    def scrape() -> None:
        collector = FileCollector(str(tmp_path))
        while not stop.is_set():
            for metric in collector.collect():
                totals.extend(s.value for s in metric.samples if s.name == "jobs_total")

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for pid in range(1000, 1400):  # 400 workers, each dead after one job, archived in turn
            counts = MmapedDict(str(tmp_path / f"counter_{pid}.db"))
            counts.write_value(key, 1.0, 0.0)
            counts.close()
            archive_dead_process(str(tmp_path), pid)
    finally:
        stop.set()
        scraper.join()
    assert len(totals) > 100, "the scraper ran alongside the archiving"
    assert all(a <= b for a, b in itertools.pairwise(totals)), "a counter went down"
    assert max(totals) <= 400
    assert sorted(p.name for p in tmp_path.iterdir()) == [".archive.lock", "counter_archive.db"]
