"""Faults under load: workers killed with SIGKILL, then overload; nothing lost, no 5xx, quick recovery.

Starts the Procfile's ``web`` command on 127.0.0.1 (loopback only) and, with a
light closed-loop load of mixed single and batch requests running:

1. ``--kills`` times, ``--interval`` seconds apart, sends a heavy batch and kills
   the worker scoring it with SIGKILL, then measures how long until gunicorn
   has replaced it and a request succeeds (the heavy batch must fail: it was in
   flight there);
2. sends an overload: ``--overload-clients`` concurrent clients (several times
   the workers' threads) for ``--overload-seconds``, then measures recovery.

Checks: requests fail only if they were in flight on a killed worker; every
answered request is a 200 with one result per text in order with its ids, or
the documented problem (503 allowed under overload); no 5xx otherwise; each
kill recovered within ``--recovery-limit`` seconds (default 5); after the
overload a request is answered within 1 s.

Full run::

    python bench/fault_kill.py --kills 5 --interval 6 --overload-seconds 30

Reduced run, as CI does (about 25 s)::

    python bench/fault_kill.py --kills 2 --interval 3 --overload-seconds 6

Exit status 0 when every check passed, 1 otherwise; ``--json FILE`` writes the summary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import wait_for_cpu
from load_soak import (
    Outcome,
    Recorder,
    Server,
    Workload,
    check_responses,
    closed_loop,
    start_server,
    summarize,
    wait_for_workers,
)

# The overload is scaled on 4 threads a worker, the gunicorn config's default until it became 32
# (so that slow uploads cannot take every thread); 4 x 2 x 32 client threads would mostly measure
# the client. Scoring threads beyond the cores only share them, so 32 clients still overload.
THREADS_PER_WORKER = 4


@dataclass
class Kill:
    """One SIGKILL and the recovery after it."""

    pid: int
    at: float  # seconds since the load began
    recovered_after: float | None = None  # seconds until replaced and a request succeeded
    new_pid: int | None = None
    in_flight_request: str | None = None  # what the heavy request in flight on it got


def probe(server: Server, timeout: float = 2.0) -> bool:
    """Whether /readyz is 200 and a small score request is answered correctly."""
    try:
        if requests.get(server.base_url + "/readyz", timeout=timeout).status_code != 200:
            return False
        response = requests.post(
            server.base_url + "/v1/score", json={"texts": [{"id": "probe", "text": "NATO"}]}, timeout=timeout
        )
        return response.status_code == 200 and response.json()["results"][0]["id"] == "probe"
    except requests.RequestException:
        return False


def heavy_body() -> bytes:
    """A batch at the limits (256 texts, just under 2 MiB, with evidence): a second or more of scoring."""
    text = ("NATO expansion and the Eurasian security architecture were discussed in Moscow. " * 100)[:7800]
    return json.dumps(
        {"texts": [{"id": f"h{i}", "text": f"{i} {text}"} for i in range(256)], "explain": True}
    ).encode()


TRANSPORT_ERRORS = frozenset(
    {
        "RemoteDisconnected",
        "ConnectionResetError",
        "BrokenPipeError",
        "IncompleteRead",
        "ConnectionAbortedError",
    }
)
"""How ``http.client`` reports a connection its server process died on."""


def kill_and_recover(server: Server, workers: int, origin: float, limit: float) -> Kill:
    """SIGKILL the worker busy with a heavy request; wait until it is replaced and requests succeed.

    The heavy request was in flight on the killed worker, so it must fail; the
    light load's requests may fail only if they were in flight there too.
    """
    outcome: dict[str, object] = {}

    host, port = server.base_url.split("//")[1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.connect()
    client_port = connection.sock.getsockname()[1]

    def send_heavy() -> None:
        try:
            connection.request("POST", "/v1/score", heavy_body(), {"Content-Type": "application/json"})
            outcome["status"] = connection.getresponse().status
        except (OSError, http.client.HTTPException) as error:
            outcome["error"] = type(error).__name__

    heavy = threading.Thread(target=send_heavy)
    heavy.start()
    victim = server.worker_serving(client_port)
    wait_for_cpu(victim, seconds=0.3)  # scoring, not only reading the body
    before = {w.pid for w in server.workers()}
    kill = Kill(pid=victim.pid, at=time.monotonic() - origin)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while time.monotonic() - killed_at < 3 * limit:
        current = {w.pid for w in server.workers()}
        replaced = victim.pid not in current and len(current) == workers
        if replaced and probe(server):
            kill.recovered_after = round(time.monotonic() - killed_at, 3)
            kill.new_pid = next(iter(current - before), None)
            break
        time.sleep(0.05)
    heavy.join(timeout=60)
    kill.in_flight_request = str(outcome.get("error") or outcome.get("status"))
    return kill


def light_load(
    server: Server, workload: Workload, clients: int, stop: threading.Event, origin: float
) -> Recorder:
    """Start ``clients`` clients sending requests with a short pause until ``stop`` is set."""
    recorder = Recorder()

    def client() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                recorder.send(session, server.base_url + "/v1/score", workload.next(), origin)
                time.sleep(0.05)

    recorder.threads = [threading.Thread(target=client) for _ in range(clients)]  # type: ignore[attr-defined]
    for thread in recorder.threads:  # type: ignore[attr-defined]
        thread.start()
    return recorder


def casualties_explained(errors: list[Outcome], kills: list[Kill], grace: float = 1.0) -> list[Outcome]:
    """Transport errors NOT explained by a kill: a request may fail only if in flight when a worker died."""
    unexplained = []
    for error in errors:
        ended = error.started + error.latency
        if not any(error.started <= k.at + 0.05 and k.at <= ended <= k.at + grace for k in kills):
            unexplained.append(error)
    return unexplained


def main(argv: list[str] | None = None) -> int:
    """Run the fault scenario; print (and optionally write) the summary; 0 if every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--clients", type=int, default=3, help="light-load clients (default 3)")
    parser.add_argument("--kills", type=int, default=3, help="workers to SIGKILL (default 3)")
    parser.add_argument("--interval", type=float, default=4.0, help="seconds between kills (default 4)")
    parser.add_argument("--recovery-limit", type=float, default=5.0, help="seconds allowed to recover")
    parser.add_argument("--overload-clients", type=int, help="default: 4 x workers x threads")
    parser.add_argument("--overload-seconds", type=float, default=10.0, help="overload seconds (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="workload and victim seed")
    parser.add_argument("--json", type=Path, help="also write the summary to this file")
    args = parser.parse_args(argv)
    random.seed(args.seed)
    overload_clients = args.overload_clients or 4 * args.workers * THREADS_PER_WORKER

    # Small requests keep the light load light: at most 8 texts.
    workload = Workload(seed=args.seed, batch_share=0.3)
    with start_server(args.workers) as server:
        print(f"server: {server.base_url}, {args.workers} workers, log {server.log_path}", flush=True)
        origin = time.monotonic()
        stop = threading.Event()
        recorder = light_load(server, workload, args.clients, stop, origin)
        kills: list[Kill] = []
        try:
            time.sleep(min(2.0, args.interval))
            for n in range(args.kills):
                kill = kill_and_recover(server, args.workers, origin, args.recovery_limit)
                kills.append(kill)
                print(
                    f"kill {n + 1}: pid {kill.pid} at {kill.at:.1f} s, recovered after "
                    f"{kill.recovered_after} s (new worker {kill.new_pid}); in-flight batch: "
                    f"{kill.in_flight_request}",
                    flush=True,
                )
                time.sleep(max(0.0, args.interval - (kill.recovered_after or 0.0)))
        finally:
            stop.set()
            for thread in recorder.threads:  # type: ignore[attr-defined]
                thread.join()
        light_seconds = time.monotonic() - origin
        wait_for_workers(server, args.workers)

        print(f"overload: {overload_clients} clients for {args.overload_seconds:.0f} s", flush=True)
        heavy = closed_loop(server, workload, overload_clients, args.overload_seconds, origin)
        after = time.monotonic()
        recovered = None
        while time.monotonic() - after < args.recovery_limit:
            started = time.monotonic()
            if probe(server, timeout=1.0) and time.monotonic() - started < 1.0:
                recovered = round(time.monotonic() - after, 3)
                break
            time.sleep(0.1)
        log = server.log()

    check_responses(recorder)
    check_responses(heavy)
    for outcome in heavy.outcomes:  # under overload a 503 problem is an allowed answer
        if outcome.status == 503 and outcome.problem and outcome.problem.startswith("server error"):
            outcome.problem = None
    errors = [o for o in recorder.outcomes if o.status is None]
    unexplained = casualties_explained(errors, kills)
    light = summarize(recorder, light_seconds)
    heavy_summary = summarize(heavy, args.overload_seconds)
    summary = {
        "workers": args.workers,
        "kills": [asdict(k) for k in kills],
        "light_load": light,
        "casualties": len(errors),
        "unexplained_failures": [asdict(o) for o in unexplained],
        "overload_clients": overload_clients,
        "overload": heavy_summary,
        "recovered_after_overload_s": recovered,
        "unhandled_errors_logged": log.count("unhandled error"),
    }
    ok = (
        all(k.recovered_after is not None and k.recovered_after <= args.recovery_limit for k in kills)
        # The heavy request was in flight on the killed worker: it must end without a status.
        and all(k.in_flight_request in TRANSPORT_ERRORS for k in kills)
        and not unexplained
        and len(errors) <= args.clients * len(kills)
        and light["server_errors"] == 0
        and light["invalid_responses"] == 0
        and heavy_summary["transport_errors"] == 0
        and heavy_summary["invalid_responses"] == 0
        and sum(n for s, n in heavy_summary["by_status"].items() if s.startswith("5") and s != "503") == 0
        and recovered is not None
        and summary["unhandled_errors_logged"] == 0
    )
    summary["ok"] = ok
    print_summary(summary, args.recovery_limit)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0 if ok else 1


def print_summary(summary: dict, limit: float) -> None:
    """The summary for people."""
    light, heavy = summary["light_load"], summary["overload"]
    lines = [
        "",
        "== fault summary ==",
        "kills: "
        + ", ".join(
            f"pid {k['pid']} recovered in {k['recovered_after']} s "
            f"(its in-flight batch: {k['in_flight_request']})"
            for k in summary["kills"]
        )
        + f" (limit {limit} s)",
        f"light load: {light['requests']} requests {light['by_status']}; failed in flight "
        f"{summary['casualties']}, unexplained {len(summary['unexplained_failures'])}; "
        f"invalid or lost {light['invalid_responses']}",
        f"overload ({summary['overload_clients']} clients): {heavy['requests']} requests "
        f"({heavy['throughput_rps']} req/s) {heavy['by_status']}; transport errors "
        f"{heavy['transport_errors']}, invalid or lost {heavy['invalid_responses']}; "
        f"p50 {heavy['latency_s']['p50']} s, p99 {heavy['latency_s']['p99']} s",
        f"recovered after overload in {summary['recovered_after_overload_s']} s; "
        f"unhandled errors logged {summary['unhandled_errors_logged']}",
        "result: " + ("OK" if summary["ok"] else "FAILED"),
    ]
    for failure in summary["unexplained_failures"][:5]:
        lines.append(f"  unexplained failure: {failure}")
    for failure in [f for f in light["failures"] + heavy["failures"] if f["problem"]][:5]:
        lines.append(f"  wrong answer: {failure}")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    sys.exit(main())
