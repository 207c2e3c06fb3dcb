"""Load soak: the real server under a mixed load at ~80% of its measured saturation.

Starts the Procfile's ``web`` command on 127.0.0.1 (a free port, loopback only),
measures the saturation throughput with a short closed-loop ramp, then sends an
open-loop mix of single texts, batches and a few invalid requests at
``--load`` (default 0.8) of it for ``--duration`` seconds. Afterwards every
response is checked: no 5xx, no transport error, every 200 a valid
``ScoreResponse`` with one result per text in order with the ids sent, every
refusal the documented problem. The workers' RSS is sampled at the middle and
the end of the run (minute 1 and 2 of the full 120 s run) and the drift printed.

Full run (about 2.5 minutes)::

    python bench/load_soak.py --duration 120

Reduced run, as CI does (about 30 s)::

    python bench/load_soak.py --duration 15 --ramp-seconds 2

Exit status 0 when every check passed, 1 otherwise; ``--json FILE`` writes the summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from common import Server, launch_server  # noqa: E402 (the bench suite's shared helpers)

from service.config import DEFAULT_SEEDS_DIR  # noqa: E402 (after the path set-up)
from service.http.schemas import ProblemSchema, ScoreResponseSchema  # noqa: E402
from service.loaders.reference_files import load_reference_directory  # noqa: E402

HOST = "127.0.0.1"
REQUEST_TIMEOUT = 60.0
CLIENT_IDLE_TIMEOUT = 1.0
"""Seconds a client keeps an idle connection; under gunicorn's keep-alive timeout (2 s by default).

A client that reuses a connection idle for about the server's keep-alive timeout
races the server closing it and gets a reset (measured: about 3% of such reuses).
Clients should close idle connections sooner, as HTTP client pools do, or retry.
"""

# -- the server ---------------------------------------------------------------------------


def wait_for_workers(server: Server, count: int, timeout: float = 15.0) -> None:
    """Wait until ``count`` workers run (the server is ready as soon as one is)."""
    deadline = time.monotonic() + timeout
    while len(server.workers()) != count:
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(server.workers())} workers after {timeout} s, expected {count}")
        time.sleep(0.05)


@contextmanager
def start_server(
    workers: int, env: dict[str, str] | None = None, ready_timeout: float = 60.0
) -> Iterator[Server]:
    """Run the Procfile command with ``workers`` workers on 127.0.0.1 until the block ends.

    Rate limiting is off (one client address sends everything), draining is off
    (a quick stop) and workers are not recycled unless ``env`` says otherwise.
    """
    settings = {
        "DISCOURSE_RATE_LIMIT_ENABLED": "false",
        "DISCOURSE_DRAIN_SECONDS": "0",
        "DISCOURSE_MAX_REQUESTS": "0",
        **(env or {}),
    }
    log_path = Path(tempfile.mkdtemp(prefix="discourse-bench-")) / "server.log"
    with ExitStack() as stack:
        try:
            server = stack.enter_context(
                launch_server(log_path, workers=workers, env=settings, ready_timeout=ready_timeout)
            )
        except RuntimeError as error:  # a script: one message, no traceback
            raise SystemExit(str(error)) from None
        wait_for_workers(server, workers)
        yield server


# -- the requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One request to send and what must come back."""

    kind: str  # single, batch or invalid-<what>
    body: bytes
    headers: dict[str, str]
    ids: tuple[str, ...] = ()  # for a valid request: the ids, in order
    expect: int = 200


