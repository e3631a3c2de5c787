"""`scorestream score` flags of the operating modes: parsing, refusals before Spark starts, and
which listeners they build (no JVM, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scorestream.cli import build_parser, main
from scorestream.cli import operations as ops
from scorestream.cli.streaming import scorer_settings
from scorestream.errors import ConfigError
from scorestream.kafka import KafkaSettings
from scorestream.streaming.feedback import FeedbackLoop
from scorestream.streaming.shadow import ShadowScorer


def _args(*argv: str) -> object:
    return build_parser().parse_args(["score", *argv])


def test_defaults_shadow_on_feedback_off(tmp_path: Path) -> None:
    args = _args("--registry", str(tmp_path))
    settings = scorer_settings(args)  # type: ignore[arg-type]
    listeners, shadows, loops = ops.operation_listeners(
        args,  # type: ignore[arg-type]
        KafkaSettings(),
        settings,
        None,
    )
    assert args.trigger == "microbatch"  # type: ignore[attr-defined]
    assert [type(x) for x in listeners] == [ShadowScorer] and loops == []
    assert shadows[0].settings.topic == "scores.shadow"


def test_labels_topic_builds_a_feedback_loop_fed_by_the_shadow() -> None:
    args = _args(
        "--labels-topic", "labels", "--auto-promote", "--min-labels", "50",
        "--feedback-window", "100", "--promote-margin", "0.02", "--shadow-topic", "sh",
    )  # fmt: skip
    settings = scorer_settings(args)  # type: ignore[arg-type]
    listeners, shadows, loops = ops.operation_listeners(args, KafkaSettings(), settings, None)  # type: ignore[arg-type]
    assert [type(x) for x in loops] == [FeedbackLoop]
    # Two listeners, the loop after the shadow (it reads the batch's pairs from it).
    assert listeners == [shadows[0], loops[0]] and loops[0].shadow is shadows[0]
    assert shadows[0].keep_pairs and shadows[0].settings.topic == "sh"
    s = loops[0].settings
    assert (s.labels_topic, s.window, s.min_labels, s.margin, s.auto_promote) == (
        "labels", 100, 50, 0.02, True,
    )  # fmt: skip


def test_shadow_false_with_labels_builds_the_feedback_loop_alone() -> None:
    args = _args("--shadow", "false", "--labels-topic", "labels")
    settings = scorer_settings(args)  # type: ignore[arg-type]
    listeners, shadows, loops = ops.operation_listeners(args, KafkaSettings(), settings, None)  # type: ignore[arg-type]
    assert shadows == [] and [type(x) for x in listeners] == [FeedbackLoop]
    assert listeners == loops and loops[0].shadow is None


def test_shadow_off_and_realtime_build_no_listener() -> None:
    for argv in (["--shadow", "false"], ["--trigger", "realtime"]):
        args = _args(*argv)
        settings = scorer_settings(args)  # type: ignore[arg-type]
        assert ops.operation_listeners(args, KafkaSettings(), settings, None) == ([], [], [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["--auto-promote"], "--auto-promote needs --labels-topic"),
        (
            ["--labels-topic", "l", "--auto-promote", "--shadow", "false"],
            "--auto-promote needs --shadow true",
        ),
        (["--trigger", "realtime", "--labels-topic", "l"], "need micro-batch mode"),
        (["--trigger", "realtime", "--exactly-once"], "needs micro-batch mode"),
        (["--trigger", "realtime", "--min-partitions", "4"], "not supported in real-time mode"),
        (
            ["--trigger", "realtime", "--realtime-checkpoint-interval", "2 s"],
            "'2 s' is 2 s; Spark needs at least 5 s",
        ),
        (
            ["--trigger", "realtime", "--realtime-checkpoint-interval", "soon"],
            "'soon' is not valid",
        ),
        (["--labels-topic", "l", "--min-labels", "9000"], "min_labels (9000) is larger"),
        (["--shadow-topic", "scores"], "shadow topic 'scores' must differ"),
    ],
)
def test_bad_combinations_exit_2_before_spark_starts(
    argv: list[str], text: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["score", "--registry", str(tmp_path), *argv])
    assert code == 2
    assert text in capsys.readouterr().err


def test_check_args_raises_config_errors() -> None:
    args = _args("--auto-promote")
    with pytest.raises(ConfigError):
        ops.check_args(args, scorer_settings(args))  # type: ignore[arg-type]
