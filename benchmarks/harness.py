"""The benchmark run: one broker, one model, the same events, every contender in turn.

Per repeat, each contender gets a throughput run (its own process over the pre-filled topic, to
its own output topic) and, if it streams, a latency run (its own process on an empty topic fed
at fixed rates, a subscriber process timing arrivals). Contenders alternate within a repeat so
a change of machine load hits all of them, and ratios are taken within the same repeat.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.contenders import Contender
from benchmarks.events import fill, paced, paced_producer
from benchmarks.measure import PeakRss, high_watermarks, read_output
from scorestream.errors import ScorestreamError
from scorestream.kafka import KafkaSettings, ensure_topics
from scorestream.streaming.realtime import RealtimeSettings

WARM_SEED = 90
WARM_EVENTS = 1_000
WARM_RATE = 500.0


class BenchError(ScorestreamError):
    """A contender failed to start, crashed, or did not score every event in time."""


def rate_seed(rate: float) -> int:
    return 1_000_000 + int(rate)


@dataclass(frozen=True)
class BenchSettings:
    # 300,000 events and 10 s per rate keep a default run of every contender, 3 repeats, near
    # an hour on 2 cores; "sustained" throughput leaves the first tenth of the output out.
    events: int = 300_000
    repeats: int = 3
    rates: tuple[float, ...] = (1_000.0, 10_000.0)
    latency_seconds: float = 10.0
    max_offsets_per_trigger: int = 100_000
    realtime_checkpoint: str = RealtimeSettings.checkpoint_interval  # scorestream's default
    driver_memory: str = ""  # "": scorestream's default (SparkSettings.driver_memory)
    start_timeout_s: float = 600.0
    seed: int = 7


@dataclass
class Context:
    """What every run shares: broker, model, card, pre-filled topics, events file."""

    kafka: KafkaSettings
    registry: Path
    card: Path
    work: Path
    run_id: str
    fill_topics: dict[str, str] = field(default_factory=dict)
    events_file: Path | None = None
    log: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)


ROOT = Path(__file__).resolve().parent.parent


def child_env() -> dict[str, str]:
    """The environment of a contender: the repository importable from any working directory."""
    path = os.environ.get("PYTHONPATH", "")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
    }


class Proc:
    """A contender process in its own session; JSON lines on stdout are its reports."""

    def __init__(self, cmd: list[str], log_path: Path) -> None:
        self.cmd = cmd
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - the child writes to it
        env = child_env()
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
        self.pid = self.proc.pid
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                data = json.loads(line)
                if isinstance(data, dict) and "event" in data:
                    with self._lock:
                        self.events.append(data)

    def event(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return next((e for e in self.events if e["event"] == name), None)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_event(self, name: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.event(name)
            if found is not None:
                return found
            if not self.alive():
                self._reader.join(timeout=5)
                found = self.event(name)
                if found is not None:
                    return found
                raise BenchError(self._died(f"exited (status {self.proc.returncode})"))
            time.sleep(0.1)  # polling the child's reports with a deadline
        raise BenchError(self._died(f"sent no {name!r} within {timeout_s:.0f} s"))

    def _died(self, what: str) -> str:
        from scorestream.stack import log_tail

        return f"{' '.join(self.cmd[1:4])} {what}; last lines of {self.log_path}:\n" + log_tail(
            self.log_path, 15
        )

    def stop(self, timeout_s: float = 180.0) -> int:
        """SIGTERM, wait; then SIGKILL the process group this process leads."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        # The JVM of a PySpark driver is in the same session: make sure nothing is left.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._reader.join(timeout=10)
        self._log.close()
        return int(self.proc.returncode or 0)


def _topics(ctx: Context, name: str, partitions: int = 2) -> tuple[str, str, str]:
    base = f"bench-{ctx.run_id}-{name}"
    names = (f"{base}-in", f"{base}-out", f"{base}-out.dlq")
    ensure_topics(ctx.kafka, names, partitions=partitions)
    return names


