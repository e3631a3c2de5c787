"""The HTTP API of `scorestream serve`: POST /v1/score, /healthz, /readyz; OpenAPI at /docs."""

from __future__ import annotations

import asyncio
import json
import math
import statistics
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from scorestream import __version__
from scorestream.kafka import KafkaSettings
from scorestream.producers.encoding import decoder, encode_json
from scorestream.serve.replies import PublishError, ReplyRouter, Waiter
from scorestream.serve.settings import ServeSettings

Status = Literal["scored", "dead_lettered", "pending"]


class ScoreResult(BaseModel):
    """One event's answer, in the order the events were sent."""

    event_id: str | None = Field(default=None, description="the event's id (null when it had none)")
    status: Status
    score: float | None = Field(default=None, description="probability of the positive class")
    prediction: float | None = None
    model_version: int | None = None
    event_time: str | None = None
    scored_at: str | None = None
    reason: str | None = Field(default=None, description="dead-letter reason, e.g. OUT_OF_RANGE")
    message: str | None = Field(
        default=None, description="dead-letter message naming field and value"
    )


class ScoreResponse(BaseModel):
    """200: every event scored; 422: some dead-lettered; 504: some still pending."""

    results: list[ScoreResult]
    pending: list[str] = Field(default_factory=list, description="ids with no answer yet (504)")
    detail: str | None = None


class Problem(BaseModel):
    detail: str


EXAMPLE = {
    "event_id": "evt-7-0",
    "event_time": "2026-11-21T10:15:00.123Z",
    "amount": 56.25,
    "merchant_category": "electronics",
    "country": "NG",
    "hour_of_day": 15,
    "distance_from_home_km": 2.55,
    "card_age_days": 523,
    "is_online": 1,
    "transactions_last_24h": 3,
}


def _result(waiter: Waiter) -> ScoreResult:
    future = waiter.future
    ident = waiter.event_id if waiter.event_id is not None else waiter.key.decode()
    if not future.done() or future.cancelled():
        return ScoreResult(event_id=waiter.event_id, status="pending")
    reply = future.result()
    if reply.record is None:
        return ScoreResult(
            event_id=waiter.event_id,
            status="dead_lettered",
            reason=reply.reason,
            message=reply.message,
        )
    r = reply.record
    return ScoreResult(
        event_id=str(r.get("event_id", ident)),
        status="scored",
        score=r.get("score"),
        prediction=r.get("prediction"),
        model_version=r.get("model_version"),
        event_time=None if r.get("event_time") is None else str(r["event_time"]),
        scored_at=None if r.get("scored_at") is None else str(r["scored_at"]),
    )


