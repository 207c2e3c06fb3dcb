"""Render bench/results/results.json into docs/benchmarks.md and the figures in docs/."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import machine_line

MIB = 2**20


def _section(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    section = results.get("sections", {}).get(name)
    if not section or section.get("error") or not section.get("data"):
        return None
    return section["data"]


def _meta(results: dict[str, Any], name: str) -> dict[str, Any] | None:
    return results.get("sections", {}).get(name)


def _fmt(x: float, digits: int = 1) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


# -- targets ----------------------------------------------------------------------------------------


def _target_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    inproc = _section(results, "inprocess")
    http = _section(results, "http")
    growth = _section(results, "growth")

    def verdict(value: float, limit: float, higher_is_better: bool, unit: str) -> str:
        met = value >= limit if higher_is_better else value <= limit
        if higher_is_better:
            how = f"{value / limit:.1f}× the target" if met else f"{100 * (1 - value / limit):.0f}% short"
        else:
            how = (
                f"{100 * (1 - value / limit):.0f}% under the limit"
                if met
                else f"{100 * (value / limit - 1):.0f}% over the limit"
            )
        return f"**{'met' if met else 'NOT met'}** ({how})"

    if inproc:
        long64 = next((r for r in inproc["rows"] if r["length"] == "long" and r["batch"] == 64), None)
        if long64:
            v = long64["median_off"]
            rows.append(
                (
                    "Long texts (2,000 chars) in batches of 64, explain off: ≥ 300 texts/s per process",
                    f"{_fmt(v)} texts/s",
                    verdict(v, 300, True, "texts/s"),
                )
            )
            v = long64["median_on"]
            rows.append(
                (
                    "Same, explain on: ≥ 100 texts/s per process",
                    f"{_fmt(v)} texts/s",
                    verdict(v, 100, True, "texts/s"),
                )
            )
    else:
        rows.append(("In-process throughput targets", "not measured", "—"))
    if http:
        runs = {r["label"]: r for r in http["runs"]}
        sat = runs.get("single-saturation")
        sat_off = runs.get("single-saturation-no-recycling")
        if sat:
            also = (
                f"; with worker recycling off: {_fmt(sat_off['rps'])} req/s ({sat_off['failures']} failed)"
                if sat_off
                else ""
            )
            rows.append(
                (
                    "Single-text HTTP, 2 workers: ≥ 200 req/s at saturation",
                    f"{_fmt(sat['rps'])} req/s with the default settings ({sat['failures']} failed){also}",
                    verdict(sat["rps"], 200, True, "req/s"),
                )
            )
        fixed = runs.get("single-100rps")
        fixed_off = runs.get("single-100rps-no-recycling")
        if fixed:
            also = (
                f"; with worker recycling off: p99 {fixed_off['p99_ms']:.0f} ms "
                f"({fixed_off['failures']} failed)"
                if fixed_off
                else ""
            )
            rows.append(
                (
                    "Single-text HTTP at 100 req/s offered: p99 ≤ 50 ms",
                    f"p99 {fixed['p99_ms']:.0f} ms with the default settings (p50 {fixed['p50_ms']:.0f}, "
                    f"p95 {fixed['p95_ms']:.0f}; {fixed['failures']} failed){also}",
                    verdict(fixed["p99_ms"], 50, False, "ms"),
                )
            )
        batch = runs.get("batch64-4rps")
        if batch:
            rows.append(
                (
                    "64 long texts per request over HTTP (4 req/s offered): p99 ≤ 400 ms",
                    f"p99 {batch['p99_ms']:.0f} ms (p50 {batch['p50_ms']:.0f}; {batch['failures']} failed)",
                    verdict(batch["p99_ms"], 400, False, "ms"),
                )
            )
        rss = [w["rss"] for key in ("worker_memory_after_load",) for w in http.get(key, [])]
        rss += [w["rss"] for w in http.get("ten_thousand", {}).get("after", [])]
        if rss:
            worst = max(rss) / MIB
            rows.append(
                (
                    "One worker ≤ 200 MB RSS (after load and after 10,000 requests)",
                    f"largest {worst:.0f} MiB ({max(rss) / 1e6:.0f} MB)",
                    verdict(max(rss) / 1e6, 200, False, "MB"),
                )
            )
        if http.get("startup_seconds"):
            v = http["startup_median"]
            rows.append(
                (
                    "Ready ≤ 2 s after start (process start to first /readyz 200)",
                    f"{v:.2f} s (median of {len(http['startup_seconds'])} starts)",
                    verdict(v, 2.0, False, "s"),
                )
            )
    else:
        rows.append(("HTTP, memory and start-up targets", "not measured", "—"))
    if growth:
        lin = _linearity(growth["length"])
        ok = lin["top_slope"] <= 1.15 and lin["max_residual"] <= 0.2
        rows.append(
            (
                "Time linear in text length (100 to 100,000 chars)",
                f"t ≈ {lin['fixed_ms']:.2f} ms + {lin['us_per_1000_chars']:.0f} µs per 1,000 chars, every "
                f"point within {100 * lin['max_residual']:.0f}% of that line; log-log slope between the two "
                f"longest texts {lin['top_slope']:.2f} (1 = linear)",
                f"**{'met' if ok else 'NOT met'}** (criterion: slope ≤ 1.15 and fit within 20%)",
            )
        )
    return rows


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
        machine = "Measured on " + machine_line(_meta(results, "growth")["machine"])
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
        machine = "Measured on " + machine_line(_meta(results, "inprocess")["machine"])
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


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _where(results: dict[str, Any], name: str) -> str:
    meta = _meta(results, name)
    if not meta:
        return ""
    load = meta["load"]
    return (
        f"*Measured {meta['finished']} on {machine_line(meta['machine'])}; BLAS: {meta['machine']['blas']}; "
        f"code {meta['code']}. During this section ({load['seconds']:.0f} s) other processes used "
        f"{100 * load['other_share']:.0f}% of the machine's CPU time.*"
    )


def _missing(results: dict[str, Any], name: str) -> str:
    meta = _meta(results, name)
    if meta and meta.get("error"):
        return f"*This section failed in the last run: `{meta['error']}`.*"
    return "*Not measured in the last run.*"


def write(results: dict[str, Any], out: Path) -> None:
    """Write the report and its figures (next to it)."""
    docs = out.parent
    docs.mkdir(parents=True, exist_ok=True)
    figures = _figures(results, docs)
    parts: list[str] = []
    add = parts.append
    add("# Benchmarks\n")
    add(
        "Generated by `python bench/run_all.py` (in the service venv with the `bench` extra, after "
        "`bash bench/setup_peer_venv.sh`; see [bench/README.md](../bench/README.md)). Do not edit by hand: "
        "re-run the suite. Every timing is a median of several rounds; each section names the machine "
        "it ran on and how much CPU other processes took meanwhile (the machine is shared: a section "
        "with a large share is worth re-running with `--only SECTION`)."
    )
    if results.get("quick"):
        add("\n> **These are `--quick` results: shortened runs, not for quoting.**")
    add("\n## Targets\n")
    add(_table(["Target", "Measured", "Verdict"], [list(r) for r in _target_rows(results)]))

    add("\n## What the profile shows\n")
    prof = _section(results, "profile")
    if prof:
        add(_where(results, "profile") + "\n")
        add(
            "pyinstrument (0.5 ms sampling) over `Scorer.score`; shares are of the time inside "
            "`Scorer.score`, steps under 1.5% left out; indented rows are parts of the row above.\n"
        )
        for case in prof["cases"]:
            rate = case["texts"] / case["seconds"]
            add(f"**{case['case']}** ({rate:.0f} texts/s under the profiler)\n")
            rows = [
                [
                    ("  ↳ " if s["depth"] else "") + f"`{s['function']}` ({s['file']})",
                    f"{100 * s['share']:.0f}%",
                ]
                for s in case["steps"]
            ]
            add(_table(["Step", "Share"], rows) + "\n")
        add(PROFILE_NOTES)
    else:
        add(_missing(results, "profile"))

    add("\n## In process: discourse-compare vs the MiniLM peer\n")
    inproc = _section(results, "inprocess")
    if inproc:
        add(_where(results, "inprocess") + "\n")
        info = inproc["peer_info"]
        add(
            f"The service: `Scorer.score` in this process (full scoring: similarity, stance overall and "
            f"per claim of the default reference, 9 claims), one BLAS thread as in a gunicorn worker. "
            f"The peer: cosine similarity of all-MiniLM-L6-v2 sentence embeddings (text vs the reference "
            f"body and vs each claim), {info['package']}, sentence-transformers "
            f"{info['sentence_transformers']}, torch {info['torch']}, in its own venv and process "
            f"(bench/peer.py), at 1 torch thread (one core, like one service process) and at "
            f"{info['default_threads']} (torch's default here: the whole machine). The peer truncates "
            f"texts at {info['max_seq_length']} word pieces (about 1,000-1,200 characters), so it reads only "
            "part of each long text. Same generated news-like texts for both (the peer, much slower, scores "
            "the first few of each round's texts); rounds alternate service and peer. Texts/s, medians of "
            f"{inproc['rows'][0]['rounds']} rounds:\n"
        )
        header = ["Texts", "Batch", "Service, explain off", "Service, explain on"]
        threads = sorted(inproc["rows"][0]["peer_median"])
        header += [f"Peer, {t} thread(s)" for t in threads]
        header += [f"Ratio off ÷ peer ({t})" for t in threads]
        rows = []
        for r in inproc["rows"]:
            row = [f"{r['length']} (~{r['mean_chars']:.0f} chars)", str(r["batch"])]
            row += [_fmt(r["median_off"]), _fmt(r["median_on"])]
            row += [_fmt(r["peer_median"][t]) for t in threads]
            row += [f"{r['median_off'] / r['peer_median'][t]:.0f}×" for t in threads]
            rows.append(row)
        add(_table(header, rows))
        if "peer" in figures:
            add(f"\n![service vs peer]({figures['peer']})\n")
        add(
            f"\nPeer process RSS after the run: {inproc['peer_rss_bytes'] / MIB:.0f} MiB; "
            f"model load: {info['load_seconds']:.1f} s."
        )
    else:
        add(_missing(results, "inprocess"))

    add("\n## Over HTTP\n")
    http = _section(results, "http")
    if http:
        add(_where(results, "http") + "\n")
        add(
            "The Procfile command as it is (gunicorn, `service.http.gunicorn_config`: gthread workers, "
            "preloaded app) with `WEB_CONCURRENCY=2`, bound to 127.0.0.1 through `GUNICORN_CMD_ARGS`, "
            "with rate limiting off (`DISCOURSE_RATE_LIMIT_ENABLED=false`: the load comes from one "
            "address) and everything else at its defaults (worker recycling after "
            "`DISCOURSE_MAX_REQUESTS` requests included). Load: locust "
            f"{_meta(results, 'http')['machine']['versions'].get('locust', '?')}, headless, "
            "`FastHttpUser`, one "
            "keep-alive connection per user, on the same 2 cores as the server; each request is checked "
            "(status 200 and one result per text). Saturation runs are closed-loop users with no wait; "
            "fixed-rate runs use paced users, each on its own fixed timeline with phases spread over the "
            "period (locust's `constant_throughput` lets users fall into step after any stall and then "
            "send in bursts, which measured p99 in the hundreds of ms for the same offered rate). Statistics "
            "exclude the ramp-up (`--reset-stats`); locust rounds percentiles above 100 ms to 2 "
            "significant digits.\n"
        )
        rows = []
        for r in http["runs"]:
            offered = (
                "saturation" if r["rate_per_user"] == 0 else f"{r['users'] * r['rate_per_user']:.0f} req/s"
            )
            rows.append(
                [
                    r["label"],
                    str(r["users"]),
                    offered,
                    f"{r['seconds']:.0f} s",
                    str(r["requests"]),
                    str(r["failures"]),
                    _fmt(r["rps"]),
                    f"{r['p50_ms']:.0f}",
                    f"{r['p95_ms']:.0f}",
                    f"{r['p99_ms']:.0f}",
                    f"{r['max_ms']:.0f}",
                    f"{100 * r['locust_cpu_seconds'] / r['seconds']:.0f}%",
                ]
            )
        add(
            _table(
                [
                    "Run",
                    "Users",
                    "Offered",
                    "Duration",
                    "Requests",
                    "Failed",
                    "Req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "locust CPU (of one core)",
                ],
                rows,
            )
        )
        add(
            "\n`single-*`: one text of ~200 characters per request. `batch64-*`: 64 texts of ~2,000 "
            "characters per request (≈ 130 kB body), explain off. `*-no-recycling`: a second server "
            "with `DISCOURSE_MAX_REQUESTS=0`, everything else the same."
        )
        boots = http.get("worker_boots_during_load")
        if boots is not None:
            add(
                f"\nWith the default settings gunicorn replaced workers {boots} time(s) during the runs "
                "above (`DISCOURSE_MAX_REQUESTS`: a worker is replaced after about 1,000 requests). "
                "The difference between the default and the `*-no-recycling` rows is the measured cost "
                "of that; its parts (the fork of the preloaded master, reconnections, a new worker's "
                "cold heap: see the note on `MALLOC_TOP_PAD_` below) were not measured separately."
            )
        if http.get("cross_check"):
            add(HTTP_CROSS_CHECK_INTRO)
            add(
                _table(
                    ["Client", "Connections", "Offered", "Requests", "Non-200", "p50 ms", "p95 ms", "p99 ms"],
                    [
                        [
                            c["client"],
                            str(c["connections"]),
                            f"{c['offered']:.0f} req/s",
                            str(c["requests"]),
                            str(c["non_200"]),
                            f"{c['p50_ms']:.1f}",
                            f"{c['p95_ms']:.1f}",
                            f"{c['p99_ms']:.1f}",
                        ]
                        for c in http["cross_check"]
                    ],
                )
            )
    else:
        add(_missing(results, "http"))

    add("\n## Memory and start-up\n")
    if http:
        add(_where(results, "http") + "\n")
        rows = []
        for key, label in (
            ("worker_memory_idle", "idle, before any request"),
            ("worker_memory_after_load", "after the load runs above (workers then serving)"),
        ):
            for w in http.get(key, []):
                pss = f"{w['pss'] / MIB:.0f}" if w.get("pss") else "—"
                rows.append([label, str(w["pid"]), f"{w['rss'] / MIB:.0f}", pss])
        ten = http.get("ten_thousand")
        if ten:
            for stage in ("before", "after"):
                for w in ten[stage]:
                    pss = f"{w['pss'] / MIB:.0f}" if w.get("pss") else "—"
                    rows.append(
                        [
                            (
                                "before any request (recycling off)"
                                if stage == "before"
                                else f"after {ten.get('served_in_all', ten['requests']):,} requests "
                                "(recycling off)"
                            ),
                            str(w["pid"]),
                            f"{w['rss'] / MIB:.0f}",
                            pss,
                        ]
                    )
        add(_table(["When", "Worker pid", "RSS MiB", "PSS MiB"], rows))
        if ten:
            add(
                f"\nOn the server with recycling off, after the two comparison runs, {ten['requests']:,} "
                f"more single-text requests (4 client threads) took {ten['seconds']:.0f} s with "
                f"{ten['non_200']} non-200 answers; the same two workers served all "
                f"{ten.get('served_in_all', ten['requests']):,} requests: "
                f"{'yes' if ten['same_workers'] else 'no'}. RSS counts pages shared with the "
                "master (the preloaded model) in every worker; PSS splits them between the processes."
            )
        starts = ", ".join(f"{s:.2f}" for s in http["startup_seconds"])
        add(
            f"\nStart-up, process start to the first `/readyz` 200 (polled every 5 ms): median "
            f"{http['startup_median']:.2f} s over {len(http['startup_seconds'])} starts ({starts} s)."
        )
    else:
        add(_missing(results, "http"))

    add("\n## Cost growth\n")
    growth = _section(results, "growth")
    if growth:
        add(_where(results, "growth") + "\n")
        add("### Time vs text length\n")
        add("One text per call, default reference, medians of 5 rounds.\n")
        rows = [
            [
                f"{r['chars']:,}",
                f"{r['median_ms_off']:.2f}",
                f"{r['median_ms_on']:.2f}",
                f"{r['us_per_1000_chars_off']:.0f}",
            ]
            for r in growth["length"]
        ]
        add(_table(["Characters", "ms explain off", "ms explain on", "µs per 1,000 chars (off)"], rows))
        lin = _linearity(growth["length"])
        add(
            f"\nA straight line fits: t ≈ {lin['fixed_ms']:.2f} ms + {lin['us_per_1000_chars']:.0f} µs per "
            f"1,000 characters (least squares, relative error), every point within "
            f"{100 * lin['max_residual']:.0f}%; the log-log slope between the two longest texts is "
            f"{lin['top_slope']:.2f} (1 is linear). Below a few thousand characters the fixed cost per "
            "call dominates."
        )
        if "length" in figures:
            add(f"\n![time vs length]({figures['length']})\n")
        add("### Time vs batch size\n")
        rows = [
            [r["length"], str(r["batch"]), f"{r['median_ms_per_batch']:.1f}", _fmt(r["texts_per_second"])]
            for r in growth["batch"]
        ]
        add(_table(["Texts", "Batch", "ms per call", "Texts/s"], rows))
        if "batch" in figures:
            add(f"\n![throughput vs batch size]({figures['batch']})\n")
        add("### Memory vs number of references\n")
        add(
            "A fresh process per row builds the app (`create_app()`) with `DISCOURSE_SEEDS_DIR` set to a "
            "temporary directory of generated reference files (~12,000 characters and 9 claims each), "
            "then scores 16 long texts against every reference with explain on.\n"
        )
        rows = [
            [
                str(r["references"]),
                f"{r['load_seconds']:.2f}",
                f"{r['rss_loaded'] / MIB:.0f}",
                f"{r['rss_after_scoring'] / MIB:.0f}",
            ]
            for r in growth["references"]
        ]
        add(_table(["References", "Load s", "RSS loaded MiB", "RSS after scoring MiB"], rows))
        refs = growth["references"]
        if len(refs) >= 2:
            per = (refs[-1]["rss_after_scoring"] - refs[0]["rss_after_scoring"]) / (
                refs[-1]["references"] - refs[0]["references"]
            )
            add(f"\nAbout {per / MIB:.2f} MiB per additional reference.")
        if "references" in figures:
            add(f"\n![memory vs references]({figures['references']})\n")
    else:
        add(_missing(results, "growth"))

    add("\n## Before and after the speed work\n")
    add(SPEED_WORK)
    base = _section(results, "baseline")
    if base:
        add(_where(results, "baseline") + "\n")
        add(
            f"In-process texts/s with `service/domain/{{encoding,pair_features,evidence,scorer}}.py`, the "
            f"artifact loader and `models/` as at `{base['rev']}` (over the current tree) and as now, each "
            "in its own process, alternated. Since model 2.0.0 the two sides also differ by model (the "
            "current one computes 40 features, not 25, and a wording score, and since model 3.0.0 it "
            "averages five small networks with its trees), so the ratio is the speed work and the model "
            "changes together.\n"
        )
        rows = [
            [
                r["config"],
                _fmt(r["before"]),
                _fmt(r["after"]),
                f"{r['speedup']:.2f}×",
                _fmt(r["after_top_pad"]) if "after_top_pad" in r else "—",
            ]
            for r in base["rows"]
        ]
        add(
            _table(
                ["Configuration", "Before", "After", "Speed-up", "After, MALLOC_TOP_PAD_=64 MiB"],
                rows,
            )
        )
        add(MALLOC_NOTE)
    else:
        add(_missing(results, "baseline"))
    add("")
    out.write_text("\n".join(parts) + "\n", encoding="utf-8")


PROFILE_NOTES = """
Reading the profile. For **one short text per call** no single step dominates: what is left is a
fixed cost per call (about 2 ms) spread over many small sparse-matrix steps in
`TextEncoder.encode` (building the count, TF-IDF, BM25 and negation matrices and their two
small products) and in `compute_pair_features` (seven products with the claims, through
`cross`), plus the stance stage (`predict_proba` in `service/domain/stance.py`: a tree
ensemble of 600 trees advanced level by level with numpy indexing, averaged since model 3.0.0
with five small networks that cost a few dense products) and the result objects. Per-text
Python loops and the O(2^20) transposes that dominated before are gone. For **batches of long
texts** the work is linear in the text: character n-gram hashing (`hashed_char_wb_counts`
inside `_char_tfidf`) is the largest step, then sentence splitting (`split_sentences` in
`service/domain/text.py`) and tokenising (`Pattern.findall` and the vocabulary look-ups in
`encode`'s list comprehension); the stance stage is the second largest step overall, its tree
ensemble a candidate for whoever owns `stance.py` (for example one matrix product per class
instead of a boolean column selection and sum per class, if its numbers may change in the last
bits).
BLAS plays no part: the dense products are tiny, and every worker runs one BLAS thread.
"""

HTTP_CROSS_CHECK_INTRO = """
Cross-check of the fixed-rate latency with a minimal client (Python threads, `http.client`,
one keep-alive connection each, open-loop schedule spread over the period, same payloads),
to separate the server's latency from the load generator's own scheduling delays:
"""

SPEED_WORK = """
What changed in `service/domain` (outputs bit-for-bit identical: `python bench/equivalence.py check
--rev ae60f22` at `000eb8d`, with model 1.0.0, compared every score and a hash of every raw array on
~430 varied texts):

* **Character n-gram hashing** (`encoding.hashed_char_wb_counts`): scikit-learn's `HashingVectorizer`
  builds one Python string per n-gram and hashes each in turn; it is replaced by the same
  computation on arrays (UTF-8 bytes of all texts at once, every n-gram inside a padded word,
  MurmurHash3 in numpy, one sort to count). Same matrix, checked against scikit-learn on
  random Unicode text for several n-gram ranges and table sizes; scikit-learn is still
  used for text it cannot encode (lone surrogates).
* **Products with a reference** (`encoding.cross`): `texts @ claims.T` transposed the claims'
  hashed character vectors (2^20 columns) on every request, O(2^20) per product. Each
  reference's matrices now carry a factor compacted to the columns they use, built once when
  the `Scorer` is made (before gunicorn forks); the product keeps the text side's entry
  order, so every sum is the same sequence of floating-point operations.
* **Fixed cost per call**: row normalisation calls scikit-learn's kernel directly (its
  input validation cost more than the work for one text); count matrices, owner matrices,
  row selections and zero-dropping are built from arrays instead of through scipy's COO
  conversion and fancy indexing (same entries, same order); `clean` is skipped for text it
  would not change; the result objects are built from Python lists instead of numpy scalars.
* A side effect: a request whose texts all have no sentence (only invisible characters,
  e.g. a zero-width space) used to raise inside `sklearn.preprocessing.normalize` (HTTP 500);
  it now scores like any other wordless text (warning `no_words`).
"""

MALLOC_NOTE = """
The last column runs the current code with glibc told to keep 64 MiB above the heap top
(`MALLOC_TOP_PAD_`). Batches allocate and free arrays of a few MB (the tree ensemble's
per-row × per-tree arrays above all); with glibc's defaults a fresh process returns that
memory to the system after every call and faults it in again on the next, which costs up
to a third of the batch throughput. glibc raises its thresholds by itself once the process
has freed a larger block, so a long-running worker that has scored a large batch runs at
the padded speed, one that has not (or was just recycled) at the plain one. Setting
`MALLOC_TOP_PAD_` (or `MALLOC_TRIM_THRESHOLD_`) in the server's environment is a
deployment choice, not made here; every other figure in this document is measured without
it, each section in a fresh process.
"""
