"""`scorestream`: the one command-line front door; each package registers its own subcommands."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from scorestream import __version__
from scorestream import options as opt
from scorestream.cli.common import Handler, stack, stack_args
from scorestream.demo import DemoSettings
from scorestream.errors import ScorestreamError


def cmd_stack(args: argparse.Namespace) -> int:
    local = stack(args)
    if args.action == "up":
        nodes = local.up()
        pids = ", ".join(str(n.pid) for n in nodes)
        print(f"Kafka is up on {local.settings.bootstrap} (pids {pids}; state in {local.root})")
    elif args.action == "down":
        stopped = local.down()
        print(f"stopped {stopped} Kafka node(s) of {local.root}")
    else:
        running = local.running()
        if not running:
            print(f"Kafka stack in {local.root}: not running")
            return 3
        for n in running:
            print(f"node {n.node_id}: pid {n.pid}, 127.0.0.1:{n.port}, log {n.log}")
    return 0


def cmd_jars(_args: argparse.Namespace) -> int:
    from scorestream import jars

    for bundle in jars.BUNDLES:
        print(jars.ensure(bundle))
    return 0


def demo_settings(args: argparse.Namespace) -> DemoSettings:
    from scorestream.cli.monitoring import monitor_settings
    from scorestream.spark import jvm_log_level

    return DemoSettings(
        events=args.events,
        rate=args.rate,
        port=args.port,
        keep=args.keep,
        serve_port=args.serve_port,
        jvm_log_level=jvm_log_level(args.log_level),
        monitoring=monitor_settings(args),
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from scorestream.demo import run_demo

    return run_demo(demo_settings(args))


def build_parser() -> argparse.ArgumentParser:
    from scorestream.cli.batch import register as register_batch
    from scorestream.cli.models import register as register_models
    from scorestream.cli.monitoring import metrics_args
    from scorestream.cli.monitoring import register as register_monitoring
    from scorestream.cli.producers import register as register_producers
    from scorestream.cli.retrain import register as register_retrain
    from scorestream.cli.serve import register as register_serve
    from scorestream.cli.sink import register as register_sink
    from scorestream.cli.streaming import register as register_streaming
    from scorestream.cli.train import register as register_train

    parser = argparse.ArgumentParser(
        prog="scorestream",
        description="Real-time ML scoring over Kafka with Spark Structured Streaming.",
    )
    parser.add_argument("--version", action="version", version=f"scorestream {__version__}")
    opt.add(
        parser,
        "--log-level",
        env="SCORESTREAM_LOG_LEVEL",
        default="WARNING",
        help="level of scorestream's own log messages",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(handler=handler)
        return p

    p = command("stack", cmd_stack, "start, stop or inspect the local Kafka broker (KRaft)")
    p.add_argument("action", choices=["up", "down", "status"])
    stack_args(p)
    command("jars", cmd_jars, "fetch the pinned Kafka and Spark connector jars with Maven")
    register_train(command)
    register_models(command)
    register_batch(command)
    register_streaming(command)
    register_producers(command)
    register_monitoring(command)
    register_serve(command)
    register_sink(command)
    register_retrain(command)

    p = command("demo", cmd_demo, "run the whole path end to end on a local stack")
    d = DemoSettings()  # each default is the settings field's, written once
    opt.add(
        p,
        "--events",
        env="DEMO_EVENTS",
        default=d.events,
        type=opt.positive_int,
        help="events to publish and score",
    )
    opt.add(
        p,
        "--rate",
        env="DEMO_RATE",
        default=d.rate,
        type=opt.non_negative_float,
        help="events per second (0: as fast as possible)",
    )
    opt.add(
        p,
        "--port",
        env="SCORESTREAM_STACK_PORT",
        default=d.port,
        type=opt.positive_int,
        help="broker port of the demo's stack",
    )
    opt.add(
        p,
        "--serve-port",
        env="SCORESTREAM_SERVE_PORT",
        default=d.serve_port,
        type=opt.positive_int,
        help="with --keep: port of the HTTP scoring service on 127.0.0.1",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the stack and scorer running until Ctrl-C [env: none, default: false]",
    )
    metrics_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    opt.check_environment(args)
    level = getattr(logging, str(args.log_level).upper(), logging.WARNING)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # py4j logs every command sent to the JVM at DEBUG: Kafka passwords included.
    logging.getLogger("py4j").setLevel(max(level, logging.INFO))
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # MLflow's REST client retries 7 times with backoff and waits 120 s a request by default:
    # minutes per call. An alias poll at a batch boundary should give up within seconds and
    # keep the serving model (the user's own settings win).
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        return int(args.handler(args))
    except ScorestreamError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