class Service:
    """What the routes share: the reply router, the in-flight count, recent latencies."""

    def __init__(self, kafka: KafkaSettings, settings: ServeSettings) -> None:
        self.settings = settings
        self.router = ReplyRouter(kafka, settings, decoder(settings.score_format))
        self.in_flight = 0  # events; touched only on the event loop's thread
        self.latencies_s: deque[float] = deque(maxlen=500)

    def retry_after_s(self) -> int:
        """Seconds a refused caller should wait: about one recent request's latency."""
        if not self.latencies_s:
            return 1
        return max(1, math.ceil(statistics.median(self.latencies_s)))

    async def score(self, events: list[dict[str, Any]]) -> JSONResponse:
        s = self.settings
        if len(events) > s.max_events:
            detail = f"{len(events)} events in one request; at most {s.max_events} (--max-events)"
            return JSONResponse({"detail": detail}, status_code=413)
        if not events:
            return JSONResponse({"detail": "no events: send an object or a list"}, 422)
        if self.in_flight + len(events) > s.max_in_flight:
            wait = self.retry_after_s()
            detail = (
                f"{self.in_flight} events in flight; {len(events)} more would pass the limit of "
                f"{s.max_in_flight} (--max-in-flight)"
            )
            return JSONResponse(
                {"detail": detail}, status_code=429, headers={"Retry-After": str(wait)}
            )
        started = time.monotonic()
        self.in_flight += len(events)
        loop = asyncio.get_running_loop()
        waiters: list[Waiter] = []
        try:
            payload = [
                (None if e.get("event_id") is None else str(e["event_id"]), encode_json(e))
                for e in events
            ]
            try:
                waiters = self.router.submit(payload, loop)
            except PublishError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=503)
            await asyncio.wait([w.future for w in waiters], timeout=s.timeout_s)
            self.latencies_s.append(time.monotonic() - started)
        finally:
            self.router.abandon(waiters)
            self.in_flight -= len(events)
        return self._answer(waiters)

    def _answer(self, waiters: list[Waiter]) -> JSONResponse:
        failed = [w for w in waiters if w.future.done() and w.future.exception() is not None]
        if failed:
            return JSONResponse({"detail": str(failed[0].future.exception())}, status_code=503)
        results = [_result(w) for w in waiters]
        pending = [
            w.event_id if w.event_id is not None else w.key.decode()
            for w, r in zip(waiters, results, strict=True)
            if r.status == "pending"
        ]
        dead = sum(r.status == "dead_lettered" for r in results)
        body = ScoreResponse(results=results, pending=pending)
        if pending:
            body.detail = (
                f"{len(pending)} of {len(results)} events not answered within "
                f"{self.settings.timeout_s:g} s"
            )
            code = 504
        elif dead:
            body.detail = f"{dead} of {len(results)} events dead-lettered; see reason per event"
            code = 422
        else:
            code = 200
        # Empty fields are left out, except `event_id`: null says the event had none.
        shown = json.loads(body.model_dump_json(exclude_none=True))
        shown["results"] = [
            {"event_id": r.event_id, **row}
            for r, row in zip(results, shown["results"], strict=True)
        ]
        return JSONResponse(shown, status_code=code)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        broker = self.router.broker_reachable()
        seen = self.router.last_output_s
        age = None if seen is None else max(0.0, time.time() - seen)
        fresh = age is not None and age <= self.settings.ready_window_s
        consuming = self.router.consuming()
        ready = broker and fresh and consuming
        return ready, {
            "ready": ready,
            "broker_reachable": broker,
            "reply_consumer_running": consuming,
            "last_scorer_output_age_s": None if age is None else round(age, 3),
            "ready_window_s": self.settings.ready_window_s,
            "in_flight": self.in_flight,
            "replies": self.router.stats.snapshot(),
        }


def create_app(kafka: KafkaSettings, settings: ServeSettings) -> FastAPI:
    """The ASGI app; its lifespan starts the producer and the shared reply consumer."""
    service = Service(kafka, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(service.router.start)
        try:
            yield
        finally:
            await asyncio.to_thread(service.router.close)

    app = FastAPI(
        title="scorestream serve",
        version=__version__,
        summary="Request-reply scoring: events through Kafka and the streaming scorer.",
        lifespan=lifespan,
    )
    app.state.service = service

    @app.post(
        "/v1/score",
        response_model=ScoreResponse,
        responses={
            413: {"model": Problem, "description": "more events than --max-events"},
            422: {"model": ScoreResponse, "description": "some events were dead-lettered"},
            429: {"model": Problem, "description": "too many events in flight; see Retry-After"},
            503: {"model": Problem, "description": "the events could not be published"},
            504: {"model": ScoreResponse, "description": "no answer within --timeout"},
        },
    )
    async def score(
        body: dict[str, Any] | list[dict[str, Any]] = Body(..., examples=[EXAMPLE]),  # noqa: B008
    ) -> JSONResponse:
        """Score one event (an object) or several (a list), through the input topic and the
        streaming scorer; answers once every event is scored or dead-lettered."""
        events = body if isinstance(body, list) else [body]
        return await service.score(events)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: the broker answers, the reply consumer runs, and the scorer wrote a
        score or dead letter within --ready-window seconds."""
        ready, body = await asyncio.to_thread(service.readiness)
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
