"""Time from `bash scripts/serve.sh` to the first 200 from /livez, with an up-to-date environment.

scripts/serve.sh installs only when .venv is missing or its stamp (hash of
pyproject.toml and the Python version) differs; this measures the start when
nothing needs installing, next to the Procfile command started directly, so
the script's own overhead shows. Run from the project's .venv:

    .venv/bin/python bench/serve_start.py --runs 5

Prints one JSON object (seconds, median and all runs, with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, free_port, machine_info, median, procfile_command, serve_script_env


def time_to_livez(command: list[str], env: dict[str, str], port: int, timeout: float = 120.0) -> float:
    """Seconds from starting ``command`` until GET /livez answers 200; the process is stopped after."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}")
            try:
                if requests.get(f"http://127.0.0.1:{port}/livez", timeout=1).status_code == 200:
                    return time.monotonic() - started
            except requests.ConnectionError:
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError("not serving in time")
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"serve.sh": [], "procfile command": []}
    for _ in range(args.runs):
        for name, command in (
            ("serve.sh", ["bash", "scripts/serve.sh"]),
            ("procfile command", procfile_command()),
        ):
            port = free_port()
            results[name].append(round(time_to_livez(command, serve_script_env(port), port), 2))
    print(
        json.dumps(
            {
                "median_seconds": {name: median(values) for name, values in results.items()},
                "runs": results,
                "load_average": os.getloadavg(),
                "machine": machine_info(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
