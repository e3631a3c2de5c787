"""Alias changes are a compare-and-swap: concurrent promotes and rollbacks from threads and
processes lose nothing, a rollback to a missing version is refused, a conditional promote too."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from test_models_registry import publish

from scorestream.errors import AliasConflict, ModelError
from scorestream.models.registry import Registry

REPO = Path(__file__).resolve().parents[2]


def check_chain(log: list[dict[str, Any]]) -> None:
    """Every record of the log derives from the one before it: no change was lost."""
    assert [r["generation"] for r in log] == list(range(1, len(log) + 1))
    for before, after in itertools.pairwise(log):
        if after["reason"].startswith("rollback"):
            assert after["version"] == before["history"][-1], (before, after)
            assert after["history"] == before["history"][:-1], (before, after)
        else:
            assert after["history"] == before["history"] + [before["version"]], (before, after)


def test_concurrent_promotes_from_threads_lose_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    threads, each = 4, 10
    versions = [publish(reg) for _ in range(threads * each + 1)]
    reg.promote(versions[0])
    errors: list[str] = []
    start = threading.Barrier(threads)

    def writer(i: int) -> None:
        local = Registry(tmp_path)  # its own instance, as another scorer or CLI would be
        start.wait(timeout=30)
        try:
            for v in versions[1 + i * each : 1 + (i + 1) * each]:
                local.promote(v, reason=f"thread {i}")
        except Exception as exc:
            errors.append(repr(exc))

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=120)
    assert not errors, errors[:3]
    final = reg.alias("champion")
    assert final is not None
    # Every promote moved to a version nobody else used: each one left its predecessor on the
    # history, so a lost update would show as a missing version.
    assert len(final["history"]) == threads * each
    assert sorted([*final["history"], final["version"]]) == versions
    log = reg.alias_log("champion")
    assert len(log) == threads * each + 1
    check_chain(log)
    assert log[-1] == final


WRITER = """
import sys
from scorestream.models.registry import Registry
reg = Registry(sys.argv[1])
for v in [int(x) for x in sys.argv[2].split(",")]:
    reg.promote(v, reason="process")
    if v % 3 == 0:
        reg.rollback(reason="rollback by process")
print("ok")
"""


def test_concurrent_promotes_and_rollbacks_from_processes_lose_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    procs, each = 3, 8
    versions = [publish(reg) for _ in range(procs * each + 1)]
    reg.promote(versions[0])
    chunks = [versions[1 + i * each : 1 + (i + 1) * each] for i in range(procs)]
    running = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), ",".join(map(str, chunk))],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for chunk in chunks
    ]
    try:
        results = [p.communicate(timeout=120) for p in running]
    finally:
        for p in running:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(running, results, strict=True):
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    rollbacks = sum(1 for v in versions[1:] if v % 3 == 0)
    log = reg.alias_log("champion")
    assert len(log) == 1 + procs * each + rollbacks
    check_chain(log)
    assert reg.alias("champion") == log[-1]


def test_rollback_to_a_missing_version_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        publish(reg)
    reg.promote(1)
    reg.promote(3)
    shutil.rmtree(tmp_path / "versions" / "v1")
    with pytest.raises(ModelError) as info:
        reg.rollback("champion")
    text = str(info.value)
    assert "cannot roll 'champion' back to v1" in text
    assert "model version v1 not found" in text and "(versions: v2, v3)" in text
    assert "it stays at v3" in text
    after = reg.alias("champion")
    assert after is not None and after["version"] == 3 and after["history"] == [1]
    assert len(reg.alias_log("champion")) == 2  # the refused change claimed nothing


def test_conditional_promote_refuses_when_the_alias_moved(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        publish(reg)
    reg.promote(1)
    reg.promote(2, reason="by hand")  # after a decision taken while champion was v1
    with pytest.raises(AliasConflict, match=r"'champion' .* is v2, no longer v1: v3 not promoted"):
        reg.promote(3, expected=1)
    assert reg.resolve("champion") == 2
    assert reg.promote(3, expected=2)["version"] == 3


def test_a_registry_written_before_the_log_keeps_its_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        publish(reg)
    (tmp_path / "aliases").mkdir()
    legacy = {"alias": "champion", "version": 2, "history": [1], "reason": "", "updated_at": ""}
    (tmp_path / "aliases" / "champion.json").write_text(json.dumps(legacy))
    assert reg.promote(3)["history"] == [1, 2]
    assert reg.rollback()["version"] == 2
    assert reg.rollback()["version"] == 1
    reg.clear("champion")
    assert reg.alias("champion") is None
    assert reg.promote(2)["history"] == []


def test_a_corrupt_alias_file_is_rewritten_by_the_next_change(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(2):
        publish(reg)
    reg.promote(1)
    (tmp_path / "aliases" / "champion.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"champion\.json cannot be read as JSON"):
        reg.resolve("champion")
    record = reg.promote(2)
    assert record["history"] == [1]  # from the log, which the bad file did not touch
    assert reg.resolve("champion") == 2
