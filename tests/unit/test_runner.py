"""The QueryRunner with fake strategies: the order, signals, failures, the two strategies."""

from __future__ import annotations

import os
import signal
from types import FrameType, SimpleNamespace
from typing import Any

import pytest

from scorestream.errors import ConfigError, ScorestreamError
from scorestream.streaming import runner as runner_module
from scorestream.streaming.listeners import Totals
from scorestream.streaming.runner import MicroBatch, QueryRunner, RealTime

pytestmark = pytest.mark.unit


class Fake:
    """A strategy that writes down each call; `ticks` active() calls before the query ends,
    `signal_at` the active() call that sends a signal to this process."""

    stop_note = "stopping after the current batch"

    def __init__(
        self,
        calls: list[str],
        ticks: int = 3,
        signal_at: int | None = None,
        signum: int = signal.SIGTERM,
        failure: str = "",
        start_error: Exception | None = None,
    ) -> None:
        self.calls = calls
        self.ticks = ticks
        self.signal_at = signal_at
        self.signum = signum
        self.failure = failure
        self.start_error = start_error
        self.polls = 0

    def start(self) -> None:
        self.calls.append("start")
        if self.start_error is not None:
            raise self.start_error

    def wait_ready(self, timeout_s: float) -> None:
        self.calls.append(f"wait_ready {timeout_s:g}")

    def started(self) -> str:
        self.calls.append("started")
        return "scoring in -> out"

    def active(self) -> bool:
        self.polls += 1
        if self.calls[-1] != "active":
            self.calls.append("active")
        if self.polls == self.signal_at:
            os.kill(os.getpid(), self.signum)
        return self.polls <= self.ticks

    def raise_if_failed(self) -> None:
        self.calls.append("raise_if_failed")
        if self.failure:
            msg = f"the scoring query failed: {self.failure}"
            raise ScorestreamError(msg)

    def stop(self) -> None:
        self.calls.append("stop")

    def report(self) -> str:
        self.calls.append("report")
        return "stopped: 3 records in"


class Unhandled(Exception):
    """A stop signal reached the test's own handler: the runner did not install its own."""


@pytest.fixture
def guarded() -> Any:
    """SIGTERM and SIGINT raise Unhandled unless the runner handles them; restored after."""

    def refuse(signum: int, _frame: FrameType | None) -> None:
        raise Unhandled(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, refuse) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield refuse
    for sig, handler in before.items():
        signal.signal(sig, handler)


def _runner(strategy: Any, calls: list[str], said: list[str]) -> QueryRunner:
    closers = [lambda: calls.append("close monitor"), lambda: calls.append("close loop")]
    return QueryRunner(strategy, closers=closers, say=said.append, poll_s=0.01)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_gracefully_and_reports(signum: int, guarded: Any) -> None:
    calls: list[str] = []
    said: list[str] = []
    # The query would fail, but a stop asked for silences failures (as Scorer.stop does).
    fake = Fake(calls, ticks=1_000, signal_at=2, signum=signum, failure="late")
    assert _runner(fake, calls, said).run() == 0
    assert calls == ["start", "started", "active", "stop", "close monitor", "close loop", "report"]
    name = signal.Signals(signum).name
    assert said == [
        "scoring in -> out",
        f"\n{name}: stopping after the current batch",
        "stopped: 3 records in",
    ]
    assert fake.polls == 2  # the loop ended at the signal, not after its 1,000 ticks
    # The caller's handlers are back once the run is over.
    assert signal.getsignal(signal.SIGTERM) is guarded
    assert signal.getsignal(signal.SIGINT) is guarded


def test_a_failed_query_is_raised_after_everything_stopped(guarded: Any) -> None:
    calls: list[str] = []
    said: list[str] = []
    fake = Fake(calls, ticks=2, failure="NullPointerException in the sink")
    with pytest.raises(ScorestreamError, match="failed: NullPointerException in the sink"):
        _runner(fake, calls, said).run()
    assert calls == [
        "start",
        "started",
        "active",
        "raise_if_failed",
        "stop",
        "close monitor",
        "close loop",
    ]
    assert said == ["scoring in -> out"]  # no "stopped" line after a failure


