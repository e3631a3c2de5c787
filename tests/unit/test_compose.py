"""docker-compose.yml and the Dockerfile agree with the code: a real compose parser reads the file,
and every mount, port, environment variable and pinned version is checked against the repo.

There is no Docker engine here, so the stack is never started; what can be checked without one
is checked: Debian's docker-compose (`make system` installs it) validates the file against the
compose schema and resolves anchors, profiles and `${VAR:-default}` exactly as `up` would.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from scorestream.cli import build_parser
from scorestream.stack import LocalKafka, StackSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCS = ROOT / "docs" / "deployment.md"
APP_IMAGE = "scorestream:"
# The project's JVM: Kafka 4 and Spark 4.1 both run on it (Makefile `prereqs`, stack.py).
JAVA = "17"
# Variables the official images themselves read (not Kafka/Grafana settings in disguise).
IMAGE_ENV = {"apache/kafka": {"CLUSTER_ID"}}
PUBLISHED = {"prometheus": 9090, "grafana": 3000}  # the servers' own default ports


def _compose_cli() -> str:
    path = shutil.which("docker-compose")
    assert path, (
        "docker-compose is not installed: run `make system` (Debian package docker-compose)"
    )
    return path


def _run_compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment: the file must not depend on what a developer has exported.
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(ROOT)}
    return subprocess.run(
        [_compose_cli(), "--project-directory", str(ROOT), "-f", str(COMPOSE), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, **(env or {})},
        check=False,
    )


@cache
def resolved(spark_master: str = "") -> dict[str, Any]:
    """The file as compose itself resolves it, every profile on."""
    env = {"SCORESTREAM_SPARK_MASTER": spark_master} if spark_master else {}
    out = _run_compose("--profile", "spark", "config", env=env)
    assert out.returncode == 0, f"docker-compose config failed:\n{out.stderr}"
    data: dict[str, Any] = yaml.safe_load(out.stdout)
    return data


def services() -> dict[str, dict[str, Any]]:
    svc: dict[str, dict[str, Any]] = resolved()["services"]
    return svc


def app_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if str(s.get("image", "")).startswith(APP_IMAGE)}


def mounts(service: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(source, target, mode) of each volume entry of a resolved service."""
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        mode = parts[2] if len(parts) > 2 else "rw"
        yield parts[0], parts[1], mode


def image_tag(image: str) -> tuple[str, str]:
    name, _, tag = image.rpartition(":")
    return name, tag


# -- the compose implementation accepts the file --------------------------------------------
def test_compose_config_is_valid_with_and_without_the_spark_profile() -> None:
    for args in ((), ("--profile", "spark")):
        out = _run_compose(*args, "config", "-q")
        assert out.returncode == 0, f"docker-compose {' '.join(args)} config -q:\n{out.stderr}"
    # (docker-compose 1.29 lists every service in `config --services`; read the profiles.)
    by_profile = {name: tuple(svc.get("profiles", ())) for name, svc in services().items()}
    assert by_profile == {
        **{n: () for n in ("kafka", "topics", "train", "scorer", "producer")},
        **{n: () for n in ("prometheus", "grafana")},
        "spark-master": ("spark",),
        "spark-worker": ("spark",),
    }


