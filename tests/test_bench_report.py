"""bench/report.py: docs/benchmarks.md rendered from a small inline results file (no benchmark runs).

The layout is the Jinja2 template bench/report.md.j2; these tests hold the document to what the
results say: a section that did not run or failed says so, each target row gives the measured
figure and the right verdict, and a measured section lacking a field is an error naming it.
"""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

MACHINE = {
    "cpu": "Test CPU",
    "cores": 2,
    "memory_gib": 8.0,
    "versions": {
        "python": "3.11.7",
        "numpy": "2.4",
        "scipy": "1.17",
        "scikit-learn": "1.9.1",
        "locust": "2.47",
    },
    "blas": "openblas (1 threads)",
}


def _record(data: dict[str, Any], error: str | None = None) -> dict[str, Any]:
    """A section as bench/run_all.py records it."""
    return {
        "data": data,
        "error": error,
        "load": {"seconds": 30.4, "other_share": 0.052},
        "machine": MACHINE,
        "code": "abc1234",
        "finished": "2026-11-29T18:00:00+00:00",
    }


def _run(label: str, users: int, rate_per_user: float, **figures: float) -> dict[str, Any]:
    """One locust run of the http section; ``figures`` override the defaults."""
    run = {
        "label": label,
        "users": users,
        "rate_per_user": rate_per_user,
        "seconds": 20,
        "requests": 4000,
        "failures": 0,
        "rps": 100.0,
        "p50_ms": 6.0,
        "p95_ms": 8.0,
        "p99_ms": 9.0,
        "max_ms": 20.0,
        "locust_cpu_seconds": 2.0,
    }
    return run | figures


RESULTS: dict[str, Any] = {
    "sections": {
        "http": _record(
            {
                "runs": [
                    _run("single-saturation", 16, 0.0, rps=250.0, failures=2),
                    _run("single-100rps", 10, 10.0, p99_ms=61.0),
                ],
                "worker_memory_after_load": [{"pid": 11, "rss": 150_000_000, "pss": 80_000_000}],
                "startup_seconds": [1.5, 1.7, 1.6],
                "startup_median": 1.6,
            }
        ),
        "growth": _record({}, error="RuntimeError: no space left on device"),
    },
}
"""http measured; growth failed; profile, inprocess and baseline never ran."""


@pytest.fixture(scope="module")
def report() -> ModuleType:
    """bench/report.py, imported as the bench scripts import it (bench/ on the path for ``common``)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_report", BENCH / "report.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


def _part(document: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    return document.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0].strip()


def test_sections_that_did_not_run_or_failed_say_so(report: ModuleType) -> None:
    document = report.render(RESULTS, figures={})
    assert _part(document, "What the profile shows") == "*Not measured in the last run.*"
    assert _part(document, "Cost growth") == (
        "*This section failed in the last run: `RuntimeError: no space left on device`.*"
    )
    assert "| In-process throughput targets | not measured | — |" in document.splitlines()
    assert "Time linear in text length" not in document
    # The measured section is there, with where it ran.
    assert _part(document, "Over HTTP").startswith(
        "*Measured 2026-11-29T18:00:00+00:00 on Test CPU, 2 cores, 8.0 GiB; Python 3.11.7, "
    )
    assert "During this section (30 s) other processes used 5% of the machine's CPU time." in document
    assert "--quick" not in document.split("## Targets")[0]
    assert "> **These are `--quick` results" in report.render(RESULTS | {"quick": True}, figures={})
    assert document.endswith("\n") and not document.endswith("\n\n\n")


def test_target_rows_give_the_measured_figure_and_the_verdict(report: ModuleType) -> None:
    targets = _part(report.render(RESULTS, figures={}), "Targets").splitlines()
    assert targets[2:] == [
        "| In-process throughput targets | not measured | — |",
        "| Single-text HTTP, 2 workers: ≥ 200 req/s at saturation | 250.0 req/s with the default "
        "settings (2 failed) | **met** (1.2× the target) |",
        "| Single-text HTTP at 100 req/s offered: p99 ≤ 50 ms | p99 61 ms with the default settings "
        "(p50 6, p95 8; 0 failed) | **NOT met** (22% over the limit) |",
        "| One worker ≤ 200 MB RSS (after load and after 10,000 requests) | largest 143 MiB (150 MB) "
        "| **met** (25% under the limit) |",
        "| Ready ≤ 2 s after start (process start to first /readyz 200) | 1.60 s (median of 3 starts) "
        "| **met** (20% under the limit) |",
    ]


def test_a_target_exactly_at_its_limit_is_met(report: ModuleType) -> None:
    results = copy.deepcopy(RESULTS)
    results["sections"]["http"]["data"]["runs"][0]["rps"] = 150.0
    results["sections"]["http"]["data"]["runs"][1]["p99_ms"] = 50.0
    targets = _part(report.render(results, figures={}), "Targets")
    assert "| **NOT met** (25% short) |" in targets
    assert (
        "p99 50 ms with the default settings (p50 6, p95 8; 0 failed) | **met** (0% under the limit) |"
        in (targets)
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (("data",), "startup_median"),  # a number the layout formats
        (("data", "runs", 0), "failures"),  # a value it prints as it is
        ((), "code"),  # where the section ran
    ],
)
def test_a_measured_section_lacking_a_field_is_an_error_naming_it(
    report: ModuleType, path: tuple[str | int, ...], field: str
) -> None:
    results = copy.deepcopy(RESULTS)
    record = results["sections"]["http"]
    for key in path:
        record = record[key]
    del record[field]
    with pytest.raises(jinja2.UndefinedError, match=field):
        report.render(results, figures={})
