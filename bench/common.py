"""Shared pieces of the benchmark suite: machine description, statistics, the peer, the server."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


def _load_launcher() -> ModuleType:
    """tests/server.py, loaded by its path: sys.path is left alone, so a baseline tree put first on
    PYTHONPATH (equivalence.py, baseline.py) still provides ``service``."""
    spec = importlib.util.spec_from_file_location("discourse_server_launcher", REPO / "tests" / "server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


_server = _load_launcher()

RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_PEER_PYTHON = Path(os.environ.get("BENCH_PEER_PYTHON", "/work/bench-venv/bin/python"))


def median(values: Sequence[float]) -> float:
    """Median of ``values``."""
    return float(statistics.median(values))


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, Python and library versions of this machine, for every figure."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_gib = int(line.split()[1]) / 2**20
    except OSError:
        pass
    import numpy
    import scipy
    import sklearn

    versions: dict[str, str] = {
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
    }
    for name in ("flask", "gunicorn", "locust"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # not installed: left out
            pass
    blas = "unknown"
    try:
        from threadpoolctl import threadpool_info

        blas = ", ".join(
            f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
            for p in threadpool_info()
        )
    except Exception:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory_gib, 1),
        "kernel": platform.release(),
        "versions": versions,
        "blas": blas,
    }


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, for figure captions and table headers."""
    v = info["versions"]
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB; Python {v['python']}, "
        f"numpy {v['numpy']}, scipy {v['scipy']}, scikit-learn {v['scikit-learn']}"
    )


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (from /proc)."""
    statm = Path(f"/proc/{pid}/statm").read_text().split()
    return int(statm[1]) * os.sysconf("SC_PAGE_SIZE")


def pss_of(pid: int) -> int | None:
    """Proportional set size of ``pid`` in bytes (shared pages split between sharers), if readable."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# -- the code before the speed work ----------------------------------------------------------------

BASELINE_REV = "ae60f22"
"""The last commit before the speed work on the modules in OPTIMISED_FILES."""
OPTIMISED_FILES = (
    "service/domain/encoding.py",
    "service/domain/pair_features.py",
    "service/domain/evidence.py",
    "service/domain/scorer.py",
    "service/domain/stance.py",
    "service/domain/text.py",
)


ARTIFACT_FILES = ("service/loaders/artifacts.py",)
"""The artifact loader, always taken from the baseline revision with that revision's models/."""
FORMER_PATHS = {"service/loaders/artifacts.py": "service/artifacts.py"}
"""Where a file was before it moved: a revision older than the move has it there."""


def baseline_tree(rev: str, files: Sequence[str], directory: Path) -> Path:
    """A copy of the current ``service/`` package with ``files`` as they were at git ``rev``.

    Put ``directory`` first on PYTHONPATH to run the old versions of those
    modules with everything else as it is now. ``models/`` and the artifact
    loader also come from ``rev``, so old feature code always meets the model
    trained on its features (the model format changed after the speed work);
    ``seeds/`` is linked.
    """
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(REPO / "service", directory / "service", ignore=shutil.ignore_patterns("__pycache__"))
    (directory / "seeds").symlink_to(REPO / "seeds")
    _extract(rev, ["models"], directory)
    for path in (*files, *ARTIFACT_FILES):
        old = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True)
        if old.returncode != 0 and path in FORMER_PATHS:
            old = subprocess.run(
                ["git", "show", f"{rev}:{FORMER_PATHS[path]}"], cwd=REPO, check=True, capture_output=True
            )
        old.check_returncode()
        (directory / path).write_bytes(old.stdout)
    return directory


def release_tree(rev: str, directory: Path) -> Path:
    """The whole ``service/`` package, ``models/`` and ``seeds/`` as they were at git ``rev``.

    For comparing against code too old to mix with today's modules (:func:`baseline_tree`
    swaps single files, which stops working once the modules around them change): put
    ``directory`` first on PYTHONPATH to run that revision with its own model.
    """
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    _extract(rev, ["service", "models", "seeds"], directory)
    return directory


def _extract(rev: str, paths: Sequence[str], directory: Path) -> None:
    """Write ``paths`` as they were at git ``rev`` under ``directory``."""
    archive = subprocess.run(["git", "archive", rev, *paths], cwd=REPO, check=True, capture_output=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(directory, filter="data")


# -- the peer ------------------------------------------------------------------------------------


class PeerProcess:
    """The MiniLM peer (``bench/peer.py``) in its own venv, as a subprocess speaking JSON lines."""

    def __init__(self, python: Path = DEFAULT_PEER_PYTHON) -> None:
        if not Path(python).exists():
            raise FileNotFoundError(f"{python} not found: run bash bench/setup_peer_venv.sh first")
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        # The suite pins BLAS/OpenMP to one thread for the service; the peer sets its torch threads
        # per request and reports torch's own default, so it must not inherit that pin.
        for name in ("PYTHONPATH", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.pop(name, None)
        self.stderr_path = RESULTS_DIR / "peer-stderr.log"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self._stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (closed in close())
        self.process = subprocess.Popen(
            [str(python), str(BENCH_DIR / "peer.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            text=True,
            bufsize=1,
        )
        hello = self._read()
        if not hello.get("ready"):
            raise RuntimeError(f"peer did not start: {hello}")

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"peer exited; see {self.stderr_path}")
        return json.loads(line)

    def call(self, **request: Any) -> dict[str, Any]:
        """Send one request and return the answer (raises on an error answer)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(f"peer: {answer['error']}")
        return answer

    def close(self) -> None:
        """Stop the peer."""
        with suppress(Exception):
            self.call(op="quit")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


# -- the server ----------------------------------------------------------------------------------


# The one launcher of a real server, shared with the tests (tests/server.py).
free_port = _server.free_port
procfile_command = _server.procfile_command
serve_script_env = _server.serve_script_env
wait_for_cpu = _server.wait_for_cpu
Server = _server.Server
launch_server = _server.run_server
"""The launcher itself; :func:`run_server` is it with the benchmarks' settings."""


# Settings for every benchmark server: loopback only (GUNICORN_CMD_ARGS overrides the config's
# 0.0.0.0 bind without changing the Procfile command), rate limiting off (the load comes from one
# client address), no drain wait on stop.
BENCH_SERVER_ENV = {
    "WEB_CONCURRENCY": "2",
    "DISCOURSE_RATE_LIMIT_ENABLED": "false",
    "DISCOURSE_DRAIN_SECONDS": "0",
}


@contextmanager
def run_server(env: dict[str, str] | None = None, ready_timeout: float = 60.0) -> Iterator[Server]:
    """Start the Procfile command on a loopback port and wait for ``/readyz`` and every worker;
    stop it at once (SIGINT) afterwards. The log goes to ``bench/results/server-<n>.log``."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    base_env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    settings = {**BENCH_SERVER_ENV, **(env or {})}
    with _server.run_server(
        RESULTS_DIR / f"server-{time.monotonic_ns()}.log",
        workers=int(settings.pop("WEB_CONCURRENCY")),
        env=settings,
        repo=REPO,
        base_env=base_env,
        ready_timeout=ready_timeout,
        poll_seconds=0.005,  # ready_after is measured: poll finely
        stop_signal=signal.SIGINT,  # immediate stop (SIGTERM drains first)
    ) as server:
        yield server
