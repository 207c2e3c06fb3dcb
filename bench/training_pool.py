"""The training process pool on joblib against the hand-written pool it replaced: time, memory, artifacts.

Each run fits ``--tasks`` real training tasks (:func:`fit_final_model`, the
default :class:`TrainingConfig`, on a story split of the first ``--bodies``
bodies of the FNC-1 train split and their pairs) with ``run_tasks(tasks,
--jobs)``, in a fresh process of its own:

- ``joblib``: :mod:`service.training.process_pool` as it is now;
- ``hand-written``: that module as it was at git ``--baseline`` (the pool
  before joblib), put first on the path of the run and its workers.

For each run: the seconds ``run_tasks`` took, the peak resident memory of the
run's whole process tree (the sum over the process and its workers, sampled
every 50 ms) and of its largest process, and a sha256 per task of what
training writes for it (the model arrays and the encoder document). The two
pools must give the artifacts of the tasks run one after the other in this
process (``--jobs 1``, one thread) bit for bit; the script exits 1 if not.

    python bench/training_pool.py                      # about 2 minutes on 2 cores
    python bench/training_pool.py --repeats 3 --json bench/results/training_pool.json

Data: ``../shared/data/fnc-1`` (``--data``); only the FNC-1 train split is read.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: the service package is beside bench/

from service.loaders.artifacts import encoder_document, model_arrays  # noqa: E402
from service.training.fnc import PairSet, read_pairs, story_split  # noqa: E402
from service.training.pipeline import fit_final_model  # noqa: E402
from service.training.trainer import TrainingConfig  # noqa: E402

BASELINE_REV = "a483d6e"
"""The last commit with the hand-written pool."""
POOL_FILE = "service/training/process_pool.py"
HANDWRITTEN_MODULE = "handwritten_process_pool"


def training_tasks(data_dir: Path, bodies: int, count: int) -> list[partial]:
    """``count`` fits, one per story split (seeds 0, 1, ...) of the first ``bodies`` bodies' pairs."""
    pairs = read_pairs(data_dir / "train_stances.csv", data_dir / "train_bodies.csv", require_labels=True)
    kept = set(list(dict.fromkeys(pairs.body_ids))[:bodies])
    subset: PairSet = pairs.subset([i for i, body in enumerate(pairs.body_ids) if body in kept])
    config = TrainingConfig()
    return [
        partial(fit_final_model, subset.subset(story_split(subset, holdout=0.2, seed=seed)[0]), config)
        for seed in range(count)
    ]


def artifact_digest(encoder, model) -> str:
    """sha256 of what training writes for a fit: each model array (name, dtype, shape, bytes), the encoder."""
    digest = hashlib.sha256()
    for name, array in sorted(model_arrays(encoder, model).items()):
        array = np.ascontiguousarray(array)
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    digest.update(json.dumps(encoder_document(encoder), sort_keys=True).encode())
    return digest.hexdigest()


def run(pool: str, data_dir: Path, bodies: int, count: int, jobs: int, out: Path) -> None:
    """One run in this process: time ``run_tasks`` with ``pool``, write seconds and digests to ``out``."""
    if pool == "hand-written":
        module = __import__(HANDWRITTEN_MODULE)
    else:
        from service.training import process_pool as module
    tasks = training_tasks(data_dir, bodies, count)
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    results = module.run_tasks(tasks, jobs, lambda _index, _result: None)
    seconds = time.perf_counter() - started
    cpu_seconds = _cpu_seconds() - cpu_before
    digests = [artifact_digest(encoder, model) for encoder, model in results]
    document = {"seconds": seconds, "cpu_seconds": cpu_seconds, "digests": digests}
    out.write_text(json.dumps(document), encoding="utf-8")


