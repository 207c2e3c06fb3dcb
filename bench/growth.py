"""How cost grows: time vs text length, time vs batch size, memory vs number of references.

Time is measured in process (``Scorer.score``, one BLAS thread as in a worker);
memory in a fresh process per point that builds the real application
(``create_app()``) with ``DISCOURSE_SEEDS_DIR`` pointing at a temporary
directory of generated reference files, then scores one batch against every
reference (so that everything built on first use is counted).
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import median  # noqa: E402
from corpus import make_text, make_texts  # noqa: E402

TEXT_LENGTHS = (100, 300, 1_000, 3_000, 10_000, 30_000, 100_000)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
REFERENCE_COUNTS = (1, 2, 5, 10, 20, 50)


def _timed_rounds(work: Any, rounds: int, min_seconds: float) -> list[float]:
    """Seconds per call of ``work()``, one value per round; a round repeats it for ``min_seconds``."""
    values = []
    for _ in range(rounds):
        calls, start = 0, time.perf_counter()
        while True:
            work()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                break
        values.append(elapsed / calls)
    return values


def time_vs_length(rounds: int, quick: bool) -> list[dict[str, Any]]:
    """Milliseconds to score one text of each length (batch of one), explain off and on."""
    from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
    from service.loaders.runtime import load_runtime

    scorer = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR).scorer
    rows = []
    for chars in TEXT_LENGTHS:
        texts = make_texts(8, chars, seed=5)
        cycle = iter(range(10**9))
        row: dict[str, Any] = {"chars": chars, "mean_chars": sum(map(len, texts)) / len(texts)}
        for explain in (False, True):
            scorer.score(texts[:1], explain=explain)  # warm-up

            def work(explain: bool = explain, texts: list[str] = texts, cycle: Any = cycle) -> None:
                scorer.score([texts[next(cycle) % len(texts)]], explain=explain)

            seconds = _timed_rounds(work, rounds, 0.05 if quick else 0.25)
            row["explain_on" if explain else "explain_off"] = [s * 1000 for s in seconds]
            row["median_ms_on" if explain else "median_ms_off"] = median(seconds) * 1000
        row["us_per_1000_chars_off"] = row["median_ms_off"] * 1000 / (row["mean_chars"] / 1000)
        rows.append(row)
        print(f"  {chars:>7} chars: {row['median_ms_off']:8.2f} ms (explain on {row['median_ms_on']:8.2f})")
    return rows


def time_vs_batch(rounds: int, quick: bool) -> list[dict[str, Any]]:
    """Texts per second at each batch size, short and long texts, explain off."""
    from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
    from service.loaders.runtime import load_runtime

    scorer = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR).scorer
    rows = []
    for length, chars in (("short", 200), ("long", 2000)):
        pool = make_texts(256, chars, seed=6)
        for batch in BATCH_SIZES:
            texts = pool[:batch]
            scorer.score(texts)

            def work(texts: list[str] = texts) -> None:
                scorer.score(texts)

            seconds = _timed_rounds(work, rounds, 0.05 if quick else 0.2)
            rows.append(
                {
                    "length": length,
                    "chars": chars,
                    "batch": batch,
                    "ms_per_batch": [s * 1000 for s in seconds],
                    "median_ms_per_batch": median(seconds) * 1000,
                    "texts_per_second": batch / median(seconds),
                }
            )
            print(f"  {length:5} batch {batch:3}: {batch / median(seconds):8.1f} texts/s")
    return rows


def write_reference_files(directory: Path, count: int, seed: int = 0) -> None:
    """``count`` generated reference files (about 12,000 characters, 9 claims each) in ``directory``."""
    rng = random.Random(seed)
    for n in range(count):
        paragraphs = [make_text(rng, rng.randint(600, 1400)) for _ in range(12)]
        body = "\n\n".join(paragraphs)
        sentences = [s.strip() for p in paragraphs for s in p.split(". ") if len(s) > 40]
        claims = rng.sample(sentences, 9)
        lines = [
            f'id = "generated-{n:03d}"',
            f"title = {json.dumps(f'Generated reference {n}')}",
            f"default = {'true' if n == 0 else 'false'}",
            f"body = {json.dumps(body)}",
        ]
        for k, claim in enumerate(claims):
            source = claim.rstrip(".")
            lines += ["", "[[claims]]", f'id = "claim-{k}"', f"text = {json.dumps(claim)}"]
            lines.append(f"source = {json.dumps(source)}")
        (directory / f"generated-{n:03d}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def memory_probe() -> dict[str, Any]:
    """In a fresh process: build the app from the environment, score against every reference, report RSS."""

    def rss() -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    start = time.perf_counter()
    rss_start = rss()
    from service.http.app import create_app

    app = create_app()
    load_seconds = time.perf_counter() - start
    rss_loaded = rss()
    runtime = app.extensions["discourse"]["runtime"]
    texts = make_texts(16, 2000, seed=8)
    for reference_id in runtime.scorer.references:
        runtime.scorer.score(texts, reference_id=reference_id, explain=True)
    return {
        "references": len(runtime.scorer.references),
        "load_seconds": load_seconds,
        "rss_interpreter": rss_start,
        "rss_loaded": rss_loaded,
        "rss_after_scoring": rss(),
    }


def memory_vs_references(quick: bool) -> list[dict[str, Any]]:
    """RSS of a fresh app process per number of references (each point in its own process)."""
    rows = []
    counts = REFERENCE_COUNTS[:4] if quick else REFERENCE_COUNTS
    for count in counts:
        seeds = Path(tempfile.mkdtemp(prefix="bench-seeds-"))
        try:
            write_reference_files(seeds, count)
            env = dict(os.environ, DISCOURSE_SEEDS_DIR=str(seeds), DISCOURSE_LOG_LEVEL="WARNING")
            out = subprocess.run(
                [sys.executable, __file__, "memory-probe"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
        finally:
            shutil.rmtree(seeds, ignore_errors=True)
        rows.append(row)
        print(
            f"  {count:3} references: RSS {row['rss_after_scoring'] / 2**20:6.1f} MiB "
            f"(loaded {row['rss_loaded'] / 2**20:6.1f} MiB, load {row['load_seconds']:.2f} s)"
        )
    return rows


def run(rounds: int = 5, quick: bool = False) -> dict[str, Any]:
    """All growth measurements."""
    print(" time vs text length", flush=True)
    length = time_vs_length(rounds, quick)
    print(" time vs batch size", flush=True)
    batch = time_vs_batch(rounds, quick)
    print(" memory vs references", flush=True)
    memory = memory_vs_references(quick)
    return {"length": length, "batch": batch, "references": memory}


if __name__ == "__main__":
    if sys.argv[1:2] == ["memory-probe"]:
        print(json.dumps(memory_probe()))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
