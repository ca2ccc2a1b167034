"""Termination signals end a run the way Ctrl-C does: cleanup runs, temporaries go, one line is printed.

Python turns SIGINT into KeyboardInterrupt but dies silently on SIGTERM and SIGHUP, skipping every
``finally``: stage files and temporary outputs stayed behind. The CLI installs :func:`raise_on_signals`
so all three raise :class:`Interrupted` (a KeyboardInterrupt) in the main thread, and exits with the
conventional ``128 + signal`` code.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType

HANDLED = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A run ended by a signal; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def raise_on_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:   # nohup'd runs keep ignoring SIGHUP
            signal.signal(signum, _raise)
