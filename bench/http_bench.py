"""HTTP benchmarks: the Procfile command with WEB_CONCURRENCY=2, driven by locust (headless), loopback only.

* Throughput at saturation: closed-loop users sending back to back.
* Latency at a fixed offered rate: many users, each paced with ``constant_throughput``.
* RSS of a worker after the load and after 10,000 requests (with worker recycling off).
* Time from process start to the first ``/readyz`` 200.

Every run is bounded in time and requests; a run with any failed request is reported as such.
"""

from __future__ import annotations

import csv
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH_DIR, RESULTS_DIR, median, pss_of, rss_of, run_server
from corpus import make_texts

LOCUST = str(Path(sys.executable).with_name("locust"))
_JSON = {"Content-Type": "application/json"}


def write_payloads(name: str, n_requests: int, texts_per_request: int, chars: int) -> Path:
    """A JSON file of ``n_requests`` serialised request bodies for the locustfile."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    texts = make_texts(n_requests * texts_per_request, chars, seed=11)
    bodies = []
    for i in range(n_requests):
        chunk = texts[i * texts_per_request : (i + 1) * texts_per_request]
        body = {"texts": [{"id": str(j), "text": t} for j, t in enumerate(chunk)]}
        bodies.append([json.dumps(body), len(chunk)])
    path = RESULTS_DIR / f"payloads-{name}.json"
    path.write_text(json.dumps(bodies), encoding="utf-8")
    return path


def run_locust(
    base_url: str,
    payloads: Path,
    users: int,
    seconds: float,
    rate_per_user: float,
    label: str,
    spawn_rate: float | None = None,
) -> dict[str, Any]:
    """One headless locust run; returns its aggregated stats (from its CSV) and its own CPU use."""
    prefix = RESULTS_DIR / f"locust-{label}"
    env = dict(
        os.environ,
        BENCH_PAYLOADS=str(payloads),
        BENCH_RATE_PER_USER=str(rate_per_user),
        BENCH_USERS=str(users),
    )
    command = [
        LOCUST,
        "-f",
        str(BENCH_DIR / "locustfile.py"),
        "--headless",
        "--host",
        base_url,
        "--users",
        str(users),
        "--spawn-rate",
        # All users at once; paced ones then wait for their phase (see the locustfile's on_start).
        str(spawn_rate or users),
        "--run-time",
        f"{int(seconds)}s",
        "--reset-stats",
        "--only-summary",
        "--csv",
        str(prefix),
        "--stop-timeout",
        "10",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
    ]
    with open(RESULTS_DIR / f"locust-{label}.log", "wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH_DIR)
        watched = psutil.Process(process.pid)
        cpu = 0.0
        while process.poll() is None:
            try:
                times = watched.cpu_times()
                cpu = times.user + times.system
            except psutil.Error:
                pass
            time.sleep(0.2)
    if process.returncode != 0:
        raise RuntimeError(f"locust exited with {process.returncode}; see {RESULTS_DIR}/locust-{label}.log")
    with open(f"{prefix}_stats.csv", newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    row = rows["Aggregated"]
    return {
        "label": label,
        "users": users,
        "rate_per_user": rate_per_user,
        "seconds": seconds,
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "rps": float(row["Requests/s"]),
        "p50_ms": float(row["50%"]),
        "p95_ms": float(row["95%"]),
        "p99_ms": float(row["99%"]),
        "max_ms": float(row["Max Response Time"]),
        "mean_ms": float(row["Average Response Time"]),
        "locust_cpu_seconds": cpu,
    }


def _worker_memory(server_pids: list[int]) -> list[dict[str, int | None]]:
    return [{"pid": pid, "rss": rss_of(pid), "pss": pss_of(pid)} for pid in server_pids]


def _send_requests(base_url: str, payloads: Path, count: int, threads: int = 4) -> int:
    """Send ``count`` requests from ``threads`` keep-alive sessions; returns the number of non-200s."""
    bodies = [b for b, _ in json.loads(payloads.read_text(encoding="utf-8"))]
    headers = {"Content-Type": "application/json"}

    def run(offset: int) -> int:
        bad = 0
        with requests.Session() as session:
            for i in range(offset, count, threads):
                response = session.post(f"{base_url}/v1/score", data=bodies[i % len(bodies)], headers=headers)
                bad += response.status_code != 200
        return bad

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(run, range(threads)))


def open_loop_latency(
    port: int, payloads: Path, connections: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Latency at ``rate`` req/s in all from ``connections`` threads with an open-loop schedule.

    Each thread owns one keep-alive ``http.client`` connection and sends at
    fixed times (phases spread over the period); latency runs from the
    scheduled send time to the end of the response body.
    """
    bodies = [b.encode("utf-8") for b, _ in json.loads(payloads.read_text(encoding="utf-8"))]
    per_thread = rate / connections
    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    start = time.monotonic() + 0.5

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine: list[float] = []
        n = 0
        while True:
            due = start + k / rate + n / per_thread
            if due > start + seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            conn.request("POST", "/v1/score", body=bodies[(k + n * connections) % len(bodies)], headers=_JSON)
            response = conn.getresponse()
            response.read()
            # From the scheduled send time: a request sent late (the previous one was slow, or this
            # thread was not scheduled) counts its wait too.
            mine.append((time.monotonic() - due) * 1000)
            if response.status != 200:
                with lock:
                    bad[0] += 1
            n += 1
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))]

    return {
        "client": "threads + http.client",
        "connections": connections,
        "offered": rate,
        "requests": len(latencies),
        "non_200": bad[0],
        "p50_ms": pct(0.50),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
    }


