"""Scoring against references sent with the request, over HTTP: uncached, cached, and a file reference.

Usage: ``.venv/bin/python bench/reference_cache.py [--requests 200] [--json FILE]``

Starts the Procfile's server (one worker, so every request meets the same cache) on a loopback
port and sends, one at a time on one keep-alive connection, requests scoring one text (about
300 characters) against:

- ``file``: the seed reference (by id);
- ``uncached``: a 10,000-character inline reference never sent before (each request changes one
  sentence, so its content id is new: normalising, encoding and deriving claims every time);
- ``cached-id``: a cached inline reference named by its ``sha256:`` id;
- ``cached-object``: the same inline reference sent again whole (a cache hit, but the
  10,000 characters still travel and are normalised to compute the id).

Then it fills the cache (64 distinct 10,000-character references, the default entry limit) and
reports the worker's resident memory before and after, and the cache's estimated bytes (the
``discourse_reference_cache_bytes`` metric). Prints one JSON object of latencies in ms.
The reference texts are the seed's body followed by passages of the narrative set (both committed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, machine_info, rss_of, run_server

REFERENCE_CHARS = 10_000
TEXT = (
    "NATO expansion is a threat to Russia's security, and the Euro-Atlantic security order has failed. "
    "Russia and China are right to start talks on a new security architecture for Eurasia, built on "
    "indivisible security rather than on the dominance of one power."
)


def source_text() -> str:
    """The seed's body and then passages of the narrative set (both committed), no sentence twice."""
    import tomllib

    path = next((REPO / "seeds").glob("*.toml"))
    parts = [tomllib.loads(path.read_text(encoding="utf-8"))["body"].strip()]
    with open(REPO / "tests" / "data" / "narrative" / "passages.jsonl", encoding="utf-8") as lines:
        parts += [json.loads(line)["text"] for line in lines if line.strip()]
    return "\n\n".join(parts)


SOURCE = source_text()


def reference_text(n: int) -> str:
    """A 10,000-character reference, different for every ``n`` (its first sentence names ``n``),
    cut at a space."""
    text = f"This is reference number {n} of the benchmark. " + SOURCE
    return text[: text.rindex(" ", 0, REFERENCE_CHARS)]


def timed(session: requests.Session, url: str, body: dict) -> tuple[float, dict]:
    started = time.perf_counter()
    response = session.post(url, json=body, timeout=60)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{response.status_code}: {response.text[:300]}")
    return elapsed, response.json()


def percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "min": round(ordered[0], 2),
        "n": len(ordered),
    }


def cache_metric(session: requests.Session, base: str, name: str) -> float:
    for line in session.get(base + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per kind")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    env = {"WEB_CONCURRENCY": "1", "DISCOURSE_RATE_LIMIT_ENABLED": "false", "DISCOURSE_MAX_REQUESTS": "0"}
    with run_server(env) as server:
        base = server.base_url
        url = base + "/v1/score"
        session = requests.Session()
        texts = [{"text": TEXT}]
        for _ in range(20):  # warm-up
            timed(session, url, {"texts": texts})
        cached_object = {"title": "Benchmark reference", "text": reference_text(-1)}
        _, first = timed(session, url, {"texts": texts, "reference": cached_object})
        cached_id = first["reference"]["id"]
        kinds: dict[str, list[float]] = {"file": [], "uncached": [], "cached-id": [], "cached-object": []}
        for i in range(args.requests):
            # Interleaved, so that a slow moment of the shared machine touches every kind alike.
            kinds["file"].append(timed(session, url, {"texts": texts})[0])
            uncached = {"title": "Benchmark reference", "text": reference_text(i)}
            kinds["uncached"].append(timed(session, url, {"texts": texts, "reference": uncached})[0])
            kinds["cached-id"].append(timed(session, url, {"texts": texts, "reference": cached_id})[0])
            kinds["cached-object"].append(
                timed(session, url, {"texts": texts, "reference": cached_object})[0]
            )
        [worker] = server.worker_pids()
        # Fill the cache with 64 distinct references from an emptier state: the LRU already holds
        # 64 after the loop above, so memory is read now and after 64 more (all evictions).
        rss_full = rss_of(worker)
        for i in range(64):
            timed(
                session,
                url,
                {"texts": texts, "reference": {"title": "Fill", "text": reference_text(10_000 + i)}},
            )
        report = {
            "machine": machine_info(),
            "reference_chars": REFERENCE_CHARS,
            "text_chars": len(TEXT),
            "latency_ms": {kind: percentiles(values) for kind, values in kinds.items()},
            "cache": {
                "hits": cache_metric(session, base, 'discourse_reference_cache_lookups_total{result="hit"}'),
                "misses": cache_metric(
                    session, base, 'discourse_reference_cache_lookups_total{result="miss"}'
                ),
                "entries": cache_metric(session, base, "discourse_reference_cache_entries"),
                "estimated_bytes": cache_metric(session, base, "discourse_reference_cache_bytes"),
                "evictions": cache_metric(session, base, "discourse_reference_cache_evictions_total"),
                "worker_rss_bytes_full_cache": rss_of(worker),
                "worker_rss_bytes_after_first_full_cache": rss_full,
            },
        }
        session.close()
    with run_server(env) as server:
        [worker] = server.worker_pids()
        requests.post(server.base_url + "/v1/score", json={"texts": [{"text": TEXT}]}, timeout=60)
        report["cache"]["worker_rss_bytes_empty_cache"] = rss_of(worker)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
