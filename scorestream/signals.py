"""SIGTERM handled as Ctrl-C: a supervisor's or a timeout's `kill` then runs the program's
`finally` blocks and `except KeyboardInterrupt`, so what it started is stopped by the code that
started it (by pid) instead of being left running."""

from __future__ import annotations

import signal
from typing import Any


def _interrupt(signum: int, _frame: object) -> None:
    msg = f"signal {signum}"
    raise KeyboardInterrupt(msg)


def interrupt_on_sigterm() -> Any:
    """From now on a SIGTERM raises KeyboardInterrupt("signal 15") in the main thread; returns
    the previous handler (for `signal.signal(signal.SIGTERM, previous)`)."""
    return signal.signal(signal.SIGTERM, _interrupt)
