"""``discourse score`` in one process against a local Dask cluster of 2 workers (writes docs/dask.md).

Measures, on this machine and for real (the command line, started as a user would):

- texts/s for ``--texts`` texts (default 200,000) of about ``--chars`` characters in one process
  and with ``--workers 2``, model loading and planning included, and that both outputs are equal;
- the resident memory of every worker process (sampled every 0.2 s; the peak), and of the client;
- the start-up of a local cluster of 2 workers (until both answer), and the model load on a worker;
- the overhead per partition: the same 20,000 texts cut into partitions of 500 and of 5,000 rows;
- how long the client's planning pass (hash, check, cut) takes per row: the part that does not
  spread over machines.

Then writes an estimate on paper for N machines. Usage::

    pip install -e '.[dask,bench]'
    python bench/dask_scale.py                  # 10-20 minutes on 2 cores
    python bench/dask_scale.py --texts 20000    # a quick try (the doc says so)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS_DIR, machine_info, machine_line
from corpus import make_texts

DISCOURSE = str(Path(sys.executable).with_name("discourse"))
DOC = Path(__file__).resolve().parent.parent / "docs" / "dask.md"


class MemorySampler:
    """Peak RSS of a process and each of its descendants, sampled every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks: dict[int, tuple[int, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                return
            for process in processes:
                try:
                    rss = process.memory_info().rss
                    role = _role(process)
                except psutil.Error:
                    continue
                if rss > self.peaks.get(process.pid, (0, ""))[0]:
                    self.peaks[process.pid] = (rss, role)
            self._stop.wait(self.interval)

    def stop(self) -> dict[int, tuple[int, str]]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def _role(process: psutil.Process) -> str:
    line = " ".join(process.cmdline())
    if "discourse" in line and "score" in line:
        return "client"
    return "child"  # the workers are told apart by the pids in the manifest


def run(command: list[str]) -> dict:
    """Run a command; wall seconds, exit status, per-process peak RSS (MiB) by role."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = MemorySampler(process.pid)
    _, err = process.communicate()
    seconds = time.perf_counter() - started
    peaks = sampler.stop()
    if process.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{err}")
    return {
        "seconds": round(seconds, 2),
        "status": process.returncode,
        "peak_rss_mib": sorted(
            ({"pid": pid, "role": role, "mib": round(rss / 2**20, 1)} for pid, (rss, role) in peaks.items()),
            key=lambda p: -p["mib"],
        ),
    }


def sha256_concat(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def write_corpus(path: Path, n: int, chars: int) -> None:
    with open(path, "w", encoding="utf-8") as out:
        done = 0
        while done < n:
            chunk = min(10_000, n - done)
            for i, text in enumerate(make_texts(chunk, chars, seed=done)):
                out.write(json.dumps({"id": f"t{done + i}", "text": text}) + "\n")
            done += chunk


def cluster_startup() -> dict:
    """Seconds until a local cluster of 2 worker processes answers, and one worker's model load."""
    from dask.distributed import Client, LocalCluster

    from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
    from service.corpus import sha256_file, worker_runtime

    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        client.run(lambda: None)
        up = time.perf_counter() - started
        card = sha256_file(DEFAULT_MODEL_DIR / "card.json")

        def load() -> float:
            began = time.perf_counter()
            worker_runtime(str(DEFAULT_MODEL_DIR), str(DEFAULT_SEEDS_DIR), card)
            return time.perf_counter() - began

        loads = list(client.run(load).values())
        began = time.perf_counter()
        client.gather(client.map(lambda x: x, range(1000), pure=False))
        per_task = (time.perf_counter() - began) / 1000
    return {
        "cluster_start_seconds": round(up, 2),
        "model_load_seconds": [round(x, 2) for x in loads],
        "empty_task_ms": round(per_task * 1000, 2),
    }


def planning_rate(corpus: Path, partition_size: int) -> dict:
    from service.corpus import plan
    from service.textfiles import ReadOptions

    started = time.perf_counter()
    the_plan = plan([corpus], ReadOptions(), partition_size)
    seconds = time.perf_counter() - started
    return {
        "rows": the_plan.rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(the_plan.rows / seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=200_000)
    parser.add_argument("--chars", type=int, default=1000)
    parser.add_argument("--partition-size", type=int, default=10_000)
    parser.add_argument("--overhead-texts", type=int, default=20_000)
    parser.add_argument("--no-doc", action="store_true", help="print the JSON, do not write docs/dask.md")
    args = parser.parse_args()
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dask-bench-"))
    try:
        results = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (RESULTS_DIR / "dask_scale.json").write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    if not args.no_doc:
        DOC.write_text(report(results), encoding="utf-8")
        print(f"wrote {DOC}")


def measure(args: argparse.Namespace, work: Path) -> dict:
    corpus = work / "corpus.jsonl"
    print(f"writing {args.texts} texts of about {args.chars} characters", flush=True)
    write_corpus(corpus, args.texts, args.chars)
    results: dict = {
        "machine": machine_info(),
        "texts": args.texts,
        "chars": args.chars,
        "corpus_mb": round(corpus.stat().st_size / 1e6, 1),
        "partition_size": args.partition_size,
    }
    print("cluster start-up", flush=True)
    results["startup"] = cluster_startup()
    print("planning pass", flush=True)
    results["planning"] = planning_rate(corpus, args.partition_size)

    print("one process", flush=True)
    single = work / "single.jsonl"
    results["single"] = run([DISCOURSE, "score", str(corpus), "--out", str(single)])
    print("2 workers", flush=True)
    out = work / "cluster"
    command = [DISCOURSE, "score", str(corpus), "--workers", "2", "--out", str(out)]
    results["cluster"] = run([*command, "--partition-size", str(args.partition_size)])
    manifest = json.loads((out / "manifest.json").read_text())
    parts = sorted(out.glob("part-?????.jsonl"))
    results["identical"] = sha256_concat(parts) == sha256_concat([single])
    results["parts"] = len(parts)
    results["part_seconds"] = [p["seconds"] for p in manifest["parts"]]
    results["worker_pids"] = sorted({p["pid"] for p in manifest["parts"]})
    # Steady rate of one worker: its parts after the first (which includes the model load).
    seen: set[int] = set()
    rows = seconds = 0.0
    for part in manifest["parts"]:  # in the order they were planned, close to the order they ran
        if part["pid"] in seen:
            rows += part["rows"] + part["errors"]
            seconds += part["seconds"]
        seen.add(part["pid"])
    results["steady_texts_per_second_per_worker"] = round(rows / seconds, 1) if seconds else None
    for key in ("single", "cluster"):
        results[key]["texts_per_second"] = round(args.texts / results[key]["seconds"], 1)
    del single, parts
    shutil.rmtree(out)
    (work / "single.jsonl").unlink()

    print("overhead per partition", flush=True)
    small = work / "small.jsonl"
    with open(corpus, encoding="utf-8") as source, open(small, "w", encoding="utf-8") as target:
        for _, line in zip(range(args.overhead_texts), source, strict=False):
            target.write(line)
    overhead = {}
    for size in (500, 5000):
        folder = work / f"overhead-{size}"
        measured = run(
            [
                DISCOURSE,
                "score",
                str(small),
                "--workers",
                "2",
                "--out",
                str(folder),
                "--partition-size",
                str(size),
            ]
        )
        overhead[str(size)] = {"partitions": -(-args.overhead_texts // size), "seconds": measured["seconds"]}
        shutil.rmtree(folder)
    extra = overhead["500"]["partitions"] - overhead["5000"]["partitions"]
    results["overhead"] = {
        "texts": args.overhead_texts,
        "runs": overhead,
        "seconds_per_partition": round((overhead["500"]["seconds"] - overhead["5000"]["seconds"]) / extra, 4),
    }
    return results


def _mib(run_: dict, role: str) -> list[float]:
    return [p["mib"] for p in run_["peak_rss_mib"] if p["role"] == role]


def report(r: dict) -> str:
    single, cluster = r["single"], r["cluster"]
    peaks = {p["pid"]: p["mib"] for p in cluster["peak_rss_mib"]}
    workers = [peaks[pid] for pid in r["worker_pids"] if pid in peaks]
    client = _mib(cluster, "client")
    per_worker = r["steady_texts_per_second_per_worker"] or cluster["texts_per_second"] / 2
    basis = (
        "its steady rate, measured over each worker's parts after its first"
        if r["steady_texts_per_second_per_worker"]
        else "the measured 2-worker rate halved"
    )
    plan_rate = r["planning"]["rows_per_second"]
    rows = [
        "| machines (2 workers each) | workers | texts/s (paper) | 10 million texts |",
        "| --- | --- | --- | --- |",
    ]
    for machines in (1, 2, 4, 8, 16, 32):
        n = 2 * machines
        rate = 1 / (1 / (n * per_worker) + 1 / plan_rate)
        hours = (1e7 / rate + r["startup"]["cluster_start_seconds"]) / 3600
        rows.append(f"| {machines} | {n} | {rate:,.0f} | {hours:.1f} h |")
    quick = (
        ""
        if r["texts"] >= 200_000
        else "\n**A shortened run** (fewer than 200,000 texts): read as a try-out.\n"
    )
    return f"""# Scoring beyond one machine: measured

Written by `python bench/dask_scale.py` (raw figures in `bench/results/dask_scale.json`).
Machine: {machine_line(r["machine"])}.
{quick}
**This machine is shared** with other engineers' work (tests, benchmarks) running at the same
time on its 2 cores, so every figure below is noisy: treat differences under about 15% as noise,
and the 2-worker figures as a lower bound (the two workers compete with the client and with
other people's processes for the 2 cores).

## One process against a local cluster of 2 workers

{r["texts"]:,} texts of about {r["chars"]} characters ({r["corpus_mb"]} MB of JSONL), scored with
the shipped model, model loading and the planning pass included, partitions of
{r["partition_size"]:,} rows ({r["parts"]} parts):

| run | command | wall time | texts/s |
| --- | --- | --- | --- |
| one process | `discourse score corpus.jsonl --out single.jsonl` | {single["seconds"]} s | \
{single["texts_per_second"]} |
| 2 workers | `discourse score corpus.jsonl --workers 2 --out run/` | {cluster["seconds"]} s | \
{cluster["texts_per_second"]} |

The concatenated part files {"are" if r["identical"] else "are NOT"} byte for byte the single-process output.
The parts were scored by worker processes {", ".join(map(str, r["worker_pids"]))}.
Seconds per part: {min(r["part_seconds"])} to {max(r["part_seconds"])} (the first part of each worker
includes its model load).

## Memory, start-up, overhead

- Peak resident memory of each worker process: {", ".join(f"{m:.0f}" for m in workers)} MiB
  (the model, the references and one partition's batch; partitions are read row by row, so a
  worker's memory does not grow with the partition size beyond the results of one batch).
  The client: {", ".join(f"{m:.0f}" for m in client)} MiB (it holds every given id for the run,
  about 100 bytes per row, and the plan); one process alone: {max(_mib(single, "client"))} MiB.
- A local cluster of 2 workers answers {r["startup"]["cluster_start_seconds"]} s after it is asked for;
  loading the model on a worker then takes {", ".join(map(str, r["startup"]["model_load_seconds"]))} s
  (once per worker process, checked against the card's sha256).
- An empty Dask task costs {r["startup"]["empty_task_ms"]} ms of scheduling round trip.
- Overhead per partition, everything included (task, opening and seeking the input, writing and
  renaming two files, the manifest update): {r["overhead"]["texts"]:,} texts in partitions of 500
  rows took {r["overhead"]["runs"]["500"]["seconds"]} s,
  in partitions of 5,000 rows {r["overhead"]["runs"]["5000"]["seconds"]} s:
  **{r["overhead"]["seconds_per_partition"]} s per partition**.
- The client's planning pass (hash, check every row, cut partitions) ran at
  {plan_rate:,} rows/s ({r["planning"]["seconds"]} s for {r["planning"]["rows"]:,} rows). It runs on
  one machine before any scoring, so it caps the whole run (below).

## On paper: N machines

Assuming each machine runs 2 workers like this one at {per_worker:,.0f} texts/s per worker
({basis}), the client's planning pass at the rate above, input and
output on storage fast enough for all of them, and ignoring the start-up of a few seconds:
time per text = 1 / (workers × per-worker rate) + 1 / planning rate.

{chr(10).join(rows)}

The planning pass is the ceiling: past a few dozen workers, a run is bound by one client reading
and checking every row. Partition size: at {r["overhead"]["seconds_per_partition"]} s of overhead
per partition, a partition should take at least 100 times that to score, i.e. several thousand
long texts; too large, and a killed worker loses more work and the last partitions leave workers
idle at the end. The default, 10,000 rows, is about {10_000 / per_worker:.0f} s of work per worker
at the rate measured here.
"""


if __name__ == "__main__":
    main()
