"""The alias follower's refusals without a JVM: a bad alias is counted once, not once per
batch; a candidate failing a check never serves; error lines from Py4J name the cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scorestream.contract.synthetic import SPEC
from scorestream.errors import ModelError
from scorestream.models.registry import ModelVersion
from scorestream.streaming.model_holder import AliasFollower, first_line


class FakeRegistry:
    root = Path("/registry")

    def __init__(self) -> None:
        self.target: Any = {"version": 2}
        self.spec = SPEC.to_dict()

    def alias(self, _name: str) -> Any:
        if isinstance(self.target, Exception):
            raise self.target
        return self.target

    def resolve(self, _ref: str) -> int:
        return int(self.alias("champion")["version"])

    def load(self, version: int) -> tuple[ModelVersion, object]:
        meta = {"feature_spec": self.spec, "spark_version": "4.1.1"}
        return ModelVersion(version, Path(f"/registry/versions/v{version}"), meta), object()


def test_a_bad_alias_is_refused_and_counted_once_until_it_changes() -> None:
    registry = FakeRegistry()
    reasons: list[str] = []
    follower = AliasFollower(registry, "champion", on_failure=reasons.append)  # type: ignore[arg-type]
    registry.target = ModelError("aliases/champion.json cannot be read as JSON")
    for _ in range(3):
        assert not follower.follow(SPEC)
    registry.target = {"no": "version"}
    assert not follower.follow(SPEC)
    assert len(reasons) == 2 and "cannot be read as JSON" in reasons[0]
    assert "names no version" in reasons[1]
    registry.target = {"version": 2}
    assert follower.follow(SPEC) and follower.version == 2


def test_a_candidate_failing_a_check_never_serves_and_is_not_retried() -> None:
    registry = FakeRegistry()
    reasons: list[str] = []
    follower = AliasFollower(registry, "challenger", optional=True, on_failure=reasons.append)  # type: ignore[arg-type]
    registry.spec = {**SPEC.to_dict(), "numeric": "not a list"}
    assert not follower.follow(SPEC) and follower.version is None
    assert not follower.follow(SPEC)  # not tried again
    assert len(reasons) == 1 and "holds a bad feature spec" in reasons[0]

    registry.spec = SPEC.to_dict()
    registry.target = {"version": 3}

    def fails(_entry: ModelVersion, _model: object) -> None:
        raise RuntimeError("Unseen label: ZZ0")

    assert not follower.follow(SPEC, fails)
    assert "failed a dry run" in reasons[-1] and "Unseen label: ZZ0" in reasons[-1]
    registry.target = None  # the alias cleared: no challenger, no refusal
    assert not follower.follow(SPEC) and len(reasons) == 2


def test_first_line_of_a_py4j_error_is_its_innermost_cause() -> None:
    text = (
        "An error occurred while calling o42.collectToPython.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure\n"
        "\tat org.apache.spark.X(X.scala:1)\n"
        "Caused by: org.apache.spark.SparkException: Unseen label: ZZ0.\n"
        "\tat org.apache.spark.Y(Y.scala:2)\n"
    )
    assert first_line(RuntimeError(text)) == "org.apache.spark.SparkException: Unseen label: ZZ0."
    short = "An error occurred while calling o1.load.\n: java.io.IOException: gone\n"
    assert first_line(RuntimeError(short)) == "java.io.IOException: gone"
    assert first_line(ValueError()) == "ValueError"
