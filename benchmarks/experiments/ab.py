"""Today's scorer against an older commit's, on one broker and the same events, with profiles.

    git worktree add /tmp/before <commit>
    cd /tmp && PYTHONPATH=<this checkout> python -m benchmarks.experiments.ab \
        --old-tree /tmp/before [--events 300000] [--repeats 3]

(From outside both trees: `python -m` puts the working directory first on the path, and each
contender must import its own tree's `benchmarks`.)
Each side trains its own model with its own code (`benchmarks.worker prepare` of that tree)
and runs its own `benchmarks.worker scorer` (the contender `scorer-json`), alternating old and
new within each repeat; the third-party packages are this environment's. After the throughput
repeats, each side is profiled over one steady-state batch (benchmarks/profile.py). The older
tree must have a `benchmarks/worker.py` with the same `prepare` and `scorer` commands (true
from 2026-11-21 on). Prints a markdown table and the profiles; writes the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import cli, harness, report
from benchmarks.contenders import CONTENDERS
from benchmarks.harness import BenchSettings, Context, new_run_id, prepare
from scorestream.stack import LocalKafka, StackSettings, free_port_block

NEW_TREE = harness.ROOT


@contextmanager
def tree(root: Path) -> Iterator[None]:
    """Contenders started meanwhile import benchmarks and scorestream from `root`."""
    saved = harness.ROOT
    harness.ROOT = root
    try:
        yield
    finally:
        harness.ROOT = saved


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.experiments.ab")
    p.add_argument("--old-tree", type=Path, required=True, help="a checkout of the older commit")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--profile-events", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=Path("ab.json"))
    args = p.parse_args(argv)
    sides = {"old": args.old_tree.resolve(), "new": NEW_TREE}
    settings = BenchSettings(events=args.events, repeats=args.repeats)
    scorer = CONTENDERS["scorer-json"]
    work = Path(tempfile.mkdtemp(prefix="scorestream-ab-"))

    def log(message: str) -> None:
        print(f"[ab] {message}", file=sys.stderr, flush=True)

    broker = LocalKafka(StackSettings(state_dir=work / "stack", port=free_port_block(1)))
    broker.up()
    runs: list[dict[str, Any]] = []
    profiles: list[dict[str, Any]] = []
    try:
        contexts: dict[str, Context] = {}
        for side, root in sides.items():
            (work / side).mkdir(parents=True)
            with tree(root):
                registry, card = cli._train(work / side, 20_000, log)
            ctx = Context(broker.kafka, registry, card, work / side, new_run_id(), log=log)
            contexts[side] = ctx
        prepare(contexts["old"], settings)
        shared = contexts["old"]
        contexts["new"] = dataclasses.replace(
            contexts["new"], fill_topics=shared.fill_topics, events_file=shared.events_file
        )
        for repeat in range(1, args.repeats + 1):
            for side, root in sides.items():
                log(f"[repeat {repeat}] {side}: throughput ...")
                with tree(root):
                    run = harness.throughput_run(contexts[side], scorer, settings, repeat)
                run["side"] = side
                log(
                    f"  {run['throughput']:,.0f} ev/s, {run['distinct']} distinct, "
                    f"{run['dead_lettered']} dead-lettered"
                )
                runs.append(run)
        for side, root in sides.items():
            log(f"{side}: profile ...")
            with tree(root):
                found = harness.profile_run(contexts[side], scorer, settings, args.profile_events)
            profiles.append({**found, "contender": f"scorer-json ({side})"})
    finally:
        broker.down()
    args.out.write_text(json.dumps({"runs": runs, "profiles": profiles}, default=str), "utf-8")
    print("| side | sustained ev/s per repeat | median | new / old (same repeat) |")
    print("|---|---|---|---|")
    by = {s: [r["throughput"] for r in runs if r["side"] == s] for s in sides}
    ratios = [n / o for o, n in zip(by["old"], by["new"], strict=True)]
    for side, values in by.items():
        ratio = f"{statistics.median(ratios):.2f}" if side == "new" else ""
        shown = ", ".join(f"{v:,.0f}" for v in values)
        print(f"| {side} | {shown} | {statistics.median(values):,.0f} | {ratio} |")
    print("\n".join(report.profiles_section(profiles)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