class Workload:
    """A deterministic mix of single-text, batch and invalid score requests."""

    def __init__(self, seed: int = 0, invalid_share: float = 0.05, batch_share: float = 0.3) -> None:
        references, _ = load_reference_directory(DEFAULT_SEEDS_DIR)
        self.sentences = [
            s.strip() + "." for r in references for s in r.body.split(".") if len(s.split()) > 4
        ]
        self.filler = (
            "the council said on monday that rainfall and harvest figures for the region were "
            "better than expected while football fans celebrated a late winner in the cup final"
        ).split()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.counter = 0
        self.invalid_share = invalid_share
        self.batch_share = batch_share

    def _text(self, chars: int) -> str:
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            if self.rng.random() < 0.6:
                parts.append(self.rng.choice(self.sentences))
            else:
                parts.append(
                    " ".join(self.rng.choices(self.filler, k=self.rng.randint(5, 20))).capitalize() + "."
                )
        return " ".join(parts)[:chars]

    def next(self) -> Planned:
        """The next request of the mix (thread-safe)."""
        with self.lock:
            self.counter += 1
            n, draw = self.counter, self.rng.random()
            if draw < self.invalid_share:
                return self._invalid(n)
            if draw < self.invalid_share + self.batch_share:
                count = self.rng.randint(2, 32)
                texts = [self._text(self.rng.randint(100, 1500)) for _ in range(count)]
                return self._valid("batch", n, texts, explain=self.rng.random() < 0.1)
            return self._valid(
                "single", n, [self._text(self.rng.randint(200, 3000))], self.rng.random() < 0.2
            )

    def _valid(self, kind: str, n: int, texts: list[str], explain: bool) -> Planned:
        ids = tuple(f"r{n}-t{i}" for i in range(len(texts)))
        # Some texts without an id: their result id must be their index.
        items = [
            {"id": i, "text": t} if k % 3 else {"text": t}
            for k, (i, t) in enumerate(zip(ids, texts, strict=True))
        ]
        ids = tuple(i if k % 3 else str(k) for k, i in enumerate(ids))
        body = json.dumps({"texts": items, "explain": explain}).encode()
        return Planned(kind, body, {"Content-Type": "application/json"}, ids)

    def _invalid(self, n: int) -> Planned:
        json_type = {"Content-Type": "application/json"}
        choices = [
            Planned("invalid-json", b'{"texts": [{"text": "NATO', json_type, expect=400),
            Planned("invalid-blank", b'{"texts": [{"text": "   "}]}', json_type, expect=422),
            Planned(
                "invalid-media", b'{"texts": [{"text": "NATO"}]}', {"Content-Type": "text/plain"}, expect=415
            ),
            Planned(
                "invalid-reference",
                b'{"texts": [{"text": "NATO"}], "reference": "none"}',
                json_type,
                expect=404,
            ),
        ]
        return choices[n % len(choices)]


@dataclass
class Outcome:
    """What happened to one request."""

    kind: str
    started: float  # seconds since the run began
    latency: float
    status: int | None  # None: transport error
    error: str | None = None
    problem: str | None = None  # the check that failed, if any


