"""CLI options whose defaults come from the environment, with `[env: X, default: Y]` in --help.

This is the one place that reads `os.environ` for settings: components receive frozen
settings objects built from the parsed arguments.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

SECRET_WORDS = ("password", "secret", "jaas", "token", "key.password", "keystore", "credential")


def is_secret(name: str) -> bool:
    """Whether an option name (flag, env var or Kafka property) holds a secret."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def add(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    env: str,
    default: Any,
    help: str,
    type: Callable[[str], Any] = str,
    environ: Mapping[str, str] | None = None,
    **kwargs: Any,
) -> None:
    """Add `flag`, defaulting to $env (parsed by `type`) or `default`, documented in --help."""
    source = os.environ if environ is None else environ
    value = default
    if env in source:
        raw = source[env]
        try:
            value = type(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            # A secret's value never reaches a message, not even through the parser's error.
            reason = "it is not the expected kind of value" if is_secret(env) else str(exc)
            shown = "***" if is_secret(env) else repr(raw)
            # Reported only if the command being run uses it (check_environment), so one bad
            # variable of one subcommand does not break the others.
            value = InvalidEnvironment(f"environment variable {env}={shown} is not valid: {reason}")
    shown_default = "***" if is_secret(flag) and default else default
    parser.add_argument(
        flag,
        default=value,
        type=type,
        help=f"{help} [env: {env}, default: {shown_default}]",
        **kwargs,
    )


class InvalidEnvironment:
    """The default of an option whose environment variable did not parse."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return "<invalid environment value>"


def check_environment(args: argparse.Namespace) -> None:
    """Fail on an invalid environment value of an option the parsed command uses (an option
    given on the command line replaces it)."""
    for value in vars(args).values():
        if isinstance(value, InvalidEnvironment):
            raise SystemExit(value.message)


def positive_int(text: str) -> int:
    """argparse type: an integer greater than zero."""
    try:
        value = int(text)
    except ValueError as exc:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if value <= 0:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a float >= 0."""
    try:
        value = float(text)
    except ValueError as exc:
        msg = f"expected a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc
    if not value >= 0:
        msg = f"expected a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def bool_flag(text: str) -> bool:
    """argparse type: true/false, yes/no, 1/0."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    msg = f"expected true or false, got {text!r}"
    raise argparse.ArgumentTypeError(msg)
