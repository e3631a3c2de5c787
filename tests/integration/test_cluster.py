"""A three-broker KRaft cluster survives losing a broker in the middle of a stream.

The cluster is `scorestream stack up --brokers 3` (LocalKafka), on 127.0.0.1 ports nobody else
holds. One broker, the leader of an input partition, is SIGKILLed by its pid while 50,000
events stream through six input partitions, the scorer keeps scoring, the broker comes back,
and every input event_id reaches the score topic (at-least-once: duplicates allowed, loss not).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scorestream.contract.synthetic import iter_events
from scorestream.kafka import KafkaSettings, ensure_topics, wait_for_metadata
from scorestream.models.registry import Registry
from scorestream.producers.publisher import ProduceSettings, publish
from scorestream.producers.subscriber import consumer
from scorestream.stack import LocalKafka, StackSettings, free_port_block, pid_alive
from scorestream.streaming.job import Scorer
from scorestream.streaming.settings import ScorerSettings

EVENTS = 50_000
RATE = 2_500.0  # events/s: a 20 s stream, long enough to lose and regain a broker inside it
PARTITIONS = 6
EVENT_TIME = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    state = tmp_path_factory.mktemp("cluster")
    local = LocalKafka(
        StackSettings(state_dir=state, port=free_port_block(3), brokers=3, heap="512m")
    )
    local.up()
    try:
        yield local
    finally:
        local.down()
        assert not local.running(), "a broker of the test cluster is still running"


def _admin(kafka: KafkaSettings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(kafka.confluent())


def _min_isr(kafka: KafkaSettings, topic: str) -> str:
    from confluent_kafka.admin import ConfigResource

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = _admin(kafka)  # kept alive until the future resolves
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    return str(configs["min.insync.replicas"].value)


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)  # polling progress counters with a deadline
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


def test_three_brokers_topics_get_three_replicas_and_min_isr_two(cluster: LocalKafka) -> None:
    kafka = cluster.kafka
    assert wait_for_metadata(kafka, 30) == 3
    topic = f"rf-{time.monotonic_ns()}"
    assert ensure_topics(kafka, [topic], partitions=PARTITIONS) == [topic]
    meta = _admin(kafka).list_topics(topic=topic, timeout=30).topics[topic]
    assert len(meta.partitions) == PARTITIONS
    assert {len(p.replicas) for p in meta.partitions.values()} == {3}
    assert _min_isr(kafka, topic) == "2"
    # The brokers themselves default to the same, for topics created by other tools.
    for node in cluster.nodes():
        props = Path(node.config).read_text(encoding="utf-8")
        assert "default.replication.factor=3\n" in props
        assert "min.insync.replicas=2\n" in props


# Setup (SparkSession, model), a 50,000-event stream and three broker shutdowns: on a loaded
# 2-core machine this has taken ten minutes, more than the suite's default per-test limit.
@pytest.mark.timeout(1800)
def test_scorer_survives_a_broker_killed_mid_stream(
    cluster: LocalKafka, spark: Any, trained_registry: Registry, tmp_path: Path
) -> None:
    kafka = cluster.kafka
    source, scores = "features-ha", "scores-ha"
    ensure_topics(kafka, [source], partitions=PARTITIONS)
    ensure_topics(kafka, [scores, f"{source}.dlq"], partitions=PARTITIONS)
    events = []
    for i, event in enumerate(iter_events(EVENTS, seed=99)):
        event["event_time"] = EVENT_TIME + i
        events.append(event)
    expected = {str(e["event_id"]) for e in events}
    assert len(expected) == EVENTS

    scorer = Scorer(
        spark,
        kafka,
        ScorerSettings(
            input_topic=source,
            output_topic=scores,
            registry=trained_registry.root,
            checkpoint=tmp_path / "checkpoint",
            max_offsets_per_trigger=5_000,
            create_topics=False,
        ),
    )
    scorer.start()
    scorer.wait_ready()

    sent = [0]
    outcome: dict[str, Any] = {}

    def produce() -> None:
        try:
            outcome["delivered"] = publish(
                kafka,
                ProduceSettings(topic=source, count=EVENTS, rate=RATE),
                events=events,
                progress=lambda n, _t: sent.__setitem__(0, n),
            )
        except Exception as exc:
            outcome["error"] = exc

    producer = threading.Thread(target=produce, name="ha-producer", daemon=True)
    producer.start()
    try:
        _wait("15,000 events published", lambda: sent[0] >= 15_000, 120)
        meta = _admin(kafka).list_topics(topic=source, timeout=30).topics[source]
        victim = meta.partitions[0].leader
        (node,) = [n for n in cluster.nodes() if n.node_id == victim]
        cluster.stop_node(victim, sig=signal.SIGKILL)
        assert not pid_alive(node.pid), f"broker {victim} (pid {node.pid}) survived SIGKILL"
        killed_at = (sent[0], scorer.totals.scored)

        # The scorer keeps going on the two brokers left (new leaders, min ISR 2 met).
        _wait(
            "scoring 5,000 more events with a broker down",
            lambda: scorer.totals.scored >= killed_at[1] + 5_000,
            240,
        )
        scorer.raise_if_failed()
        during = (sent[0] - killed_at[0], scorer.totals.scored - killed_at[1])

        cluster.restart_node(victim)
        _wait("the broker rejoining", lambda: wait_for_metadata(kafka, 10) == 3, 120)
        producer.join(timeout=600)
        assert not producer.is_alive(), "the producer did not finish"
        assert "error" not in outcome, f"publishing failed: {outcome.get('error')}"
        assert outcome["delivered"] == EVENTS

        seen: set[str] = set()
        records = 0
        c = consumer(kafka, scores)
        deadline = time.monotonic() + 600
        try:
            while seen != expected and time.monotonic() < deadline:
                for msg in c.consume(num_messages=5000, timeout=0.5):
                    if not msg.error():
                        seen.add(str(json.loads(msg.value())["event_id"]))
                        records += 1
                scorer.raise_if_failed()
        finally:
            c.close()
    finally:
        scorer.stop()
        producer.join(timeout=60)
    missing = expected - seen
    assert not missing, (
        f"{len(missing)} event_ids never reached {scores}, e.g. {sorted(missing)[:5]}"
    )
    assert seen == expected
    assert scorer.totals.dead_lettered == 0
    assert scorer.totals.records_in >= EVENTS  # replays after the failure are allowed
    print(
        f"broker {victim} killed after {killed_at[0]} events; while it was down "
        f"{during[0]} more were published and {during[1]} scored; {records} score records "
        f"for {len(seen)} events ({records - len(seen)} duplicates)"
    )
