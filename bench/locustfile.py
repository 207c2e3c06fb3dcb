"""Locust load for ``POST /v1/score``: one user class, configured by environment variables.

Run by :mod:`bench.http_bench` as ``locust -f bench/locustfile.py --headless ...``.

``BENCH_PAYLOADS``
    A JSON file holding a list of request bodies (already serialised, so the
    load generator spends no CPU on JSON encoding); users send them in turn.
``BENCH_RATE_PER_USER``
    Requests per second per user, on a fixed timeline per user (see
    :meth:`ScoreUser.wait_time`); ``0`` means no wait (closed loop, for saturation).
``BENCH_USERS``
    The number of users, to spread paced users' phases evenly over one period.

A request counts as failed unless the status is 200 and the response holds
one result per text sent.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import gevent
from locust.contrib.fasthttp import FastHttpUser
from locust.user import task

_PAYLOADS: list[tuple[bytes, int]] = [
    (body.encode("utf-8"), int(expected))
    for body, expected in json.loads(Path(os.environ["BENCH_PAYLOADS"]).read_text(encoding="utf-8"))
]
_NEXT = itertools.cycle(range(len(_PAYLOADS)))
_RATE = float(os.environ.get("BENCH_RATE_PER_USER", "0"))
_USERS = max(1, int(os.environ.get("BENCH_USERS", "1")))
_PHASE = itertools.count()
_HEADERS = {"Content-Type": "application/json"}


class ScoreUser(FastHttpUser):
    """Sends the prepared scoring requests, paced or back to back."""

    # One connection per user, kept alive, as a client library would.
    concurrency = 1

    def on_start(self) -> None:
        """Paced users start at phases spread evenly over one period, then keep a fixed timeline."""
        self._origin = time.monotonic()
        self._sent = 0
        if _RATE > 0:
            k = next(_PHASE)
            gevent.sleep((k % _USERS) / _USERS / _RATE)
            self._origin = time.monotonic()

    def wait_time(self) -> float:
        """Paced users: until the next slot of their own fixed timeline (``origin + n / rate``).

        Not locust's ``constant_throughput``, which paces from the end of the
        previous request: after any stall all users fire as their responses
        arrive and then stay in step, sending bursts of ``users`` requests at
        once (measured: most gaps between sends under 0.4 ms at 10 users x 10
        req/s). A fixed timeline sends late requests at once but returns to
        its own slots, so the offered load stays spread over time.
        """
        if _RATE <= 0:
            return 0.0
        self._sent += 1
        return max(0.0, self._origin + self._sent / _RATE - time.monotonic())

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
