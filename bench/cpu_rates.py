"""CPU-time scoring rates of the checked-out code, for comparing two commits on a shared machine.

Wall-clock rates move with whatever else the machine runs; the CPU time a process spends does
much less. Run it in a checkout of each commit, back to back:

    python bench/cpu_rates.py                                   # this checkout
    git worktree add /tmp/before <rev>
    (cd /tmp/before && PYTHONPATH=/tmp/before python bench/cpu_rates.py)

Prints texts per CPU-second, best of five rounds, for long texts (2,000 characters) in batches of
64, one long text per call, and one short text (200 characters) per call, on the corpus of
``bench/corpus.py`` against the default reference. Run with OMP_NUM_THREADS=1 and
OPENBLAS_NUM_THREADS=1, as the service's workers are.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_texts

from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
from service.loaders.runtime import load_runtime

CASES = ((2000, 64, 512), (2000, 1, 128), (200, 1, 256))
"""(characters per text, texts per call, texts per round)."""


def rates(rounds: int = 5) -> dict[str, int]:
    """Texts per CPU-second for each case of :data:`CASES`, the best of ``rounds``."""
    scorer = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR).scorer
    result = {}
    for chars, batch, n in CASES:
        texts = make_texts(n, chars, seed=3)
        scorer.score(make_texts(64, chars, seed=4)[:batch])  # warm-up
        best = 0.0
        for _ in range(rounds):
            started = time.process_time()
            for lo in range(0, len(texts), batch):
                scorer.score(texts[lo : lo + batch])
            best = max(best, len(texts) / (time.process_time() - started))
        result[f"{chars} chars, batch {batch}"] = round(best)
    return result


if __name__ == "__main__":
    print(json.dumps(rates()))