def test_a_query_that_ends_cleanly_by_itself_reports(guarded: Any) -> None:
    calls: list[str] = []
    said: list[str] = []
    assert _runner(Fake(calls, ticks=2), calls, said).run() == 0
    assert calls[-5:] == ["raise_if_failed", "stop", "close monitor", "close loop", "report"]
    assert said[-1] == "stopped: 3 records in"


def test_a_failed_start_stops_and_closes_and_is_raised(guarded: Any) -> None:
    calls: list[str] = []
    said: list[str] = []
    fake = Fake(calls, start_error=ConfigError("topic 'in' is missing"))
    with pytest.raises(ConfigError, match="topic 'in' is missing"):
        _runner(fake, calls, said).run()
    assert calls == ["start", "stop", "close monitor", "close loop"]
    assert said == []


def test_start_waits_ready_when_asked_and_stop_runs_once() -> None:
    calls: list[str] = []
    runner = _runner(Fake(calls), calls, [])
    runner.start(ready_timeout_s=120)
    runner.stop()
    runner.stop()
    assert calls == ["start", "wait_ready 120", "stop", "close monitor", "close loop"]


def test_closers_run_when_the_strategy_fails_to_stop() -> None:
    calls: list[str] = []
    fake = Fake(calls)

    def broken_stop() -> None:
        calls.append("stop")
        msg = "broker gone"
        raise ScorestreamError(msg)

    fake.stop = broken_stop  # type: ignore[method-assign]
    with pytest.raises(ScorestreamError, match="broker gone"):
        _runner(fake, calls, []).stop()
    assert calls == ["stop", "close monitor", "close loop"]


def _settings() -> Any:
    return SimpleNamespace(
        input_topic="features",
        output_topic="scores",
        topics=SimpleNamespace(dead_letter="features.dlq"),
        checkpoint_dir="/ckpt",
    )


def test_micro_batch_lines() -> None:
    totals = Totals(batches=4, records_in=1_000, scored=990, dead_lettered=10)
    scorer = SimpleNamespace(settings=_settings(), holder=SimpleNamespace(version=3), totals=totals)
    strategy = MicroBatch(scorer, metrics_url="http://127.0.0.1:9108/metrics")  # type: ignore[arg-type]
    assert strategy.started() == (
        "scoring features -> scores (dead letters: features.dlq) with model v3; "
        "checkpoint /ckpt; metrics on http://127.0.0.1:9108/metrics"
    )
    assert strategy.report() == (
        "stopped: 1000 records in, 990 scored, 10 dead-lettered in 4 batches"
    )


class Query:
    def __init__(self, name: str, calls: list[str]) -> None:
        self.name, self.calls = name, calls

    def start(self) -> None:
        self.calls.append(f"start {self.name}")

    def stop(self) -> None:
        self.calls.append(f"stop {self.name}")


def _realtime(calls: list[str], cores: int) -> tuple[RealTime, Query]:
    scorer: Any = Query("realtime", calls)
    scorer.settings = _settings()
    scorer.spark = SimpleNamespace(sparkContext=SimpleNamespace(defaultParallelism=cores))
    scorer.version = 2
    scorer.realtime = SimpleNamespace(checkpoint_interval="5 seconds")
    watcher = Query("watcher", calls)
    return RealTime(scorer, kafka=None, watcher=watcher), watcher  # type: ignore[arg-type]


def test_realtime_stops_the_metrics_query_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "topic_partitions", lambda _kafka, _topic: 2)
    calls: list[str] = []
    strategy, _ = _realtime(calls, cores=3)
    strategy.start()
    strategy.stop()
    assert calls == ["start realtime", "start watcher", "stop watcher", "stop realtime"]
    assert strategy.started() == (
        "real-time scoring features -> scores (dead letters: features.dlq) with model v2 "
        "(fixed until restart); checkpoint /ckpt every 5 seconds"
    )
    assert strategy.report() == "stopped"


def test_realtime_without_a_slot_for_its_metrics_stops_and_refuses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "topic_partitions", lambda _kafka, _topic: 2)
    calls: list[str] = []
    strategy, _ = _realtime(calls, cores=2)
    with pytest.raises(ConfigError, match=r"needs 3 task slots .* but Spark has 2"):
        strategy.start()
    assert calls == ["start realtime", "stop realtime"]  # the metrics query never started
