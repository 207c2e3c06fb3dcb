"""Cost of expensive and slow requests against the real server (issue 14's figures).

Runs the Procfile ``web`` command of ``--repo`` (default: this checkout; point it at a
checkout of an older commit for "before" figures) on 127.0.0.1, with rate limiting,
draining and worker recycling off, and measures:

``cost``        one request of each body kind, one after another, on a 1-worker server:
                status, latency, the worker's CPU seconds, its peak RSS (sampled every
                10 ms) and its RSS 2 s after the answer; then 6 worst-case requests whose
                client hangs up after 0.3 s, and the CPU the worker spends on them anyway.
``interference`` K = 1, 2, 4, 8 clients looping a worst-case request for ``--seconds``
                (bounded in count too; after a 503 a client waits 2 s unless ``--no-wait``)
                while one client sends a single short text every 0.1 s: its p50/p99/max
                latency, and what the heavy requests got.
``memlimit``    the server inside a 1 GiB memory cgroup (cgroup v1 here; ``--cgroup-root``);
                N = 2, 4, 8 concurrent worst-case requests, then N concurrent legitimate
                maximum batches (256 English texts of 8,000 characters): statuses, OOM
                kills counted by the cgroup, whether the master and workers survived, the
                cgroup's peak usage, and whether the server answers afterwards.
``slow``        N = 5, 10, 16 connections trickling a 2 MB body at 4 bytes/s (reconnecting
                when the server closes them) while probes run: the share of ``/livez`` and
                ``/readyz`` over 1 s and of single-text scoring over 2 s.

Every loop is bounded in count and time; loopback only. Prints JSON lines as it goes and
writes everything to ``--json FILE``.

    python bench/hostile_cost.py --json bench/results/hostile-after.json
    python bench/hostile_cost.py --repo /tmp/base --json bench/results/hostile-before.json
    python bench/hostile_cost.py --only slow --slow-connections 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from common import Server, launch_server  # noqa: E402 (bench/ is not a package)
from corpus import make_texts  # noqa: E402

HOST = "127.0.0.1"
SINGLE = {
    "texts": [{"text": "NATO expansion threatened Russia; a new Eurasian security architecture is needed."}]
}


# -- bodies ----------------------------------------------------------------------------------------


def _body(texts: list[str], explain: bool = True) -> bytes:
    document = {"texts": [{"text": t} for t in texts], "explain": explain}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def bodies(limits: dict) -> dict[str, bytes]:
    """Each kind of expensive body, all under the 2 MiB body limit (256 texts, with evidence).

    ``dots``: about a million one-character sentences (". " repeated); ``mixed``: one
    sentence of one word, then ". " repeated; ``short``: sentences of one word ("ab. ");
    ``words``: one word after another, no punctuation; ``english``: a legitimate maximum
    batch (256 texts of 8,000 characters); ``capped``: just within the sentence and token
    limits the server publishes in ``x-limits`` (when it has them).
    """
    result = {
        "dots": _body([". " * 4084] * 256),
        "short": _body(["ab. " * 2042] * 256),
        "mixed": _body(["ab. " + ". " * 4082] * 256),
        "words": _body(["ab " * 2722] * 256),
        "english": _body(make_texts(256, 8000, seed=14)),
    }
    sentences = limits.get("max_sentences_per_request")
    tokens = limits.get("max_tokens_per_request")
    if sentences and tokens:
        per_text_sentences = min(sentences // 256, limits.get("max_sentences_per_text", sentences))
        words_per_sentence = max(
            1, min(tokens // 256, limits.get("max_tokens_per_text", tokens)) // per_text_sentences
        )
        sentence = " ".join(["ab"] * words_per_sentence) + ". "
        result["capped"] = _body([(sentence * per_text_sentences)[:8000]] * 256)
    return result


# -- the server ------------------------------------------------------------------------------------


@contextlib.contextmanager
def server(
    repo: Path, workers: int = 2, cgroup: Path | None = None, env: dict | None = None
) -> Iterator[Server]:
    """The Procfile command of ``repo`` on a free loopback port (inside ``cgroup`` if given)."""
    settings = {
        "DISCOURSE_RATE_LIMIT_ENABLED": "false",
        "DISCOURSE_DRAIN_SECONDS": "0",
        "DISCOURSE_MAX_REQUESTS": "0",
        **(env or {}),
    }

    def join_cgroup() -> None:  # in the child, before exec: everything it starts stays inside
        if cgroup is not None:
            (cgroup / "cgroup.procs").write_text(str(os.getpid()))

    with contextlib.ExitStack() as stack:
        try:
            srv = stack.enter_context(
                launch_server(
                    Path(tempfile.mkdtemp(prefix="hostile-cost-")) / "server.log",
                    workers=workers,
                    env=settings,
                    repo=repo,
                    base_env={**os.environ, "PYTHONPATH": str(repo)},
                    preexec_fn=join_cgroup,
                    stop_signal=signal.SIGINT,
                )
            )
        except RuntimeError as error:  # a script: one message, no traceback
            raise SystemExit(str(error)) from None
        yield srv


def _post(url: str, body: bytes, timeout: float) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        response = requests.post(
            url + "/v1/score", data=body, headers={"Content-Type": "application/json"}, timeout=timeout
        )
        return response.status_code, time.monotonic() - started
    except requests.RequestException as error:
        return type(error).__name__, time.monotonic() - started


def _quantiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "n": len(ordered),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * pick(0.99), 1),
        "max_ms": round(1000 * ordered[-1], 1),
    }


def _mib(n: float) -> float:
    return round(n / 2**20, 1)


# -- cost ------------------------------------------------------------------------------------------


class RssSampler:
    """Peak RSS of one process, sampled every 10 ms in a thread."""

    def __init__(self, process: psutil.Process) -> None:
        self.process, self.peak, self._stop = process, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def run_cost(repo: Path, kinds: list[str], repeats: int) -> list[dict]:
    rows = []
    with server(repo, workers=1) as srv:
        worker = srv.workers()[0]
        limits = requests.get(srv.base_url + "/openapi.json", timeout=5).json().get("x-limits", {})
        all_bodies = bodies(limits)
        requests.post(srv.base_url + "/v1/score", json=SINGLE, timeout=10)  # warm
        idle = worker.memory_info().rss
        for kind in kinds:
            if kind not in all_bodies:
                continue
            for attempt in range(repeats):
                before_cpu = _cpu(worker)
                with RssSampler(worker) as sampler:
                    status, latency = _post(srv.base_url, all_bodies[kind], timeout=120)
                cpu = _cpu(worker) - before_cpu
                time.sleep(2)
                row = {
                    "section": "cost",
                    "kind": kind,
                    "attempt": attempt,
                    "bytes": len(all_bodies[kind]),
                    "status": status,
                    "latency_s": round(latency, 2),
                    "cpu_s": round(cpu, 2),
                    "idle_rss_mib": _mib(idle),
                    "peak_rss_mib": _mib(sampler.peak),
                    "after_rss_mib": _mib(worker.memory_info().rss),
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
        # Clients that give up after 0.3 s: how much CPU do their requests still cost?
        heavy = all_bodies["capped"] if "capped" in all_bodies else all_bodies["dots"]
        before_cpu = _cpu(worker)
        statuses = [_post(srv.base_url, heavy, timeout=0.3)[0] for _ in range(6)]
        stop = time.monotonic() + 60
        last = -1.0
        while time.monotonic() < stop:  # until the worker stops spending CPU
            time.sleep(1)
            now = _cpu(worker)
            if now - last < 0.05:
                break
            last = now
        row = {
            "section": "hangup",
            "kind": "capped" if "capped" in all_bodies else "dots",
            "client_statuses": dict(Counter(map(str, statuses))),
            "cpu_s_after_hangup": round(_cpu(worker) - before_cpu, 2),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


# -- interference ----------------------------------------------------------------------------------


def run_interference(repo: Path, levels: list[int], seconds: float, kind: str, wait: bool) -> list[dict]:
    rows = []
    with server(repo) as srv:
        limits = requests.get(srv.base_url + "/openapi.json", timeout=5).json().get("x-limits", {})
        body = bodies(limits)[kind]
        idle: list[float] = []
        for _ in range(50):
            idle.append(_post(srv.base_url, json.dumps(SINGLE).encode(), 30)[1])
            time.sleep(0.02)
        rows.append({"section": "interference", "k": 0, "single": _quantiles(idle)})
        print(json.dumps(rows[-1]), flush=True)
        for k in levels:
            stop = time.monotonic() + seconds
            heavy: list[tuple[int | str, float]] = []

            def loop(stop: float = stop, heavy: list = heavy) -> None:
                for _ in range(200):  # bounded in count as well as time
                    if time.monotonic() > stop:
                        return
                    status, latency = _post(srv.base_url, body, timeout=90)
                    heavy.append((status, latency))
                    if wait and status == 503:  # as a client should: wait as told (2 s)
                        time.sleep(2)

            threads = [threading.Thread(target=loop) for _ in range(k)]
            for t in threads:
                t.start()
            single: list[float] = []
            failures: Counter = Counter()
            while time.monotonic() < stop:
                status, latency = _post(srv.base_url, json.dumps(SINGLE).encode(), 30)
                if status == 200:
                    single.append(latency)
                else:
                    failures[str(status)] += 1
                time.sleep(0.1)
            for t in threads:
                t.join()
            row = {
                "section": "interference",
                "kind": kind,
                "k": k,
                "heavy_clients_wait_after_503": wait,
                "seconds": seconds,
                "single": _quantiles(single),
                "single_failures": dict(failures),
                "heavy_statuses": dict(Counter(str(s) for s, _ in heavy)),
                "heavy_max_s": round(max((t for _, t in heavy), default=0), 2),
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
            time.sleep(2)
    return rows


# -- memory limit ----------------------------------------------------------------------------------


def _make_cgroup(root: Path, limit: int) -> Path:
    path = root / f"hostile-cost-{os.getpid()}"
    path.mkdir()
    (path / "memory.limit_in_bytes").write_text(str(limit))
    return path


def _oom_kills(cgroup: Path) -> int:
    for line in (cgroup / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return -1


def run_memlimit(repo: Path, levels: list[int], cgroup_root: Path, kind: str) -> list[dict]:
    rows = []
    for n in levels:
        for body_kind in (kind, "english"):
            cgroup = _make_cgroup(cgroup_root, 2**30)
            try:
                with server(repo, cgroup=cgroup) as srv:
                    limits = (
                        requests.get(srv.base_url + "/openapi.json", timeout=5).json().get("x-limits", {})
                    )
                    body = bodies(limits)[body_kind]
                    master = srv.process.pid
                    workers_before = {p.pid for p in srv.workers()}
                    (cgroup / "memory.max_usage_in_bytes").write_text("0")
                    idle_usage = int((cgroup / "memory.usage_in_bytes").read_text())
                    with ThreadPoolExecutor(n) as pool:
                        futures = [pool.submit(_post, srv.base_url, body, 120) for _ in range(n)]
                        results = [f.result() for f in futures]
                    time.sleep(1)
                    answers = _post(srv.base_url, json.dumps(SINGLE).encode(), 10)[0]
                    row = {
                        "section": "memlimit",
                        "kind": body_kind,
                        "n": n,
                        "statuses": dict(Counter(str(s) for s, _ in results)),
                        "max_latency_s": round(max(t for _, t in results), 2),
                        "oom_kills": _oom_kills(cgroup),
                        "master_alive": srv.process.poll() is None and psutil.pid_exists(master),
                        "workers_replaced": len(workers_before - {p.pid for p in srv.workers()}),
                        "idle_usage_mib": _mib(idle_usage),
                        "peak_usage_mib": _mib(int((cgroup / "memory.max_usage_in_bytes").read_text())),
                        "single_after": answers,
                    }
            finally:
                with contextlib.suppress(OSError):
                    cgroup.rmdir()
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


# -- slow uploaders --------------------------------------------------------------------------------


def _trickle(port: int, stop: float, counts: Counter) -> None:
    """Keep one connection sending a 2 MB body at 4 bytes/s; reconnect when the server ends it."""
    head = (
        f"POST /v1/score HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        "Content-Length: 2000000\r\n\r\n"
    ).encode()
    while time.monotonic() < stop:
        try:
            with socket.create_connection((HOST, port), timeout=5) as sock:
                counts["connections"] += 1
                sock.sendall(head + b'{"texts":[{"text":"')
                while time.monotonic() < stop:
                    sock.sendall(b"abcd")
                    time.sleep(1)
        except OSError:
            counts["ended_by_server"] += 1
            time.sleep(0.2)


def run_slow(repo: Path, levels: list[int], seconds: float) -> list[dict]:
    rows = []
    for n in levels:
        with server(repo) as srv:
            stop = time.monotonic() + seconds + 3
            counts: Counter = Counter()
            tricklers = [threading.Thread(target=_trickle, args=(srv.port, stop, counts)) for _ in range(n)]
            for t in tricklers:
                t.start()
            time.sleep(3)  # let them all connect and start their bodies
            probes: dict[str, list[float]] = {"livez": [], "readyz": [], "score": []}
            over: Counter = Counter()
            targets = {"livez": 1.0, "readyz": 1.0, "score": 2.0}
            while time.monotonic() < stop:
                for name, target in targets.items():
                    started = time.monotonic()
                    try:
                        if name == "score":
                            ok = (
                                requests.post(
                                    srv.base_url + "/v1/score", json=SINGLE, timeout=target
                                ).status_code
                                == 200
                            )
                        else:
                            ok = requests.get(f"{srv.base_url}/{name}", timeout=target).status_code == 200
                    except requests.RequestException:
                        ok = False
                    elapsed = time.monotonic() - started
                    probes[name].append(elapsed)
                    if not ok or elapsed > target:
                        over[name] += 1
                time.sleep(0.2)
            for t in tricklers:
                t.join()
            row = {
                "section": "slow",
                "connections": n,
                "seconds": seconds,
                "trickler_connections": counts["connections"],
                **{
                    name: {
                        **_quantiles(values),
                        "over_target": over[name],
                        "over_share": round(over[name] / max(1, len(values)), 3),
                    }
                    for name, values in probes.items()
                },
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=BENCH_DIR.parent)
    parser.add_argument("--only", nargs="*", default=["cost", "interference", "memlimit", "slow"])
    parser.add_argument(
        "--kinds", nargs="*", default=["dots", "mixed", "short", "words", "capped", "english"]
    )
    parser.add_argument("--heavy", default="dots", help="body kind of the worst-case request")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--levels", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--mem-levels", type=int, nargs="*", default=[2, 4, 8])
    parser.add_argument("--cgroup-root", type=Path, default=Path("/sys/fs/cgroup/memory"))
    parser.add_argument("--slow-connections", type=int, nargs="*", default=[5, 10, 16])
    parser.add_argument("--slow-seconds", type=float, default=12.0)
    parser.add_argument(
        "--no-wait", action="store_true", help="heavy clients retry a 503 at once instead of waiting 2 s"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    repo = args.repo.resolve()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    results: dict = {"repo": str(repo), "commit": head.stdout.strip() or "not a git checkout", "rows": []}
    if "cost" in args.only:
        results["rows"] += run_cost(repo, args.kinds, args.repeats)
    if "interference" in args.only:
        results["rows"] += run_interference(repo, args.levels, args.seconds, args.heavy, not args.no_wait)
    if "memlimit" in args.only:
        results["rows"] += run_memlimit(repo, args.mem_levels, args.cgroup_root, args.heavy)
    if "slow" in args.only:
        results["rows"] += run_slow(repo, args.slow_connections, args.slow_seconds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
