"""From runs to figures: medians with min and max, same-repeat ratios, targets, tables, chart."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import CONTENDERS

MiB = 2**20


def spread(values: list[float]) -> dict[str, float] | None:
    """Median, min, max and n of the finite values (None when there are none)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    return {
        "median": float(np.median(finite)),
        "min": float(min(finite)),
        "max": float(max(finite)),
        "n": len(finite),
    }


def _ok(run: dict[str, Any]) -> bool:
    return "error" not in run


def summarise(runs: list[dict[str, Any]], rates: tuple[float, ...]) -> dict[str, Any]:
    """Per contender: throughput, memory, latency per rate, ratios vs peer B and peer A."""
    names = list(dict.fromkeys(r["contender"] for r in runs))
    tp: dict[str, dict[int, float]] = {}
    for r in runs:
        if r["kind"] == "throughput" and _ok(r):
            tp.setdefault(r["contender"], {})[r["repeat"]] = r["throughput"]
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for r in runs if r["contender"] == name]
        tps = [r for r in mine if r["kind"] == "throughput" and _ok(r)]
        lats = [r for r in mine if r["kind"] == "latency" and _ok(r)]
        entry: dict[str, Any] = {
            "label": CONTENDERS[name].label if name in CONTENDERS else name,
            "throughput": spread([r["throughput"] for r in tps]),
            "throughput_incl_start": spread([r["throughput_incl_start"] for r in tps]),
            "peak_rss_mib": spread([r["peak_rss_bytes"] / MiB for r in tps]),
            "peak_rss_mib_latency_runs": spread([r["peak_rss_bytes"] / MiB for r in lats]),
            "errors": [r["error"] for r in mine if not _ok(r)],
            "all_scored": all(r["distinct"] == r["events"] for r in tps) and bool(tps),
        }
        for peer in ("peer-b", "peer-a", "spark-json"):
            ratios = [
                tp[name][rep] / tp[peer][rep]
                for rep in tp.get(name, {})
                if rep in tp.get(peer, {}) and tp[peer][rep] > 0
            ]
            entry[f"ratio_vs_{peer.replace('-', '_')}"] = spread(ratios)
        latency: dict[str, Any] = {}
        for rate in rates:
            key = f"{int(rate)}"
            figures = [r["rates"].get(key, {}) for r in lats]
            latency[key] = {
                q: spread([f[q] for f in figures if q in f])
                for q in ("p50_ms", "p95_ms", "p99_ms", "max_ms")
            }
            latency[key]["received_all"] = bool(figures) and all(
                f.get("received", 0) >= f.get("sent", 1) for f in figures
            )
        entry["latency"] = latency if lats else {}
        out[name] = entry
    return out


def _cost(summary: dict[str, Any], variant: str, base: str, runs: list[dict[str, Any]]) -> Any:
    """1 - variant/base throughput, per repeat (same repeat), as a spread."""
    tp: dict[str, dict[int, float]] = {}
    for r in runs:
        if r["kind"] == "throughput" and _ok(r):
            tp.setdefault(r["contender"], {})[r["repeat"]] = r["throughput"]
    costs = [
        1 - tp[variant][rep] / tp[base][rep]
        for rep in tp.get(variant, {})
        if rep in tp.get(base, {})
    ]
    return spread(costs)


