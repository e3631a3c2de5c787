"""Registry without Spark: atomic publish and promotion under concurrent readers; partial dirs."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scorestream import fs
from scorestream.contract.spec import FeatureSpec
from scorestream.contract.synthetic import SPEC
from scorestream.errors import ConfigError, ModelError
from scorestream.models.loading import check_event_schema, event_fields
from scorestream.models.registry import Registry
from scorestream.paths import SCHEMAS_DIR

STAGES = ["Imputer_1", "StringIndexer_2", "LogisticRegression_3"]


def fake_model(model_dir: Path, slow: float = 0.0) -> None:
    """The file layout Spark writes for a PipelineModel (what Registry.get checks)."""
    (model_dir / "metadata").mkdir(parents=True)
    meta = {"class": "org.apache.spark.ml.PipelineModel", "paramMap": {"stageUids": STAGES}}
    (model_dir / "metadata" / "part-00000").write_text(json.dumps(meta) + "\n")
    for i, uid in enumerate(STAGES):
        (model_dir / "stages" / f"{i}_{uid}" / "metadata").mkdir(parents=True)
        if slow:
            time.sleep(slow)


def publish(reg: Registry, slow: float = 0.0) -> int:
    def write(model_dir: Path) -> dict[str, Any]:
        fake_model(model_dir, slow)
        return {"spark_version": "4.1.1", "feature_spec": SPEC.to_dict(), "metrics": {}}

    return reg.publish(write, {"rows": 0, "numeric": {}, "categorical": {}, "score": {}}).version


def test_publish_numbers_versions_and_get_reads_them(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert [publish(reg), publish(reg), publish(reg)] == [1, 2, 3]
    assert reg.versions() == [1, 2, 3]
    entry = reg.get(2)
    assert entry.metadata["version"] == 2
    assert entry.spec == SPEC
    assert not list((tmp_path / ".staging").iterdir())


def test_promote_and_rollback_walk_the_history(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(3):
        publish(reg)
    reg.promote(1)
    reg.promote(3)
    reg.promote(2, "challenger")
    assert reg.resolve("champion") == 3
    assert reg.resolve("challenger") == 2
    assert reg.rollback("champion")["version"] == 1
    with pytest.raises(ModelError, match="no earlier version"):
        reg.rollback("champion")
    with pytest.raises(ModelError, match="v9 not found"):
        reg.promote(9)


def test_readers_never_see_a_half_written_version_or_alias(tmp_path: Path) -> None:
    """Threads read while versions are published (slowly) and the alias flips many times."""
    reg = Registry(tmp_path)
    publish(reg)
    reg.promote(1)
    errors: list[str] = []
    reads = [0]
    stop = threading.Event()

    def reader() -> None:
        local = Registry(tmp_path)
        while not stop.is_set():
            try:
                version = local.resolve("champion")
                entry = local.get(version)
                assert entry.metadata["version"] == version
                for v in local.versions():
                    local.get(v)  # every listed version is complete
                reads[0] += 1
            except Exception as exc:  # any error is a torn read
                errors.append(repr(exc))

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        # A bound, not a benchmark: an alias change costs two fsyncs (its log entry, the alias
        # file), ~20 ms each on this shared disk, and far more at a load average of 40.
        deadline = time.monotonic() + 180
        for _ in range(4):
            new = publish(reg, slow=0.02)
            for _ in range(50):
                reg.promote(new)
                reg.promote(1)
            assert time.monotonic() < deadline
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not errors, errors[:3]
    assert reads[0] > 50


READER = """
import sys, time
from scorestream.models.registry import Registry
reg = Registry(sys.argv[1])
seen = set()
deadline = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < deadline:
    v = reg.resolve("champion")
    assert reg.get(v).metadata["version"] == v
    seen.add(v)
    n += 1
print(n, sorted(seen))
"""


def test_a_reader_process_sees_only_whole_aliases(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(2):
        publish(reg)
    reg.promote(1)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", READER, str(tmp_path), "4"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        flips = 0
        while proc.poll() is None:
            reg.promote(2 if flips % 2 == 0 else 1)
            flips += 1
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    reads, seen = out.split(" ", 1)
    assert int(reads) > 10
    assert flips > 10
    assert seen.strip() in ("[1]", "[1, 2]", "[2]")


def test_partial_and_corrupt_versions_give_clear_errors(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    for _ in range(4):
        publish(reg)
    v1 = tmp_path / "versions" / "v1"
    (v1 / "metadata.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"v1/metadata.json cannot be read as JSON.*corrupt"):
        reg.get(1)
    v2 = tmp_path / "versions" / "v2" / "model" / "stages" / f"1_{STAGES[1]}"
    for p in sorted(v2.rglob("*"), reverse=True):
        p.rmdir()
    v2.rmdir()
    with pytest.raises(ModelError, match=r"StringIndexer_2 is missing: the saved model is partial"):
        reg.get(2)
    (tmp_path / "versions" / "v3" / "profile.json").unlink()
    with pytest.raises(ModelError, match=r"v3/profile.json is missing"):
        reg.get(3)
    meta = tmp_path / "versions" / "v4" / "model" / "metadata" / "part-00000"
    meta.write_text("garbage\n")
    with pytest.raises(ModelError, match=r"part-00000 is not Spark PipelineModel metadata"):
        reg.get(4)


def test_cli_reports_a_corrupt_version_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from scorestream.cli import main

    reg = Registry(tmp_path)
    publish(reg)
    (tmp_path / "versions" / "v1" / "metadata.json").write_text("[1]")
    assert main(["models", "show", "v1", "--registry", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "v1/metadata.json holds list, expected a JSON object" in err
    assert "Traceback" not in err


def test_event_schema_check_names_the_field_and_the_mismatch() -> None:
    fields = event_fields(SCHEMAS_DIR / "event.avsc")
    assert fields["amount"] == "double"
    assert fields["merchant_category"] == "string"
    check_event_schema(SPEC, fields, "/reg/v1")
    spec = FeatureSpec.from_dict(
        {"label": "y", "numeric": ["amount", "merchant_category"], "categorical": ["shoe_size"]}
    )
    with pytest.raises(ModelError) as info:
        check_event_schema(spec, fields, "/reg/v7")
    text = str(info.value)
    assert "model /reg/v7 does not fit the event schema" in text
    assert "numeric feature 'merchant_category' is string in the events, expected a number" in text
    assert "categorical feature 'shoe_size' is not an event field" in text


def test_hadoop_uris_stay_uris_and_s3a_is_read_only() -> None:
    reg = Registry("s3a://bucket/models")
    assert str(reg.versions_dir) == "s3a://bucket/models/versions"  # not s3a:/bucket/...
    for action in (lambda: reg.promote(1), lambda: reg.rollback(), lambda: reg.clear("champion")):
        with pytest.raises(ModelError, match=r"s3a:// has no atomic rename.*read-only"):
            action()
    with pytest.raises(ModelError, match="s3a:// has no atomic rename"):
        reg.publish(lambda _d: {}, {})
    assert str(Registry("file:///srv/reg").root) == "/srv/reg"
    with pytest.raises(ConfigError, match=r"'s3a:/bucket/models' is not a valid s3a URI"):
        Registry("s3a:/bucket/models")


def test_a_relative_root_is_this_process_s_directory_not_the_jvm_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spark's JVM keeps the directory it started in; a program that changes directory later
    # (a notebook, an embedding app) must still read and write where its own paths point.
    monkeypatch.chdir(tmp_path)
    assert Registry("reg").root == tmp_path / "reg"
    assert fs.location("data/history.csv") == tmp_path / "data" / "history.csv"
