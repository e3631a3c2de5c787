"""A real single-node HDFS for the session: MiniDFSCluster from Maven Central, in its own JVM.

`deps/hadoop-minicluster` pins `hadoop-client-minicluster` to the Hadoop line pyspark ships;
`java/MiniHdfs.java` is compiled with javac here, started on 127.0.0.1, waited for until it
prints its hdfs:// URI (with a deadline), and stopped by pid at the end of the session.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from scorestream.jars import ensure

SOURCE = Path(__file__).with_name("java") / "MiniHdfs.java"
START_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class Hdfs:
    uri: str  # hdfs://127.0.0.1:PORT
    pid: int
    log: Path

    def path(self, *parts: str) -> str:
        return "/".join([self.uri, *parts])


def _classpath(jars: Path, classes: Path) -> str:
    return os.pathsep.join([str(classes), *(str(j) for j in sorted(jars.glob("*.jar")))])


def _read_uri(proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> str:
    """The first stdout line, the hdfs:// URI the cluster prints once active, or fail."""
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if proc.poll() is not None or left <= 0:
            what = "exited" if proc.poll() is not None else f"gave no URI in {timeout_s:.0f} s"
            tail = log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"MiniDFSCluster {what}:\n{tail}")
        if selector.select(timeout=min(left, 1.0)):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                continue  # EOF: the next poll() sees the exit
            line += chunk
    selector.close()
    uri = line.decode().strip().splitlines()[0]
    assert uri.startswith("hdfs://127.0.0.1:"), uri
    return uri


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Close stdin (the class shuts the cluster down), then SIGTERM, then SIGKILL, by pid."""
    with suppress(OSError):
        assert proc.stdin is not None
        proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


@pytest.fixture(scope="session")
def hdfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hdfs]:
    javac, java = shutil.which("javac"), shutil.which("java")
    assert javac and java, "javac and java (a JDK 17+) are needed to start the test HDFS"
    jars = ensure("hadoop-minicluster")
    work = tmp_path_factory.mktemp("hdfs")
    classes = work / "classes"
    compiled = subprocess.run(
        [javac, "-cp", _classpath(jars, classes), "-d", str(classes), str(SOURCE)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert compiled.returncode == 0, f"javac MiniHdfs.java failed:\n{compiled.stderr[-3000:]}"
    log = work / "minidfs.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [java, "-Xmx512m", "-cp", _classpath(jars, classes), "MiniHdfs", str(work / "data")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=work,
        )
    try:
        uri = _read_uri(proc, log, START_TIMEOUT_S)
        yield Hdfs(uri=uri, pid=proc.pid, log=log)
    finally:
        _stop(proc)
        assert proc.poll() is not None, f"MiniDFSCluster pid {proc.pid} still alive"