def targets(summary: dict[str, Any], runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, each met / missed / not measured, with the figure."""
    rows: list[dict[str, Any]] = []

    def add(name: str, figure: dict[str, float] | None, goal: str, met: Any, unit: str) -> None:
        rows.append(
            {
                "target": name,
                "goal": goal,
                "figure": figure,
                "unit": unit,
                "status": "not measured"
                if figure is None
                else ("met" if met(figure) else "missed"),
            }
        )

    scorer = summary.get("scorer-json", {})
    add(
        "scorer throughput >= peer A",
        scorer.get("ratio_vs_peer_a"),
        "ratio >= 1.0",
        lambda f: f["median"] >= 1.0,
        "x peer A",
    )
    add(
        "scorer throughput >= 0.8x Spark's own JSON pass-through",
        scorer.get("ratio_vs_spark_json"),
        "ratio >= 0.8",
        lambda f: f["median"] >= 0.8,
        "x spark-json",
    )
    floor = (summary.get("peer-b", {}).get("latency") or {}).get("1000", {}).get("p99_ms")
    add(
        "harness floor: peer B p99 at 1,000 ev/s",
        floor,
        "< 20 ms",
        lambda f: f["median"] < 20,
        "ms",
    )
    mb = (scorer.get("latency") or {}).get("1000", {}).get("p99_ms")
    add("micro-batch p99 at 1,000 ev/s", mb, "<= 500 ms", lambda f: f["median"] <= 500, "ms")
    rt = (summary.get("scorer-realtime", {}).get("latency") or {}).get("1000", {}).get("p99_ms")
    add("real-time p99 at 1,000 ev/s", rt, "< 100 ms", lambda f: f["median"] < 100, "ms")
    # `score --trigger realtime` runs its metrics query by default: the p99 a user sees.
    mon = (summary.get("scorer-realtime-mon", {}).get("latency") or {}).get("1000", {})
    add(
        "real-time p99 at 1,000 ev/s, with its metrics query",
        mon.get("p99_ms"),
        "< 100 ms",
        lambda f: f["median"] < 100,
        "ms",
    )
    add(
        "drift monitoring cost",
        _cost(summary, "scorer-drift", "scorer-json", runs),
        "<= 10% of throughput",
        lambda f: f["median"] <= 0.10,
        "fraction",
    )
    add(
        "exactly-once cost",
        _cost(summary, "scorer-eo", "scorer-json", runs),
        "<= 30% of throughput",
        lambda f: f["median"] <= 0.30,
        "fraction",
    )
    add(
        "scorer peak RSS (driver + JVM)",
        scorer.get("peak_rss_mib"),
        "<= 1536 MiB",
        lambda f: f["max"] <= 1536,
        "MiB",
    )
    return rows


# -- rendering -------------------------------------------------------------------------------
def _fmt(s: dict[str, float] | None, digits: int = 0, scale: float = 1.0) -> str:
    if s is None:
        return "n/a"
    f = f"{{:,.{digits}f}}"
    med, lo, hi = (f.format(s[k] * scale) for k in ("median", "min", "max"))
    return med if s["n"] == 1 else f"{med} ({lo}–{hi})"


def table(summary: dict[str, Any], rates: tuple[float, ...]) -> str:
    """The Markdown table: one row per contender, median (min–max) per figure."""
    head = [
        "contender",
        "sustained ev/s",
        "× peer B",
        "× peer A",
        "ev/s incl. start",
        "peak RSS MiB",
    ]
    for rate in rates:
        head += [f"p50 @{int(rate):,}/s ms", f"p99 @{int(rate):,}/s ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, e in summary.items():
        row = [
            f"{name} ({e['label']})",
            _fmt(e["throughput"]),
            _fmt(e["ratio_vs_peer_b"], 2),
            _fmt(e["ratio_vs_peer_a"], 2),
            _fmt(e["throughput_incl_start"]),
            _fmt(e["peak_rss_mib"]),
        ]
        for rate in rates:
            lat = (e.get("latency") or {}).get(f"{int(rate)}", {})
            row += [_fmt(lat.get("p50_ms")), _fmt(lat.get("p99_ms"))]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| target | goal | measured (median, min–max) | status |", "|---|---|---|---|"]
    for r in rows:
        if r["unit"] == "fraction":
            shown = _fmt(r["figure"], 1, 100.0) + " %" if r["figure"] else "n/a"
        else:
            shown = _fmt(r["figure"], 2 if r["unit"].startswith("x") else 0)
            shown += f" {r['unit']}" if r["figure"] else ""
        lines.append(f"| {r['target']} | {r['goal']} | {shown} | **{r['status']}** |")
    return "\n".join(lines)


# The scorer's own phases per batch (streaming/job.py BatchStats.phases).
PHASES = ("plan", "write", "count")


def profile_table(runs: list[dict[str, Any]]) -> str:
    """Spark's per-trigger durations of the micro-batch scorer runs (mean ms per batch)."""
    keys = (
        "triggerExecution",
        "addBatch",
        "walCommit",
        "commitOffsets",
        "queryPlanning",
        "getBatch",
        "latestOffset",
    )
    lines = [
        "| run | batches | rows/batch | "
        + " | ".join(keys)
        + " | foreachBatch s (mean) | plan / write / count s (mean) |",
        "|" + "---|" * (len(keys) + 5),
    ]
    for r in runs:
        if not _ok(r) or not r.get("report", {}).get("progress", {}).get("batches"):
            continue
        p = r["report"]["progress"]
        per = p["per_batch_ms"]
        fb = r["report"].get("foreach_batch_s", {})
        cells = [f"{per.get(k, 0):,.0f}" for k in keys]
        # The scorer's own phases (streaming/job.py); count runs after the write, overlapped.
        phases = fb.get("phases_mean", {})
        steps = " / ".join(f"{phases[k]:.2f}" if k in phases else "n/a" for k in PHASES)
        lines.append(
            f"| {r['contender']} {r['kind']} #{r['repeat']} | {p['batches']} | "
            f"{p['rows'] / p['batches']:,.0f} | " + " | ".join(cells) + f" | "
            f"{fb.get('mean', float('nan')):.2f} | {steps} |"
        )
    return "\n".join(lines)


def _frames(rows: list[list[Any]]) -> str:
    return "<br>".join(f"{share:.0%} `{frame}`" for frame, share in rows[:8]) or "–"


def profiles_section(profiles: list[dict[str, Any]]) -> list[str]:
    """The top frames of each profiled contender (benchmarks/profile.py), as markdown lines."""
    if not profiles:
        return []
    lines = [
        "## Profiles (one steady-state batch each)",
        "",
        "Share of samples whose innermost frame (self) or any frame (inclusive) is the one "
        "shown: Java Flight Recorder on the contender's JVM, py-spy (100 Hz, running threads "
        "only) on its Python driver. How they are taken: benchmarks/profile.py.",
        "",
        "| contender | batch | process | samples | self | inclusive |",
        "| --- | ---: | --- | ---: | --- | --- |",
    ]
    for p in profiles:
        if "error" in p:
            lines.append(f"| {p['contender']} | | failed: {p['error'].splitlines()[0]} | | | |")
            continue
        for side, label in (("jvm", "JVM (JFR)"), ("python", "driver (py-spy)")):
            if side in p:
                s = p[side]
                lines.append(
                    f"| {p['contender']} | {p['window_events']:,} events in {p['seconds']:.1f} s "
                    f"| {label} | {s['samples']:,} | {_frames(s['self'])} "
                    f"| {_frames(s['inclusive'])} |"
                )
        lines += [f"| {p['contender']} | | note: {e} | | | |" for e in p.get("errors", [])]
    return [*lines, ""]


def chart(summary: dict[str, Any], rates: tuple[float, ...], path: Path) -> None:
    """Throughput (median, min–max bars) and latency p50/p99 per contender, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    fig, axes = plt.subplots(1, 1 + len(rates), figsize=(6 + 5 * len(rates), 5))
    ax = axes[0]
    med = [(summary[n]["throughput"] or {}).get("median", 0) for n in names]
    lo = [
        m - (summary[n]["throughput"] or {}).get("min", m) for n, m in zip(names, med, strict=True)
    ]
    hi = [
        (summary[n]["throughput"] or {}).get("max", m) - m for n, m in zip(names, med, strict=True)
    ]
    ax.bar(names, med, yerr=[lo, hi], capsize=4, color="#4878a8")
    ax.set_title("sustained throughput (events/s)")
    ax.tick_params(axis="x", rotation=45)
    for i, rate in enumerate(rates, start=1):
        ax = axes[i]
        key = f"{int(rate)}"
        with_lat = [n for n in names if (summary[n].get("latency") or {}).get(key)]
        x = np.arange(len(with_lat))
        for j, (q, color) in enumerate((("p50_ms", "#6aa84f"), ("p99_ms", "#cc4125"))):
            vals = [
                ((summary[n]["latency"][key].get(q)) or {}).get("median", np.nan) for n in with_lat
            ]
            ax.bar(x + (j - 0.5) * 0.4, vals, width=0.4, label=q.replace("_ms", ""), color=color)
        ax.set_xticks(x, with_lat, rotation=45)
        ax.set_yscale("log")
        ax.set_title(f"end-to-end latency at {int(rate):,} events/s (ms, log)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
