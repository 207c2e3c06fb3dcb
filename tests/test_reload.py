"""SIGHUP reloads seeds/ and the model with no failed request; a broken file keeps the old set.

End to end against the Procfile's real gunicorn, with clients sending requests all through both
reloads on fresh connections (a reused keep-alive connection closed by a stopping worker is a
client-side race that any pool retries; see docs/robustness.md).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from service.config import DEFAULT_SEEDS_DIR

LAKE = '''id = "lake-levels"
title = "The dam upstream is draining the lake"
author = "written for the tests"
language = "en"
body = """
The lake fell by two metres this summer, and the dam built upstream last year is the main cause.
Farmers blamed the drought at first, but rainfall was close to the average of the last decade.
Engineers measured the flow below the dam and found it held back most of the spring melt.
The regional government should order the operators to release more water before the autumn.
"""
'''
TEXT = "NATO expansion is a threat to Russia's security. The Euro-Atlantic security order has failed."


class Clients:
    """Threads that score and probe readiness without pause, counting every outcome."""

    def __init__(self, base_url: str, threads: int = 3) -> None:
        self.base_url = base_url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def __enter__(self) -> Clients:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, n: int) -> None:
        while not self.stop.is_set():
            try:
                if n == 0:
                    response = requests.get(self.base_url + "/readyz", timeout=30)
                else:
                    response = requests.post(
                        self.base_url + "/v1/score", json={"texts": [{"text": TEXT}]}, timeout=30
                    )
                    if response.status_code == 200:
                        assert response.json()["results"][0]["similarity"] > 0
                outcome = (
                    None if response.status_code == 200 else f"{response.status_code} {response.text[:200]}"
                )
            except Exception as error:  # connection refused or reset: a lost request
                outcome = repr(error)
            with self.lock:
                self.sent += 1
                if outcome is not None:
                    self.failures.append(outcome)


def reference_ids(base_url: str) -> list[str]:
    return [r["id"] for r in requests.get(base_url + "/v1/references", timeout=10).json()["references"]]


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not after {seconds} s: {what}")
        time.sleep(0.2)


def metric(base_url: str, line_start: str) -> float:
    for line in requests.get(base_url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_sighup_reloads_references_and_a_broken_file_keeps_the_old_set(gunicorn, tmp_path: Path) -> None:
    seeds = tmp_path / "seeds"
    shutil.copytree(DEFAULT_SEEDS_DIR, seeds)
    # Rate limits off: every client is one address, and a 429 would count as a loss.
    env = {"DISCOURSE_SEEDS_DIR": str(seeds), "DISCOURSE_RATE_LIMIT_ENABLED": "false"}
    with gunicorn(workers=2, env=env) as server:
        base = server.base_url
        assert reference_ids(base) == ["valdai-eurasian-security-2024"]
        with Clients(base) as clients:
            time.sleep(1)
            # A good file: the new set is served once the new workers are up.
            (seeds / "lake-levels.toml").write_text(LAKE, encoding="utf-8")
            server.signal(signal.SIGHUP)
            wait_for(lambda: "lake-levels" in reference_ids(base), 30, "the new reference is served")
            time.sleep(2)
            after_good = clients.sent
            # A broken file: the reload fails, the old (working) set stays.
            (seeds / "broken.toml").write_text('id = "broken"\ntitle = "unterminated\n', encoding="utf-8")
            server.signal(signal.SIGHUP)
            wait_for(lambda: "broken.toml" in server.log(), 30, "the failure is logged")
            time.sleep(3)
        assert clients.failures == [], clients.failures[:5]
        assert after_good > 20 and clients.sent > after_good + 20
        log = server.log()
        failed = [line for line in log.splitlines() if "reload failed" in line]
        assert len(failed) == 1 and "broken.toml" in failed[0] and "not valid TOML" in failed[0]
        assert sorted(reference_ids(base)) == ["lake-levels", "valdai-eurasian-security-2024"]
        lake = requests.post(
            base + "/v1/score",
            json={"reference": "lake-levels", "texts": [{"text": "The dam is draining the lake."}]},
            timeout=10,
        )
        assert lake.status_code == 200 and lake.json()["reference"]["id"] == "lake-levels"
        assert requests.get(base + "/readyz", timeout=10).status_code == 200
        assert metric(base, 'discourse_reloads_total{result="ok"}') == 1
        assert metric(base, 'discourse_reloads_total{result="failed"}') == 1
        print(f"requests sent through both reloads: {clients.sent}, failed: {len(clients.failures)}")