def prepare(ctx: Context, settings: BenchSettings) -> dict[str, Any]:
    """Fill one topic per input format (the same events) and the Parquet copy."""
    ctx.events_file = ctx.work / "events.parquet"
    ctx.fill_topics = {fmt: f"bench-{ctx.run_id}-events-{fmt}" for fmt in ("json", "avro")}
    ensure_topics(ctx.kafka, ctx.fill_topics.values(), partitions=2)
    ctx.log(f"filling {settings.events} events into {', '.join(ctx.fill_topics.values())} ...")
    timing = fill(ctx.kafka, ctx.fill_topics, settings.events, settings.seed, ctx.events_file)
    ctx.log(f"filled in {timing['fill_s']:.1f} s")
    return timing


def throughput_run(
    ctx: Context, c: Contender, settings: BenchSettings, repeat: int
) -> dict[str, Any]:
    """N events from the pre-filled topic: events / (last output - ready)."""
    n = settings.events
    tag = f"{c.name}-tp{repeat}"
    load = os.getloadavg()[0]
    if c.kind == "batch":
        return _batch_run(ctx, settings, tag, load)
    source = ctx.fill_topics[c.input_format]
    _, output, dead = _topics(ctx, tag)
    cmd = c.command(
        ctx.kafka.bootstrap,
        ctx.registry,
        ctx.card,
        ctx.work / "checkpoints" / tag,
        (source, output, dead),
        settings.max_offsets_per_trigger,
        settings.realtime_checkpoint,
        settings.driver_memory,
    )
    proc = Proc(cmd, ctx.work / "logs" / f"{tag}.log")
    try:
        with PeakRss(proc.pid) as rss:
            ready = proc.wait_event("ready", settings.start_timeout_s)
            deadline = time.monotonic() + settings.start_timeout_s + n / 1_000
            _wait_written(ctx, proc, (output, dead), n, deadline)
            check = read_output(ctx.kafka, output, n, 120 + n / 20_000, committed=c.committed)
            peak = rss.peak
    finally:
        proc.stop()
    done = proc.event("done") or {}
    seconds = check.last_ms / 1000 - float(ready["t"])
    incl_start = n / seconds if seconds > 0 else float("nan")
    sustained = check.sustained()
    # A tiny run can put all its output in one millisecond: no span to measure a rate over.
    basis = "sustained" if math.isfinite(sustained) else "incl_start"
    return {
        "contender": c.name,
        "repeat": repeat,
        "events": n,
        "records": check.records,
        "distinct": check.distinct,
        "dead_lettered": high_watermarks(ctx.kafka, dead),
        "seconds": seconds,
        "throughput": sustained if basis == "sustained" else incl_start,
        "throughput_basis": basis,
        "throughput_incl_start": incl_start,
        "peak_rss_bytes": peak,
        "load_avg_1m": load,
        "report": {k: v for k, v in done.items() if k not in ("event", "t")},
    }


def _wait_written(
    ctx: Context, proc: Proc, topics: tuple[str, str], n: int, deadline: float
) -> None:
    """Until the contender has written `n` records to its output and dead-letter topics."""
    while sum(high_watermarks(ctx.kafka, t) for t in topics) < n:
        if not proc.alive():
            raise BenchError(proc._died(f"exited before writing {n} records"))
        if time.monotonic() > deadline:
            raise BenchError(proc._died(f"did not write {n} records in time"))
        time.sleep(0.5)  # polling end offsets with a deadline


def profile_run(ctx: Context, c: Contender, settings: BenchSettings, window: int) -> dict[str, Any]:
    """`c` in batches of `window` events, profiled over the second batch (benchmarks/profile.py)."""
    from benchmarks.profile import Profiler

    if settings.events < 2 * window:
        msg = f"profiling {window}-event batches needs {2 * window} events, not {settings.events}"
        raise BenchError(msg)
    tag = f"{c.name}-profile"
    _, output, dead = _topics(ctx, tag)
    source = ctx.fill_topics[c.input_format]
    checkpoint = ctx.work / "checkpoints" / tag
    cmd = c.command(
        ctx.kafka.bootstrap,
        ctx.registry,
        ctx.card,
        checkpoint,
        (source, output, dead),
        window,
        settings.realtime_checkpoint,
        settings.driver_memory,
    )
    proc = Proc(cmd, ctx.work / "logs" / f"{tag}.log")
    try:
        proc.wait_event("ready", settings.start_timeout_s)
        deadline = time.monotonic() + settings.start_timeout_s + 2 * window / 1_000
        _wait_written(ctx, proc, (output, dead), window, deadline)  # start-up and warm-up
        profiler = Profiler(proc.pid, ctx.work / "profiles" / c.name)
        started = time.monotonic()
        profiler.start()
        try:
            _wait_written(ctx, proc, (output, dead), 2 * window, deadline)
        finally:
            seconds = time.monotonic() - started
            found = profiler.stop()
    finally:
        proc.stop()
    return {"contender": c.name, "window_events": window, "seconds": seconds, **found}


