"""The checkpoint manifest: every key it records is compared on restart."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from scorestream.errors import ConfigError
from scorestream.streaming import preflight
from scorestream.streaming.avro_input import InputFormat
from scorestream.streaming.scoring import OutputFormat
from scorestream.streaming.settings import ScorerSettings

BASE = ScorerSettings(input_topic="in", output_topic="out")


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (
            replace(BASE, output_topic="elsewhere"),
            "output_topic: checkpoint 'out', now 'elsewhere'",
        ),
        (replace(BASE, dead_letter_topic="dlq2"), "dead_letter_topic: checkpoint 'in.dlq'"),
        (replace(BASE, input_format=InputFormat(kind="avro")), "input_format: checkpoint 'json'"),
        (replace(BASE, output_format=OutputFormat(kind="avro")), "output_format: checkpoint"),
        (replace(BASE, trigger_interval="realtime"), "trigger: checkpoint 'micro-batch'"),
        (replace(BASE, exactly_once=True), "exactly_once: checkpoint False, now True"),
    ],
)
def test_a_restart_with_another_recorded_setting_is_refused(
    tmp_path: Path, changed: ScorerSettings, named: str
) -> None:
    preflight.write_manifest(tmp_path, BASE.bound())
    preflight.check_checkpoint(tmp_path, BASE.bound())  # the same settings resume
    preflight.check_checkpoint(tmp_path, replace(BASE, trigger_interval="5 seconds").bound())
    with pytest.raises(ConfigError, match="belongs to another scoring query") as info:
        preflight.check_checkpoint(tmp_path, changed.bound())
    assert named in str(info.value)


def test_exactly_once_marker_topic_is_bound(tmp_path: Path) -> None:
    eo = replace(BASE, exactly_once=True)
    preflight.write_manifest(tmp_path, eo.bound())
    with pytest.raises(ConfigError, match=r"marker_topic: checkpoint 'out\.markers', now 'm2'"):
        preflight.check_checkpoint(tmp_path, replace(eo, marker_topic="m2").bound())


def test_a_manifest_of_an_older_version_compares_what_it_recorded(tmp_path: Path) -> None:
    (tmp_path / preflight.MANIFEST).write_text(
        '{"input_topic": "in", "output_topic": "out", "dead_letter_topic": "in.dlq", '
        '"exactly_once": false}\n'
    )
    preflight.check_checkpoint(tmp_path, BASE.bound())
    with pytest.raises(ConfigError, match="output_topic"):
        preflight.check_checkpoint(tmp_path, replace(BASE, output_topic="x").bound())
