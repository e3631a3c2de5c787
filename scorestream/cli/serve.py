"""Subcommand `serve`: the HTTP scoring service on uvicorn, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import sys

from scorestream import options as opt
from scorestream.cli.common import Command, kafka_args, kafka_settings
from scorestream.contract.formats import FORMATS
from scorestream.serve.server import server
from scorestream.serve.settings import ServeSettings

DEFAULTS = ServeSettings()


def serve_args(p: argparse.ArgumentParser) -> None:
    d = DEFAULTS
    opt.add(p, "--host", env="SCORESTREAM_SERVE_HOST", default=d.host, help="address to bind")
    opt.add(
        p,
        "--port",
        env="SCORESTREAM_SERVE_PORT",
        default=d.port,
        type=opt.positive_int,
        help="HTTP port",
    )
    opt.add(
        p,
        "--input-topic",
        env="SCORESTREAM_INPUT_TOPIC",
        default=d.input_topic,
        help="topic the scorer reads; requests are published here",
    )
    opt.add(
        p,
        "--output-topic",
        env="SCORESTREAM_OUTPUT_TOPIC",
        default=d.output_topic,
        help="topic the scorer writes scores to",
    )
    opt.add(
        p,
        "--dlq-topic",
        env="SCORESTREAM_DLQ_TOPIC",
        default=d.dead_letter_topic,
        help="the scorer's dead-letter topic (empty: <input topic>.dlq)",
    )
    p.add_argument(
        "--score-format",
        choices=FORMATS,
        default=d.score_format,
        help="encoding of score records, the scorer's --output-format "
        f"[env: none, default: {d.score_format}]",
    )
    opt.add(
        p,
        "--timeout",
        env="SCORESTREAM_SERVE_TIMEOUT",
        default=d.timeout_s,
        type=opt.non_negative_float,
        help="seconds a request waits for its answers before 504",
    )
    opt.add(
        p,
        "--max-in-flight",
        env="SCORESTREAM_SERVE_MAX_IN_FLIGHT",
        default=d.max_in_flight,
        type=opt.positive_int,
        help="events waiting for answers over all requests; more get 429",
    )
    opt.add(
        p,
        "--max-events",
        env="SCORESTREAM_SERVE_MAX_EVENTS",
        default=d.max_events,
        type=opt.positive_int,
        help="events in one request; more get 413",
    )
    opt.add(
        p,
        "--ready-window",
        env="SCORESTREAM_SERVE_READY_WINDOW",
        default=d.ready_window_s,
        type=opt.non_negative_float,
        help="/readyz needs a score or dead letter from the scorer newer than this (seconds)",
    )


def serve_settings(args: argparse.Namespace) -> ServeSettings:
    return ServeSettings(
        host=args.host,
        port=args.port,
        input_topic=args.input_topic,
        output_topic=args.output_topic,
        dead_letter_topic=args.dlq_topic,
        score_format=args.score_format,
        timeout_s=args.timeout,
        max_in_flight=args.max_in_flight,
        max_events=args.max_events,
        ready_window_s=args.ready_window,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    settings = serve_settings(args)
    kafka = kafka_settings(args)
    print(
        f"serving POST http://{settings.host}:{settings.port}/v1/score through "
        f"{settings.input_topic} -> {settings.output_topic} / {settings.dead_letters} "
        f"(docs on /docs)",
        file=sys.stderr,
        flush=True,
    )
    srv = server(kafka, settings, log_level=str(args.log_level).lower())
    srv.run()  # uvicorn handles SIGTERM and Ctrl-C: in-flight requests finish first
    return 0 if srv.started else 1


def register(command: Command) -> None:
    """Add `serve` to the CLI."""
    p = command("serve", cmd_serve, "HTTP request-reply scoring through Kafka and the scorer")
    kafka_args(p)
    serve_args(p)
