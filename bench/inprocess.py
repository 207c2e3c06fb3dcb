"""In-process throughput of ``Scorer.score`` and of the MiniLM peer on the same texts, A/B alternated.

Every configuration (text length × batch size × explain) is measured in
several rounds; each round times the service and then the peer on the same
texts (the peer, far slower, scores a prefix of them), so that a disturbance
of the shared machine hits both sides alike. Reported: the median texts/s of
the rounds and the ratio of the medians.
"""

from __future__ import annotations

import os

# One BLAS thread, as in a gunicorn worker (service/http/gunicorn_config.py); set before numpy loads.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PeerProcess, median  # noqa: E402
from corpus import make_texts  # noqa: E402

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR  # noqa: E402
from service.domain.scorer import Scorer  # noqa: E402

try:
    from service.loaders.runtime import load_runtime
except ImportError:  # a tree from before the loaders moved (bench/baseline.py runs one)
    from service.runtime import load_runtime  # type: ignore[no-redef]

LENGTHS = {"short": 200, "long": 2000}
# Texts per round: (service, peer). The service needs enough work per round to time it well;
# the peer is 1-2 orders of magnitude slower, so it gets a prefix of the same texts.
TEXTS_PER_ROUND = {
    ("short", 1): (256, 16),
    ("short", 64): (512, 64),
    ("long", 1): (128, 8),
    ("long", 64): (512, 64),
}


def time_service(scorer: Scorer, texts: list[str], batch: int, explain: bool) -> float:
    """Texts per second for scoring ``texts`` in chunks of ``batch``."""
    start = time.perf_counter()
    for lo in range(0, len(texts), batch):
        scorer.score(texts[lo : lo + batch], explain=explain)
    return len(texts) / (time.perf_counter() - start)


def run(rounds: int = 5, peer_threads: tuple[int, ...] = (1, 2), quick: bool = False) -> dict[str, Any]:
    """All in-process measurements; returns a JSON-serialisable dict."""
    runtime = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR)
    scorer = runtime.scorer
    reference = scorer.reference()
    peer = PeerProcess()
    try:
        peer_info = peer.call(op="info")
        peer.call(
            op="reference",
            body=reference.reference.body,
            claims=[claim.text for claim in reference.claims],
        )
        results: list[dict[str, Any]] = []
        for (length, batch), (n_service, n_peer) in TEXTS_PER_ROUND.items():
            if quick:
                n_service, n_peer = max(batch, n_service // 4), max(min(batch, 64), n_peer // 2)
            texts = make_texts(n_service, LENGTHS[length], seed=3)
            # Warm-up of both sides on other texts of the same kind.
            warm = make_texts(max(batch, 8), LENGTHS[length], seed=4)
            time_service(scorer, warm, batch, True)
            for threads in peer_threads:
                peer.call(op="score", texts=warm[: max(batch, 8)], batch=batch, threads=threads)
            samples: dict[str, list[float]] = {"off": [], "on": []}
            peer_samples: dict[int, list[float]] = {t: [] for t in peer_threads}
            for _ in range(rounds):
                samples["off"].append(time_service(scorer, texts, batch, False))
                samples["on"].append(time_service(scorer, texts, batch, True))
                for threads in peer_threads:
                    answer = peer.call(op="score", texts=texts[:n_peer], batch=batch, threads=threads)
                    peer_samples[threads].append(answer["texts"] / answer["seconds"])
            row: dict[str, Any] = {
                "length": length,
                "chars": LENGTHS[length],
                "mean_chars": sum(map(len, texts)) / len(texts),
                "batch": batch,
                "service_texts": n_service,
                "peer_texts": n_peer,
                "rounds": rounds,
                "service_explain_off": samples["off"],
                "service_explain_on": samples["on"],
                "peer": {str(t): v for t, v in peer_samples.items()},
            }
            row["median_off"] = median(samples["off"])
            row["median_on"] = median(samples["on"])
            row["peer_median"] = {str(t): median(v) for t, v in peer_samples.items()}
            results.append(row)
            print(
                f"  {length:5} batch {batch:3}: service {row['median_off']:8.1f} texts/s (explain on "
                f"{row['median_on']:8.1f}); peer "
                + ", ".join(f"{t} thread(s) {v:6.1f}" for t, v in row["peer_median"].items()),
                flush=True,
            )
        peer_rss = peer.call(op="rss")["rss"]
    finally:
        peer.close()
    return {"rows": results, "peer_info": peer_info, "peer_rss_bytes": peer_rss}


def service_rates(rounds: int = 3, quick: bool = False) -> dict[str, float]:
    """The service alone: median texts/s per configuration (for comparing two versions of the code)."""
    scorer = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR).scorer
    rates: dict[str, float] = {}
    for (length, batch), (n_service, _) in TEXTS_PER_ROUND.items():
        texts = make_texts(n_service // 4 if quick else n_service, LENGTHS[length], seed=3)
        time_service(scorer, texts[: max(batch, 8)], batch, True)
        for explain in (False, True):
            samples = [time_service(scorer, texts, batch, explain) for _ in range(rounds)]
            rates[f"{length} batch {batch} explain {'on' if explain else 'off'}"] = median(samples)
    return rates


if __name__ == "__main__":
    import json

    if sys.argv[1:2] == ["service-only"]:
        print(json.dumps(service_rates(quick="--quick" in sys.argv)))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