def startup_times(rounds: int) -> list[float]:
    """Seconds from starting the Procfile command to the first ``/readyz`` 200, per round."""
    times = []
    for _ in range(rounds):
        with run_server() as server:
            times.append(server.ready_after)
    return times


def run(quick: bool = False) -> dict[str, Any]:
    """All HTTP measurements; ``quick`` shortens every run (for trying the suite out)."""
    scale = 0.25 if quick else 1.0
    single = write_payloads("single-short", 512, 1, 200)
    batch = write_payloads("batch64-long", 16, 64, 2000)
    results: dict[str, Any] = {"runs": []}
    with run_server() as server:
        results["ready_after_first"] = server.ready_after
        workers = server.worker_pids()
        results["worker_memory_idle"] = _worker_memory(workers)
        # Warm-up: every worker scores a few requests before anything is measured.
        _send_requests(server.base_url, single, 40)
        _send_requests(server.base_url, batch, 4)
        plan = [
            # label, payloads, users, seconds, rate per user (0 = back to back)
            ("single-saturation", single, 16, 25, 0.0),
            ("single-100rps", single, 10, 30, 10.0),
            ("single-100rps-100users", single, 100, 20, 1.0),
            ("batch64-saturation", batch, 4, 25, 0.0),
            ("batch64-4rps", batch, 4, 30, 1.0),
        ]
        for label, payloads, users, seconds, rate in plan:
            results["runs"].append(
                run_locust(server.base_url, payloads, users, max(8, seconds * scale), rate, label)
            )
        results["cross_check"] = [
            open_loop_latency(server.port, single, 10, 100.0, max(8, 15 * scale)),
            open_loop_latency(server.port, single, 100, 100.0, max(8, 15 * scale)),
        ]
        # With the default DISCOURSE_MAX_REQUESTS workers are recycled during the load; measure
        # the ones serving now.
        current = server.worker_pids()
        results["worker_memory_after_load"] = _worker_memory(current)
        results["workers_replaced_during_load"] = len(set(workers) - set(current))
        results["worker_boots_during_load"] = server.log_path.read_text(errors="replace").count(
            "Booting worker"
        ) - len(workers)
    # Worker recycling (DISCOURSE_MAX_REQUESTS) off: the same runs for comparison, then memory after
    # 10,000 requests, so that the same two workers serve all of them and any growth shows.
    n_requests = int(10_000 * scale)
    with run_server({"DISCOURSE_MAX_REQUESTS": "0"}) as server:
        workers = server.worker_pids()
        before = _worker_memory(workers)
        _send_requests(server.base_url, single, 40)
        for label, users, seconds, rate in (
            ("single-saturation-no-recycling", 16, 20, 0.0),
            ("single-100rps-no-recycling", 10, 25, 10.0),
        ):
            results["runs"].append(
                run_locust(server.base_url, single, users, max(8, seconds * scale), rate, label)
            )
        started = time.monotonic()
        bad = _send_requests(server.base_url, single, n_requests)
        served = (
            40 + n_requests + sum(r["requests"] for r in results["runs"] if r["label"].endswith("recycling"))
        )
        results["ten_thousand"] = {
            "requests": n_requests,
            "served_in_all": served,
            "non_200": bad,
            "seconds": time.monotonic() - started,
            "before": before,
            "after": _worker_memory(workers),
            "same_workers": sorted(server.worker_pids()) == sorted(workers),
        }
    results["startup_seconds"] = startup_times(3 if quick else 5)
    results["startup_median"] = median(results["startup_seconds"])
    return results


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
