"""Where the time goes: pyinstrument profiles of ``Scorer.score``, flattened into a share per step."""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_texts  # noqa: E402

CASES = (
    # label, chars, batch, texts, explain
    ("single short text (200 chars), explain off", 200, 1, 1500, False),
    ("batches of 64 long texts (2,000 chars), explain off", 2000, 64, 640, False),
    ("batches of 64 long texts (2,000 chars), explain on", 2000, 64, 640, True),
)


def _score_frames(frame: Any) -> list[Any]:
    """Every frame of ``Scorer.score`` (pyinstrument keeps one per distinct call site and sample run)."""
    if frame.function == "score" and Path(frame.file_path_short or "").name == "scorer.py":
        return [frame]
    found = []
    for child in frame.children:
        found += _score_frames(child)
    return found


def _merge(frames: list[Any], depth: int, max_depth: int) -> dict[tuple[str, str], dict[str, Any]]:
    """Children of ``frames`` merged by (function, file): total time and merged grandchildren."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for frame in frames:
        for child in frame.children:
            name = child.function if child.function != "[self]" else f"(own code of {frame.function})"
            key = (name, Path(child.file_path_short or "").name)
            entry = merged.setdefault(key, {"time": 0.0, "frames": []})
            entry["time"] += child.time
            entry["frames"].append(child)
    if depth < max_depth:
        for entry in merged.values():
            entry["children"] = _merge(entry["frames"], depth + 1, max_depth)
    return merged


def _flatten(
    merged: dict[tuple[str, str], dict[str, Any]], total: float, depth: int, min_share: float
) -> list:
    rows: list[dict[str, Any]] = []
    for (function, file), entry in sorted(merged.items(), key=lambda item: -item[1]["time"]):
        share = entry["time"] / total
        if share < min_share:
            continue
        rows.append({"depth": depth, "function": function, "file": file, "share": share})
        rows += _flatten(entry.get("children", {}), total, depth + 1, min_share)
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Profile each case; return the steps under ``Scorer.score`` with their share of its time."""
    from pyinstrument import Profiler

    from service.config import DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR
    from service.loaders.runtime import load_runtime

    scorer = load_runtime(DEFAULT_MODEL_DIR, DEFAULT_SEEDS_DIR).scorer
    results = []
    for label, chars, batch, n_texts, explain in CASES:
        n = n_texts // 4 if quick else n_texts
        texts = make_texts(max(n, batch), chars, seed=9)
        scorer.score(texts[:batch], explain=explain)  # warm-up
        profiler = Profiler(interval=0.0005)
        profiler.start()
        for lo in range(0, len(texts), batch):
            scorer.score(texts[lo : lo + batch], explain=explain)
        profiler.stop()
        session = profiler.last_session
        scores = _score_frames(session.root_frame())
        total = sum(f.time for f in scores)
        steps = _flatten(_merge(scores, 0, 1), total, 0, 0.015) if total else []
        results.append({"case": label, "seconds": session.duration, "texts": len(texts), "steps": steps})
        print(f"  {label}: {len(texts) / session.duration:.0f} texts/s under the profiler")
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
