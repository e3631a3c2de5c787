"""SIGTERM handled as Ctrl-C, with the previous handler given back."""

from __future__ import annotations

import os
import signal

import pytest

from scorestream.signals import interrupt_on_sigterm

pytestmark = pytest.mark.unit


def test_sigterm_raises_keyboard_interrupt_until_the_previous_handler_is_back() -> None:
    seen: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, _frame: seen.append(signum))
    try:
        previous = interrupt_on_sigterm()
        with pytest.raises(KeyboardInterrupt, match="signal 15"):
            os.kill(os.getpid(), signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]  # the handler before it, restored
    finally:
        signal.signal(signal.SIGTERM, original)
