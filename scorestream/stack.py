"""The local Kafka stack: KRaft brokers run from Maven Central jars, on 127.0.0.1 only.

`up` formats storage and starts each node with Kafka's own main classes, waits for metadata,
and records the pids; `down` stops exactly those pids. Nothing is found or killed by name.

One module (about 420 lines) because that guarantee rests on the process helpers below
`LocalKafka` (pid files, `_is_ours` matching a pid to its node's config, stop and reap): they
are read with the lifecycle that relies on them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scorestream import jars
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings, wait_for_metadata
from scorestream.paths import STATE_ROOT

LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = WARN
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
"""


@dataclass(frozen=True)
class StackSettings:
    """How to run the local stack."""

    state_dir: Path = STATE_ROOT / "stack"
    port: int = 9092
    brokers: int = 1
    start_timeout_s: float = 90.0
    heap: str = "768m"
    # Extra server.properties lines (for example a SASL listener), applied to every node.
    extra_config: tuple[tuple[str, str], ...] = ()
    sasl_users: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def broker_port(self, node: int) -> int:
        return self.port + node

    def controller_port(self, node: int) -> int:
        return self.port + 100 + node

    def sasl_port(self, node: int) -> int:
        return self.port + 200 + node

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.broker_port(n)}" for n in range(self.brokers))


@dataclass
class NodeState:
    node_id: int
    pid: int
    port: int
    config: str
    log: str


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_block(size: int) -> int:
    """A base port such that base .. base+size and base+100/+200 offsets look free (tests)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = sock.getsockname()[1]
        if base + 200 + size > 65000:
            continue
        ports = [base + i for i in range(size)] + [base + 100 + i for i in range(size)]
        ports += [base + 200 + i for i in range(size)]
        if all(_port_free(p) for p in ports):
            return base
    msg = "could not find free ports on 127.0.0.1"
    raise StackError(msg)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_ours(pid: int, config: str) -> bool:
    """The pid still runs the node we started (not a recycled pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return config.encode() in cmdline


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.strip().splitlines()[-lines:])


def java_version() -> int:
    """The major version of `java` on PATH."""
    java = jars.require_tool("java", "to run the Kafka broker and Spark (Java 17+)")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    for token in out.replace('"', " ").split():
        head = token.split(".")[0]
        if head.isdigit() and "." in token:
            return int(head)
    msg = f"cannot read the Java version from: {out.strip()[:200]}"
    raise StackError(msg)


