"""`python -m benchmarks` (`make bench`): every contender side by side, results and a summary.

Starts its own Kafka broker on free ports (stopped by pid at the end), trains one model into a
temporary registry, fills the same events into a JSON and an Avro topic and a Parquet file,
runs every contender `--repeats` times, and writes benchmarks/results/<timestamp>.{json,md,png}
and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.contenders import CONTENDERS, LATENCY_DEFAULT, Contender, pick
from benchmarks.harness import (
    BenchError,
    BenchSettings,
    Context,
    child_env,
    new_run_id,
    prepare,
    profile_run,
    run_all,
)
from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings
from scorestream.signals import interrupt_on_sigterm
from scorestream.spark import SparkSettings

ROOT = Path(__file__).resolve().parent.parent
NOTES = Path(__file__).resolve().parent / "NOTES.md"


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        msg = f"--rates takes comma-separated events per second such as 1000,10000, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not rates or any(r <= 0 for r in rates):
        msg = f"--rates must be positive numbers, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return rates


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="scorer variants and peers side by side: throughput, latency, memory",
    )
    d = BenchSettings()
    p.add_argument("--events", type=_positive, default=d.events, help="pre-filled events")
    p.add_argument("--repeats", type=_positive, default=d.repeats, help="runs per figure (median)")
    p.add_argument(
        "--contenders",
        default="all",
        help=f"comma-separated subset of: {', '.join(CONTENDERS)} (default all)",
    )
    p.add_argument(
        "--latency-contenders",
        default=",".join(LATENCY_DEFAULT),
        help="streaming contenders measured at fixed rates, among --contenders ('all' for "
        "every one; default: the scorer's modes, Spark's JSON floor in both modes, peer B)",
    )
    p.add_argument("--rates", type=_rates, default=d.rates, help="events/s")
    p.add_argument(
        "--latency-seconds", type=float, default=d.latency_seconds, help="seconds per rate"
    )
    p.add_argument(
        "--max-offsets-per-trigger",
        type=_positive,
        default=d.max_offsets_per_trigger,
        help="the scorer's cap on records per micro-batch",
    )
    p.add_argument(
        "--realtime-checkpoint",
        default=d.realtime_checkpoint,
        help="the real-time contenders' checkpoint interval (each interval ends a long batch)",
    )
    p.add_argument(
        "--driver-memory",
        default=d.driver_memory,
        help="the Spark contenders' driver memory (their JVM heap in local mode; default "
        "scorestream's)",
    )
    p.add_argument(
        "--profile",
        default="scorer-json,scorer-onesink,spark-json",
        help="contenders profiled (JFR on the JVM, py-spy on the driver) over one batch of "
        "--profile-events after a warm-up batch; empty for none",
    )
    p.add_argument("--profile-events", type=_positive, default=100_000)
    p.add_argument("--train-rows", type=_positive, default=20_000)
    p.add_argument("--bootstrap", default="", help="use this broker instead of starting one")
    p.add_argument("--registry", type=Path, default=None, help="use this trained registry")
    p.add_argument(
        "--card", type=Path, default=None, help="its coefficients card (with --registry)"
    )
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument(
        "--summary",
        default=str(ROOT / "BENCHMARKS.md"),
        help="where the latest summary goes (empty: none)",
    )
    p.add_argument("--work-dir", type=Path, default=None, help="scratch (default: a temp dir)")
    return p


def machine() -> dict[str, Any]:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem / 2**30, 1),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _train(work: Path, rows: int, log: Any) -> tuple[Path, Path]:
    import subprocess

    registry, card = work / "registry", work / "model-card.json"
    log(f"training one model ({rows} rows) into {registry} ...")
    cmd = [sys.executable, "-m", "benchmarks.worker", "prepare", "--registry", str(registry)]
    cmd += ["--card", str(card), "--rows", str(rows)]
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=1800, check=False, env=child_env()
    )
    if done.returncode != 0:
        msg = f"training the benchmark model failed:\n{done.stderr[-2000:]}"
        raise ScorestreamError(msg)
    return registry, card


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # A SIGTERM ends the run as Ctrl-C does: the running contender and the broker are stopped
    # by the code that started them, not left behind.
    previous = interrupt_on_sigterm()
    try:
        return run(args, argv if argv is not None else sys.argv[1:])
    except ScorestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        print(
            f"interrupted ({exc or 'Ctrl-C'}): the contender and the broker were stopped",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace, argv: list[str]) -> int:
    from scorestream.stack import LocalKafka, StackSettings, free_port_block

    contenders = pick(args.contenders)
    latency_for = {c.name for c in pick(args.latency_contenders)}
    settings = BenchSettings(
        events=args.events,
        repeats=args.repeats,
        rates=args.rates,
        latency_seconds=args.latency_seconds,
        max_offsets_per_trigger=args.max_offsets_per_trigger,
        realtime_checkpoint=args.realtime_checkpoint,
        driver_memory=args.driver_memory,
    )
    if (args.registry is None) != (args.card is None):
        msg = "--registry and --card go together (a trained registry and its coefficients card)"
        raise ScorestreamError(msg)

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    started = dt.datetime.now(dt.UTC)
    before = machine()
    log(f"machine: {before['cores']} cores, {before['memory_gib']} GiB, load {before['load_avg']}")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="scorestream-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    broker: LocalKafka | None = None
    try:
        if args.bootstrap:
            kafka = KafkaSettings(bootstrap=args.bootstrap)
        else:
            broker = LocalKafka(
                StackSettings(state_dir=work / "stack", port=free_port_block(1), heap="1g")
            )
            broker.up()
            kafka = broker.kafka
            log(f"broker up on {kafka.bootstrap}")
        if args.registry is not None:
            registry, card = args.registry, args.card
        else:
            registry, card = _train(work, args.train_rows, log)
        ctx = Context(kafka=kafka, registry=registry, card=card, work=work, run_id=new_run_id())
        ctx.log = log
        fill_timing = prepare(ctx, settings)
        runs = run_all(ctx, contenders, latency_for, settings)
        profiles = profile_all(ctx, pick(args.profile) if args.profile else [], settings, args)
    finally:
        if broker is not None:
            broker.down()
    after = machine()
    summary = report.summarise(runs, settings.rates)
    goals = report.targets(summary, runs)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    command = "python -m benchmarks " + shlex.join(argv) if argv else "python -m benchmarks"
    result = {
        "started": started.isoformat(),
        "finished": dt.datetime.now(dt.UTC).isoformat(),
        "command": command,
        "machine": {**before, "load_avg_after": after["load_avg"]},
        "settings": {
            **{k: v for k, v in settings.__dict__.items()},
            "run_id": ctx.run_id,
            "contenders": [c.name for c in contenders],
            "latency_contenders": sorted(latency_for & {c.name for c in contenders}),
        },
        "fill": fill_timing,
        "summary": summary,
        "targets": goals,
        "runs": runs,
        "profiles": profiles,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    base = args.results_dir / stamp
    base.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str), "utf-8")
    report.chart(summary, settings.rates, base.with_suffix(".png"))
    markdown = render(result, base.with_suffix(".png").name, base.with_suffix(".json").name)
    base.with_suffix(".md").write_text(markdown, encoding="utf-8")
    if args.summary:
        summary_md = render(
            result,
            os.path.relpath(base.with_suffix(".png"), Path(args.summary).resolve().parent),
            os.path.relpath(base.with_suffix(".json"), Path(args.summary).resolve().parent),
            notes=True,
        )
        Path(args.summary).write_text(summary_md, encoding="utf-8")
    log(f"results: {base}.json, .md, .png" + (f"; summary {args.summary}" if args.summary else ""))
    print(report.table(summary, settings.rates))
    if args.work_dir is None:
        shutil.rmtree(work, ignore_errors=True)
    failed = [r for r in runs if "error" in r]
    return 1 if failed else 0


def profile_all(
    ctx: Context, contenders: list[Contender], settings: BenchSettings, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """One profiled run per contender; a failure is recorded, not hidden."""
    profiles = []
    for c in contenders:
        ctx.log(f"{c.name}: profile of a {args.profile_events:,}-event batch ...")
        try:
            profiles.append(profile_run(ctx, c, settings, args.profile_events))
        except (BenchError, ScorestreamError) as exc:
            ctx.log(f"  failed: {exc}")
            profiles.append({"contender": c.name, "error": str(exc)})
    return profiles


DEFAULT_HEAP = f"scorestream's default ({SparkSettings.driver_memory})"


def render(result: dict[str, Any], png: str, js: str, notes: bool = False) -> str:
    m = result["machine"]
    s = result["settings"]
    rates = tuple(s["rates"])
    errors = [
        f"- {r['contender']} {r['kind']} #{r['repeat']}: {r['error'].splitlines()[0]}"
        for r in result["runs"]
        if "error" in r
    ]
    parts = [
        "# Benchmarks" if notes else f"# Benchmark run {result['started']}",
        "",
        "Command (one run, one broker, one model, the same events for every contender):",
        "",
        f"```\n{result['command']}\n```",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, "
        f"load average (1/5/15 min) {m['load_avg']} at the start and {m['load_avg_after']} at "
        f"the end; Python {m['python']}. Run {result['started']} – {result['finished']}.",
        "",
        f"{s['events']:,} pre-filled events per throughput run; latency at "
        f"{', '.join(f'{int(r):,}' for r in rates)} events/s for {s['latency_seconds']:g} s each; "
        f"{s['repeats']} repeat(s); figures are median (min–max) over repeats; ratios are taken "
        f"within the same repeat. Scorer micro-batches capped at "
        f"{s['max_offsets_per_trigger']:,} records. Real-time contenders checkpoint every "
        f"{s.get('realtime_checkpoint') or '5 seconds'}; the Spark contenders' driver memory "
        f"(their JVM heap) is {s.get('driver_memory') or DEFAULT_HEAP}.",
        "",
        report.table(result["summary"], rates),
        "",
        "## Targets",
        "",
        report.targets_table(result["targets"]),
        "",
        "## Where the scorer's time goes (Spark query progress, mean ms per batch)",
        "",
        report.profile_table(result["runs"]),
        "",
        *report.profiles_section(result.get("profiles", [])),
        f"Chart: [{png}]({png}). Raw runs: [{js}]({js}).",
    ]
    if errors:
        parts += ["", "## Failed runs", "", *errors]
    if notes and NOTES.exists():
        parts += ["", NOTES.read_text(encoding="utf-8").strip()]
    return "\n".join(parts) + "\n"