def _batch_run(ctx: Context, settings: BenchSettings, tag: str, load: float) -> dict[str, Any]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    assert ctx.events_file is not None
    out = ctx.work / "batch" / tag
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.worker",
        "batch",
        "--registry",
        str(ctx.registry),
        "--input",
        str(ctx.events_file),
        "--output",
        str(out),
    ]
    proc = Proc(cmd, ctx.work / "logs" / f"{tag}.log")
    try:
        with PeakRss(proc.pid) as rss:
            ready = proc.wait_event("ready", settings.start_timeout_s)
            done = proc.wait_event("done", settings.start_timeout_s + settings.events / 1_000)
            peak = rss.peak
    finally:
        proc.stop()
    table = pq.read_table(str(out), columns=["event_id", "score"])
    seconds = float(done["finished"]) - float(ready["t"])
    return {
        "contender": "spark-batch",
        "repeat": int(tag.rsplit("tp", 1)[1]),
        "events": settings.events,
        "records": table.num_rows,
        "distinct": len(pc.unique(table.column("event_id"))),
        "dead_lettered": table.num_rows - int(pc.sum(pc.is_valid(table.column("score"))).as_py()),
        "seconds": seconds,
        "throughput": settings.events / seconds if seconds > 0 else float("nan"),
        "throughput_basis": "incl_start",
        "throughput_incl_start": settings.events / seconds if seconds > 0 else float("nan"),
        "peak_rss_bytes": peak,
        "load_avg_1m": load,
        "report": {},
    }


def latency_run(ctx: Context, c: Contender, settings: BenchSettings, repeat: int) -> dict[str, Any]:
    """A fresh topic fed at each fixed rate; latency = arrival at a subscriber - event time."""
    tag = f"{c.name}-lat{repeat}"
    load = os.getloadavg()[0]
    source, output, dead = _topics(ctx, tag)
    status, result = ctx.work / "lat" / f"{tag}.status", ctx.work / "lat" / f"{tag}.json"
    sub_cmd = [
        sys.executable,
        "-m",
        "benchmarks.measure",
        "subscribe",
        "--bootstrap",
        ctx.kafka.bootstrap,
        "--topic",
        output,
        "--out",
        str(result),
        "--status",
        str(status),
    ]
    if c.committed:
        sub_cmd.append("--committed")
    status.parent.mkdir(parents=True, exist_ok=True)
    subscriber = Proc(sub_cmd, ctx.work / "logs" / f"{tag}-subscriber.log")
    cmd = c.command(
        ctx.kafka.bootstrap,
        ctx.registry,
        ctx.card,
        ctx.work / "checkpoints" / tag,
        (source, output, dead),
        settings.max_offsets_per_trigger,
        settings.realtime_checkpoint,
        settings.driver_memory,
    )
    proc = Proc(cmd, ctx.work / "logs" / f"{tag}.log")
    phases: dict[str, dict[str, float]] = {}
    try:
        with PeakRss(proc.pid) as rss:
            producer = paced_producer(ctx.kafka, source)  # warm before anything is timed
            proc.wait_event("ready", settings.start_timeout_s)
            paced(ctx.kafka, source, c.input_format, WARM_EVENTS, WARM_RATE, WARM_SEED, producer)
            _wait_arrivals(proc, status, str(WARM_SEED), WARM_EVENTS, settings.start_timeout_s)
            for rate in settings.rates:
                count = int(rate * settings.latency_seconds)
                sent = paced(
                    ctx.kafka, source, c.input_format, count, rate, rate_seed(rate), producer
                )
                _wait_arrivals(proc, status, str(rate_seed(rate)), count, 120 + count / 500)
                phases[_rate_key(rate)] = {"sent": count, "producer_behind_s": sent["max_behind_s"]}
            peak = rss.peak
    finally:
        proc.stop()
        subscriber.stop()
    data = json.loads(result.read_text(encoding="utf-8"))
    lat = data["latencies_ms"]
    for rate in settings.rates:
        values = np.asarray(lat.get(str(rate_seed(rate)), []), dtype=float)
        figures = phases[_rate_key(rate)]
        figures["received"] = float(len(values))
        if len(values):
            for q in (50, 95, 99):
                figures[f"p{q}_ms"] = float(np.percentile(values, q))
            figures["max_ms"] = float(values.max())
    done = proc.event("done") or {}
    return {
        "contender": c.name,
        "repeat": repeat,
        "rates": phases,
        "duplicates": data["duplicates"],
        "dead_lettered": high_watermarks(ctx.kafka, dead),
        "peak_rss_bytes": peak,
        "load_avg_1m": load,
        "report": {k: v for k, v in done.items() if k not in ("event", "t")},
    }


