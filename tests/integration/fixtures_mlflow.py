"""A real MLflow tracking server for the session: sqlite backend, local artifact store.

Started as `mlflow server` on a free 127.0.0.1 port in its own process group (it spawns a
uvicorn worker), waited for by polling /health with a deadline, stopped by that group's id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from scorestream.stack import free_port_block

START_TIMEOUT_S = 240.0  # about 5 s on an idle 2-core machine; imports dominate under load


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    # The worker shares the group: none may outlive the server.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking URI (http://127.0.0.1:PORT) of a running `mlflow server`."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port_block(1)
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    # The job runner (prompt optimisation jobs) starts a dozen huey workers nobody here uses.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        while not _healthy(url):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{tail}")
            if time.monotonic() - started > START_TIMEOUT_S:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"mlflow server not healthy within {START_TIMEOUT_S:.0f} s:\n{tail}")
            time.sleep(0.2)  # polling /health with a deadline
        print(f"\nmlflow server ready on {url} in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        _stop(proc)
