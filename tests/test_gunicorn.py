"""The gunicorn config and the real Procfile command: multiprocess metrics, SIGTERM drain."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from service.config import PROJECT_ROOT, Settings, SettingsError
from tests.test_observability import metric_value

# --- The config module (imported in a fresh interpreter: it prepares the process environment) ----

_PROBE = """
import json, os, sys
import service.http.gunicorn_config as c
print(json.dumps({
    "bind": c.bind, "workers": c.workers, "worker_class": c.worker_class, "threads": c.threads,
    "timeout": c.timeout, "graceful_timeout": c.graceful_timeout, "max_requests": c.max_requests,
    "max_requests_jitter": c.max_requests_jitter, "preload_app": c.preload_app, "accesslog": c.accesslog,
    "numpy_imported": "numpy" in sys.modules,
    "prometheus_imported": "prometheus_client" in sys.modules,
    "metrics_dir_exists": os.path.isdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]),
    "env": {k: os.environ.get(k) for k in (
        "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PROMETHEUS_MULTIPROC_DIR", "DISCOURSE_DRAINING_FLAG")},
}))
"""


def load_config(tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Import the gunicorn config in a new interpreter with only ``env`` (its temp dir under tmp_path)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DISCOURSE_", "PROMETHEUS_"))}
    for name in ("PORT", "WEB_CONCURRENCY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        clean.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", _PROBE],
        cwd=PROJECT_ROOT,
        env={**clean, "TMPDIR": str(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def config_values(tmp_path: Path, env: dict[str, str] | None = None) -> dict:
    result = load_config(tmp_path, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_config_defaults(tmp_path: Path) -> None:
    values = config_values(tmp_path)
    assert values["bind"] == "0.0.0.0:8000"
    assert values["workers"] == 2
    assert values["worker_class"] == "gthread"
    assert values["threads"] == 32
    assert (values["timeout"], values["graceful_timeout"]) == (30, 20)
    assert (values["max_requests"], values["max_requests_jitter"]) == (10_000, 1_000)
    assert values["preload_app"] is True
    assert values["accesslog"] is None
    env = values["env"]
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1"
    # Set before numpy and prometheus_client are imported, which is what makes them take effect.
    assert not values["numpy_imported"] and not values["prometheus_imported"]
    assert values["metrics_dir_exists"]
    private_dir = Path(env["PROMETHEUS_MULTIPROC_DIR"]).parent
    assert private_dir.parent == tmp_path and private_dir.name.startswith("discourse-gunicorn-")
    assert Path(env["DISCOURSE_DRAINING_FLAG"]).parent == private_dir
    # Removed when the process that made it exits, even without gunicorn's on_exit hook.
    assert not private_dir.exists()


def test_config_from_the_environment(tmp_path: Path) -> None:
    values = config_values(
        tmp_path,
        {
            "PORT": "9123",
            "WEB_CONCURRENCY": "5",
            "DISCOURSE_WORKER_THREADS": "2",
            "DISCOURSE_GRACEFUL_TIMEOUT": "7",
            "DISCOURSE_WORKER_TIMEOUT": "45",
            "DISCOURSE_MAX_REQUESTS": "0",
            "OMP_NUM_THREADS": "3",
        },
    )
    assert values["bind"] == "0.0.0.0:9123"
    assert values["workers"] == 5
    assert values["threads"] == 2
    assert (values["timeout"], values["graceful_timeout"]) == (45, 7)
    assert (values["max_requests"], values["max_requests_jitter"]) == (0, 0)
    # An operator's explicit choice is kept.
    assert values["env"]["OMP_NUM_THREADS"] == "3"


def test_config_cleans_a_given_metrics_dir_and_a_stale_drain_flag(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_123.db").write_bytes(b"old samples")
    (metrics_dir / "keep.txt").write_text("not ours")
    flag = tmp_path / "draining"
    flag.touch()
    values = config_values(
        tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "DISCOURSE_DRAINING_FLAG": str(flag)}
    )
    assert values["env"]["PROMETHEUS_MULTIPROC_DIR"] == str(metrics_dir)
    assert not (metrics_dir / "counter_123.db").exists()
    assert (metrics_dir / "keep.txt").exists()
    assert values["env"]["DISCOURSE_DRAINING_FLAG"] == str(flag)
    assert not flag.exists()


def test_config_refuses_a_bad_setting_naming_it(tmp_path: Path) -> None:
    result = load_config(tmp_path, {"DISCOURSE_GRACEFUL_TIMEOUT": "0"})
    assert result.returncode != 0
    assert "DISCOURSE_GRACEFUL_TIMEOUT must be at least 1" in result.stderr


@pytest.mark.parametrize(
    ("raw", "accepted"), [("2.5", 2.5), ("0", 0.0), ("-1", None), ("nan", None), ("soon", None)]
)
def test_drain_seconds_setting(raw: str, accepted: float | None) -> None:
    if accepted is None:
        with pytest.raises(SettingsError, match="DISCOURSE_DRAIN_SECONDS"):
            Settings.from_env({"DISCOURSE_DRAIN_SECONDS": raw})
    else:
        assert Settings.from_env({"DISCOURSE_DRAIN_SECONDS": raw}).drain_seconds == accepted


# --- The real server ----------------------------------------------------------------------------------

SCORE_TEXTS = ["Russia and China call for a new Eurasian security architecture.", "Eggs, flour, milk."]


def json_lines(log: str) -> list[dict]:
    """The JSON log lines of a server log (gunicorn's own lines are plain text)."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


@pytest.mark.e2e
def test_metrics_count_exactly_across_three_workers_and_worker_restarts(gunicorn) -> None:
    requests_sent = 30
    body = {"texts": [{"text": t} for t in SCORE_TEXTS]}
    # Each worker restarts after 8-9 requests: with 30 requests over 3 workers at least one must
    # restart, and the counts must survive it (a dead worker's counter files stay in the sum).
    # No drain: the fixture stops the server with SIGTERM, and this test is not about draining.
    env = {"DISCOURSE_MAX_REQUESTS": "8", "DISCOURSE_DRAIN_SECONDS": "0"}
    with gunicorn(workers=3, env=env) as server:
        for _ in range(requests_sent):
            response = requests.post(server.base_url + "/v1/score", json=body, timeout=30)
            assert response.status_code == 200
        # A new connection each time, so the scrapes are spread over the workers.
        for _ in range(8):
            text = requests.get(server.base_url + "/metrics", timeout=30).text
            assert metric_value(
                text, "discourse_http_requests_total", route="/v1/score", method="POST", status="200"
            ) == pytest.approx(requests_sent)
            assert metric_value(text, "discourse_texts_scored_total") == pytest.approx(2 * requests_sent)
            assert metric_value(text, "discourse_texts_per_request_count") == pytest.approx(requests_sent)
            assert metric_value(text, "discourse_characters_scored_total") == pytest.approx(
                requests_sent * sum(len(t) for t in SCORE_TEXTS)
            )
            assert metric_value(
                text, "discourse_http_request_duration_seconds_count", route="/v1/score"
            ) == pytest.approx(requests_sent)
            info = [line for line in text.splitlines() if line.startswith("discourse_model_info{")]
            assert len(info) == 1 and info[0].endswith(" 1.0")
        log = server.log()
    assert "Autorestarting worker" in log
    scored = [r for r in json_lines(log) if r.get("route") == "/v1/score"]
    assert len(scored) == requests_sent
    assert {r["texts"] for r in scored} == {2}
    assert SCORE_TEXTS[0] not in log


def _big_batch() -> dict:
    """A batch at the limits (256 texts, just under 2 MiB), scored with evidence."""
    words = "security architecture Eurasia treaty China Russia dialogue sanctions economy".split()
    text = " ".join(words[i % len(words)] for i in range(1100))[:7900]
    return {"texts": [{"id": str(i), "text": f"{i} {text}"} for i in range(256)], "explain": True}


@pytest.mark.e2e
def test_sigterm_drains_then_finishes_the_requests_in_flight(gunicorn, tmp_path: Path) -> None:
    body = _big_batch()
    assert len(json.dumps(body).encode()) < 2 * 1024 * 1024
    outcome: dict[str, object] = {}

    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    with gunicorn(workers=2, env={"DISCOURSE_DRAIN_SECONDS": "1", "TMPDIR": str(private_tmp)}) as server:
        assert len(list(private_tmp.glob("discourse-gunicorn-*"))) == 1

        payload = json.dumps(body).encode()

        def slow_upload(pieces: int = 25, pause: float = 0.1):
            # The body arrives over ~2.5 s, so the request is still in flight when the 1 s
            # drain ends and the workers are told to stop, however fast scoring is.
            step = len(payload) // pieces + 1
            for start in range(0, len(payload), step):
                yield payload[start : start + step]
                time.sleep(pause)

        def send() -> None:
            try:
                outcome["response"] = requests.post(
                    server.base_url + "/v1/score",
                    data=slow_upload(),
                    headers={"Content-Type": "application/json"},
                    timeout=60,
                )
            except requests.RequestException as error:  # reported by the assertion below
                outcome["error"] = error

        in_flight = threading.Thread(target=send)
        in_flight.start()
        time.sleep(0.3)
        server.signal(signal.SIGTERM)
        sent_term = time.monotonic()

        # During the drain: not ready, but still serving.
        readiness = None
        while time.monotonic() < sent_term + 0.8:
            readiness = requests.get(server.base_url + "/readyz", timeout=5)
            if readiness.status_code == 503:
                break
            time.sleep(0.05)
        assert readiness is not None and readiness.status_code == 503
        assert readiness.json()["type"] == "/problems/not-ready"
        assert requests.get(server.base_url + "/livez", timeout=5).status_code == 200

        in_flight.join(timeout=60)
        assert "error" not in outcome, outcome.get("error")
        response = outcome["response"]
        assert isinstance(response, requests.Response)
        assert response.status_code == 200
        assert len(response.json()["results"]) == 256

        assert server.process.wait(timeout=30) == 0
        log = server.log()

    # The batch was still in flight when the workers were told to stop: its request line comes
    # after the master's "drain over" line (one file, appended to in the order of writing).
    lines = log.splitlines()
    drain_over = next(i for i, line in enumerate(lines) if "drain over" in line)
    batch_line = next(
        i
        for i, line in enumerate(lines)
        if line.startswith("{") and json.loads(line).get("texts") == 256 and json.loads(line)["status"] == 200
    )
    assert drain_over < batch_line
    # The server's private directory (metrics files, drain flag) is gone with it.
    assert list(private_tmp.iterdir()) == []


@pytest.mark.e2e
def test_a_server_that_fails_to_start_leaves_no_directory_behind(gunicorn, tmp_path: Path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {"DISCOURSE_MODEL_DIR": str(tmp_path / "no-model"), "TMPDIR": str(private_tmp)}
    with pytest.raises(AssertionError, match="gunicorn exited"), gunicorn(workers=1, env=env):
        pass
    assert list(private_tmp.iterdir()) == []