def _rate_key(rate: float) -> str:
    return f"{int(rate)}"


def _wait_arrivals(proc: Proc, status: Path, phase: str, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            seen = int(json.loads(status.read_text(encoding="utf-8")).get(phase, 0))
        if seen >= count:
            return
        if not proc.alive():
            raise BenchError(proc._died(f"exited with {seen} of {count} events of phase {phase}"))
        time.sleep(0.2)  # polling the subscriber's count with a deadline
    raise BenchError(proc._died(f"delivered {seen} of {count} events of phase {phase} in time"))


def run_all(
    ctx: Context,
    contenders: list[Contender],
    latency_for: set[str],
    settings: BenchSettings,
) -> list[dict[str, Any]]:
    """Every run of every contender; a failed run is recorded with its error, not hidden.

    Each repeat starts one contender later in the list than the one before, so no contender
    always runs first (after the fill or a batch run) or always after the same neighbour."""
    runs: list[dict[str, Any]] = []
    for repeat in range(1, settings.repeats + 1):
        shift = (repeat - 1) % len(contenders) if contenders else 0
        for c in contenders[shift:] + contenders[:shift]:
            kinds = ["throughput"] + (["latency"] if c.latency and c.name in latency_for else [])
            for kind in kinds:
                started = time.monotonic()
                ctx.log(f"[repeat {repeat}/{settings.repeats}] {c.name}: {kind} ...")
                try:
                    fn = throughput_run if kind == "throughput" else latency_run
                    run = fn(ctx, c, settings, repeat)
                except (BenchError, ScorestreamError) as exc:
                    run = {"contender": c.name, "repeat": repeat, "error": str(exc)}
                    ctx.log(f"  failed: {exc}")
                run["kind"] = kind
                run["wall_s"] = time.monotonic() - started
                runs.append(run)
                ctx.log("  " + _brief(run))
    return runs


def _brief(run: dict[str, Any]) -> str:
    if "error" in run:
        return "error"
    if run["kind"] == "throughput":
        return (
            f"{run['throughput']:,.0f} ev/s sustained, "
            f"{run['throughput_incl_start']:,.0f} ev/s from ready "
            f"({run['distinct']}/{run['events']} distinct, "
            f"{run['records']} records, peak {run['peak_rss_bytes'] / 2**20:,.0f} MiB, "
            f"load {run['load_avg_1m']:.1f})"
        )
    nan = float("nan")
    parts = [
        f"{rate}/s p50 {f.get('p50_ms', nan):.0f} p99 {f.get('p99_ms', nan):.0f} ms"
        for rate, f in run["rates"].items()
    ]
    return "; ".join(parts)


def new_run_id() -> str:
    return uuid.uuid4().hex[:8]