@dataclass
class Recorder:
    """Outcomes of every request, and the bodies to check after the run."""

    outcomes: list[Outcome] = field(default_factory=list)
    pending: list[tuple[Planned, int, str, bytes, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, session: requests.Session, url: str, planned: Planned, origin: float) -> None:
        """Send ``planned`` and record the outcome (checked later by :func:`check_responses`)."""
        started = time.monotonic()
        try:
            response = session.post(url, data=planned.body, headers=planned.headers, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as error:
            reason = f"{type(error).__name__}: {str(error)[-160:]}"
            outcome = Outcome(planned.kind, started - origin, time.monotonic() - started, None, reason)
            with self.lock:
                self.outcomes.append(outcome)
            return
        outcome = Outcome(planned.kind, started - origin, time.monotonic() - started, response.status_code)
        with self.lock:
            index = len(self.outcomes)
            self.outcomes.append(outcome)
            self.pending.append(
                (
                    planned,
                    response.status_code,
                    response.headers.get("Content-Type", ""),
                    response.content,
                    index,
                )
            )


def check_response(planned: Planned, status: int, content_type: str, body: bytes) -> str | None:
    """Why this response is wrong, or None: right status, valid document, nothing lost or reordered."""
    if status >= 500:
        return f"server error {status}"
    if status != planned.expect:
        return f"status {status}, expected {planned.expect}"
    try:
        document = json.loads(body)
    except ValueError:
        return "body is not JSON"
    if status != 200:
        if not content_type.startswith("application/problem+json"):
            return f"problem with content type {content_type!r}"
        errors = ProblemSchema().validate(document)
        return f"invalid problem document: {errors}" if errors else None
    errors = ScoreResponseSchema().validate(document)
    if errors:
        return f"invalid ScoreResponse: {str(errors)[:300]}"
    results = document["results"]
    if tuple(r["id"] for r in results) != planned.ids:
        return f"{len(results)} results for {len(planned.ids)} texts, or ids out of order"
    for result in results:
        for stance in [result["stance"], *(c["stance"] for c in result["claims"])]:
            if abs(sum(stance["scores"].values()) - 1.0) > 1e-6:
                return "stance scores do not sum to 1"
        if not 0.0 <= result["similarity"] <= 1.0:
            return "similarity outside [0, 1]"
    return None


def check_responses(recorder: Recorder) -> None:
    """Check every recorded response (after the run, so that checking takes no CPU from the server)."""
    for planned, status, content_type, body, index in recorder.pending:
        recorder.outcomes[index].problem = check_response(planned, status, content_type, body)
    recorder.pending.clear()


# -- load patterns ------------------------------------------------------------------------


def closed_loop(
    server: Server, workload: Workload, clients: int, seconds: float, origin: float | None = None
) -> Recorder:
    """``clients`` clients each sending the next request as soon as the last is answered.

    Times are recorded relative to ``origin`` (default: now).
    """
    recorder = Recorder()
    origin = time.monotonic() if origin is None else origin
    deadline = time.monotonic() + seconds

    def client() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                recorder.send(session, server.base_url + "/v1/score", workload.next(), origin)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return recorder


def measure_saturation(
    server: Server, workload: Workload, seconds: float, levels: list[int]
) -> tuple[float, dict]:
    """Requests per second answered at each concurrency of ``levels``; the best is the saturation."""
    throughput: dict[int, float] = {}
    for clients in levels:
        recorder = closed_loop(server, workload, clients, seconds)
        check_responses(recorder)
        bad = [o for o in recorder.outcomes if o.problem or o.status is None]
        if bad:
            raise SystemExit(f"errors while measuring saturation: {bad[:3]}")
        throughput[clients] = len(recorder.outcomes) / seconds
        print(f"  {clients:3d} clients: {throughput[clients]:7.1f} requests/s", flush=True)
    return max(throughput.values()), throughput


def open_loop(
    server: Server, workload: Workload, rate: float, seconds: float, on_tick=None, max_in_flight: int = 128
) -> Recorder:
    """Start requests at ``rate`` per second for ``seconds``, whatever the server's pace (open loop).

    ``on_tick(elapsed)`` is called about every 0.5 s from the scheduling thread.
    """
    recorder = Recorder()
    sessions = threading.local()

    def send(planned: Planned, origin: float) -> None:
        # Like a well-configured client pool, a connection idle for longer than CLIENT_IDLE_TIMEOUT
        # is not reused: reusing one just as the server's keep-alive timeout closes it fails.
        now = time.monotonic()
        if not hasattr(sessions, "session") or now - sessions.last_used > CLIENT_IDLE_TIMEOUT:
            if hasattr(sessions, "session"):
                sessions.session.close()
            sessions.session = requests.Session()
        recorder.send(sessions.session, server.base_url + "/v1/score", planned, origin)
        sessions.last_used = time.monotonic()

    origin = time.monotonic()
    next_tick = 0.0
    with ThreadPoolExecutor(max_workers=max_in_flight) as pool:
        sent = 0
        while (elapsed := time.monotonic() - origin) < seconds:
            due = int(elapsed * rate) + 1
            while sent < due:
                pool.submit(send, workload.next(), origin)
                sent += 1
            if on_tick is not None and elapsed >= next_tick:
                on_tick(elapsed)
                next_tick += 0.5
            time.sleep(min(0.01, 1.0 / rate))
    return recorder


# -- reporting ----------------------------------------------------------------------------


def summarize(recorder: Recorder, seconds: float) -> dict:
    """Counts by kind and status, latencies of the 200s, and every failed check."""
    outcomes = recorder.outcomes
    by_status: dict[str, int] = {}
    for o in outcomes:
        key = str(o.status) if o.status is not None else f"error:{(o.error or '').split(':')[0]}"
        by_status[key] = by_status.get(key, 0) + 1
    latencies = sorted(o.latency for o in outcomes if o.status == 200)

    def pct(q: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))], 4) if latencies else None

    failures = [asdict(o) for o in outcomes if o.problem or o.status is None]
    return {
        "requests": len(outcomes),
        "throughput_rps": round(len(outcomes) / seconds, 2),
        "by_kind": {k: sum(1 for o in outcomes if o.kind == k) for k in sorted({o.kind for o in outcomes})},
        "by_status": dict(sorted(by_status.items())),
        "server_errors": sum(1 for o in outcomes if o.status is not None and o.status >= 500),
        "transport_errors": sum(1 for o in outcomes if o.status is None),
        "invalid_responses": sum(1 for o in outcomes if o.problem),
        "latency_s": {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "p99": pct(0.99),
            "max": latencies[-1] if latencies else None,
        },
        "failures": failures[:20],
    }


def rss_snapshot(server: Server) -> dict[int, int]:
    """Resident set size in bytes of each worker, by pid."""
    sizes = {}
    for worker in server.workers():
        with suppress(psutil.NoSuchProcess):
            sizes[worker.pid] = worker.memory_info().rss
    return sizes