class LocalKafka:
    """A KRaft cluster of `brokers` combined broker+controller nodes on 127.0.0.1."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.root = settings.state_dir.resolve()
        self.state_file = self.root / "stack.json"

    # -- state -------------------------------------------------------------------------------
    def nodes(self) -> list[NodeState]:
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [NodeState(**n) for n in data.get("nodes", [])]

    def _save(self, nodes: list[NodeState]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        payload = {"bootstrap": self.settings.bootstrap, "nodes": [asdict(n) for n in nodes]}
        tmp.write_text(json.dumps(payload, indent=2), encoding="utf-8")
        tmp.replace(self.state_file)

    def running(self) -> list[NodeState]:
        return [n for n in self.nodes() if pid_alive(n.pid) and _is_ours(n.pid, n.config)]

    @property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings(bootstrap=self.settings.bootstrap)

    # -- configuration -----------------------------------------------------------------------
    def _cluster_id(self, classpath: str) -> str:
        path = self.root / "cluster.id"
        if path.exists():
            return path.read_text(encoding="utf-8").strip()
        out = subprocess.run(
            ["java", "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        cluster_id = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
        if out.returncode != 0 or not cluster_id:
            msg = f"kafka StorageTool random-uuid failed: {(out.stderr or out.stdout)[-500:]}"
            raise StackError(msg)
        self.root.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id + "\n", encoding="utf-8")
        return cluster_id

    def _server_properties(self, node: int) -> str:
        s = self.settings
        n = s.brokers
        voters = ",".join(f"{i + 1}@127.0.0.1:{s.controller_port(i)}" for i in range(n))
        replication = min(n, 3)
        min_isr = 2 if n >= 3 else 1
        listeners = [f"PLAINTEXT://127.0.0.1:{s.broker_port(node)}"]
        protocol_map = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if s.sasl_users:
            listeners.append(f"SASL_PLAINTEXT://127.0.0.1:{s.sasl_port(node)}")
            protocol_map.append("SASL_PLAINTEXT:SASL_PLAINTEXT")
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node + 1),
            "controller.quorum.voters": voters,
            "listeners": ",".join(
                [*listeners, f"CONTROLLER://127.0.0.1:{s.controller_port(node)}"]
            ),
            "advertised.listeners": ",".join(listeners),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(protocol_map),
            "log.dirs": str(self.root / f"node-{node + 1}" / "data"),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "default.replication.factor": str(replication),
            "min.insync.replicas": str(min_isr),
            "offsets.topic.replication.factor": str(replication),
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": str(replication),
            "transaction.state.log.min.isr": str(min_isr),
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": str(replication),
            "share.coordinator.state.topic.min.isr": str(min_isr),
            "group.initial.rebalance.delay.ms": "0",
            "log.segment.bytes": str(256 * 1024 * 1024),
        }
        if s.sasl_users:
            users = " ".join(f'user_{u}="{p}"' for u, p in s.sasl_users)
            first_user, first_password = s.sasl_users[0]
            props["sasl.enabled.mechanisms"] = "PLAIN"
            props["listener.name.sasl_plaintext.plain.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{first_user}" password="{first_password}" {users};'
            )
        props.update(dict(s.extra_config))
        return "".join(f"{k}={v}\n" for k, v in props.items())

    # -- lifecycle ---------------------------------------------------------------------------
    def up(self) -> list[NodeState]:
        """Start every node that is not running; wait until the cluster answers metadata."""
        running = self.running()
        if running and len(running) == self.settings.brokers:
            wait_for_metadata(self.kafka, self.settings.start_timeout_s)
            return running
        if running:
            msg = (
                f"{len(running)} of {self.settings.brokers} nodes of the stack in {self.root} "
                "are running; run `scorestream stack down` first"
            )
            raise StackError(msg)
        major = java_version()
        if major < 17:
            msg = f"Kafka 4 needs Java 17 or newer; `java` on PATH is Java {major}"
            raise StackError(msg)
        s = self.settings
        for node in range(s.brokers):
            for port in (s.broker_port(node), s.controller_port(node)) + (
                (s.sasl_port(node),) if s.sasl_users else ()
            ):
                if not _port_free(port):
                    msg = (
                        f"port 127.0.0.1:{port} is already in use; stop what holds it or "
                        "choose another base port with --port / SCORESTREAM_STACK_PORT"
                    )
                    raise StackError(msg)
        classpath = str(jars.ensure("kafka-broker") / "*")
        cluster_id = self._cluster_id(classpath)
        nodes = [self._start_node(node, classpath, cluster_id) for node in range(s.brokers)]
        self._save(nodes)
        self._await(nodes)
        return nodes

    def _start_node(self, node: int, classpath: str, cluster_id: str) -> NodeState:
        node_dir = self.root / f"node-{node + 1}"
        node_dir.mkdir(parents=True, exist_ok=True)
        config = node_dir / "server.properties"
        config.write_text(self._server_properties(node), encoding="utf-8")
        log = node_dir / "server.log"
        (node_dir / "log4j2.properties").write_text(LOG4J2.format(log=log), encoding="utf-8")
        if not (node_dir / "data" / "meta.properties").exists():
            fmt = subprocess.run(
                [
                    "java",
                    "-cp",
                    classpath,
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(config),
                    "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            if fmt.returncode != 0:
                tail = (fmt.stdout + fmt.stderr)[-1500:]
                msg = f"formatting Kafka storage in {node_dir} failed:\n{tail}"
                raise StackError(msg)
        console = open(node_dir / "console.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [
                "java",
                f"-Xmx{self.settings.heap}",
                "-Xms128m",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={node_dir / 'log4j2.properties'}",
                f"-Dkafka.logs.dir={node_dir}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(config),
            ],
            stdout=console,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        console.close()
        return NodeState(
            node_id=node + 1,
            pid=proc.pid,
            port=self.settings.broker_port(node),
            config=str(config),
            log=str(log),
        )

    def _await(self, nodes: list[NodeState]) -> None:
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            for n in nodes:
                if not pid_alive(n.pid):
                    self.down()
                    console = Path(n.config).with_name("console.log")
                    msg = (
                        f"Kafka node {n.node_id} exited during start-up; last lines of its log:\n"
                        f"{log_tail(Path(n.log))}\n{log_tail(console)}"
                    )
                    raise StackError(msg)
            try:
                count = wait_for_metadata(self.kafka, min(5.0, deadline - time.monotonic()))
            except StackError:
                continue
            if count >= len(nodes):
                return
        tails = "\n".join(f"--- node {n.node_id}:\n{log_tail(Path(n.log))}" for n in nodes)
        self.down()
        msg = (
            f"Kafka did not come up on {self.settings.bootstrap} within "
            f"{self.settings.start_timeout_s:.0f} s; last lines of its log:\n{tails}"
        )
        raise StackError(msg)

    def stop_node(self, node_id: int, sig: int = signal.SIGTERM, timeout_s: float = 60.0) -> None:
        """Stop one node by its recorded pid (SIGKILL for failure tests)."""
        for n in self.nodes():
            if n.node_id == node_id and pid_alive(n.pid) and _is_ours(n.pid, n.config):
                _stop_pid(n.pid, sig, timeout_s)

    def restart_node(self, node_id: int) -> None:
        """Start a stopped node again with its existing storage."""
        classpath = str(jars.ensure("kafka-broker") / "*")
        cluster_id = self._cluster_id(classpath)
        nodes = self.nodes()
        for i, n in enumerate(nodes):
            if n.node_id == node_id:
                nodes[i] = self._start_node(node_id - 1, classpath, cluster_id)
        self._save(nodes)

    def down(self, timeout_s: float = 60.0) -> int:
        """Stop the nodes this stack started; return how many were running."""
        stopped = 0
        for n in self.nodes():
            if pid_alive(n.pid) and _is_ours(n.pid, n.config):
                _stop_pid(n.pid, signal.SIGTERM, timeout_s)
                stopped += 1
        self._save([])
        return stopped


def _stop_pid(pid: int, sig: int, timeout_s: float) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid):
            return
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect the exit status when the node is our own child (otherwise it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
