"""A real PostgreSQL for the session: Debian's server binaries, an unprivileged cluster in a temp
dir, listening on 127.0.0.1 and a free port, stopped by pg_ctl (and by pid if that fails).

`initdb` and `postgres` refuse to run as root, so under root the cluster belongs to the
`postgres` user the Debian package creates. Authentication is `trust` on 127.0.0.1 only: the
DSN carries no password. Nothing is skipped: without the binaries every test that asks for
`postgres` fails with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 60.0


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if not found:
        pytest.fail("PostgreSQL server binaries not found under /usr/lib/postgresql: make system")
    return found[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-2000:]
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A libpq DSN (`host=127.0.0.1 port=P user=scorestream dbname=postgres`)."""
    import psycopg

    bindir = _bin_dir()
    root = Path(tempfile.mkdtemp(prefix="scorestream-pg-"))
    data, log = root / "data", root / "postgres.log"
    as_owner: list[str] = []
    if os.geteuid() == 0:
        import pwd

        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_owner = ["runuser", "-u", "postgres", "--"]
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "scorestream", "-A", "trust"]
    init = subprocess.run(
        [*as_owner, *initdb, "-E", "UTF8", "--no-sync", "--no-instructions"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed ({init.returncode}): {init.stderr[-2000:]}")
    port = _free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(root),
        "fsync": "off",  # a throw-away cluster: durability buys nothing here
        "max_connections": "40",
    }
    args = [x for k, v in settings.items() for x in ("-c", f"{k}={v}")]
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [*as_owner, str(bindir / "postgres"), "-D", str(data), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    dsn = f"host=127.0.0.1 port={port} user=scorestream dbname=postgres"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"postgres exited with {server.returncode}: {_tail(log)}")
            try:
                with psycopg.connect(dsn, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                break
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    pytest.fail(f"postgres not ready in {START_TIMEOUT_S:.0f} s: {exc}")
                time.sleep(0.2)  # poll interval of the readiness probe, not a synchronisation
        yield dsn
    finally:
        _stop(server, as_owner, bindir, data)
        shutil.rmtree(root, ignore_errors=True)


def _stop(server: subprocess.Popen[bytes], as_owner: list[str], bindir: Path, data: Path) -> None:
    """pg_ctl's fast shutdown; the postmaster's pid (from postmaster.pid) if that fails."""
    pidfile = data / "postmaster.pid"
    postmaster = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int(pidfile.read_text().splitlines()[0])
    subprocess.run(
        [*as_owner, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-t", "30"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        if postmaster is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(postmaster, signal.SIGKILL)
        server.kill()
        server.wait(timeout=30)