def drift(first: dict[int, int], second: dict[int, int]) -> dict:
    """RSS drift between two snapshots: total and per worker present in both."""
    common = sorted(set(first) & set(second))
    total_first, total_second = sum(first[p] for p in common), sum(second[p] for p in common)
    return {
        "workers_in_both": len(common),
        "workers_replaced": len(set(first) ^ set(second)),
        "total_mib": [round(total_first / 2**20, 1), round(total_second / 2**20, 1)],
        "total_percent": round(100 * (total_second - total_first) / total_first, 2) if total_first else None,
        "per_worker_percent": {str(p): round(100 * (second[p] - first[p]) / first[p], 2) for p in common},
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print (and optionally write) the summary; 0 if every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=120.0, help="soak seconds (default 120)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument(
        "--load", type=float, default=0.8, help="share of the saturation to send (default 0.8)"
    )
    parser.add_argument("--rate", type=float, help="requests/s to send; skips the saturation ramp")
    parser.add_argument("--ramp-seconds", type=float, default=5.0, help="seconds per ramp level (default 5)")
    parser.add_argument("--ramp-levels", default="1,2,4,8,16", help="client counts of the ramp")
    parser.add_argument("--seed", type=int, default=0, help="workload seed")
    parser.add_argument("--max-rss-drift", type=float, help="fail if worker RSS grows more (percent)")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args(argv)

    workload = Workload(seed=args.seed)
    with start_server(args.workers) as server:
        print(f"server: {server.base_url}, {args.workers} workers, log {server.log_path}", flush=True)
        if args.rate:
            saturation, ramp = None, {}
            rate = args.rate
        else:
            print("measuring saturation (closed loop):", flush=True)
            levels = [int(x) for x in args.ramp_levels.split(",")]
            saturation, ramp = measure_saturation(server, workload, args.ramp_seconds, levels)
            rate = max(0.5, args.load * saturation)
        print(f"soak: {rate:.1f} requests/s for {args.duration:.0f} s", flush=True)

        marks = {"middle": args.duration / 2, "end": args.duration - 0.5}
        snapshots: dict[str, dict[int, int]] = {}

        def on_tick(elapsed: float) -> None:
            for name, at in marks.items():
                if name not in snapshots and elapsed >= at:
                    snapshots[name] = rss_snapshot(server)

        started = time.monotonic()
        recorder = open_loop(server, workload, rate, args.duration, on_tick)
        elapsed = time.monotonic() - started
        snapshots.setdefault("end", rss_snapshot(server))
        log = server.log()
    checking = time.monotonic()
    check_responses(recorder)
    print(f"checked {len(recorder.outcomes)} responses in {time.monotonic() - checking:.1f} s", flush=True)

    summary = {
        "duration_s": args.duration,
        "workers": args.workers,
        "saturation_rps": round(saturation, 2) if saturation else None,
        "ramp_rps": {str(k): round(v, 2) for k, v in ramp.items()},
        "target_rps": round(rate, 2),
        **summarize(recorder, elapsed),
        "rss": {
            "at_s": {name: round(at, 1) for name, at in marks.items()},
            "middle_mib": {str(p): round(v / 2**20, 1) for p, v in snapshots.get("middle", {}).items()},
            "end_mib": {str(p): round(v / 2**20, 1) for p, v in snapshots["end"].items()},
            "drift": drift(snapshots.get("middle", {}), snapshots["end"]),
        },
        "unhandled_errors_logged": log.count("unhandled error"),
    }
    ok = (
        summary["server_errors"] == 0
        and summary["transport_errors"] == 0
        and summary["invalid_responses"] == 0
        and summary["unhandled_errors_logged"] == 0
        and summary["requests"] > 0
    )
    rss_drift = summary["rss"]["drift"]["total_percent"]
    if args.max_rss_drift is not None and (rss_drift is None or rss_drift > args.max_rss_drift):
        ok = False
    summary["ok"] = ok
    print_summary(summary)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if ok else 1


def print_summary(summary: dict) -> None:
    """The summary for people."""
    rss = summary["rss"]
    lat = summary["latency_s"]
    lines = [
        "",
        "== load soak summary ==",
        f"saturation {summary['saturation_rps']} req/s (ramp {summary['ramp_rps']}), "
        f"sent at {summary['target_rps']} req/s",
        f"requests {summary['requests']} ({summary['throughput_rps']} req/s): {summary['by_kind']}",
        f"statuses {summary['by_status']}",
        f"5xx {summary['server_errors']}, transport errors {summary['transport_errors']}, "
        f"invalid or lost {summary['invalid_responses']}, "
        f"unhandled errors logged {summary['unhandled_errors_logged']}",
        f"latency of 200s: p50 {lat['p50']} s, p95 {lat['p95']} s, p99 {lat['p99']} s, max {lat['max']} s",
        f"worker RSS at {rss['at_s']['middle']} s: {rss['middle_mib']} MiB; "
        f"at {rss['at_s']['end']} s: {rss['end_mib']} MiB; drift {rss['drift']['total_percent']} % "
        f"(per worker {rss['drift']['per_worker_percent']})",
        "result: " + ("OK" if summary["ok"] else "FAILED"),
    ]
    for failure in summary["failures"][:5]:
        lines.append(f"  failure: {failure}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
