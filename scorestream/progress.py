"""A progress line that redraws in place on a terminal and prints plain, spaced lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """`update(text)` shows progress; `done(text)` ends it with a final line.

    On a terminal the line is redrawn (`\\r`) at most every `tty_interval_s`; in logs and CI,
    where `\\r` makes one unreadable line, a plain line is printed at most every `log_interval_s`.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        tty_interval_s: float = 0.25,
        log_interval_s: float = 10.0,
    ) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval_s = tty_interval_s if self.tty else log_interval_s
        self._shown = float("-inf")
        self._drawn = False

    def update(self, text: str) -> None:
        now = time.monotonic()
        if now - self._shown < self.interval_s:
            return
        self._shown = now
        if self.tty:
            print(f"\r{text}\x1b[K", end="", file=self.stream, flush=True)
            self._drawn = True
        else:
            print(text, file=self.stream, flush=True)

    def done(self, text: str) -> None:
        prefix = "\r" if self.tty and self._drawn else ""
        suffix = "\x1b[K" if prefix else ""
        print(f"{prefix}{text}{suffix}", file=self.stream, flush=True)
