"""`scorestream serve` on the real broker with the real scorer: 1,000 concurrent requests each
answered once with the batch score or the dead-letter reason; 429, 504, 413 and readiness."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from fixtures_serve import ServeFactory
from streamkit import EVENT_TIME, running

from scorestream.contract.synthetic import SPEC, iter_events
from scorestream.kafka import KafkaSettings
from scorestream.models.batch import score_frame
from scorestream.models.registry import Registry
from scorestream.models.scoring import typed_features
from scorestream.streaming.settings import ScorerSettings

REQUESTS = 1_000
CONCURRENCY = 250


def _batch_scores(
    spark: Any, registry: Registry, events: list[dict[str, Any]]
) -> dict[str, tuple[float, float, int]]:
    """event id -> (score, prediction, version) by batch scoring (models/batch.py)."""
    from pyspark.sql.types import DoubleType, StringType, StructField, StructType

    schema = StructType(
        [StructField("event_id", StringType())]
        + [StructField(n, DoubleType()) for n in SPEC.numeric_names]
        + [StructField(n, StringType()) for n in SPEC.categorical]
    )
    rows = [tuple(e.get(f.name) for f in schema.fields) for e in events]
    entry, model = registry.load("champion")
    frame = typed_features(spark.createDataFrame(rows, schema), entry.spec, where="requests")
    scored = score_frame(frame, entry, model).collect()
    return {r["event_id"]: (r["score"], float(r["prediction"]), r["model_version"]) for r in scored}


def _bad(i: int, base: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """A bad event, the reason the scorer must give and a word its message must hold."""
    kind = i % 4
    event = {**base, "event_id": f"bad-{i}"}
    if kind == 0:
        return {**event, "hour_of_day": 24.0}, "OUT_OF_RANGE", "hour_of_day"
    if kind == 1:
        return {**event, "amount": "12 euros"}, "WRONG_TYPE", "amount"
    if kind == 2:
        return {k: v for k, v in event.items() if k != "event_time"}, "MISSING_FIELD", "event_time"
    # No event id at all: its dead letter comes back by the correlation key.
    return {k: v for k, v in event.items() if k != "event_id"}, "MISSING_FIELD", "event_id"


def _plan() -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]], dict[int, tuple[str, str]]]:
    """Request bodies (as lists of events), the good events, and expected dead letters by
    (request, position)."""
    source = iter_events(REQUESTS * 2, seed=1616)

    def good() -> dict[str, Any]:
        event = next(source)
        event["event_time"] = EVENT_TIME
        return event

    requests: list[list[dict[str, Any]]] = []
    goods: list[dict[str, Any]] = []
    bad: dict[int, tuple[str, str]] = {}
    for i in range(REQUESTS):
        if i % 20 == 0:  # one bad event
            event, reason, word = _bad(i // 20, good())
            requests.append([event])
            bad[i * 10] = (reason, word)
        elif i % 20 == 1:  # three good events
            batch = [good(), good(), good()]
            requests.append(batch)
            goods += batch
        elif i % 20 == 2:  # a good one and a bad one
            first = good()
            event, reason, word = _bad(i // 20 + 1, good())
            requests.append([first, event])
            goods.append(first)
            bad[i * 10 + 1] = (reason, word)
        else:
            event = good()
            requests.append([event])
            goods.append(event)
    return requests, goods, bad


def test_serve_answers_every_request_with_its_score_or_reason(
    spark: Any,
    kafka: KafkaSettings,
    trained_registry: Registry,
    topic_factory: Any,
    checkpoint: Path,
    serve_factory: ServeFactory,
) -> None:
    source, output = topic_factory("features"), topic_factory("scores")
    settings = ScorerSettings(
        input_topic=source,
        output_topic=output,
        registry=trained_registry.root,
        checkpoint=checkpoint,
        starting_offsets="latest",
    )
    requests, goods, bad = _plan()
    expected = _batch_scores(spark, trained_registry, goods)
    version = trained_registry.resolve("champion")
    serve = serve_factory(input_topic=source, output_topic=output, timeout=120, max_in_flight=5_000)
    # Nothing scored yet: alive but not ready.
    assert httpx.get(f"{serve.url}/healthz", timeout=5).status_code == 200
    not_ready = httpx.get(f"{serve.url}/readyz", timeout=10)
    assert not_ready.status_code == 503, not_ready.text
    assert not_ready.json()["broker_reachable"] is True
    assert not_ready.json()["last_scorer_output_age_s"] is None

    with running(spark, kafka, settings) as scorer:
        # One request warms the path (and makes the service ready), then the 1,000 at once.
        warm = {**next(iter_events(1, seed=99)), "event_time": EVENT_TIME}
        first = httpx.post(f"{serve.url}/v1/score", json=warm, timeout=120)
        assert first.status_code == 200, first.text
        assert [r["event_id"] for r in first.json()["results"]] == [warm["event_id"]]
        ready = httpx.get(f"{serve.url}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["replies"]["matched"] >= 1, ready.text

        latencies: list[float] = []

        async def one(client: httpx.AsyncClient, gate: asyncio.Semaphore, i: int) -> Any:
            body: Any = requests[i][0] if len(requests[i]) == 1 else requests[i]
            async with gate:
                t0 = time.monotonic()
                answer = await client.post("/v1/score", json=body)
                latencies.append(time.monotonic() - t0)
                return answer

        async def all_requests() -> list[httpx.Response]:
            gate = asyncio.Semaphore(CONCURRENCY)
            limits = httpx.Limits(max_connections=CONCURRENCY)
            async with httpx.AsyncClient(base_url=serve.url, timeout=180, limits=limits) as client:
                return await asyncio.gather(*(one(client, gate, i) for i in range(REQUESTS)))

        started = time.monotonic()
        answers = asyncio.run(all_requests())
        elapsed = time.monotonic() - started
    records_in = scorer.totals.records_in  # counted once stopping settled the last batch

    assert len(answers) == REQUESTS
    scored = dead = 0
    for i, (body, answer) in enumerate(zip(requests, answers, strict=True)):
        results = answer.json()["results"]
        assert len(results) == len(body), (i, answer.text)
        want_bad = [j for j in range(len(body)) if i * 10 + j in bad]
        assert answer.status_code == (422 if want_bad else 200), (i, answer.text)
        for j, (event, result) in enumerate(zip(body, results, strict=True)):
            assert result["event_id"] == event.get("event_id"), (i, j, result)
            if i * 10 + j in bad:
                reason, word = bad[i * 10 + j]
                assert result["status"] == "dead_lettered", (i, j, result)
                assert result["reason"] == reason, (i, j, result)
                assert word in result["message"], (i, j, result)
                dead += 1
            else:
                score, prediction, v = expected[event["event_id"]]
                assert result["status"] == "scored", (i, j, result)
                assert abs(result["score"] - score) <= 1e-9, (i, j, result, score)
                assert result["prediction"] == prediction
                assert result["model_version"] == v == version
                scored += 1
    assert scored == len(goods) and dead == len(bad)
    # Every event published once: the scorer read the requests' events and the warm-up, no more.
    assert records_in == len(goods) + len(bad) + 1
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"\nserve: {REQUESTS} requests ({len(goods) + len(bad)} events, {CONCURRENCY} concurrent) "
        f"in {elapsed:.1f} s; request latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )


def test_serve_limits_give_429_504_413_and_not_ready(
    kafka: KafkaSettings, topic_factory: Any, serve_factory: ServeFactory
) -> None:
    # No scorer reads this topic: every request waits until its timeout.
    source, output = topic_factory("features"), topic_factory("scores")
    serve = serve_factory(
        input_topic=source, output_topic=output, timeout=3, max_in_flight=3, max_events=5
    )
    events = [{**e, "event_time": EVENT_TIME} for e in iter_events(10, seed=5)]

    async def scenario() -> tuple[httpx.Response, httpx.Response, dict[str, Any]]:
        async with httpx.AsyncClient(base_url=serve.url, timeout=30) as client:
            waiting = asyncio.ensure_future(client.post("/v1/score", json=events[:3]))
            deadline = time.monotonic() + 20
            while True:  # until the service counts the three events in flight
                state = (await client.get("/readyz")).json()
                if state["in_flight"] == 3:
                    break
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.02)  # polling with a deadline
            refused = await client.post("/v1/score", json=events[3])
            return await waiting, refused, state

    timed_out, refused, state = asyncio.run(scenario())
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert "--max-in-flight" in refused.json()["detail"]
    assert timed_out.status_code == 504, timed_out.text
    assert timed_out.json()["pending"] == [e["event_id"] for e in events[:3]]
    assert [r["status"] for r in timed_out.json()["results"]] == ["pending"] * 3
    assert state["ready"] is False and state["last_scorer_output_age_s"] is None

    # The timed-out events no longer count: the next one is accepted (and times out too).
    again = httpx.post(f"{serve.url}/v1/score", json=events[4], timeout=30)
    assert again.status_code == 504, again.text
    assert again.json()["pending"] == [events[4]["event_id"]]
    too_many = httpx.post(f"{serve.url}/v1/score", json=events[:6], timeout=30)
    assert too_many.status_code == 413, too_many.text
    assert "--max-events" in too_many.json()["detail"]
    docs = httpx.get(f"{serve.url}/openapi.json", timeout=10).json()
    assert "/v1/score" in docs["paths"]
    assert httpx.get(f"{serve.url}/docs", timeout=10).status_code == 200
