"""In-process speed of the code before the speed work (``BASELINE_REV``) and now, A/B alternated.

The baseline runs the whole ``service/`` package of ``BASELINE_REV`` with its own model
(see :func:`common.release_tree`; today's modules around it have moved on too far to swap
single files in), each side in its own process, alternating, several times; the medians
are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BASELINE_REV, BENCH_DIR, REPO, median, release_tree

TOP_PAD = str(64 * 2**20)


def _rates(pythonpath: Path, quick: bool, extra_env: dict[str, str] | None = None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(pythonpath), **(extra_env or {}))
    command = [
        sys.executable,
        str(BENCH_DIR / "inprocess.py"),
        "service-only",
        *(["--quick"] if quick else []),
    ]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True, cwd=BENCH_DIR).stdout
    return json.loads(out.strip().splitlines()[-1])


def run(rev: str = BASELINE_REV, alternations: int = 2, quick: bool = False) -> dict[str, Any]:
    """Median texts/s per configuration, before and after; raises if the baseline cannot run."""
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        base = release_tree(rev, Path(tmp) / "tree")
        before: dict[str, list[float]] = {}
        after: dict[str, list[float]] = {}
        padded: dict[str, list[float]] = {}
        for _ in range(alternations):
            for tree, into, extra in (
                (base, before, None),
                (REPO, after, None),
                # glibc keeps 64 MiB above the heap top instead of trimming it after every large free.
                (REPO, padded, {"MALLOC_TOP_PAD_": TOP_PAD}),
            ):
                for key, value in _rates(tree, quick, extra).items():
                    into.setdefault(key, []).append(value)
    rows = []
    for key in after:
        b, a, p = median(before[key]), median(after[key]), median(padded[key])
        rows.append({"config": key, "before": b, "after": a, "speedup": a / b, "after_top_pad": p})
        print(f"  {key:32}: {b:8.1f} -> {a:8.1f} texts/s ({a / b:.2f}x); MALLOC_TOP_PAD_ {p:8.1f}")
    return {"rev": rev, "rows": rows, "top_pad": TOP_PAD}


if __name__ == "__main__":
    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
