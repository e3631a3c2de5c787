"""docs/api.md's example runs as written: it trains, promotes and scores a live stream."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from scorestream.kafka import KafkaSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    # The first block is the one-line import shown at the top; the last is the example.
    assert len(blocks) >= 2, f"no runnable example in {DOC}"
    return blocks[-1]


def test_api_example_trains_promotes_and_scores_every_event(
    spark: Any,
    kafka: KafkaSettings,
    topic_factory: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SCORESTREAM_BOOTSTRAP", kafka.bootstrap)
    monkeypatch.setenv("SCORESTREAM_STATE", str(tmp_path))
    monkeypatch.setenv("EXAMPLE_INPUT_TOPIC", topic_factory("api-in"))
    monkeypatch.setenv("EXAMPLE_OUTPUT_TOPIC", topic_factory("api-out"))
    namespace: dict[str, Any] = {"__name__": "api_example"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(_example(), str(DOC), "exec"), namespace)  # noqa: S102 (our own doc)
    received = namespace["received"]
    assert len(received) == 500
    assert len({r["event_id"] for r in received}) == 500
    assert all(0.0 <= r["score"] <= 1.0 for r in received)
    assert {r["model_version"] for r in received} == {namespace["entry"].version}
    assert namespace["registry"].resolve("champion") == namespace["entry"].version
    assert not namespace["scorer"].active()
    assert "500 scores from model v" in out.getvalue()
