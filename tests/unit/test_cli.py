"""The `scorestream` front door: subcommands, documented env vars and defaults, clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from scorestream import options as opt
from scorestream.cli import build_parser, main

EXPECTED_COMMANDS = {"stack", "jars", "train", "models", "score", "produce", "consume", "demo"}


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = sub
                found.update({f"{name} {k}": v for k, v in _subparsers(sub).items()})
    return found


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for name in EXPECTED_COMMANDS:
        assert f"    {name}" in text, f"{name} missing from --help"


def test_every_flag_documents_its_env_var_and_default() -> None:
    parsers = {"scorestream": build_parser(), **_subparsers(build_parser())}
    undocumented = [
        f"{name} {action.option_strings[0]}"
        for name, parser in parsers.items()
        for action in parser._actions
        if action.option_strings
        and not isinstance(action, argparse._HelpAction | argparse._VersionAction)
        and not ("[env: " in (action.help or "") and "default: " in (action.help or ""))
    ]
    assert undocumented == []
    assert len(parsers) >= len(EXPECTED_COMMANDS)


def test_environment_supplies_defaults_and_bad_values_are_named() -> None:
    parser = argparse.ArgumentParser()
    opt.add(
        parser,
        "--count",
        env="X_COUNT",
        default=5,
        type=opt.positive_int,
        help="n",
        environ={"X_COUNT": "12"},
    )
    assert parser.parse_args([]).count == 12
    assert parser.parse_args(["--count", "3"]).count == 3
    bad = argparse.ArgumentParser()
    opt.add(
        bad,
        "--count",
        env="X_COUNT",
        default=5,
        type=opt.positive_int,
        help="n",
        environ={"X_COUNT": "zero"},
    )
    with pytest.raises(SystemExit, match=r"X_COUNT='zero' is not valid: expected a positive"):
        opt.check_environment(bad.parse_args([]))
    # The flag given on the command line replaces the bad environment value.
    given = bad.parse_args(["--count", "4"])
    opt.check_environment(given)
    assert given.count == 4


def test_secret_environment_values_are_never_echoed() -> None:
    parser = argparse.ArgumentParser()
    opt.add(
        parser,
        "--sasl-password",
        env="X_SASL_PASSWORD",
        default="",
        type=opt.positive_int,
        help="pw",
        environ={"X_SASL_PASSWORD": "hunter2"},
    )
    with pytest.raises(SystemExit) as done:
        opt.check_environment(parser.parse_args([]))
    assert "hunter2" not in str(done.value)
    assert "***" in str(done.value)


def test_a_bad_variable_of_one_subcommand_breaks_only_that_subcommand(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SCORESTREAM_STACK_PORT", "abc")
    # `models list` does not read the variable: it runs (an empty registry lists nothing).
    assert main(["models", "list", "--registry", str(tmp_path / "registry")]) == 0
    out = capsys.readouterr()
    assert "no model versions in" in out.out
    assert "SCORESTREAM_STACK_PORT" not in out.err
    with pytest.raises(SystemExit, match=r"SCORESTREAM_STACK_PORT='abc' is not valid"):
        main(["demo"])


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (opt.positive_int, "0", "expected a positive integer, got '0'"),
        (opt.positive_int, "1.5", "expected a positive integer, got '1.5'"),
        (opt.non_negative_float, "-1", "expected a number >= 0, got '-1'"),
        (opt.non_negative_float, "nan", "expected a number >= 0, got 'nan'"),
        (opt.bool_flag, "maybe", "expected true or false, got 'maybe'"),
    ],
)
def test_argument_types_reject_with_the_value(parse: object, text: str, expected: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=expected):
        parse(text)  # type: ignore[operator]


def test_bad_flag_value_exits_non_zero_naming_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["demo", "--events", "-5"])
    assert done.value.code == 2
    assert "expected a positive integer, got '-5'" in capsys.readouterr().err


def test_score_flags_default_to_the_scorer_settings_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each default is written once, in ScorerSettings: `score` with no flags and no
    environment builds exactly the settings a program gets from ScorerSettings()."""
    import dataclasses
    import os

    from scorestream.cli.streaming import scorer_settings
    from scorestream.streaming.settings import ScorerSettings

    for name in list(os.environ):
        if name.startswith("SCORESTREAM_") or name == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(name)
    built = scorer_settings(build_parser().parse_args(["score"]))
    default = ScorerSettings()
    for f in dataclasses.fields(ScorerSettings):
        got, want = getattr(built, f.name), getattr(default, f.name)
        if f.name == "registry":  # the CLI resolves the path against the working directory
            got, want = Path(got).resolve(), Path(want).resolve()
        assert got == want, f"score --{f.name}: the CLI gives {got!r}, ScorerSettings {want!r}"
