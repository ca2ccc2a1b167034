"""Termination signals end a run the way Ctrl-C does: cleanup runs, temporaries go, one line is printed.

Python turns SIGINT into KeyboardInterrupt but dies silently on SIGTERM and SIGHUP, skipping every
``finally``: stage files and temporary outputs stayed behind. The CLI installs :func:`raise_on_signals`
so all three raise :class:`Interrupted` (a KeyboardInterrupt) in the main thread, and exits with the
conventional ``128 + signal`` code.
"""
from __future__ import annotations

import ctypes
import signal
import sys
import threading
from types import FrameType
from typing import NoReturn

HANDLED = tuple(s for s in (getattr(signal, n, None) for n in ("SIGINT", "SIGTERM", "SIGHUP")) if s is not None)


class Interrupted(KeyboardInterrupt):
    """A run ended by a signal; ``exit_code`` is 128 + its number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(signal.Signals(signum).name)


def interrupt_message(err: KeyboardInterrupt) -> str:
    """True whenever the interrupt lands: an output renamed into place is complete, the rest are removed."""
    name = err.args[0] if isinstance(err, Interrupted) else "SIGINT"
    return f"interrupted ({name}); unfinished outputs were removed"


def exit_code(err: KeyboardInterrupt) -> int:
    return err.exit_code if isinstance(err, Interrupted) else 130


def exit_interrupted(err: KeyboardInterrupt) -> NoReturn:
    """One line on stderr and the conventional exit code, for an interrupt outside any command."""
    print(f"geoseg: error: {interrupt_message(err)}", file=sys.stderr, flush=True)
    raise SystemExit(exit_code(err))


#: The first signal this process received (None: none), kept because third-party code a signal lands in
#: may swallow the :class:`Interrupted` it raised and fail later with an unrelated error instead (a
#: half-imported numpy: "module 'numpy._core' has no attribute '_multiarray_umath'").
_received: int | None = None


def _raise(signum: int, frame: FrameType | None) -> None:
    global _received
    _received = _received or signum
    raise Interrupted(signum)


def received_interrupt() -> Interrupted | None:
    """The interrupt this process was sent, if any: an error after it is the signal's doing, not a bug."""
    return Interrupted(_received) if _received else None


def raise_on_signals() -> None:
    """Make SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in HANDLED:
        if signal.getsignal(signum) is not signal.SIG_IGN:   # nohup'd runs keep ignoring SIGHUP
            signal.signal(signum, _raise)


def ignore_signals_while_exiting() -> None:
    """After the command: its outputs are complete or removed, and the interpreter is shutting down. A
    signal now must not raise into that shutdown (a traceback from ``threading._shutdown``)."""
    if threading.current_thread() is threading.main_thread():
        for signum in HANDLED:
            signal.signal(signum, signal.SIG_IGN)


def die_with_parent() -> None:
    """For worker processes: the parent alone handles signals, and the kernel ends the worker with it.

    Forked workers inherit :func:`raise_on_signals`; the pool's own SIGTERM at shutdown would then print
    a worker traceback. On Linux, PR_SET_PDEATHSIG also ends a worker whose parent was SIGKILLed (it
    used to block forever writing to a dead pipe).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)        # Ctrl-C reaches the whole group: the parent decides
    for signum in HANDLED:
        if signum != signal.SIGINT:
            signal.signal(signum, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


_PR_SET_PDEATHSIG = 1
