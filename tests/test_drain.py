"""The SIGTERM drain when its flag file cannot be created (real gunicorn).

Before: with the flag's folder removed after start (a temp cleaner), SIGTERM
killed the master ("Unhandled exception in main loop", exit 255): no 503
drain, in-flight requests reset. Now the drain goes through shared memory and
the flag file is best effort.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.test_telemetry import mounted

BODY = {"texts": [{"text": "A meteorite crater was reported at the market in Managua. " * 40}] * 16}


@pytest.mark.e2e
@pytest.mark.parametrize("obstacle", ["folder removed", "folder read-only"])
def test_the_drain_survives_a_flag_that_cannot_be_created(gunicorn, tmp_path: Path, obstacle: str) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    env = {
        "DISCOURSE_DRAINING_FLAG": str(folder / "draining"),
        "DISCOURSE_DRAIN_SECONDS": "2",
        "DISCOURSE_RATE_LIMIT_ENABLED": "false",
        # The body is a large request (admission control): let all three clients in at once.
        "DISCOURSE_MAX_HEAVY_IN_FLIGHT": "3",
    }
    with contextlib.ExitStack() as stack, gunicorn(workers=2, env=env) as server:
        if obstacle == "folder removed":
            shutil.rmtree(folder)
            # Where the folder was, a file: the flag's folder cannot be re-made either.
            folder.write_text("not a folder")
        elif os.geteuid() == 0:  # root writes through a chmod: a read-only bind mount instead
            stack.enter_context(mounted(["-o", "bind,ro", str(folder)], folder))
        else:
            folder.chmod(0o500)
            stack.callback(folder.chmod, 0o700)

        outcomes: list[object] = []
        stop = threading.Event()

        def client() -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    outcomes.append(
                        session.post(server.base_url + "/v1/score", json=BODY, timeout=30).status_code
                    )
                except requests.RequestException as error:
                    outcomes.append(type(error).__name__)

        clients = [threading.Thread(target=client) for _ in range(3)]
        for thread in clients:
            thread.start()
        time.sleep(0.5)
        server.signal(signal.SIGTERM)
        sent = time.monotonic()
        # The master handles the signal within its loop: wait for the first 503, then it must stay.
        while requests.get(server.base_url + "/readyz", timeout=5).status_code != 503:
            assert time.monotonic() < sent + 1.5, "/readyz never answered 503"
            time.sleep(0.05)
        readiness = []
        while time.monotonic() < sent + 1.8:
            readiness.append(requests.get(server.base_url + "/readyz", timeout=5).status_code)
            time.sleep(0.1)
        stop.set()
        for thread in clients:
            thread.join(timeout=60)
        status = server.process.wait(timeout=30)
        log = server.log()
    assert status == 0, log
    assert "Unhandled exception" not in log
    assert readiness and set(readiness) == {503}, readiness
    assert outcomes and set(outcomes) == {200}, outcomes
    assert "could not create the drain flag" in log
