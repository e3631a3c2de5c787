"""`scorestream serve` as a real process for the tests: a free port on 127.0.0.1, ready when
/healthz answers, stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from streamkit import free_port

from scorestream.kafka import KafkaSettings


@dataclass
class ServeProcess:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


ServeFactory = Callable[..., ServeProcess]


@pytest.fixture
def serve_factory(kafka: KafkaSettings, tmp_path: Path) -> Iterator[ServeFactory]:
    """Start `scorestream serve --flag value ...` (keyword arguments become flags)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(timeout_s: float = 90.0, **flags: object) -> ServeProcess:
        port = free_port()
        args = [sys.executable, "-m", "scorestream", "--log-level", "info", "serve"]
        args += ["--bootstrap", kafka.bootstrap, "--port", str(port)]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        log = tmp_path / f"serve-{port}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        started.append(proc)
        handle = ServeProcess(f"http://127.0.0.1:{port}", proc, log)
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{handle.log_text()}")
            try:
                if httpx.get(f"{handle.url}/healthz", timeout=1.0).status_code == 200:
                    return handle
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not healthy in {timeout_s} s:\n{handle.log_text()}")
            time.sleep(0.1)  # polling /healthz with a deadline

    try:
        yield start
    finally:
        for proc in started:
            _stop(proc)
