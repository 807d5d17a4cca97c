"""SIGINT/SIGTERM between a client's close and its event loop's close: noted, never raised there.

``LLMClient.aclose`` gives the loop's signal handlers back, which restores Python's default
SIGINT handler while the loop is still winding down (the transport stopping its
generation thread, the runner cancelling what is left and joining the executor). A
KeyboardInterrupt raised inside that breaks the shutdown: uvloop ends with "Event loop
stopped before Future completed" (exit 1) and a thread's "Event loop is closed"
traceback. So from the client's close until the loop has closed, a signal is only noted;
:func:`release` (called by ``client.run`` once the loop is closed) gives the defaults back
and says whether one came, which the run then reports as an interruption (exit 130).
A loop run without ``client.run`` gets the defaults back at the first signal after it closed.
"""

from __future__ import annotations

import asyncio
import signal

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_DEFAULTS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
_noted: list[int] = []


def hold(loop: asyncio.AbstractEventLoop) -> None:
    """Until ``loop`` is closed, SIGINT/SIGTERM are noted instead of raised. Call from the loop,
    right after its own handlers for them were removed."""

    def held(sig: int, _frame) -> None:
        if not loop.is_closed():
            _noted.append(sig)
            return
        _restore()
        signal.raise_signal(sig)  # the loop is gone: the default behaviour, as if never held

    held.persrm_held = True  # type: ignore[attr-defined]
    for sig in SIGNALS:
        signal.signal(sig, held)


def release() -> bool:
    """The default handlers back (where :func:`hold` left its own); True when a signal was noted."""
    _restore()
    noted = bool(_noted)
    _noted.clear()
    return noted


def _restore() -> None:
    for sig in SIGNALS:
        if getattr(signal.getsignal(sig), "persrm_held", False):
            signal.signal(sig, _DEFAULTS[sig])
