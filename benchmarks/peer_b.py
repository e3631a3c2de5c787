"""Peer B, raw pass-through: consume and produce the same bytes, no parsing, no scoring.

The ceiling of the broker and a Python Kafka client on this machine: any scorer's throughput
is measured against it.

    python -m benchmarks.peer_b --bootstrap ... --input-topic ... --output-topic ... --dlq-topic ...
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from benchmarks.service import serve, service_args


def passthrough(messages: Sequence[Any]) -> tuple[list[tuple[bytes | None, bytes]], list[Any]]:
    return [(m.key(), m.value()) for m in messages], []


def main(argv: list[str] | None = None) -> int:
    p = service_args("python -m benchmarks.peer_b", "peer B: raw pass-through")
    return serve(p.parse_args(argv), passthrough)


if __name__ == "__main__":
    raise SystemExit(main())