def test_compose_rejects_an_unknown_key() -> None:
    """The validator is real: a misspelt key in a copy of the file fails."""
    broken = COMPOSE.read_text(encoding="utf-8").replace("    healthcheck:", "    healthchek:", 1)
    tmp = ROOT / ".pytest_cache" / "compose-broken.yml"
    tmp.parent.mkdir(exist_ok=True)
    tmp.write_text(broken, encoding="utf-8")
    out = subprocess.run(
        [_compose_cli(), "--project-directory", str(ROOT), "-f", str(tmp), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode != 0
    assert "healthchek" in out.stderr


# -- mounts -----------------------------------------------------------------------------------
def test_every_bind_mount_exists_in_the_repo_and_is_read_only() -> None:
    declared = set(resolved()["volumes"])
    for name, svc in services().items():
        for source, target, mode in mounts(svc):
            if source.startswith("/"):
                path = Path(source)
                assert path.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
                assert path.exists(), f"{name}: mounts {source}, which does not exist"
                assert mode == "ro", f"{name}: {source} -> {target} should be read-only"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"


def test_named_volumes_hold_kafka_data_registry_and_checkpoints() -> None:
    svc = services()
    kafka = dict((t, s) for s, t, _ in mounts(svc["kafka"]))
    assert kafka[svc["kafka"]["environment"]["KAFKA_LOG_DIRS"]] == "kafka-data"
    scorer_env = svc["scorer"]["environment"]
    scorer = {t: s for s, t, _ in mounts(svc["scorer"])}
    assert scorer[scorer_env["SCORESTREAM_REGISTRY"]] == "registry"
    checkpoint = Path(scorer_env["SCORESTREAM_CHECKPOINT"])
    holder = [t for t in scorer if checkpoint.is_relative_to(t) and scorer[t] == "checkpoints"]
    assert holder, f"checkpoint {checkpoint} is not on the checkpoints volume"
    train = {t: s for s, t, _ in mounts(svc["train"])}
    assert train[svc["train"]["environment"]["SCORESTREAM_REGISTRY"]] == "registry"
    # Executors read the model and may write state: same volumes at the same paths.
    worker = {t: s for s, t, _ in mounts(svc["spark-worker"])}
    for target in (scorer_env["SCORESTREAM_REGISTRY"], holder[0]):
        assert worker.get(target) == scorer[target], f"spark-worker lacks {target}"


def test_compose_prometheus_config_is_the_repo_config_but_for_its_targets() -> None:
    def without_targets(path: Path) -> dict[str, Any]:
        config: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        for job in config["scrape_configs"]:
            for static in job.get("static_configs", []):
                static.pop("targets", None)
        return config

    compose = ROOT / "docker" / "prometheus" / "prometheus.yml"
    assert without_targets(compose) == without_targets(
        ROOT / "monitoring" / "prometheus" / "prometheus.yml"
    )


def test_compose_grafana_datasource_is_the_repo_one_but_for_its_url() -> None:
    def without_url(path: Path) -> list[dict[str, Any]]:
        sources: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8"))[
            "datasources"
        ]
        return [{k: v for k, v in d.items() if k != "url"} for d in sources]

    repo = ROOT / "monitoring" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    assert without_url(ROOT / "docker" / "grafana" / "datasources" / "prometheus.yml") == (
        without_url(repo)
    )


def test_grafana_dashboard_provider_reads_the_mounted_dashboards() -> None:
    grafana = {t: Path(s) for s, t, _ in mounts(services()["grafana"])}
    providers = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/dashboards"] / "scorestream.yml").read_text()
    )["providers"]
    for provider in providers:
        folder = grafana[provider["options"]["path"]]
        assert list(folder.glob("*.json")), f"no dashboards in {folder}"


