"""A real PostgreSQL for the session: an unprivileged cluster in a temp dir on 127.0.0.1 and a
free port, password-protected, ready by pg_isready, stopped by pg_ctl (its postmaster pid)."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamkit import free_port


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    @property
    def jdbc_url(self) -> str:
        return f"jdbc:postgresql://127.0.0.1:{self.port}/postgres?user=postgres&password={self.password}"


def _bindir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise AssertionError(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); `make system` "
            "installs Debian's postgresql"
        )
    return Path(found[-1]).parent


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for whichever process inherited it to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@pytest.fixture(scope="session")
def sink_postgres() -> Iterator[Postgres]:
    bindir = _bindir()
    base = Path(tempfile.mkdtemp(prefix="scorestream-pg-"))
    password = secrets.token_hex(12)  # the tests look for it in logs: it must never appear
    # initdb and postgres refuse to run as root: as root, run them as the package's user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, pwfile, log = base / "data", base / "pw", base / "server.log"
    pwfile.write_text(password)
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    port = free_port()

    def run(*args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*as_user, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise AssertionError(f"{args[0]} failed: {done.stdout}{done.stderr}\n{tail}")

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-U",
        "postgres",
        f"--pwfile={pwfile}",
        "--auth-host=scram-sha-256",
        "--auth-local=scram-sha-256",
        "-E",
        "UTF8",
        "--no-sync",
    )
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    # -w waits for the server to accept connections (with -t as the deadline).
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-o",
        options,
        "-w",
        "-t",
        "60",
        "start",
    )
    try:
        deadline = time.monotonic() + 30
        while (
            subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                capture_output=True,
                check=False,
            ).returncode
            != 0
        ):
            if time.monotonic() > deadline:
                raise AssertionError(f"PostgreSQL on port {port} not ready:\n{log.read_text()}")
            time.sleep(0.1)  # polling pg_isready with a deadline
        yield Postgres(port, password)
    finally:
        pid_file = data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop")
        # pg_ctl returns once the pid file is gone, a moment before the process exits.
        gone_by = time.monotonic() + 15
        while pid is not None and _alive(pid) and time.monotonic() < gone_by:
            time.sleep(0.05)  # polling /proc with a deadline
        assert pid is None or not _alive(pid), f"postmaster {pid} alive after pg_ctl stop"
        shutil.rmtree(base, ignore_errors=True)
