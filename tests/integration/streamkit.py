"""Helpers of the scorer's integration tests: run a Scorer, read topics with a deadline."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorestream.kafka import KafkaSettings
from scorestream.models.registry import Registry
from scorestream.producers.subscriber import consumer
from scorestream.streaming.job import Scorer, ScorerSettings

EVENT_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def read(
    kafka: KafkaSettings,
    topic: str,
    count: int,
    timeout_s: float,
    isolation: str = "read_uncommitted",
) -> list[Any]:
    """Messages of `topic` from the beginning, until `count` arrived or the deadline passed."""
    messages: list[Any] = []
    c = consumer(kafka, topic, isolation=isolation)
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < count and time.monotonic() < deadline:
            messages += [m for m in c.consume(num_messages=5000, timeout=0.3) if not m.error()]
    finally:
        c.close()
    return messages


def read_quiet(
    kafka: KafkaSettings, topic: str, at_least: int, quiet_s: float, timeout_s: float, **kw: Any
) -> list[Any]:
    """Read until `at_least` arrived and then nothing more for `quiet_s` (to see duplicates)."""
    messages: list[Any] = []
    c = consumer(kafka, topic, **kw)
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = [m for m in c.consume(num_messages=5000, timeout=0.3) if not m.error()]
            if got:
                messages += got
                last = time.monotonic()
            elif len(messages) >= at_least and time.monotonic() - last > quiet_s:
                break
    finally:
        c.close()
    return messages


def clone_version(registry: Registry, source: int, **metadata: Any) -> int:
    """A copy of a version under the next number, with metadata fields replaced."""
    version = registry.versions()[-1] + 1
    target = registry.versions_dir / f"v{version}"
    shutil.copytree(registry.versions_dir / f"v{source}", target)
    meta_path = target / "metadata.json"
    meta = {**json.loads(meta_path.read_text()), "version": version, **metadata}
    meta_path.write_text(json.dumps(meta))
    return version


def wait_for(scorer: Scorer, records_in: int, timeout_s: float) -> None:
    """Poll the scorer's totals until `records_in` records were processed (or fail)."""
    deadline = time.monotonic() + timeout_s
    while scorer.totals.records_in < records_in:
        scorer.raise_if_failed()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"scorer processed {scorer.totals.records_in} of {records_in} records "
                f"within {timeout_s} s"
            )
        time.sleep(0.1)  # polling with a deadline


@contextmanager
def running(spark: Any, kafka: KafkaSettings, settings: ScorerSettings) -> Iterator[Scorer]:
    scorer = Scorer(spark, kafka, settings)
    scorer.start()
    try:
        scorer.wait_ready()
        yield scorer
    finally:
        scorer.stop()


def headers(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers() or []}


def scorer_process(
    args: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`scorestream score ...` as a child in its own process group (JVM included)."""
    out = log.open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "scorestream", "--log-level", "info", "score", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def free_port() -> int:
    """A port nobody listens on now, on 127.0.0.1 (servers the tests start bind it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 of the child and its JVM: the child leads its own process group (pgid = pid)."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def read_ids(
    kafka: KafkaSettings,
    topic: str,
    wanted: set[str],
    quiet_s: float,
    timeout_s: float,
    isolation: str = "read_uncommitted",
) -> list[str]:
    """Event ids of JSON records on `topic` (duplicates kept) until every wanted id arrived
    and then nothing more for `quiet_s`, or the deadline passed."""
    import json

    ids: list[str] = []
    missing = set(wanted)
    c = consumer(kafka, topic, isolation=isolation)
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            got = [m for m in c.consume(num_messages=5000, timeout=0.3) if not m.error()]
            if got:
                batch = [str(json.loads(m.value())["event_id"]) for m in got]
                ids += batch
                missing.difference_update(batch)
                last = time.monotonic()
            elif not missing and time.monotonic() - last > quiet_s:
                break
    finally:
        c.close()
    return ids


ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class DocBlock:
    """A shell block of a doc, as users copy it: its exports and its `scorestream` commands."""

    env: dict[str, str]
    commands: list[list[str]]  # argv after `scorestream`, one per command line

    def command(self, name: str, *, nth: int = 0) -> list[str]:
        """The argv of the `nth` command of subcommand `name`."""
        found = [c for c in self.commands if c and c[0] == name]
        assert len(found) > nth, f"the doc block has no {name!r} command #{nth}: {self.commands}"
        return list(found[nth])


def doc_block(doc: str, marker: str) -> DocBlock:
    """The first fenced shell block after the HTML comment `marker` in `doc` (from the root)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    assert marker in text, f"{doc} lost its marker {marker!r}"
    after = text.split(marker, 1)[1]
    block = after.split("```", 2)[1].split("\n", 1)[1]  # drop the fence's language
    env: dict[str, str] = {}
    commands: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            for word in words[1:]:
                key, _, value = word.partition("=")
                env[key] = value
        elif words[:1] == ["scorestream"]:
            commands.append(words[1:])
        elif words:
            raise AssertionError(f"{doc}: a line the test cannot run as written: {line!r}")
    return DocBlock(env, commands)


def substitute(argv: Sequence[str], values: dict[str, str]) -> list[str]:
    """`argv` with each word's documented placeholder parts replaced (names, hosts, refs)."""
    out = []
    for word in argv:
        for old, new in values.items():
            word = word.replace(old, new)
        out.append(word)
    return out
