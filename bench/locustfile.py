"""Locust load for ``POST /v1/score``: one user class, configured by environment variables.

Run by :mod:`bench.http_bench` as ``locust -f bench/locustfile.py --headless ...``.

``BENCH_PAYLOADS``
    A JSON file holding a list of request bodies (already serialised, so the
    load generator spends no CPU on JSON encoding); users send them in turn.
``BENCH_RATE_PER_USER``
    Requests per second per user (``constant_throughput``); ``0`` means no wait
    (closed loop, for saturation).

A request counts as failed unless the status is 200 and the response holds
one result per text sent.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

from locust import between, constant_throughput
from locust.contrib.fasthttp import FastHttpUser
from locust.user import task

_PAYLOADS: list[tuple[bytes, int]] = [
    (body.encode("utf-8"), int(expected))
    for body, expected in json.loads(Path(os.environ["BENCH_PAYLOADS"]).read_text(encoding="utf-8"))
]
_NEXT = itertools.cycle(range(len(_PAYLOADS)))
_RATE = float(os.environ.get("BENCH_RATE_PER_USER", "0"))
_HEADERS = {"Content-Type": "application/json"}


class ScoreUser(FastHttpUser):
    """Sends the prepared scoring requests, paced or back to back."""

    wait_time = constant_throughput(_RATE) if _RATE > 0 else between(0, 0)
    # One connection per user, kept alive, as a client library would.
    concurrency = 1

    @task
    def score(self) -> None:
        """One ``POST /v1/score``; checks status and result count."""
        body, expected = _PAYLOADS[next(_NEXT)]
        with self.client.post(
            "/v1/score", data=body, headers=_HEADERS, name="/v1/score", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            try:
                count = len(response.json()["results"])
            except (ValueError, KeyError, TypeError) as error:
                response.failure(f"bad body: {error}")
                return
            if count != expected:
                response.failure(f"{count} results for {expected} texts")
            else:
                response.success()
