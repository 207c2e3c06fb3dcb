"""scripts/serve.sh installs only when the environment is missing or out of date.

Before: it ran pip on every start (15 s instead of 1.5 s) and failed without
a package index although the environment was complete. Here the package
index is made unreachable: with an up-to-date stamp the server must start
anyway, so no install was attempted.
"""

from __future__ import annotations

import hashlib
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from service.config import PROJECT_ROOT
from tests.server import free_port, serve_script_env

STAMP = PROJECT_ROOT / ".venv" / ".serve-stamp"


@pytest.mark.e2e
@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (PROJECT_ROOT / ".venv").resolve(),
    reason="runs from the project's own .venv",
)
def test_serve_starts_without_installing_when_up_to_date(tmp_path: Path) -> None:
    digest = hashlib.sha256((PROJECT_ROOT / "pyproject.toml").read_bytes()).hexdigest()
    previous = STAMP.read_text() if STAMP.exists() else None
    STAMP.write_text(f"{digest} {platform.python_version()}\n")
    port = free_port()
    env = {
        **serve_script_env(port),
        "TMPDIR": str(tmp_path),
        # Any pip install would fail: no index reachable.
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_INDEX": "1",
    }
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "scripts/serve.sh"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        if previous is None:
            STAMP.unlink(missing_ok=True)
        else:
            STAMP.write_text(previous)
    output = log.read_text()
    assert "installing" not in output
    assert f"serving on 127.0.0.1:{port}" in output