def test_compose_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    """promtool reads the config as Prometheus in the container will (rules next to it)."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make system` installs Debian's prometheus"
    for source, target, _ in mounts(services()["prometheus"]):
        if target.startswith("/etc/prometheus/"):
            shutil.copy(source, tmp_path / Path(target).name)
    out = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout + out.stderr


def test_prometheus_rule_files_are_mounted_next_to_the_config() -> None:
    prom = services()["prometheus"]
    targets = {t: Path(s) for s, t, _ in mounts(prom)}
    config_path = next(a.split("=", 1)[1] for a in prom["command"] if a.startswith("--config.file"))
    config = yaml.safe_load(targets[config_path].read_text(encoding="utf-8"))
    for rule in config["rule_files"]:
        inside = str(Path(config_path).parent / rule)
        assert inside in targets, f"rule file {rule} is not mounted at {inside}"


# -- environment variables --------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("the scorestream parser has no subcommands")


def _env_names(parser: argparse.ArgumentParser) -> set[str]:
    names = set()
    for action in parser._actions:
        match = re.search(r"\[env: ([A-Z0-9_]+)", action.help or "")
        if match:
            names.add(match.group(1))
    return names


def _commands(name: str, svc: dict[str, Any]) -> list[str]:
    """The scorestream subcommands a service runs: its command, or those its script calls."""
    command = svc.get("command") or []
    if command:
        return [command[0]]
    scripts = [
        ROOT / "docker" / Path(a).name for a in svc.get("entrypoint", []) if a.endswith(".sh")
    ]
    assert scripts, f"{name}: neither a command nor a docker/ script"
    text = scripts[0].read_text(encoding="utf-8")
    return sorted(set(re.findall(r"\bscorestream ([a-z][a-z-]*)", text)))


@pytest.mark.parametrize("service", ["train", "scorer", "producer"])
def test_app_environment_is_read_and_accepted_by_the_cli(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = app_services()[service]
    env = {k: str(v) for k, v in svc["environment"].items()}
    for key in list(os.environ):
        if key.startswith("SCORESTREAM_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    parser = build_parser()  # reads the environment now, as the container's CLI would
    commands = _commands(service, svc)
    sub = _subparsers(parser)
    known = _env_names(parser)
    for command in commands:
        assert command in sub, f"{service}: `scorestream {command}` does not exist"
        known |= _env_names(sub[command])
    unread = sorted(set(env) - known)
    assert not unread, (
        f"{service} sets {unread}, which `scorestream {' / '.join(commands)}` does not read; "
        f"it reads {sorted(known)}"
    )
    for command in commands:
        extra = ["champion"] if command == "models" else []
        args = parser.parse_args([command, *(["show"] if command == "models" else []), *extra])
        for action in sub[command]._actions:
            match = re.search(r"\[env: ([A-Z0-9_]+)", action.help or "")
            if match and match.group(1) in env:
                assert getattr(args, action.dest) == action.type(env[match.group(1)])


def test_kafka_environment_is_the_local_stack_configuration() -> None:
    """The KAFKA_* variables map to broker properties our own stack sets (and tests)."""
    kafka = services()["kafka"]
    props = LocalKafka(StackSettings(state_dir=ROOT / ".scorestream" / "unused"))
    known = {
        line.split("=", 1)[0] for line in props._server_properties(0).splitlines() if line.strip()
    }
    allowed = IMAGE_ENV["apache/kafka"]
    for key in kafka["environment"]:
        if key in allowed:
            continue
        assert key.startswith("KAFKA_"), f"kafka: {key} is not read by the apache/kafka image"
        # The image's rule: '.' -> '_', '_' -> '__', '-' -> '___', upper case.
        prop = (
            key.removeprefix("KAFKA_")
            .replace("___", "-")
            .replace("__", "\0")
            .replace("_", ".")
            .replace("\0", "_")
            .lower()
        )
        assert prop in known, f"kafka: {key} -> {prop} is not a property the stack configures"


def test_grafana_environment_names_settings_and_mounted_files() -> None:
    grafana = services()["grafana"]
    targets = {t: Path(s) for s, t, _ in mounts(grafana)}
    for key, value in grafana["environment"].items():
        assert re.fullmatch(r"GF_[A-Z0-9]+_[A-Z0-9_]+", key), f"grafana: {key} is not GF_<S>_<K>"
        if str(value).startswith("/"):
            inside = Path(str(value))
            base = next((t for t in targets if inside.is_relative_to(t)), None)
            assert base, f"grafana: {key}={value} is not on a mounted path"
            assert (targets[base] / inside.relative_to(base)).exists(), f"{key}={value}"


# -- ports and addresses ----------------------------------------------------------------------
def test_only_grafana_and_prometheus_publish_ports_on_loopback() -> None:
    published = {}
    for name, svc in services().items():
        for entry in svc.get("ports", []):
            host_ip, host_port, container = str(entry).split(":")
            assert host_ip == "127.0.0.1", f"{name}: {entry} binds beyond the host's loopback"
            published[name] = int(container.split("/")[0])
            assert int(host_port) == published[name]
    assert published == PUBLISHED


def test_addresses_between_services_agree() -> None:
    svc = services()
    kafka_env = svc["kafka"]["environment"]
    advertised = urlparse(kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")[0])
    bootstrap = f"{advertised.hostname}:{advertised.port}"
    for name in ("scorer", "producer"):
        assert svc[name]["environment"]["SCORESTREAM_BOOTSTRAP"] == bootstrap, name
    assert svc["topics"]["command"][0] == bootstrap
    # Prometheus scrapes the scorer's metrics port; Grafana reads Prometheus at its port.
    scorer_env = svc["scorer"]["environment"]
    port = str(scorer_env["SCORESTREAM_METRICS_PORT"])
    assert [str(p) for p in svc["scorer"]["expose"]] == [port]
    address = scorer_env.get("SCORESTREAM_METRICS_ADDRESS", "127.0.0.1")
    assert address == "0.0.0.0", f"metrics on {address}: Prometheus in its container cannot scrape"
    prom_mounts = {t: Path(s) for s, t, _ in mounts(svc["prometheus"])}
    prom = yaml.safe_load(prom_mounts["/etc/prometheus/prometheus.yml"].read_text())
    static = [c for job in prom["scrape_configs"] for c in job["static_configs"]]
    targets = [t for c in static for t in c["targets"]]
    assert targets == [f"scorer:{port}"]
    grafana = {t: Path(s) for s, t, _ in mounts(svc["grafana"])}
    datasources = yaml.safe_load(
        (grafana["/etc/grafana/provisioning/datasources"] / "prometheus.yml").read_text()
    )
    url = urlparse(datasources["datasources"][0]["url"])
    assert (url.hostname, url.port) == ("prometheus", PUBLISHED["prometheus"])
    # The scorer reaches the Spark master where the master listens.
    master = svc["spark-master"]["command"]
    on_spark = resolved("spark://spark-master:7077")["services"]["scorer"]["environment"]
    url = urlparse(on_spark["SCORESTREAM_SPARK_MASTER"])
    assert (url.hostname, str(url.port)) == (
        master[master.index("--host") + 1],
        master[master.index("--port") + 1],
    )
    assert svc["spark-worker"]["command"][2] == on_spark["SCORESTREAM_SPARK_MASTER"]
    assert scorer_env["SCORESTREAM_DRIVER_HOST"] == "scorer"


def test_topics_service_creates_what_the_scorer_and_producer_use() -> None:
    svc = services()
    scorer = svc["scorer"]["environment"]
    _bootstrap, partitions, replication, *topics = svc["topics"]["command"]
    assert set(topics) == {
        scorer["SCORESTREAM_INPUT_TOPIC"],
        scorer["SCORESTREAM_OUTPUT_TOPIC"],
        scorer["SCORESTREAM_DLQ_TOPIC"],
    }
    assert svc["producer"]["environment"]["SCORESTREAM_INPUT_TOPIC"] == topics[0]
    assert int(partitions) >= 6
    assert int(replication) == 1  # one broker in the compose stack
    for script in svc["topics"]["entrypoint"][1:]:
        assert (ROOT / "docker" / Path(script).name).exists()


# -- images, health checks, versions ----------------------------------------------------------
def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _pom_property(bundle: str, name: str) -> str:
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    tree = ET.parse(ROOT / "deps" / bundle / "pom.xml")  # noqa: S314 - our own file
    node = tree.getroot().find(f"m:properties/m:{name}", ns)
    assert node is not None and node.text, f"{bundle}/pom.xml has no {name}"
    return node.text.strip()


def _pyspark_pin() -> str:
    pins = [d for d in _pyproject()["project"]["dependencies"] if d.startswith("pyspark==")]
    assert len(pins) == 1, "pyproject.toml must pin pyspark exactly"
    return pins[0].split("==", 1)[1]


def _dockerfile_args() -> dict[str, set[str]]:
    args: dict[str, set[str]] = {}
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"ARG (\w+)=(\S+)", line.strip())
        if match:
            args.setdefault(match.group(1), set()).add(match.group(2))
    return args


def test_images_are_pinned_and_match_the_project_versions() -> None:
    spark_version = _pyspark_pin()
    assert _pom_property("spark-connectors", "spark.version") == spark_version
    kafka_version = _pom_property("kafka-broker", "kafka.version")
    for name, svc in services().items():
        repo, tag = image_tag(str(svc["image"]))
        assert tag and tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned {svc['image']}"
        if repo == "apache/kafka":
            assert tag == kafka_version, f"{name}: Kafka {tag}, the project pins {kafka_version}"
        if repo == "apache/spark":
            assert tag.split("-")[0] == spark_version, f"{name}: Spark {tag} vs {spark_version}"
            assert f"java{JAVA}" in tag, f"{name}: {tag} is not the Java {JAVA} image"
    assert image_tag(services()["scorer"]["image"])[1] == _pyproject()["project"]["version"]


def test_long_running_services_have_health_checks_and_one_shots_do_not_restart() -> None:
    for name, svc in services().items():
        if svc.get("restart") == "no":
            continue
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for one_shot in ("topics", "train", "producer"):
        assert services()[one_shot]["restart"] == "no"


def test_dockerfile_pins_equal_the_project_pins() -> None:
    args = _dockerfile_args()
    assert args["PYSPARK_VERSION"] == {_pyspark_pin()}
    assert args["JAVA_VERSION"] == {JAVA}
    (python,) = args["PYTHON_VERSION"]
    minimum = _pyproject()["project"]["requires-python"].removeprefix(">=")
    assert python.split(".")[:2] == minimum.split(".")[:2], f"Python {python} vs >={minimum}"
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert '"pyspark==${PYSPARK_VERSION}"' in text, "the image must install the pinned pyspark"
    assert "jars.ensure('spark-connectors')" in text, "connector jars come from deps/ poms"


def test_dockerfile_copies_only_files_that_exist() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"
                assert source.rstrip("/") not in ignored, f"{source} is in .dockerignore"


# -- docs -------------------------------------------------------------------------------------
def test_deployment_docs_name_every_service_and_only_real_variables() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in services():
        assert f"`{name}`" in text, f"docs/deployment.md does not describe service {name}"
    parser = build_parser()
    known = _env_names(parser)
    for sub in _subparsers(parser).values():
        known |= _env_names(sub)
    for var in set(re.findall(r"\bSCORESTREAM_[A-Z_]+\b", text)):
        assert var in known, f"docs/deployment.md mentions {var}, which no command reads"
    for port in PUBLISHED.values():
        assert f"127.0.0.1:{port}" in text


def test_dockerfile_jar_stage_runs_from_what_it_copies(tmp_path: Path) -> None:
    """The Maven stage copies a few files only: they must be enough to import scorestream.jars."""
    from scorestream import jars

    stage = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ")[1]
    for line in stage.splitlines():
        if not line.startswith("COPY "):
            continue
        *sources, dest = line.split()[1:]
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, tmp_path / dest, dirs_exist_ok=True)
            else:
                (tmp_path / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, tmp_path / dest)
    probe = "from scorestream import jars; print(jars.bundle_dir('spark-connectors').name)"
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, ''); {probe}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    # Same poms, same cache key: the final stage finds the jars the Maven stage fetched.
    assert out.stdout.strip() == jars.bundle_dir("spark-connectors").name


# -- replication: ensure_topics and docker/create-topics.sh follow one rule ------------------
@pytest.mark.parametrize(
    ("brokers", "replication", "config", "expected"),
    [
        (1, None, None, (1, {})),
        (2, None, None, (2, {})),
        (3, None, None, (3, {"min.insync.replicas": "2"})),
        (5, None, None, (3, {"min.insync.replicas": "2"})),
        (3, 1, None, (1, {})),
        (3, None, {"min.insync.replicas": "3"}, (3, {"min.insync.replicas": "3"})),
    ],
)
def test_topic_layout(
    brokers: int, replication: int | None, config: dict[str, str] | None, expected: Any
) -> None:
    from scorestream.kafka import topic_layout

    assert topic_layout(brokers, replication, config) == expected


def test_create_topics_script_sets_min_isr_two_from_three_replicas() -> None:
    script = (ROOT / "docker" / "create-topics.sh").read_text(encoding="utf-8")
    assert '[ "$replication" -ge 3 ]' in script
    assert "--config min.insync.replicas=2" in script
    out = subprocess.run(["bash", "-n", str(ROOT / "docker" / "create-topics.sh")], check=False)
    assert out.returncode == 0