def _cpu_seconds() -> float:
    """User and system CPU time of this process and of its children that have ended (workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured_run(args: argparse.Namespace, pool: str, jobs: int, pythonpath: Path) -> dict:
    """``run`` in a fresh process, with the peak memory of its process tree sampled meanwhile."""
    with tempfile.TemporaryDirectory(prefix="training-pool-") as scratch:
        out = Path(scratch) / "run.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(REPO)])}
        env["PYTHONWARNINGS"] = "ignore"  # scikit-learn's convergence warnings, one per network
        command = [sys.executable, __file__, "--run", pool, "--jobs", str(jobs), "--out", str(out)]
        command += ["--bodies", str(args.bodies), "--tasks", str(args.tasks), "--data", str(args.data)]
        child = subprocess.Popen(command, env=env)
        peaks = {"tree": 0, "largest": 0}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                rss = []
                try:
                    root = psutil.Process(child.pid)
                    processes = [root, *root.children(recursive=True)]
                except psutil.Error:  # the run has ended
                    processes = []
                for process in processes:
                    with contextlib.suppress(psutil.Error):  # ended between the listing and the reading
                        rss.append(process.memory_info().rss)
                if rss:
                    peaks["tree"] = max(peaks["tree"], sum(rss))
                    peaks["largest"] = max(peaks["largest"], max(rss))
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = child.wait()
        done.set()
        sampler.join()
        if code != 0:
            raise SystemExit(f"the {pool} run (jobs {jobs}) failed with exit code {code}")
        result = json.loads(out.read_text(encoding="utf-8"))
    return {
        "pool": pool,
        "jobs": jobs,
        "seconds": round(result["seconds"], 2),
        "cpu_seconds": round(result["cpu_seconds"], 2),
        "peak_tree_rss_mib": round(peaks["tree"] / 2**20),
        "peak_process_rss_mib": round(peaks["largest"] / 2**20),
        "digests": result["digests"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "fnc-1")
    parser.add_argument("--bodies", type=int, default=30, help="bodies of the train split used (default 30)")
    parser.add_argument("--tasks", type=int, default=4, help="training tasks per run (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="processes per run (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each pool, alternating (default 2)")
    parser.add_argument(
        "--baseline", default=BASELINE_REV, help=f"git revision of the hand-written pool ({BASELINE_REV})"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--run", choices=("joblib", "hand-written"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run, args.data, args.bodies, args.tasks, args.jobs, args.out)
        return 0

    with tempfile.TemporaryDirectory(prefix="handwritten-pool-") as old:
        source = subprocess.run(
            ["git", "show", f"{args.baseline}:{POOL_FILE}"], cwd=REPO, check=True, capture_output=True
        ).stdout
        (Path(old) / f"{HANDWRITTEN_MODULE}.py").write_bytes(source)
        runs = [measured_run(args, "joblib", 1, Path(old))]  # the reference: in process, one thread
        for _ in range(args.repeats):
            for pool in ("hand-written", "joblib"):
                runs.append(measured_run(args, pool, args.jobs, Path(old)))
    reference = runs[0]["digests"]
    for entry in runs:
        entry["identical_to_sequential"] = entry["digests"] == reference
        print(
            f"{entry['pool']:>12}  jobs {entry['jobs']}  {entry['seconds']:7.2f} s "
            f"(CPU {entry['cpu_seconds']:.1f} s)  peak RSS {entry['peak_tree_rss_mib']:5d} MiB "
            f"(largest process {entry['peak_process_rss_mib']} MiB)  "
            f"artifacts identical to jobs 1: {entry['identical_to_sequential']}"
        )
    summary = {}
    for pool in ("hand-written", "joblib"):
        parallel = [entry for entry in runs[1:] if entry["pool"] == pool]
        summary[pool] = {
            "median_seconds": round(statistics.median(entry["seconds"] for entry in parallel), 2),
            "median_cpu_seconds": round(statistics.median(entry["cpu_seconds"] for entry in parallel), 2),
            "max_peak_tree_rss_mib": max(entry["peak_tree_rss_mib"] for entry in parallel),
        }
        print(
            f"{pool}: median {summary[pool]['median_seconds']} s "
            f"(CPU {summary[pool]['median_cpu_seconds']} s), "
            f"peak tree RSS {summary[pool]['max_peak_tree_rss_mib']} MiB"
        )
    identical = all(entry["identical_to_sequential"] for entry in runs)
    print(f"artifacts bit-identical across pools and jobs: {identical}")
    if args.json:
        settings = {key: getattr(args, key) for key in ("bodies", "tasks", "jobs", "repeats", "baseline")}
        document = {"settings": settings, "runs": runs, "summary": summary, "identical": identical}
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
