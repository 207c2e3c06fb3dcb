"""Render bench/results/results.json into docs/benchmarks.md and the figures in docs/.

The document's prose and tables are the Jinja2 template :data:`TEMPLATE` (``bench/report.md.j2``);
this module computes what they show (which sections were measured, the target verdicts, the
linear fit of time against length, numbers formatted) and draws the figures with matplotlib.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from common import machine_line

from service.markdown import markdown_template

MIB = 2**20
SECTIONS = ("profile", "inprocess", "http", "growth", "baseline")
"""The sections of ``bench/run_all.py``, in the document's order."""
TEMPLATE = Path(__file__).with_name("report.md.j2")
"""The document's layout: its prose, tables and which parts show when a section is missing."""


def _section(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The measurements of section ``name``; None when it did not run, failed or measured nothing."""
    section = results.get("sections", {}).get(name)
    if not section or section.get("error") or not section.get("data"):
        return None
    return section["data"]


def _meta(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The record of section ``name`` (``data``, ``error``, ``load``, ``machine``, ``code``,
    ``finished``), failed or not; None when it did not run."""
    return results.get("sections", {}).get(name)


# -- numbers as the document writes them ------------------------------------------------------------


def _fmt(x: float, digits: int = 1) -> str:
    """A rate: ``digits`` decimals below 1,000, none (with thousands separators) from 1,000 on."""
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _fixed(x: float, digits: int) -> str:
    """``x`` with ``digits`` decimals."""
    return f"{x:.{digits}f}"


def _grouped(n: int) -> str:
    """An integer with thousands separators (``20,366``)."""
    return f"{n:,}"


def _mib(n_bytes: float, digits: int = 0) -> str:
    """A size in bytes as MiB with ``digits`` decimals."""
    return f"{n_bytes / MIB:.{digits}f}"


def _strict(number_format: Callable[..., str]) -> Callable[..., str]:
    """``number_format`` as a template filter that raises ``jinja2.UndefinedError`` naming the field
    when given one the results lack (formatting the undefined value would be a bare ``TypeError``)."""

    @functools.wraps(number_format)
    def apply(value: Any, *args: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            value._fail_with_undefined_error()
        return number_format(value, *args)

    return apply


# -- targets ----------------------------------------------------------------------------------------


def _verdict(value: float, *, at_least: float | None = None, at_most: float | None = None) -> str:
    """``**met** (2.8× the target)``, ``**NOT met** (22% over the limit)`` and the like.

    Exactly one of ``at_least`` (higher is better) and ``at_most`` (lower is better) is given,
    in the unit of ``value``; raises ``ValueError`` otherwise.
    """
    if (at_least is None) == (at_most is None):
        raise ValueError("give exactly one of at_least and at_most")
    if at_least is not None:
        met = value >= at_least
        how = f"{value / at_least:.1f}× the target" if met else f"{100 * (1 - value / at_least):.0f}% short"
    else:
        assert at_most is not None
        met = value <= at_most
        how = (
            f"{100 * (1 - value / at_most):.0f}% under the limit"
            if met
            else f"{100 * (value / at_most - 1):.0f}% over the limit"
        )
    return f"**{'met' if met else 'NOT met'}** ({how})"


def _linearity_verdict(linearity: dict[str, float], *, max_slope: float, max_miss: float) -> str:
    """Whether time is linear in length: the log-log slope at the top at most ``max_slope`` and
    every point within ``max_miss`` (a fraction) of the affine fit (see :func:`_linearity`)."""
    met = linearity["top_slope"] <= max_slope and linearity["max_residual"] <= max_miss
    return (
        f"**{'met' if met else 'NOT met'}** "
        f"(criterion: slope ≤ {max_slope} and fit within {100 * max_miss:.0f}%)"
    )


def _long_batch_row(inprocess: dict[str, Any]) -> dict[str, Any] | None:
    """The in-process row of long texts in batches of 64 (the throughput targets), if measured."""
    return next((r for r in inprocess["rows"] if r["length"] == "long" and r["batch"] == 64), None)


def _largest_worker_rss(http: dict[str, Any]) -> int | None:
    """The largest worker RSS in bytes after the load runs and after the 10,000 requests."""
    rss = [w["rss"] for w in http.get("worker_memory_after_load", [])]
    rss += [w["rss"] for w in http.get("ten_thousand", {}).get("after", [])]
    return max(rss) if rss else None


def _bytes_per_reference(rows: list[dict[str, Any]]) -> float | None:
    """RSS after scoring added per reference, in bytes, between the first and the last row of the
    memory-vs-references runs; None with fewer than two rows."""
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    return (last["rss_after_scoring"] - first["rss_after_scoring"]) / (
        last["references"] - first["references"]
    )


def _linearity(length_rows: list[dict[str, Any]]) -> dict[str, float]:
    """How linear time is in length: an affine fit t = a + b·n and the log-log slope at the top.

    ``top_slope`` is d log t / d log n between the two longest texts (1 is linear,
    above 1 superlinear); ``max_residual`` the largest relative miss of the
    affine least-squares fit (weighted by 1/t, so each point counts alike).
    """
    points = [(r["mean_chars"], r["median_ms_off"]) for r in length_rows]
    # Weighted least squares for t ≈ a + b n, weights 1/t (relative error).
    sw = sum(1 / t**2 for _, t in points)
    sx = sum(n / t**2 for n, t in points)
    sy = sum(1 / t for _, t in points)
    sxx = sum(n * n / t**2 for n, t in points)
    sxy = sum(n / t for n, t in points)
    b = (sw * sxy - sx * sy) / (sw * sxx - sx * sx)
    a = (sy - b * sx) / sw
    residual = max(abs(a + b * n - t) / t for n, t in points)
    (n1, t1), (n2, t2) = points[-2], points[-1]
    by_chars = {r["chars"]: r for r in length_rows}
    per = [
        by_chars[c]["median_ms_off"] * 1000 / (by_chars[c]["mean_chars"] / 1000)
        if c in by_chars
        else math.nan
        for c in (10_000, 100_000)
    ]
    return {
        "top_slope": math.log(t2 / t1) / math.log(n2 / n1),
        "max_residual": residual,
        "fixed_ms": a,
        "us_per_1000_chars": b * 1000 * 1000,
        "per_1000_at_10k": per[0],
        "per_1000_at_100k": per[1],
    }


# -- figures ----------------------------------------------------------------------------------------


def _figure(path: Path, title: str, machine: str, draw: Callable[[Any], None]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    draw(ax)
    ax.set_title(title, fontsize=11)
    fig.text(0.5, 0.01, machine, ha="center", fontsize=7, color="#444444", wrap=True)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _figures(results: dict[str, Any], docs: Path) -> dict[str, str]:
    made: dict[str, str] = {}
    growth = _section(results, "growth")
    if growth:
        machine = "Measured on " + machine_line(results["sections"]["growth"]["machine"])
        rows = growth["length"]

        def length_plot(ax: Any) -> None:
            xs = [r["mean_chars"] for r in rows]
            ax.loglog(xs, [r["median_ms_off"] for r in rows], "o-", label="explain off")
            ax.loglog(xs, [r["median_ms_on"] for r in rows], "s--", label="explain on")
            lin = _linearity(rows)
            ax.loglog(
                xs,
                [lin["fixed_ms"] + lin["us_per_1000_chars"] * x / 1e6 for x in xs],
                ":",
                color="gray",
                label=f"fit {lin['fixed_ms']:.2f} ms + {lin['us_per_1000_chars']:.0f} µs per 1,000 chars",
            )
            ax.set_xlabel("text length (characters)")
            ax.set_ylabel("ms per text (one text per call, median)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()

        _figure(docs / "bench-length.png", "Scoring time vs text length", machine, length_plot)
        made["length"] = "bench-length.png"
        batch_rows = growth["batch"]

        def batch_plot(ax: Any) -> None:
            for length in ("short", "long"):
                sel = [r for r in batch_rows if r["length"] == length]
                ax.semilogx(
                    [r["batch"] for r in sel],
                    [r["texts_per_second"] for r in sel],
                    "o-",
                    base=2,
                    label=f"{length} texts ({sel[0]['chars']} chars)",
                )
            ax.set_xlabel("texts per call (batch size)")
            ax.set_ylabel("texts per second (median), explain off")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()

        _figure(docs / "bench-batch.png", "Throughput vs batch size (one process)", machine, batch_plot)
        made["batch"] = "bench-batch.png"
        ref_rows = growth["references"]

        def ref_plot(ax: Any) -> None:
            xs = [r["references"] for r in ref_rows]
            ax.plot(xs, [r["rss_after_scoring"] / MIB for r in ref_rows], "o-", label="after scoring (all)")
            ax.plot(xs, [r["rss_loaded"] / MIB for r in ref_rows], "s--", label="after loading")
            ax.set_xlabel("number of references")
            ax.set_ylabel("RSS of the app process (MiB)")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            ax.legend()

        _figure(docs / "bench-references.png", "Memory vs number of references", machine, ref_plot)
        made["references"] = "bench-references.png"
    inproc = _section(results, "inprocess")
    if inproc:
        machine = "Measured on " + machine_line(results["sections"]["inprocess"]["machine"])
        rows = inproc["rows"]

        def peer_plot(ax: Any) -> None:
            labels = [f"{r['length']}\nbatch {r['batch']}" for r in rows]
            xs = list(range(len(rows)))
            width = 0.2
            series = [
                ("service, explain off", [r["median_off"] for r in rows]),
                ("service, explain on", [r["median_on"] for r in rows]),
            ]
            for threads, _ in sorted(rows[0]["peer_median"].items()):
                series.append(
                    (f"MiniLM peer, {threads} thread(s)", [r["peer_median"][threads] for r in rows])
                )
            for k, (label, values) in enumerate(series):
                ax.bar([x + (k - (len(series) - 1) / 2) * width for x in xs], values, width, label=label)
            ax.set_yscale("log")
            ax.set_xticks(xs, labels)
            ax.set_ylabel("texts per second (median, log scale)")
            ax.grid(True, axis="y", which="both", alpha=0.3)
            ax.legend(fontsize=8)

        _figure(docs / "bench-peer.png", "discourse-compare vs all-MiniLM-L6-v2 cosine", machine, peer_plot)
        made["peer"] = "bench-peer.png"
    return made


# -- document ---------------------------------------------------------------------------------------


@functools.cache
def _template() -> jinja2.Template:
    """:data:`TEMPLATE`, compiled once; undefined fields raise instead of rendering empty."""
    filters: dict[str, Callable[..., str]] = {"fmt": _fmt, "fixed": _fixed, "grouped": _grouped, "mib": _mib}
    strict = {name: _strict(number_format) for name, number_format in filters.items()}
    return markdown_template(TEMPLATE.read_text(encoding="utf-8"), filters=strict)


def render(results: dict[str, Any], figures: dict[str, str]) -> str:
    """The Markdown document for ``results`` (the shape ``bench/run_all.py`` writes:
    ``{"sections": {name: {"data", "error", "load", "machine", "code", "finished"}}, "quick"}``).

    ``figures`` maps ``length``, ``batch``, ``references`` and ``peer`` to the image files
    :func:`write` drew (relative to the document); a missing key leaves its image out. A section
    that did not run or failed is said to be missing. A measured section lacking a field the
    document needs is an error naming it: ``jinja2.UndefinedError`` from the layout, ``KeyError``
    from the values computed here (the linear fit, the largest RSS and the like).
    """
    data = {name: _section(results, name) for name in SECTIONS}
    inprocess, http, growth = data["inprocess"], data["http"], data["growth"]
    return _template().render(
        **data,
        meta={name: _meta(results, name) for name in SECTIONS},
        quick=bool(results.get("quick")),
        figures=figures,
        long64=_long_batch_row(inprocess) if inprocess else None,
        peer_threads=sorted(inprocess["rows"][0]["peer_median"]) if inprocess else [],
        runs={r["label"]: r for r in http["runs"]} if http else {},
        largest_rss=_largest_worker_rss(http) if http else None,
        linearity=_linearity(growth["length"]) if growth else None,
        bytes_per_reference=_bytes_per_reference(growth["references"]) if growth else None,
        verdict=_verdict,
        linearity_verdict=_linearity_verdict,
        machine_line=machine_line,
    )


def write(results: dict[str, Any], out: Path) -> None:
    """Write the report and its figures (next to it)."""
    docs = out.parent
    docs.mkdir(parents=True, exist_ok=True)
    figures = _figures(results, docs)
    out.write_text(render(results, figures), encoding="utf-8")
