"""Run the whole benchmark suite and write docs/benchmarks.md (and its PNG figures in docs/).

Usage (from the repository root, in the service's venv with the ``bench`` extra)::

    bash bench/setup_peer_venv.sh          # once: the MiniLM peer's own venv
    python bench/run_all.py                # about 8 minutes on 2 cores
    python bench/run_all.py --only http    # re-run one section, keep the others' last results
    python bench/run_all.py --quick        # shortened runs, to try the suite out
    python bench/run_all.py --render-only  # re-write the report from the last results

Sections: ``profile``, ``inprocess`` (service vs MiniLM peer, A/B), ``http``
(gunicorn + locust), ``growth`` (length, batch size, references), ``baseline``
(the code before the speed work vs now). Raw results go to
``bench/results/results.json``; the report is rendered from them.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from common import REPO, RESULTS_DIR, machine_info  # noqa: E402

SECTIONS = ("profile", "inprocess", "http", "growth", "baseline")


class LoadWatch:
    """CPU used on the machine during a section by processes other than this one and its children."""

    def __enter__(self) -> LoadWatch:
        self._busy0, self._total0 = self._stat()
        self._own0 = self._own()
        self._t0 = time.monotonic()
        return self

    @staticmethod
    def _stat() -> tuple[float, float]:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + fields[4]
        total = sum(fields[:8])
        return (total - idle) / os.sysconf("SC_CLK_TCK"), total / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        times = psutil.Process().cpu_times()
        return times.user + times.system + times.children_user + times.children_system

    def __exit__(self, *exc: object) -> None:
        busy1, _ = self._stat()
        self.summary = {
            "seconds": time.monotonic() - self._t0,
            "busy_core_seconds": busy1 - self._busy0,
            "own_core_seconds": self._own() - self._own0,
        }
        self.summary["other_core_seconds"] = max(
            0.0, self.summary["busy_core_seconds"] - self.summary["own_core_seconds"]
        )
        self.summary["other_share"] = self.summary["other_core_seconds"] / (
            self.summary["seconds"] * (os.cpu_count() or 1)
        )
        self.summary["loadavg_end"] = os.getloadavg()


def _git_describe() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        return rev + (" + uncommitted changes in service/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_section(name: str, quick: bool) -> dict[str, Any]:
    """Run one section in a fresh process and return its results.

    A fresh process per section keeps sections from warming each other up: the
    heap state one leaves behind (glibc's trim and mmap thresholds) can change
    the next one's in-process timings by a third.
    """
    with tempfile.TemporaryDirectory(prefix="bench-section-") as tmp:
        out = Path(tmp) / "section.json"
        command = [sys.executable, __file__, "--section-worker", name, "--section-out", str(out)]
        subprocess.run(command + (["--quick"] if quick else []), check=True, cwd=REPO)
        return json.loads(out.read_text(encoding="utf-8"))


def run_section_here(name: str, quick: bool) -> dict[str, Any]:
    """Run one section in this process and return its results."""
    if name == "profile":
        import profile_scoring

        return {"cases": profile_scoring.run(quick=quick)}
    if name == "inprocess":
        import inprocess

        return inprocess.run(rounds=3 if quick else 5, quick=quick)
    if name == "http":
        import http_bench

        return http_bench.run(quick=quick)
    if name == "growth":
        import growth

        return growth.run(rounds=3 if quick else 5, quick=quick)
    if name == "baseline":
        import baseline

        return baseline.run(alternations=1 if quick else 2, quick=quick)
    raise ValueError(name)


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--quick", action="store_true", help="shortened runs (not for the report)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "benchmarks.md")
    parser.add_argument("--render-only", action="store_true", help="re-write the report from the results")
    parser.add_argument("--section-worker", help=argparse.SUPPRESS)
    parser.add_argument("--section-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section_worker:
        data = run_section_here(args.section_worker, args.quick)
        args.section_out.write_text(json.dumps(data), encoding="utf-8")
        return 0
    wanted = [] if args.render_only else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(wanted) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    results_path = RESULTS_DIR / ("results-quick.json" if args.quick else "results.json")
    results: dict[str, Any] = {}
    if results_path.exists():
        results = json.loads(results_path.read_text(encoding="utf-8"))
    results.setdefault("sections", {})
    started = time.monotonic()
    for name in wanted:
        print(f"== {name}", flush=True)
        with LoadWatch() as watch:
            try:
                data = run_section(name, args.quick)
                error = None
            except Exception as exc:  # reported in the document, the other sections still run
                data, error = {}, f"{type(exc).__name__}: {exc}"
                print(f"   failed: {error}", flush=True)
        results["sections"][name] = {
            "data": data,
            "error": error,
            "load": watch.summary,
            "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine_info(),
            "code": _git_describe(),
        }
        other = watch.summary["other_share"]
        print(f"   {watch.summary['seconds']:.0f} s; other processes used {100 * other:.0f}% of the CPUs")
        results_path.write_text(json.dumps(results, indent=1), encoding="utf-8")
    print(f"== sections took {time.monotonic() - started:.0f} s; writing {args.out}", flush=True)
    results["quick"] = args.quick
    report.write(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
