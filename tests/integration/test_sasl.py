"""Secured clusters: a broker of our own with a SASL_PLAINTEXT listener (PLAIN and SCRAM-SHA-256).

- our confluent clients work with correct credentials over PLAIN and SCRAM;
- the streaming scorer reads and writes through the SASL listener (kafka.* options pass through
  to Spark's source and sink) and scores every event;
- wrong credentials fail fast with a message that says the broker refused them, both for our
  clients and for `scorestream score` (exit status 2);
- the password is never printed: not in the scorer's logs or output, not in the CLI's error
  output, not in `--help` (with the password in the config file it names).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from streamkit import EVENT_TIME, read, wait_for

from scorestream.contract.synthetic import iter_events
from scorestream.errors import StackError
from scorestream.kafka import KafkaSettings, ensure_topics, wait_for_metadata
from scorestream.models.registry import Registry
from scorestream.producers.encoding import encode_json
from scorestream.producers.publisher import Publisher
from scorestream.stack import LocalKafka, StackSettings, free_port_block
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings

USER, PASSWORD = "scorer", "pl41n-S3cret-7c1f"
SCRAM_USER, SCRAM_PASSWORD = "scrammer", "scr4m-S3cret-9d2e"
WRONG = "wr0ng-S3cret-0000"
SECRETS = (PASSWORD, SCRAM_PASSWORD, WRONG)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    settings = StackSettings(
        state_dir=tmp_path_factory.mktemp("sasl-stack"),
        port=free_port_block(1),
        heap="384m",
        sasl_users=((USER, PASSWORD),),
        extra_config=(
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-256"),
            (
                "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ),
        ),
    )
    local = LocalKafka(settings)
    local.up()
    try:
        _add_scram_user(local.kafka)
        yield local
    finally:
        local.down()
        assert not local.running()


def _add_scram_user(admin_side: KafkaSettings) -> None:
    """SCRAM credentials live in the cluster metadata: created through the admin API."""
    from confluent_kafka.admin import (
        AdminClient,
        ScramCredentialInfo,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    admin = AdminClient(admin_side.confluent())
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096)
    upsert = UserScramCredentialUpsertion(SCRAM_USER, info, SCRAM_PASSWORD.encode())
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(timeout=30)


def _sasl(stack: LocalKafka, user: str, password: str, mechanism: str = "PLAIN") -> KafkaSettings:
    return KafkaSettings(
        bootstrap=f"127.0.0.1:{stack.settings.sasl_port(0)}",
        options={
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
        },
    )


def _no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a password appears in {where}"


def test_our_clients_work_over_plain_and_scram(secured: LocalKafka) -> None:
    for kafka in (
        _sasl(secured, USER, PASSWORD),
        _sasl(secured, SCRAM_USER, SCRAM_PASSWORD, "SCRAM-SHA-256"),
    ):
        deadline = time.monotonic() + 60
        while True:  # SCRAM credentials reach the broker's cache shortly after they are written
            try:
                assert wait_for_metadata(kafka, 10) == 1
                break
            except StackError:
                if time.monotonic() > deadline:
                    raise
        topic = f"sasl-{kafka.options['sasl.mechanism'].lower()}"
        ensure_topics(kafka, [topic], partitions=1)
        with Publisher(kafka) as pub:
            for i in range(10):
                pub.send(topic, f"m{i}".encode())
        assert [m.value() for m in read(kafka, topic, 10, timeout_s=30)] == [
            f"m{i}".encode() for i in range(10)
        ]
        _no_secret(repr(kafka) + str(kafka), "KafkaSettings repr")


def test_wrong_credentials_fail_fast_with_a_clear_message(secured: LocalKafka) -> None:
    for kafka in (_sasl(secured, USER, WRONG), _sasl(secured, "nobody", WRONG, "SCRAM-SHA-256")):
        started = time.monotonic()
        with pytest.raises(StackError) as info:
            wait_for_metadata(kafka, 30)
        text = str(info.value)
        assert "refused our credentials" in text and "Authentication failed" in text, text
        assert time.monotonic() - started < 20  # not the whole timeout: a login is final
        _no_secret(text, "the error message")


@pytest.mark.timeout(1800)
def test_scorer_scores_through_the_sasl_listener(
    secured: LocalKafka,
    spark: Any,
    trained_registry: Registry,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # As `scorestream` sets it: py4j logs every command sent to the JVM at DEBUG, Kafka
    # options (and so the JAAS line with the password) included.
    logging.getLogger("py4j").setLevel(logging.INFO)
    kafka = _sasl(secured, USER, PASSWORD)
    source, output = "sasl-features", "sasl-scores"
    ensure_topics(kafka, [source, output, f"{source}.dlq"], partitions=2)
    events = []
    for i, event in enumerate(iter_events(500, seed=808)):
        event["event_time"] = EVENT_TIME + i
        events.append(event)
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=tmp_path / "checkpoint",
    )
    scorer = Scorer(spark, kafka, settings)
    scorer.start()
    try:
        scorer.wait_ready()
        with Publisher(kafka) as pub:
            for e in events:
                pub.send(source, encode_json(e), key=str(e["event_id"]).encode())
        wait_for(scorer, len(events), timeout_s=400)
    finally:
        scorer.stop()
    scores = read(kafka, output, len(events), timeout_s=60)
    assert sorted(json.loads(m.value())["event_id"] for m in scores) == sorted(
        str(e["event_id"]) for e in events
    )
    captured = capfd.readouterr()
    _no_secret(captured.out + captured.err, "the scorer's output")
    _no_secret("\n".join(r.getMessage() for r in caplog.records), "the scorer's logs")


def _cli(
    args: list[str], env: dict[str, str], timeout_s: float
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scorestream", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        timeout=timeout_s,
        check=False,
    )


@pytest.mark.timeout(1800)
def test_score_command_with_wrong_password_exits_2_without_printing_it(
    secured: LocalKafka, trained_registry: Registry, tmp_path: Path
) -> None:
    config = tmp_path / "client.properties"
    config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        f"sasl.username={USER}\nsasl.password={WRONG}\n",
        encoding="utf-8",
    )
    env = {"SCORESTREAM_KAFKA_CONFIG": str(config)}
    bootstrap = f"127.0.0.1:{secured.settings.sasl_port(0)}"
    help_text = _cli(["score", "--help"], env, 120)
    assert help_text.returncode == 0 and "SCORESTREAM_KAFKA_CONFIG" in help_text.stdout
    _no_secret(help_text.stdout + help_text.stderr, "score --help")

    for extra in ([], ["-X", f"sasl.password={WRONG}"]):
        done = _cli(
            [
                "score",
                "--bootstrap",
                bootstrap,
                *extra,
                "--registry",
                str(trained_registry.root),
                "--checkpoint",
                str(tmp_path / "checkpoint"),
                "--startup-timeout",
                "30",
                "--metrics-port",
                "0",
                "--master",
                "local[1]",
            ],
            env,
            600,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 2, output[-3000:]
        assert f"error: Kafka at {bootstrap} refused our credentials" in done.stderr, output[-3000:]
        _no_secret(output, "the score command's output")
